//! [`SledStore`]: the embedded, durable [`BlockStore`]: block bytes and commit records in
//! append-only segment files, which are the source of truth; the index is derived from them.
//!
//! Layout of a store directory:
//!
//! | path | content |
//! |---|---|
//! | `blocks/NNNNNNNN.seg` | block bytes and commit records, appended (see `segments.rs`) |
//! | `trust` | trusted author keys with labels (see `trust_file.rs`) |
//! | `LOCK` | held (`flock`) by the one process that writes the store |
//! | `checkpoints/SIZE.note` | signed checkpoints of the store's log (`crate::tlog`), SIZE in 20 digits |
//! | `index/` (sled) `meta/format` | store layout version, `2` |
//! | `index/` (sled) tree `published` | stream key to how far JetStream acknowledged it: CID (36 bytes), height (u64 BE), sequence (u64 BE) |
//!
//! A commit record lists the blocks the commit wrote (CID and location), the heads it moved and
//! the blocks it removed. It is written to the segment right after the commit's blocks, in the
//! same write, and the `fdatasync` that follows is the commit point. At open, recovery
//! (`recover.rs`) reads the segments in order and replays every complete commit record into two
//! in-memory maps: CID to location, and stream to head (the Bitcask model: memory holds the
//! index, files hold the data). A crash before the sync leaves an incomplete commit at the end
//! of the newest segment, which the next writer's open cuts off. sled holds only the published
//! marks, which may be lost without harm (they are found again from JetStream): so a damaged
//! sled is made anew, never a reason for a home not to open. sled never holds block bytes (and
//! so never personal data); removing a block overwrites its bytes in place.
//!
//! Layout version 1 (before recovery was segment-driven) kept the trust list and a pointer per
//! commit in sled; opening such a store moves the trust list to `trust` and drops the pointers.
//!
//! Commit record, binary, all integers big-endian:
//! `blocks: u32, (CID: 36 bytes, segment: u32, offset: u64, len: u32) * blocks,`
//! `heads: u32, (stream key length: u16, stream key, CID: 36 bytes, height: u64) * heads,`
//! `removed: u32, CID: 36 bytes * removed`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::Thread;

use tracing::instrument;

use super::recover::{recover, Repair};
use super::segments::{checked, io, Access, Loc, Segments};
use super::trust_file::{self, Trusted};
use super::{check_heads, BlockStore, Commit, Head, Published};
use crate::tlog::Log;
use crate::{Author, Block, BlockKind, Cid, Error, Result, StreamId, CID_LEN};

const META_FORMAT: &[u8] = b"meta/format";
const LAYOUT_VERSION: &[u8] = b"2";
/// The directory of signed checkpoints, one file per size.
const CHECKPOINTS: &str = "checkpoints";

/// A durable block store in a directory.
pub struct SledStore {
    path: PathBuf,
    /// The published marks (`None` when opened read-only: nothing is published then).
    marks: Option<Marks>,
    /// The `LOCK` file, locked while this writer lives (`None` when read-only).
    _lock: Option<File>,
    segments: Segments,
    state: RwLock<State>,
    /// What recovery did at open.
    repairs: Vec<Repair>,
    /// Serialises writers, so that the head check, the writes and the map updates are one step.
    /// The `LOCK` file keeps other processes out, so a process-wide lock is enough. Set once a
    /// write failed: what reached the disk is then unknown, so the store takes no more writes
    /// until it is opened again (and recovery reads what is there).
    writer: Mutex<Poisoned>,
    /// Group commit: the commits waiting for the next group, and whether a group is being
    /// written.
    queue: Mutex<Queue>,
}

/// The sled side of a writable store.
struct Marks {
    db: ::sled::Db,
    published: ::sled::Tree,
}

/// Whether an earlier write failed (see [`SledStore`]'s `writer`).
#[derive(Default)]
struct Poisoned(bool);

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
pub(super) struct State {
    blocks: HashMap<Cid, Entry>,
    heads: BTreeMap<StreamId, Head>,
    /// The log: event blocks in the order first stored ([`crate::tlog::Log`]).
    log: Log,
}

/// Where a block is, and whether it is an event (a leaf of the log).
#[derive(Clone, Copy)]
struct Entry {
    loc: Loc,
    event: bool,
}

/// One commit record (see the module docs).
#[derive(Default)]
pub(super) struct Record {
    pub(super) blocks: Vec<(Cid, Loc)>,
    pub(super) heads: Vec<(StreamId, Head)>,
    pub(super) removed: Vec<Cid>,
    /// Which of `blocks` are events (not encoded: judged from their bytes by the writer, and by
    /// recovery from the segment).
    pub(super) events: Vec<bool>,
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

