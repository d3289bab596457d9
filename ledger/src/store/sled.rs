//! [`SledStore`]: the embedded, durable [`BlockStore`]: block bytes in append-only segment
//! files, and an ordered log of commit records in sled.
//!
//! Layout of a store directory:
//!
//! | path | content |
//! |---|---|
//! | `blocks/NNNNNNNN.seg` | block bytes, appended (see `segments.rs`) |
//! | `index/` (sled) `meta/format` | store layout version, `1` |
//! | `index/` (sled) tree `commits` | sequence number (u64 BE) to the CID (36 bytes) and location (16 bytes) of a commit record |
//! | `index/` (sled) tree `trust` | trusted author key (32 bytes) to a UTF-8 label |
//! | `index/` (sled) tree `published` | stream key to how far JetStream acknowledged it: CID (36 bytes), height (u64 BE), sequence (u64 BE) |
//!
//! A commit record lists the blocks the commit wrote (CID and location), the heads it moved and
//! the blocks it removed. It is written to the segment right after the commit's blocks, in the
//! same write and sync; sled then gets one small entry pointing at it, and its atomic insert and
//! flush is what makes the commit count. At open the records are read back, in order, checked
//! against their CIDs and replayed into two in-memory maps: CID to location, and stream to head
//! (the Bitcask model: memory holds the index, files hold the data). Only then are the maps
//! updated. A crash before the sled flush leaves unindexed bytes in a segment: invisible and
//! harmless. sled never holds block bytes (and so never personal data); removing a block
//! overwrites its bytes in place.
//!
//! Commit record, binary, all integers big-endian:
//! `blocks: u32, (CID: 36 bytes, segment: u32, offset: u64, len: u32) * blocks,`
//! `heads: u32, (stream key length: u16, stream key, CID: 36 bytes, height: u64) * heads,`
//! `removed: u32, CID: 36 bytes * removed`.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::Thread;

use tracing::instrument;

use super::segments::{checked, Loc, Segments};
use super::{check_heads, BlockStore, Commit, Head, Published};
use crate::{Author, Block, Cid, Error, Result, StreamId, CID_LEN};

const META_FORMAT: &[u8] = b"meta/format";
const LAYOUT_VERSION: &[u8] = b"1";

/// A durable block store in a directory.
pub struct SledStore {
    path: PathBuf,
    db: ::sled::Db,
    commits: ::sled::Tree,
    trust: ::sled::Tree,
    published: ::sled::Tree,
    segments: Segments,
    state: RwLock<State>,
    /// Serialises writers, so that the head check, the writes and the map updates are one step.
    /// sled allows one process per database, so a process-wide lock is enough.
    writer: Mutex<u64>,
    /// Group commit: the commits waiting for the next group, and whether a group is being
    /// written.
    queue: Mutex<Queue>,
}

/// The group-commit queue (see [`SledStore::commit`]).
#[derive(Default)]
struct Queue {
    waiting: Vec<Arc<Queued>>,
    /// Whether some writer is writing a group now: the leader.
    leading: bool,
}

/// A commit waiting in the group-commit queue: its outcome once a group wrote it, or the
/// leadership of the next group. Either is announced by unparking its thread.
struct Queued {
    commit: Commit,
    outcome: Mutex<Option<Result<()>>>,
    lead: AtomicBool,
    thread: Thread,
}

impl Queued {
    fn settle(&self, outcome: Result<()>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.thread.unpark();
    }

    fn outcome(&self) -> Option<Result<()>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn hand_lead(&self) {
        self.lead.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// The in-memory index, rebuilt from the commit records at open.
#[derive(Default)]
struct State {
    blocks: HashMap<Cid, Loc>,
    heads: BTreeMap<StreamId, Head>,
}

/// One commit record (see the module docs).
#[derive(Default)]
struct Record {
    blocks: Vec<(Cid, Loc)>,
    heads: Vec<(StreamId, Head)>,
    removed: Vec<Cid>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.blocks.len() * 52 + self.heads.len() * 80);
        out.extend_from_slice(&(self.blocks.len() as u32).to_be_bytes());
        for (cid, loc) in &self.blocks {
            out.extend_from_slice(&cid.to_bytes());
            out.extend_from_slice(&loc.to_bytes());
        }
        out.extend_from_slice(&(self.heads.len() as u32).to_be_bytes());
        for (stream, head) in &self.heads {
            let key = stream.key();
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(&key);
            out.extend_from_slice(&head.cid.to_bytes());
            out.extend_from_slice(&head.height.to_be_bytes());
        }
        out.extend_from_slice(&(self.removed.len() as u32).to_be_bytes());
        for cid in &self.removed {
            out.extend_from_slice(&cid.to_bytes());
        }
        out
    }

