//! [`MemoryStore`]: a [`BlockStore`] in memory, for unit tests and examples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{check_heads, BlockStore, Commit, Head, Published};
use crate::{Block, Cid, Result, StreamId};

/// An in-memory block store. Not durable.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<Cid, Vec<u8>>,
    heads: BTreeMap<StreamId, Head>,
    published: HashMap<StreamId, Published>,
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
        self.lock()
            .blocks
            .insert(block.cid(), block.bytes().to_vec());
        Ok(())
    }

    fn remove(&self, cid: &Cid) -> Result<bool> {
        Ok(self.lock().blocks.remove(cid).is_some())
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
            inner.blocks.insert(block.cid(), block.bytes().to_vec());
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

    fn published(&self, stream: &StreamId) -> Result<Option<Published>> {
        Ok(self.lock().published.get(stream).copied())
    }

    fn set_published(&self, stream: &StreamId, published: Published) -> Result<()> {
        self.lock().published.insert(stream.clone(), published);
        Ok(())
    }
}