    pub(super) fn decode(bytes: &[u8]) -> Result<Record> {
        let bad = || corrupt("a commit record is malformed".into());
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

/// A layout-1 store's trust list, read from sled to be moved to the trust file.
type LegacyTrust = Option<Vec<(Author, String)>>;

/// Takes the store's `LOCK` file: one writing process per store.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    let locked = retry_briefly(
        || file.try_lock(),
        |e| matches!(e, std::fs::TryLockError::WouldBlock),
    );
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

/// Runs `attempt` until it succeeds, fails otherwise than `held` says, or 250 ms have passed.
/// A lock just released can still be held for a moment by a child process that another thread
/// of this process forked and that has not yet exec'd (it shares the descriptor until exec
/// closes it), so a held lock is tried again for a short while before the store counts as in
/// use.
fn retry_briefly<T, E>(
    mut attempt: impl FnMut() -> std::result::Result<T, E>,
    held: impl Fn(&E) -> bool,
) -> std::result::Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
    loop {
        match attempt() {
            Err(e) if held(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Why the sled side of a store did not open.
enum Failed {
    /// A layout this version does not read: an error, never a reason to rebuild.
    Unsupported(String),
    /// sled failed (its own text: the only form sled 0.34 gives).
    Sled(String),
}

impl Failed {
    fn sled(e: ::sled::Error) -> Failed {
        Failed::Sled(e.to_string())
    }

    /// sled's lock is held (by a child this process forked, since `LOCK` keeps other
    /// processes out). sled reports it only as text.
    fn is_locked(&self) -> bool {
        matches!(self, Failed::Sled(r) if r.contains("could not acquire lock"))
    }

    fn reason(self) -> String {
        match self {
            Failed::Unsupported(r) | Failed::Sled(r) => r,
        }
    }
}

/// Opens the sled side of a writable store (the published marks), removing what an
/// interrupted snapshot left behind, and making it anew when it cannot be opened: it holds
/// nothing that cannot be found again. Returns a layout-1 store's trust list, still to be moved.
fn open_marks(dir: &Path, repairs: &mut Vec<Repair>) -> Result<(Marks, LegacyTrust)> {
    let index = dir.join("index");
    // sled writes a snapshot to `snap.N.generating`, then renames it; a kill in between leaves
    // a partial file that sled 0.34 reads at the next open and calls corrupt (sled #1527).
    if let Ok(entries) = std::fs::read_dir(&index) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("snap.") && name.ends_with(".generating") {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
                repairs.push(Repair::Leftover { path });
            }
        }
    }
    let open = || -> std::result::Result<(::sled::Db, LegacyTrust), Failed> {
        let db = ::sled::Config::new()
            .path(&index)
            .open()
            .map_err(Failed::sled)?;
        let legacy = match db.get(META_FORMAT).map_err(Failed::sled)? {
            Some(v) if v.as_ref() == LAYOUT_VERSION => None,
            Some(v) if v.as_ref() == b"1" => {
                let trust = db.open_tree("trust").map_err(Failed::sled)?;
                let mut list = Vec::new();
                for entry in trust.iter() {
                    let (k, v) = entry.map_err(Failed::sled)?;
                    let key: [u8; 32] = k
                        .as_ref()
                        .try_into()
                        .map_err(|_| Failed::Sled("a trusted key is not 32 bytes".into()))?;
                    let author =
                        Author::from_bytes(&key).map_err(|e| Failed::Sled(e.to_string()))?;
                    list.push((author, String::from_utf8_lossy(&v).into_owned()));
                }
                Some(list)
            }
            Some(v) => {
                return Err(Failed::Unsupported(format!(
                    "store layout version {:?} is not supported (expected 2)",
                    String::from_utf8_lossy(&v)
                )))
            }
            None => {
                db.insert(META_FORMAT, LAYOUT_VERSION)
                    .map_err(Failed::sled)?;
                db.flush().map_err(Failed::sled)?;
                None
            }
        };
        Ok((db, legacy))
    };
    // sled flocks its file too. Our `LOCK` keeps other writers out, so sled's lock can only
    // be held for a moment by a child this process forked (see `retry_briefly`): never
    // mistake it for damage.
    let (db, legacy) = match retry_briefly(open, Failed::is_locked) {
        Ok(opened) => opened,
        Err(f) if f.is_locked() => {
            return Err(Error::InUse {
                path: dir.to_path_buf(),
            })
        }
        Err(Failed::Unsupported(reason)) => {
            return Err(Error::Io {
                context: format!("opening the store at {}", dir.display()),
                source: std::io::Error::other(reason),
            })
        }
        Err(Failed::Sled(reason)) => {
            std::fs::remove_dir_all(&index).map_err(io(format!("removing {}", index.display())))?;
            repairs.push(Repair::IndexRebuilt { reason });
            open().map_err(|f| Error::Io {
                context: format!("making the index {} anew", index.display()),
                source: std::io::Error::other(f.reason()),
            })?
        }
    };
    let published = db.open_tree("published")?;
    restrict(&index)?;
    Ok((Marks { db, published }, legacy))
}

/// Makes sled's files readable by their owner alone (sled creates them with the umask).
fn restrict(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("restricting {}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        if path.is_dir() {
            restrict(&path)?;
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io(format!("restricting {}", path.display())))?;
        }
    }
    Ok(())
}