    fn decode(seq: u64, bytes: &[u8]) -> Result<Record> {
        let bad = || corrupt(format!("commit record {seq} is malformed"));
        let mut r = Reader { bytes, pos: 0 };
        let mut record = Record::default();
        for _ in 0..r.u32().ok_or_else(bad)? {
            let cid = Cid::from_bytes(r.take(CID_LEN).ok_or_else(bad)?)?;
            let loc = Loc::from_bytes(r.take(16).ok_or_else(bad)?).ok_or_else(bad)?;
            record.blocks.push((cid, loc));
        }
        for _ in 0..r.u32().ok_or_else(bad)? {
            let len = u16::from_be_bytes(r.take(2).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
            let stream = StreamId::from_key(r.take(len as usize).ok_or_else(bad)?)?;
            let cid = Cid::from_bytes(r.take(CID_LEN).ok_or_else(bad)?)?;
            let height =
                u64::from_be_bytes(r.take(8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
            record.heads.push((stream, Head { cid, height }));
        }
        for _ in 0..r.u32().ok_or_else(bad)? {
            record
                .removed
                .push(Cid::from_bytes(r.take(CID_LEN).ok_or_else(bad)?)?);
        }
        if r.pos != bytes.len() {
            return Err(bad());
        }
        Ok(record)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

fn corrupt(what: String) -> Error {
    Error::Io {
        context: "reading the store index".into(),
        source: std::io::Error::other(what),
    }
}

impl State {
    fn apply(&mut self, record: Record) {
        self.blocks.extend(record.blocks);
        self.heads.extend(record.heads);
        for cid in record.removed {
            self.blocks.remove(&cid);
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`, replaying its commit records.
    ///
    /// Fails with a clear error when the directory holds something that is not a personctl
    /// store, or is already opened by another process.
    #[instrument(skip_all, fields(path = %path.as_ref().display()))]
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        let context = || format!("opening the store at {}", path.display());
        let db = ::sled::Config::new()
            .path(path.join("index"))
            .open()
            .map_err(|e| match e {
                ::sled::Error::Io(source) => Error::Io {
                    context: context(),
                    source,
                },
                other => Error::Storage(other),
            })?;
        match db.get(META_FORMAT)? {
            Some(v) if v.as_ref() == LAYOUT_VERSION => {}
            Some(v) => {
                return Err(Error::Io {
                    context: context(),
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
        let commits = db.open_tree("commits")?;
        let trust = db.open_tree("trust")?;
        let published = db.open_tree("published")?;
        let segments = Segments::open(path.join("blocks"))?;
        let mut state = State::default();
        let mut next = 0;
        for entry in commits.iter() {
            let (k, v) = entry?;
            let seq = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("bad commit key".into()))?,
            );
            let bad = || corrupt(format!("commit pointer {seq} is malformed"));
            if v.len() != CID_LEN + 16 {
                return Err(bad());
            }
            let cid = Cid::from_bytes(&v[..CID_LEN])?;
            let loc = Loc::from_bytes(&v[CID_LEN..]).ok_or_else(bad)?;
            let footer = checked(cid, segments.read(loc))?;
            state.apply(Record::decode(seq, footer.bytes())?);
            next = seq + 1;
        }
        tracing::debug!(
            commits = next,
            blocks = state.blocks.len(),
            streams = state.heads.len(),
            "store opened"
        );
        Ok(SledStore {
            path,
            db,
            commits,
            trust,
            published,
            segments,
            state: RwLock::new(state),
            writer: Mutex::new(next),
            queue: Mutex::new(Queue::default()),
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

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one group as its leader: `waiting` (settled here) and `own`, the leader's own
    /// commit, whose outcome is returned. Then hands the lead to the first commit waiting, or
    /// steps down; even when writing panics, so that nobody waits for a leader that is gone.
    fn lead(&self, own: Option<&Commit>, waiting: &[Arc<Queued>]) -> Option<Result<()>> {
        struct HandOver<'a>(&'a SledStore, &'a [Arc<Queued>]);
        impl Drop for HandOver<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    for q in self.1 {
                        q.settle(Err(Error::Io {
                            context: "committing a group of writes".into(),
                            source: std::io::Error::other("the writer of the group panicked"),
                        }));
                    }
                }
                let mut queue = self.0.lock_queue();
                match queue.waiting.first() {
                    Some(next) => next.hand_lead(),
                    None => queue.leading = false,
                }
            }
        }
        let _hand_over = HandOver(self, waiting);
        let mut group: Vec<&Commit> = waiting.iter().map(|q| &q.commit).collect();
        group.extend(own);
        let mut next = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut outcomes = self.write_group(&mut next, &group);
        drop(next);
        let direct = own.and_then(|_| outcomes.pop());
        for (q, o) in waiting.iter().zip(outcomes) {
            q.settle(o);
        }
        direct
    }

    /// Writes a group of commits (see [`BlockStore::commit`]) in one durable write; returns each
    /// one's outcome, in order.
    fn write_group(&self, next: &mut u64, group: &[&Commit]) -> Vec<Result<()>> {
        let mut outcomes: Vec<Option<Result<()>>> = Vec::with_capacity(group.len());
        let state = self.read_state();
        let mut moved: HashMap<StreamId, Head> = HashMap::default();
        for commit in group {
            let current = |s: &StreamId| {
                Ok(moved
                    .get(s)
                    .copied()
                    .or_else(|| state.heads.get(s).copied()))
            };
            match check_heads(commit, current) {
                Ok(()) => {
                    for u in &commit.heads {
                        moved.insert(u.stream.clone(), u.new);
                    }
                    outcomes.push(None); // accepted: settled by the write below
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        drop(state);
        let accepted = || {
            group
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .map(|(c, _)| *c)
        };
        let blocks: Vec<(Cid, &[u8])> = accepted()
            .flat_map(|c| c.blocks.iter().map(|b| (b.cid(), b.bytes())))
            .collect();
        let heads: Vec<(StreamId, Head)> = accepted()
            .flat_map(|c| c.heads.iter().map(|u| (u.stream.clone(), u.new)))
            .collect();
        let written = if accepted().next().is_none() {
            Ok(())
        } else {
            self.write_locked(next, &blocks, heads, Vec::new())
        };
        // On a failed write nothing of the group counts, and every accepted commit gets it.
        let text = written.as_ref().err().map(|e| e.to_string());
        let mut first = written.err();
        outcomes
            .into_iter()
            .map(|o| match (o, &text) {
                (Some(rejected), _) => rejected,
                (None, None) => Ok(()),
                (None, Some(text)) => Err(first.take().unwrap_or_else(|| Error::Io {
                    context: "committing a group of writes".into(),
                    source: std::io::Error::other(text.clone()),
                })),
            })
            .collect()
    }

    /// Writes a commit without any head check (block puts and removals, and the test hooks):
    /// blocks to a segment, the record to sled, then the in-memory maps. Commits that move
    /// heads go through [`BlockStore::commit`].
    fn write(
        &self,
        blocks: &[(Cid, &[u8])],
        heads: Vec<(StreamId, Head)>,
        removed: Vec<Cid>,
    ) -> Result<()> {
        let mut next = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.write_locked(&mut next, blocks, heads, removed)
    }

    /// [`SledStore::write`] with the writer lock held (`next` is under it).
    fn write_locked(
        &self,
        next: &mut u64,
        blocks: &[(Cid, &[u8])],
        heads: Vec<(StreamId, Head)>,
        removed: Vec<Cid>,
    ) -> Result<()> {
        let mut record = Record {
            blocks: Vec::new(),
            heads,
            removed,
        };
        let (locs, footer_cid, footer_loc) = self.segments.append(blocks, |locs| {
            record.blocks = blocks
                .iter()
                .map(|(c, _)| *c)
                .zip(locs.iter().copied())
                .collect();
            record.encode()
        })?;
        debug_assert_eq!(locs.len(), blocks.len());
        let mut pointer = Vec::with_capacity(CID_LEN + 16);
        pointer.extend_from_slice(&footer_cid.to_bytes());
        pointer.extend_from_slice(&footer_loc.to_bytes());
        self.commits.insert(next.to_be_bytes(), pointer)?;
        self.db.flush()?;
        *next += 1;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(record);
        Ok(())
    }

    /// Sets a head without any check, to simulate corruption in tests.
    #[cfg(feature = "test-corruption")]
    pub fn set_head_unchecked(&self, stream: &StreamId, head: Head) -> Result<()> {
        self.write(&[], vec![(stream.clone(), head)], Vec::new())
    }

    /// Stores `bytes` under `cid` without checking them, to simulate corruption in tests.
    #[cfg(feature = "test-corruption")]
    pub fn insert_unchecked(&self, cid: &Cid, bytes: &[u8]) -> Result<()> {
        self.write(&[(*cid, bytes)], Vec::new(), Vec::new())
    }
}

impl BlockStore for SledStore {
    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        let loc = self.read_state().blocks.get(cid).copied();
        match loc {
            Some(loc) => checked(*cid, self.segments.read(loc)).map(Some),
            None => Ok(None),
        }
    }

    fn contains(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read_state().blocks.contains_key(cid))
    }

    fn put(&self, block: &Block) -> Result<()> {
        if self.contains(&block.cid())? {
            return Ok(());
        }
        self.write(&[(block.cid(), block.bytes())], Vec::new(), Vec::new())
    }

    /// Records the removal, then overwrites the bytes with zeros.
    fn remove(&self, cid: &Cid) -> Result<bool> {
        let Some(loc) = self.read_state().blocks.get(cid).copied() else {
            return Ok(false);
        };
        self.write(&[], Vec::new(), vec![*cid])?;
        self.segments.zero(loc)?;
        Ok(true)
    }

    fn head(&self, stream: &StreamId) -> Result<Option<Head>> {
        Ok(self.read_state().heads.get(stream).copied())
    }

    fn heads(&self) -> Result<Vec<(StreamId, Head)>> {
        Ok(self
            .read_state()
            .heads
            .iter()
            .map(|(s, h)| (s.clone(), *h))
            .collect())
    }

    /// Group commit. A writer that finds no group being written leads: it writes its own
    /// commit (without copying it) together with every commit waiting. Otherwise its commit
    /// (a copy) waits for the next group, which the leader hands to the first waiter when it is
    /// done. Each group is one durable write (one segment sync, one sled flush); every commit's
    /// heads are checked in queue order against the heads before it, so that concurrent
    /// single-event appends share their syncs. A commit whose check fails gets its conflict and
    /// is not written; the others are unaffected. Each waiter is woken once, by its own
    /// outcome or by the lead.
    #[instrument(skip_all, fields(blocks = commit.blocks.len(), heads = commit.heads.len()))]
    fn commit(&self, commit: &Commit) -> Result<()> {
        let mut queue = self.lock_queue();
        if !queue.leading {
            queue.leading = true;
            let waiting = std::mem::take(&mut queue.waiting);
            drop(queue);
            return self
                .lead(Some(commit), &waiting)
                .expect("the leader's own commit has an outcome");
        }
        let me = Arc::new(Queued {
            commit: commit.clone(),
            outcome: Mutex::new(None),
            lead: AtomicBool::new(false),
            thread: std::thread::current(),
        });
        queue.waiting.push(Arc::clone(&me));
        drop(queue);
        loop {
            std::thread::park();
            if let Some(outcome) = me.outcome() {
                return outcome; // a leader wrote it in its group
            }
            if me.lead.load(Ordering::Acquire) {
                let waiting = std::mem::take(&mut self.lock_queue().waiting);
                self.lead(None, &waiting);
                return me.outcome().expect("the group holds this commit");
            }
        }
    }

    fn scan(&self, visit: &mut dyn FnMut(Result<Block>) -> bool) -> Result<()> {
        let locs: Vec<(Cid, Loc)> = self
            .read_state()
            .blocks
            .iter()
            .map(|(c, l)| (*c, *l))
            .collect();
        self.segments
            .read_sorted(locs, &mut |cid, bytes| visit(checked(cid, bytes)));
        Ok(())
    }

    fn published(&self, stream: &StreamId) -> Result<Option<Published>> {
        let Some(v) = self.published.get(stream.key())? else {
            return Ok(None);
        };
        let bad = || corrupt(format!("the published mark of {stream} is malformed"));
        if v.len() != CID_LEN + 16 {
            return Err(bad());
        }
        let number = |at: usize| u64::from_be_bytes(v[at..at + 8].try_into().expect("8 bytes"));
        Ok(Some(Published {
            head: Head {
                cid: Cid::from_bytes(&v[..CID_LEN])?,
                height: number(CID_LEN),
            },
            sequence: number(CID_LEN + 8),
        }))
    }

    fn set_published(&self, stream: &StreamId, published: Published) -> Result<()> {
        let mut v = Vec::with_capacity(CID_LEN + 16);
        v.extend_from_slice(&published.head.cid.to_bytes());
        v.extend_from_slice(&published.head.height.to_be_bytes());
        v.extend_from_slice(&published.sequence.to_be_bytes());
        self.published.insert(stream.key(), v)?;
        Ok(())
    }
}
