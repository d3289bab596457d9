//! [`SledStore`]: the embedded, durable [`BlockStore`], a sled database in a directory.
//!
//! Layout (one sled tree, so that a commit is a single atomic `apply_batch`):
//!
//! | key                          | value                                       |
//! |------------------------------|---------------------------------------------|
//! | `b` + CID (36 bytes)         | block bytes                                 |
//! | `h` + type `0x00` id         | head record, DAG-CBOR `{"cid": CID, "height": uint}` |
//! | `meta/format`                | store layout version, `1`                   |
//!
//! Trusted keys live in a second tree, `trust`: author key (32 bytes) to a UTF-8 label.
//! Every write is followed by a flush (fsync) before it is reported as done.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::instrument;

use super::{check_heads, BlockStore, Commit, Head};
use crate::{codec, Author, Block, Cid, Error, Result, StreamId};

const BLOCK: u8 = b'b';
const HEAD: u8 = b'h';
const META_FORMAT: &[u8] = b"meta/format";
const LAYOUT_VERSION: &[u8] = b"1";

/// A durable block store in a sled database.
pub struct SledStore {
    path: PathBuf,
    db: ::sled::Db,
    trust: ::sled::Tree,
    /// Serialises commits, so that the head check and the write are one step. sled allows one
    /// process per database, so a process-wide lock is enough.
    commit_lock: Mutex<()>,
}

fn block_key(cid: &Cid) -> [u8; 37] {
    let mut key = [0u8; 37];
    key[0] = BLOCK;
    key[1..].copy_from_slice(&cid.to_bytes());
    key
}

fn head_key(stream: &StreamId) -> Vec<u8> {
    let mut key = vec![HEAD];
    key.extend_from_slice(&stream.key());
    key
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// Fails with a clear error when the directory holds something that is not a personctl
    /// store, or is already opened by another process.
    #[instrument(skip_all, fields(path = %path.as_ref().display()))]
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        let db = ::sled::Config::new()
            .path(&path)
            .open()
            .map_err(|e| match e {
                ::sled::Error::Io(source) => Error::Io {
                    context: format!("opening the store at {}", path.display()),
                    source,
                },
                other => Error::Storage(other),
            })?;
        match db.get(META_FORMAT)? {
            Some(v) if v.as_ref() == LAYOUT_VERSION => {}
            Some(v) => {
                return Err(Error::Io {
                    context: format!("opening the store at {}", path.display()),
                    source: std::io::Error::other(format!(
                        "store layout version {:?} is not supported (expected 1)",
                        String::from_utf8_lossy(&v)
                    )),
                })
            }
            None => {
                db.insert(META_FORMAT, LAYOUT_VERSION)?;
                db.flush()?;
            }
        }
        let trust = db.open_tree("trust")?;
        tracing::debug!("store opened");
        Ok(SledStore {
            path,
            db,
            trust,
            commit_lock: Mutex::new(()),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a trusted author with a label; returns whether it was new.
    pub fn trust_add(&self, author: &Author, label: &str) -> Result<bool> {
        let old = self.trust.insert(author.to_bytes(), label.as_bytes())?;
        self.trust.flush()?;
        Ok(old.is_none())
    }

    /// Removes a trusted author; returns whether it was there.
    pub fn trust_remove(&self, author: &Author) -> Result<bool> {
        let old = self.trust.remove(author.to_bytes())?;
        self.trust.flush()?;
        Ok(old.is_some())
    }

    /// Every trusted author with its label.
    pub fn trust_list(&self) -> Result<Vec<(Author, String)>> {
        let mut out = Vec::new();
        for entry in self.trust.iter() {
            let (k, v) = entry?;
            let key: [u8; 32] = k.as_ref().try_into().map_err(|_| Error::InvalidKey {
                input: format!("{} bytes in the trust tree", k.len()),
                reason: "a trusted key has 32 bytes".into(),
            })?;
            out.push((
                Author::from_bytes(&key)?,
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.commit_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_head(&self, stream: &StreamId) -> Result<Option<Head>> {
        match self.db.get(head_key(stream))? {
            Some(bytes) => Ok(Some(codec::decode(
                &format_args!("head record of {stream}"),
                &bytes,
            )?)),
            None => Ok(None),
        }
    }

    /// Sets a head without any check, to simulate corruption in tests.
    pub fn set_head_unchecked(&self, stream: &StreamId, head: Head) -> Result<()> {
        self.db.insert(head_key(stream), codec::encode(&head)?)?;
        self.db.flush()?;
        Ok(())
    }

    /// Stores `bytes` under `cid` without checking them, to simulate corruption in tests.
    pub fn insert_unchecked(&self, cid: &Cid, bytes: &[u8]) -> Result<()> {
        self.db.insert(block_key(cid), bytes)?;
        self.db.flush()?;
        Ok(())
    }
}

impl BlockStore for SledStore {
    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        match self.db.get(block_key(cid))? {
            Some(bytes) => Block::verified(*cid, bytes.to_vec()).map(Some),
            None => Ok(None),
        }
    }

    fn contains(&self, cid: &Cid) -> Result<bool> {
        Ok(self.db.contains_key(block_key(cid))?)
    }

    fn put(&self, block: &Block) -> Result<()> {
        self.db.insert(block_key(&block.cid()), block.bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn remove(&self, cid: &Cid) -> Result<bool> {
        let old = self.db.remove(block_key(cid))?;
        self.db.flush()?;
        Ok(old.is_some())
    }

    fn head(&self, stream: &StreamId) -> Result<Option<Head>> {
        self.read_head(stream)
    }

    fn heads(&self) -> Result<Vec<(StreamId, Head)>> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([HEAD]) {
            let (k, v) = entry?;
            let stream = StreamId::from_key(&k[1..])?;
            let head: Head = codec::decode(&format_args!("head record of {stream}"), &v)?;
            out.push((stream, head));
        }
        Ok(out)
    }

    #[instrument(skip_all, fields(blocks = commit.blocks.len(), heads = commit.heads.len()))]
    fn commit(&self, commit: &Commit) -> Result<()> {
        let mut batch = ::sled::Batch::default();
        for block in &commit.blocks {
            batch.insert(&block_key(&block.cid())[..], block.bytes());
        }
        for update in &commit.heads {
            batch.insert(head_key(&update.stream), codec::encode(&update.new)?);
        }
        {
            let _guard = self.lock();
            check_heads(commit, |s| self.read_head(s))?;
            self.db.apply_batch(batch)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(Result<Block>) -> bool) -> Result<()> {
        for entry in self.db.scan_prefix([BLOCK]) {
            let (k, v) = entry?;
            let item = Cid::from_bytes(&k[1..]).and_then(|cid| Block::verified(cid, v.to_vec()));
            if !visit(item) {
                break;
            }
        }
        Ok(())
    }
}