fn corrupt(what: String) -> Error {
    Error::Io {
        context: "reading the store index".into(),
        source: std::io::Error::other(what),
    }
}

impl State {
    pub(super) fn apply(&mut self, record: Record) {
        let events = record
            .events
            .iter()
            .copied()
            .chain(std::iter::repeat(false));
        for ((cid, loc), event) in record.blocks.into_iter().zip(events) {
            let previous = self.blocks.insert(cid, Entry { loc, event });
            if event && previous.is_none() {
                self.log.push(cid);
            }
        }
        self.heads.extend(record.heads);
        for cid in record.removed {
            if let Some(Entry { event: true, .. }) = self.blocks.remove(&cid) {
                self.log.remove(&cid);
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` for writing, recovering from any crash
    /// state (see [`SledStore::repairs`]).
    ///
    /// Fails with [`Error::InUse`] while another process writes the store, and with a clear
    /// error when the directory holds something that is not a personctl store.
    #[instrument(skip_all, fields(path = %path.as_ref().display()))]
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(io(format!("creating {}", path.display())))?;
        let lock = lock(&path)?;
        let mut repairs = Vec::new();
        let (marks, legacy_trust) = open_marks(&path, &mut repairs)?;
        if let Some(leftover) = trust_file::leftover(&path) {
            std::fs::remove_file(&leftover)
                .map_err(io(format!("removing {}", leftover.display())))?;
            repairs.push(Repair::Leftover { path: leftover });
        }
        if let Some(list) = legacy_trust {
            // Layout 1: the trust list moves out of sled, before sled forgets it.
            let mut merged = trust_file::read_all(&path)?;
            for (author, label) in list {
                if !merged.iter().any(|(t, _)| *t == Trusted::Key(author)) {
                    merged.push((Trusted::Key(author), label));
                }
            }
            trust_file::write(&path, &merged)?;
            marks.db.drop_tree("trust")?;
            marks.db.drop_tree("commits")?;
            marks.db.insert(META_FORMAT, LAYOUT_VERSION)?;
            marks.db.flush()?;
        }
        let segments = Segments::open(path.join("blocks"), Access::ReadWrite)?;
        let mut state = State::default();
        repairs.extend(recover(&segments, &mut state, true)?);
        Ok(SledStore::assemble(
            path,
            Some(marks),
            Some(lock),
            segments,
            state,
            repairs,
        ))
    }

    /// Opens an existing store without writing anything to it: for an auditor's read-only copy,
    /// or to read while another process writes. Nothing is created, locked, cut or rebuilt;
    /// recovery's findings are reported by [`SledStore::repairs`] as for a writer. Appends,
    /// removals and published marks fail with [`Error::ReadOnly`]; no event is published.
    #[instrument(skip_all, fields(path = %path.as_ref().display()))]
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        let blocks = path.join("blocks");
        if !blocks.is_dir() {
            return Err(Error::Io {
                context: format!("opening the store at {} read-only", path.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no blocks directory: not a personctl store",
                ),
            });
        }
        let segments = Segments::open(blocks, Access::ReadOnly)?;
        let mut state = State::default();
        let repairs = recover(&segments, &mut state, false)?;
        Ok(SledStore::assemble(
            path, None, None, segments, state, repairs,
        ))
    }

    fn assemble(
        path: PathBuf,
        marks: Option<Marks>,
        lock: Option<File>,
        segments: Segments,
        state: State,
        repairs: Vec<Repair>,
    ) -> SledStore {
        tracing::debug!(
            blocks = state.blocks.len(),
            streams = state.heads.len(),
            repairs = repairs.len(),
            "store opened"
        );
        SledStore {
            path,
            marks,
            _lock: lock,
            segments,
            state: RwLock::new(state),
            repairs,
            writer: Mutex::new(Poisoned::default()),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// What recovery did or found when the store was opened (empty for a clean store).
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.marks.is_none()
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Trusts `author` under `label` (a new label replaces the old one); returns whether it
    /// was new.
    pub fn trust_add(&self, author: &Author, label: &str) -> Result<bool> {
        self.trust_edit(Trusted::Key(*author), Some(label))
    }

    /// Stops trusting `author`; returns whether it was trusted.
    pub fn trust_remove(&self, author: &Author) -> Result<bool> {
        self.trust_edit(Trusted::Key(*author), None)
    }

    /// Trusts identity `id` (a `key/ID` stream) under `label`; returns whether it was new.
    pub fn trust_identity_add(&self, id: &StreamId, label: &str) -> Result<bool> {
        self.trust_edit(Trusted::Identity(id.clone()), Some(label))
    }

    /// Stops trusting identity `id`; returns whether it was trusted.
    pub fn trust_identity_remove(&self, id: &StreamId) -> Result<bool> {
        self.trust_edit(Trusted::Identity(id.clone()), None)
    }

    /// The trusted identities with their labels, in the order they were added.
    pub fn trusted_identities(&self) -> Result<Vec<(StreamId, String)>> {
        Ok(trust_file::read_all(&self.path)?
            .into_iter()
            .filter_map(|(t, label)| match t {
                Trusted::Identity(id) => Some((id, label)),
                Trusted::Key(_) => None,
            })
            .collect())
    }

    /// Adds (with a label) or removes (`None`) one entry of the trust list; returns whether
    /// the list changed in that respect (added new, or removed).
    fn trust_edit(&self, what: Trusted, label: Option<&str>) -> Result<bool> {
        self.writable()?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = trust_file::read_all(&self.path)?;
        let changed = match label {
            Some(label) => match list.iter_mut().find(|(t, _)| *t == what) {
                Some(entry) => {
                    entry.1 = label.to_string();
                    false
                }
                None => {
                    list.push((what, label.to_string()));
                    true
                }
            },
            None => {
                let before = list.len();
                list.retain(|(t, _)| *t != what);
                if list.len() == before {
                    return Ok(false);
                }
                true
            }
        };
        trust_file::write(&self.path, &list)?;
        Ok(changed)
    }

    /// The trust set of the store in directory `path` (its raw keys and its identities), read
    /// without opening the store (which another process may be writing). A store never opened
    /// by this version (layout 1) keeps its list in sled until its first open: this returns it
    /// empty.
    pub fn trust_set_at(path: impl AsRef<Path>) -> Result<crate::TrustSet> {
        Ok(trust_file::read_all(path.as_ref())?.into_iter().fold(
            crate::TrustSet::default(),
            |t, (what, _)| match what {
                Trusted::Key(author) => t.with(author),
                Trusted::Identity(id) => t.with_identity(id),
            },
        ))
    }

    /// This store's trust set: its trusted raw keys and identities.
    pub fn trust_set(&self) -> Result<crate::TrustSet> {
        SledStore::trust_set_at(&self.path)
    }

    /// Every trusted author with its label, in the order they were added.
    pub fn trust_list(&self) -> Result<Vec<(Author, String)>> {
        trust_file::read(&self.path)
    }

    fn writable(&self) -> Result<&Marks> {
        self.marks.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })
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
        let mut poisoned = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut outcomes = self.write_group(&mut poisoned, &group);
        drop(poisoned);
        let direct = own.and_then(|_| outcomes.pop());
        for (q, o) in waiting.iter().zip(outcomes) {
            q.settle(o);
        }
        direct
    }

    /// Writes a group of commits (see [`BlockStore::commit`]) in one durable write; returns each
    /// one's outcome, in order.
    fn write_group(&self, poisoned: &mut Poisoned, group: &[&Commit]) -> Vec<Result<()>> {
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
            self.write_locked(poisoned, &blocks, heads, Vec::new())
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
        let mut poisoned = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.write_locked(&mut poisoned, blocks, heads, removed)
    }

    /// [`SledStore::write`] with the writer lock held.
    fn write_locked(
        &self,
        poisoned: &mut Poisoned,
        blocks: &[(Cid, &[u8])],
        heads: Vec<(StreamId, Head)>,
        removed: Vec<Cid>,
    ) -> Result<()> {
        self.writable()?;
        if poisoned.0 {
            return Err(Error::Io {
                context: format!("writing to the store at {}", self.path.display()),
                source: std::io::Error::other(
                    "an earlier write failed; open the store again to recover",
                ),
            });
        }
        let mut record = Record {
            blocks: Vec::new(),
            heads,
            removed,
            events: blocks
                .iter()
                .map(|(_, bytes)| BlockKind::of(bytes) == BlockKind::Event)
                .collect(),
        };
        let appended = self.segments.append(blocks, |locs| {
            record.blocks = blocks
                .iter()
                .map(|(c, _)| *c)
                .zip(locs.iter().copied())
                .collect();
            record.encode()
        });
        if let Err(e) = appended {
            // Limits are checked before anything is written; any other failure may have left
            // bytes behind, so no later write may build on what this process believes.
            if !matches!(e, Error::TooLarge { .. }) {
                poisoned.0 = true;
            }
            return Err(e);
        }
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
        let loc = self.read_state().blocks.get(cid).map(|e| e.loc);
        match loc {
            Some(loc) => checked(*cid, self.segments.read(loc)).map(Some),
            None => Ok(None),
        }
    }

    fn contains(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read_state().blocks.contains_key(cid))
    }

    fn put(&self, block: &Block) -> Result<()> {
        self.writable()?;
        if self.contains(&block.cid())? {
            return Ok(());
        }
        self.write(&[(block.cid(), block.bytes())], Vec::new(), Vec::new())
    }

    /// Records the removal, then overwrites the bytes with zeros.
    fn remove(&self, cid: &Cid) -> Result<bool> {
        self.writable()?;
        let Some(loc) = self.read_state().blocks.get(cid).map(|e| e.loc) else {
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

    fn heads_of(&self, aggregate: &str) -> Result<Vec<(StreamId, Head)>> {
        Ok(self
            .read_state()
            .heads
            .range(StreamId::before_all_of(aggregate)..)
            .take_while(|(s, _)| s.aggregate() == aggregate)
            .map(|(s, h)| (s.clone(), *h))
            .collect())
    }

    /// Group commit. A writer that finds no group being written leads: it writes its own
    /// commit (without copying it) together with every commit waiting. Otherwise its commit
    /// (a copy) waits for the next group, which the leader hands to the first waiter when it is
    /// done. Each group is one durable write (one segment write and its `fdatasync`; the index
    /// is derived in memory); every commit's heads are checked in queue order against the
    /// heads before it, so that concurrent single-event appends share their syncs. A commit
    /// whose check fails gets its conflict and is not written; the others are unaffected. Each
    /// waiter is woken once, by its own outcome or by the lead.
    #[instrument(skip_all, fields(blocks = commit.blocks.len(), heads = commit.heads.len()))]
    fn commit(&self, commit: &Commit) -> Result<()> {
        self.writable()?;
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
            .map(|(c, e)| (*c, e.loc))
            .collect();
        self.segments
            .read_sorted(locs, &mut |cid, bytes| visit(checked(cid, bytes)));
        Ok(())
    }

    fn with_log(&self, visit: &mut dyn FnMut(&mut Log)) -> Result<()> {
        visit(&mut self.state.write().unwrap_or_else(|e| e.into_inner()).log);
        Ok(())
    }

    /// Writes `checkpoints/SIZE.note` (20 digits) atomically: a temporary file, synced, renamed,
    /// and the directory synced.
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<()> {
        self.writable()?;
        let dir = self.path.join(CHECKPOINTS);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("{size:020}.note"));
        let tmp = dir.join(format!("{size:020}.note.tmp"));
        trust_file::write_atomically(&path, &tmp, note.as_bytes())
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        let dir = self.path.join(CHECKPOINTS);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
            let name = entry.file_name();
            let Some(size) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".note"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue; // a temporary file of an interrupted write, or not ours
            };
            let path = entry.path();
            let note = std::fs::read_to_string(&path)
                .map_err(io(format!("reading {}", path.display())))?;
            out.push((size, note));
        }
        out.sort_by_key(|(size, _)| *size);
        Ok(out)
    }

    fn published(&self, stream: &StreamId) -> Result<Option<Published>> {
        let Some(marks) = &self.marks else {
            return Ok(None);
        };
        let Some(v) = marks.published.get(stream.key())? else {
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
        self.writable()?.published.insert(stream.key(), v)?;
        Ok(())
    }

    fn clear_published(&self, stream: &StreamId) -> Result<()> {
        self.writable()?.published.remove(stream.key())?;
        Ok(())
    }
}
