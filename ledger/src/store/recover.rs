//! Recovery at open: the index of a [`super::SledStore`] (CID to location, stream to head) is
//! derived from its segments alone, and any crash state is repaired or reported.
//!
//! The segments and their commit records are the source of truth (docs/DESIGN.md, Storage).
//! Opening reads every segment in order, record by record: a record whose bytes hash to its CID
//! and decode as a commit record (listing only blocks that lie before it in its segment) is a
//! complete commit, and its blocks and head moves enter the index in that order. Everything
//! else is a block record, or a removed block's zeros, waiting for the commit record after it.
//!
//! What a crash or damage can leave, and what happens to it:
//! - bytes after the last complete commit of the newest segment: an incomplete commit, never
//!   acknowledged (a commit is acknowledged only after its record is written and synced). A
//!   writer cuts them off ([`Repair::TornTail`]); a read-only open ignores them.
//! - a record header that does not parse (a length past the end, a CID that is not a ledger
//!   CID) before a later complete record: damage in the middle of a segment. The scan finds the
//!   next record whose bytes hash to its CID and goes on from there ([`Repair::Damaged`]);
//!   nothing is cut, and blocks the damage hid are then missing, which `verify` names.
//! - a block whose bytes no longer hash to its CID, inside a complete commit: indexed as
//!   committed; every read re-derives the CID (invariant 4), so `verify` names it.
//!
//! Invariant 7: a crash state is repaired or reported, never silently passed over.

use std::fmt;
use std::path::PathBuf;

use super::segments::{Loc, Segments, HEADER};
use super::sled::{Record, State};
use crate::{BlockKind, Cid, Result, CID_LEN};

/// The first four bytes of every ledger CID (CIDv1, dag-cbor, BLAKE3-256, 32 bytes).
const CID_PREFIX: [u8; 4] = [0x01, 0x71, 0x1e, 0x20];

/// One thing recovery did, or found, when a store was opened. Displayed as a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// An incomplete commit after the last complete one, at the end of the newest segment: a
    /// write that a crash interrupted, never acknowledged. Cut off by a writer; ignored by a
    /// read-only open (`cut` is false).
    TornTail {
        /// The segment.
        segment: u32,
        /// Where the incomplete commit starts (the end of the last complete one).
        offset: u64,
        /// How many bytes it held.
        bytes: u64,
        /// Whether the bytes were cut off the file.
        cut: bool,
    },
    /// Bytes in the middle of a segment that do not parse as records; the scan went on after
    /// them. Blocks they held are missing from the index.
    Damaged {
        /// The segment.
        segment: u32,
        /// Where the damage starts.
        offset: u64,
        /// How many bytes were skipped.
        bytes: u64,
    },
    /// Bytes at the end of an older segment that no commit record covers.
    Uncommitted {
        /// The segment.
        segment: u32,
        /// Where they start.
        offset: u64,
        /// How many bytes.
        bytes: u64,
    },
    /// A temporary file an interrupted write left behind was removed.
    Leftover {
        /// The file.
        path: PathBuf,
    },
    /// The sled database of the store's marks could not be opened and was made anew; only
    /// JetStream published marks were in it, and they are found again from JetStream.
    IndexRebuilt {
        /// Why it could not be opened.
        reason: String,
    },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::TornTail {
                segment,
                offset,
                bytes,
                cut,
            } => write!(
                f,
                "segment {segment:08}.seg ends with {bytes} bytes of an incomplete commit at offset {offset} (a write interrupted by a crash, never acknowledged){}",
                if *cut { ": cut off" } else { ": ignored (read-only)" }
            ),
            Repair::Damaged {
                segment,
                offset,
                bytes,
            } => write!(
                f,
                "segment {segment:08}.seg is damaged: {bytes} bytes at offset {offset} do not parse and were skipped; blocks they held are missing (run `verify`)"
            ),
            Repair::Uncommitted {
                segment,
                offset,
                bytes,
            } => write!(
                f,
                "segment {segment:08}.seg ends with {bytes} bytes at offset {offset} that no commit covers; they are not part of the store"
            ),
            Repair::Leftover { path } => write!(
                f,
                "removed {}, a temporary file left by an interrupted write",
                path.display()
            ),
            Repair::IndexRebuilt { reason } => write!(
                f,
                "the store's marks database could not be opened ({reason}); made anew (published marks are found again from JetStream)"
            ),
        }
    }
}

