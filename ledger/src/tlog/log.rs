//! The log of a store: every event block it holds, in the order it first stored them, and the
//! Merkle tree over them, kept by the store with each commit.
//!
//! The order is fixed by the store's commits (for [`crate::SledStore`], by its commit records,
//! the source of truth that recovery replays at open), so it is crash-safe with them and the
//! same after every open. The tree is derived from the order: built the first time it is asked
//! for (at open it is missing), then grown by each commit, under the store's own lock, in the
//! order of the commits. Payloads are not leaves, so erasure never changes the tree; removing an
//! event (a withdrawn, never acknowledged one) takes its leaf out and rebuilds the tree after it.

use super::{leaf_hash, Hash, Tree};
use crate::{Cid, Result};

/// A store's log: its leaves (event CIDs, in order) and, once built, their tree.
#[derive(Clone, Debug, Default)]
pub struct Log {
    leaves: Vec<Cid>,
    tree: Option<Tree>,
}

impl Log {
    /// Appends a newly stored event.
    pub fn push(&mut self, cid: Cid) {
        self.leaves.push(cid);
        if let Some(tree) = &mut self.tree {
            if tree.push_hash(leaf_hash(&cid)).is_err() {
                self.tree = None; // cannot happen; the next reader rebuilds it
            }
        }
    }

    /// Takes a removed event out (nothing happens for a CID that is not a leaf).
    pub fn remove(&mut self, cid: &Cid) {
        let Some(i) = self.leaves.iter().rposition(|c| c == cid) else {
            return;
        };
        self.leaves.remove(i);
        if let Some(tree) = &mut self.tree {
            tree.truncate(i as u64);
            for c in &self.leaves[i..] {
                if tree.push(c).is_err() {
                    self.tree = None;
                    return;
                }
            }
        }
    }

    /// The leaves, in order.
    pub fn leaves(&self) -> &[Cid] {
        &self.leaves
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The index of `cid`'s leaf.
    pub fn index_of(&self, cid: &Cid) -> Option<u64> {
        self.leaves.iter().position(|c| c == cid).map(|i| i as u64)
    }

    /// The tree over the leaves, built now if it is missing.
    pub fn tree(&mut self) -> Result<&Tree> {
        if self.tree.is_none() {
            let _span = tracing::debug_span!("building the log's tree", leaves = self.leaves.len())
                .entered();
            self.tree = Some(Tree::of(&self.leaves)?);
        }
        Ok(self.tree.as_ref().expect("built above"))
    }

    /// Whether the tree is built (and so grows with each commit).
    pub fn has_tree(&self) -> bool {
        self.tree.is_some()
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&mut self, size: u64) -> Result<Hash> {
        self.tree()?.root_at(size)
    }
}
