//! [`Block`]: bytes together with the CID that was re-derived from them.

use crate::{Cid, Error, Result};

/// A block whose CID is known to match its bytes.
///
/// The only constructors hash the bytes ([`Block::new`]) or check them against an expected CID
/// ([`Block::verified`]), so holding a `Block` means invariant 4 was honoured.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    bytes: Vec<u8>,
}

impl Block {
    /// Wraps bytes, deriving their CID.
    pub fn new(bytes: Vec<u8>) -> Block {
        Block {
            cid: Cid::of(&bytes),
            bytes,
        }
    }

    /// Wraps bytes read under `cid`, failing with [`Error::CidMismatch`] when they hash to
    /// something else.
    pub fn verified(cid: Cid, bytes: Vec<u8>) -> Result<Block> {
        let actual = Cid::of(&bytes);
        if actual != cid {
            return Err(Error::CidMismatch {
                expected: cid,
                actual,
            });
        }
        Ok(Block { cid, bytes })
    }

    /// The block's CID.
    pub fn cid(&self) -> Cid {
        self.cid
    }

    /// The block's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The block's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({}, {} bytes)", self.cid, self.bytes.len())
    }
}