/// A record in a segment: its CID, and where its bytes are.
struct Parsed {
    cid: Cid,
    start: usize,
    end: usize,
}

/// Parses the record header at `pos`, if it is one: a ledger CID and a length that fits.
fn parse(bytes: &[u8], pos: usize) -> Option<Parsed> {
    let header = bytes.get(pos..pos.checked_add(HEADER as usize)?)?;
    if header[4..8] != CID_PREFIX {
        return None;
    }
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let start = pos + HEADER as usize;
    let end = start.checked_add(len)?;
    if end > bytes.len() {
        return None;
    }
    let cid = Cid::from_bytes(&header[4..4 + CID_LEN]).ok()?;
    Some(Parsed { cid, start, end })
}

/// The first position after `from` where a record starts whose bytes hash to its CID.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let last = bytes.len().checked_sub(HEADER as usize)?;
    (from..=last).find(|&q| {
        bytes[q + 4..q + 8] == CID_PREFIX
            && parse(bytes, q).is_some_and(|p| Cid::of(&bytes[p.start..p.end]) == p.cid)
    })
}

/// Whether `body` can be a commit record at all, judged by its first field (the count of blocks
/// listed, 52 bytes each) without hashing or decoding: a DAG-CBOR block starts with a map or
/// list header, which read as that count asks for far more bytes than there are. This keeps
/// the scan from hashing every block of a store.
fn may_be_footer(body: &[u8]) -> bool {
    let Some(count) = body.get(..4) else {
        return false;
    };
    let count = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
    count
        .checked_mul(52)
        .and_then(|n| n.checked_add(12))
        .is_some_and(|n| n <= body.len())
}

/// The commit record in `body`, if the record at `pos` of `segment` is one: it decodes, and
/// every block it lists lies before it in the same segment.
fn footer(segment: u32, pos: usize, body: &[u8]) -> Option<Record> {
    let record = Record::decode(body).ok()?;
    record
        .blocks
        .iter()
        .all(|(_, loc): &(Cid, Loc)| {
            loc.segment == segment && loc.offset + u64::from(loc.len) <= pos as u64
        })
        .then_some(record)
}

/// Reads every segment into `state`; cuts a torn tail off the newest one when `cut` is set.
pub(super) fn recover(segments: &Segments, state: &mut State, cut: bool) -> Result<Vec<Repair>> {
    let mut repairs = Vec::new();
    let count = segments.count();
    for id in 0..count {
        let Some(map) = segments.whole(id)? else {
            continue;
        };
        let bytes: &[u8] = &map;
        let mut pos = 0;
        // End of the last complete commit, and damage seen since (reported only when a
        // complete commit follows it; otherwise it is part of the tail).
        let mut committed = 0;
        let mut damage: Vec<(usize, usize)> = Vec::new();
        while pos < bytes.len() {
            match parse(bytes, pos) {
                Some(p) => {
                    let body = &bytes[p.start..p.end];
                    if may_be_footer(body) && Cid::of(body) == p.cid {
                        if let Some(mut record) = footer(id, pos, body) {
                            record.events = record
                                .blocks
                                .iter()
                                .map(|(_, loc)| {
                                    BlockKind::of(&bytes[loc.offset as usize..]) == BlockKind::Event
                                })
                                .collect();
                            state.apply(record);
                            committed = p.end;
                            for (at, len) in damage.drain(..) {
                                repairs.push(Repair::Damaged {
                                    segment: id,
                                    offset: at as u64,
                                    bytes: len as u64,
                                });
                            }
                        }
                    }
                    pos = p.end;
                }
                None => match resync(bytes, pos + 1) {
                    Some(q) => {
                        damage.push((pos, q - pos));
                        pos = q;
                    }
                    None => break,
                },
            }
        }
        if committed < bytes.len() {
            let (offset, len) = (committed as u64, (bytes.len() - committed) as u64);
            if id + 1 == count {
                drop(map);
                if cut {
                    segments.truncate_active(offset)?;
                }
                repairs.push(Repair::TornTail {
                    segment: id,
                    offset,
                    bytes: len,
                    cut,
                });
            } else {
                repairs.push(Repair::Uncommitted {
                    segment: id,
                    offset,
                    bytes: len,
                });
            }
        }
    }
    for r in &repairs {
        tracing::warn!(dir = %segments.dir().display(), "{r}");
    }
    Ok(repairs)
}
