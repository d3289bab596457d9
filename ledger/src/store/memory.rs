//! [`MemoryStore`]: a [`BlockStore`] in memory, for unit tests and examples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{check_heads, BlockStore, Commit, Head, Published};
use crate::tlog::Log;
use crate::{Block, BlockKind, Cid, Result, StreamId};

/// An in-memory block store. Not durable.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<Cid, Vec<u8>>,
    /// The log: event blocks in the order first stored.
    log: Log,
    heads: BTreeMap<StreamId, Head>,
    published: HashMap<StreamId, Published>,
    checkpoints: BTreeMap<u64, String>,
}

impl Inner {
    fn insert(&mut self, block: &Block) {
        let cid = block.cid();
        if self.blocks.insert(cid, block.bytes().to_vec()).is_none()
            && BlockKind::of(block.bytes()) == BlockKind::Event
        {
            // A block stored again after its removal goes to the end, as in a segment file.
            self.log.push(cid);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Stores `bytes` under `cid` without checking them, to simulate corruption in tests.
    #[cfg(feature = "test-corruption")]
    pub fn insert_unchecked(&self, cid: Cid, bytes: Vec<u8>) {
        self.lock().blocks.insert(cid, bytes);
    }

    /// Sets a head without any check, to simulate corruption in tests.
    #[cfg(feature = "test-corruption")]
    pub fn set_head_unchecked(&self, stream: StreamId, head: Head) {
        self.lock().heads.insert(stream, head);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is a
        // single insert or a loop of inserts after all checks), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockStore for MemoryStore {
    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        let bytes = self.lock().blocks.get(cid).cloned();
        bytes.map(|b| Block::verified(*cid, b)).transpose()
    }

    fn contains(&self, cid: &Cid) -> Result<bool> {
        Ok(self.lock().blocks.contains_key(cid))
    }

    fn put(&self, block: &Block) -> Result<()> {
        self.lock().insert(block);
        Ok(())
    }

    fn remove(&self, cid: &Cid) -> Result<bool> {
        let mut inner = self.lock();
        let Some(bytes) = inner.blocks.remove(cid) else {
            return Ok(false);
        };
        if BlockKind::of(&bytes) == BlockKind::Event {
            inner.log.remove(cid);
        }
        Ok(true)
    }

    fn head(&self, stream: &StreamId) -> Result<Option<Head>> {
        Ok(self.lock().heads.get(stream).copied())
    }

    fn heads(&self) -> Result<Vec<(StreamId, Head)>> {
        Ok(self
            .lock()
            .heads
            .iter()
            .map(|(s, h)| (s.clone(), *h))
            .collect())
    }

    fn commit(&self, commit: &Commit) -> Result<()> {
        let mut inner = self.lock();
        check_heads(commit, |s| Ok(inner.heads.get(s).copied()))?;
        for block in &commit.blocks {
            inner.insert(block);
        }
        for update in &commit.heads {
            inner.heads.insert(update.stream.clone(), update.new);
        }
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(Result<Block>) -> bool) -> Result<()> {
        let mut entries: Vec<(Cid, Vec<u8>)> = self
            .lock()
            .blocks
            .iter()
            .map(|(c, b)| (*c, b.clone()))
            .collect();
        entries.sort_by_key(|(c, _)| *c);
        for (cid, bytes) in entries {
            if !visit(Block::verified(cid, bytes)) {
                break;
            }
        }
        Ok(())
    }

    fn with_log(&self, visit: &mut dyn FnMut(&mut Log)) -> Result<()> {
        visit(&mut self.lock().log);
        Ok(())
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<()> {
        self.lock().checkpoints.insert(size, note.to_string());
        Ok(())
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .map(|(s, n)| (*s, n.clone()))
            .collect())
    }

    fn published(&self, stream: &StreamId) -> Result<Option<Published>> {
        Ok(self.lock().published.get(stream).copied())
    }

    fn set_published(&self, stream: &StreamId, published: Published) -> Result<()> {
        self.lock().published.insert(stream.clone(), published);
        Ok(())
    }

    fn clear_published(&self, stream: &StreamId) -> Result<()> {
        self.lock().published.remove(stream);
        Ok(())
    }
}
