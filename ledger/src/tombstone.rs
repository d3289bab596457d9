//! [`Tombstone`]s: signed events that mask payload blocks, so that personal data can be erased
//! for good while every chain still verifies.
//!
//! A tombstone is an ordinary event of the reserved type [`TOMBSTONE_TYPE`] (in any stream)
//! whose payload block holds `{"masks": [CID], "reason": text, "scope": text}`:
//!
//! - `masks`: payload blocks of *earlier events of the same chain*, which may be absent from
//!   then on (`verify` reports them as masked, naming the tombstone);
//! - `reason`: why, for the audit trail;
//! - `scope`: what was erased, in the domain's words (`all`, `component:phone`); never a
//!   personal value.
//!
//! A tombstone's own payload is never masked: it holds no personal value and is what makes the
//! masking checkable. Once a tombstone is committed, the masked blocks are removed from the
//! store ([`Ledger::purge_masked`]), from any replica that pulls it, and (with JetStream) from
//! the block bucket. Masks are honoured whether or not the blocks are gone yet, so a crash
//! between the commit and the purge leaves nothing readable that should not be; running the
//! purge again finishes it.
//!
//! Invariant 3: nothing is removed without a committed tombstone that covers it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::store::BlockStore;
use crate::{Block, Cid, Draft, Error, Event, Payload, Result, StreamId};

/// The event type of a tombstone, reserved in every stream.
pub const TOMBSTONE_TYPE: &str = "Tombstone";

/// The schema version of the tombstone payload.
pub const TOMBSTONE_SCHEMA: u64 = 1;

/// What a tombstone says: which payloads it masks, why, and what was erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// Payload blocks of earlier events of the same chain that this tombstone masks.
    pub masks: Vec<Cid>,
    /// Why the data was erased.
    pub reason: String,
    /// What was erased, in the domain's words (never a personal value).
    pub scope: String,
}

/// The longest `scope`, in bytes.
pub const MAX_SCOPE: usize = 128;

impl Tombstone {
    /// The rules of a tombstone's payload (docs/FORMAT.md, Tombstones), which `verify` and
    /// every append apply alike: `masks` non-empty, in ascending order of their binary CIDs,
    /// without repeats; `reason` not blank; `scope` 1 to [`MAX_SCOPE`] bytes of ASCII letters,
    /// digits and `:`, `_`, `.`, `-`.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.masks.is_empty() {
            return Err("it masks nothing".into());
        }
        if self.masks.windows(2).any(|w| w[0] >= w[1]) {
            return Err("its masks are not in ascending order without repeats".into());
        }
        if self.reason.trim().is_empty() {
            return Err(
                "its reason is empty (a tombstone's reason is the audit trail of the erasure)"
                    .into(),
            );
        }
        let scope_ok = !self.scope.is_empty()
            && self.scope.len() <= MAX_SCOPE
            && self
                .scope
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-'));
        if !scope_ok {
            return Err(format!(
                "its scope {:?} is not 1 to {MAX_SCOPE} letters, digits, ':', '_', '.' or '-'",
                self.scope
            ));
        }
        Ok(())
    }

    /// A draft appending this tombstone to `stream` (at its head: set `expected` to pin it).
    /// The masks are sorted and deduplicated; the other rules of [`Tombstone::check`] must hold.
    pub fn draft(&self, stream: StreamId) -> Result<Draft> {
        let mut masks = self.masks.clone();
        masks.sort();
        masks.dedup();
        let sorted = Tombstone {
            masks: masks.clone(),
            ..self.clone()
        };
        sorted
            .check()
            .map_err(|e| Error::InvalidEvent(format!("a tombstone: {e}")))?;
        let data = ipld_core::serde::to_ipld(&Tombstone {
            masks,
            reason: self.reason.clone(),
            scope: self.scope.clone(),
        })
        .map_err(|e| Error::codec("tombstone", e.to_string()))?;
        Draft::new(stream, TOMBSTONE_TYPE, TOMBSTONE_SCHEMA).with_data(data)
    }

    /// Reads the tombstone of `event` from `store`: `Ok(None)` if the event is not a
    /// tombstone; an error if it is one whose payload is missing or not a tombstone payload.
    pub fn of<S: BlockStore + ?Sized>(store: &S, event: &Event) -> Result<Option<Tombstone>> {
        if event.event_type() != TOMBSTONE_TYPE {
            return Ok(None);
        }
        let block = match event.payload() {
            Some(cid) => Some(store.get(&cid)?.ok_or(Error::MissingBlock(cid))?),
            None => None,
        };
        Tombstone::decode(event, block.as_ref()).map(Some)
    }

    /// Decodes the tombstone of `event` (a tombstone) from its payload block.
    pub fn decode(event: &Event, payload: Option<&Block>) -> Result<Tombstone> {
        let bad = |reason: String| {
            Error::codec(
                event.cid().to_string(),
                format!("tombstone at height {}: {reason}", event.height()),
            )
        };
        if event.schema() != TOMBSTONE_SCHEMA {
            return Err(bad(format!("unknown schema {}", event.schema())));
        }
        let block = payload.ok_or_else(|| bad("it has no payload".into()))?;
        if Some(block.cid()) != event.payload() {
            return Err(bad(format!("{} is not its payload", block.cid())));
        }
        let tombstone = Payload::decode_as::<Tombstone>(block).map_err(|e| bad(e.to_string()))?;
        tombstone.check().map_err(bad)?;
        Ok(tombstone)
    }

    /// Checks a draft of the reserved type before it is appended, as `verify` would check the
    /// event: schema [`TOMBSTONE_SCHEMA`], a payload that is a tombstone under
    /// [`Tombstone::check`], and every mask the payload of an earlier event of `stream` that is
    /// not itself a tombstone (`chain`: the stream's events as stored, any order).
    pub(crate) fn check_draft<'a>(
        draft: &Draft,
        chain: impl IntoIterator<Item = &'a Event>,
    ) -> Result<()> {
        let bad = |reason: String| {
            Error::InvalidEvent(format!(
                "a {TOMBSTONE_TYPE} event of {}: {reason}",
                draft.stream
            ))
        };
        if draft.schema != TOMBSTONE_SCHEMA {
            return Err(bad(format!(
                "schema {} (only {TOMBSTONE_SCHEMA} is defined)",
                draft.schema
            )));
        }
        let payload = draft
            .payload
            .as_ref()
            .ok_or_else(|| bad("it has no payload".into()))?;
        let tombstone: Tombstone = ipld_core::serde::from_ipld(payload.data().clone())
            .map_err(|e| bad(format!("its payload is not a tombstone: {e}")))?;
        tombstone.check().map_err(bad)?;
        let maskable: std::collections::HashSet<Cid> = chain
            .into_iter()
            .filter(|e| e.event_type() != TOMBSTONE_TYPE)
            .filter_map(Event::payload)
            .collect();
        if let Some(m) = tombstone.masks.iter().find(|m| !maskable.contains(m)) {
            return Err(bad(format!(
                "it masks {m}, which is not the payload of an earlier event of this stream"
            )));
        }
        Ok(())
    }
}

/// The masks of one chain: masked payload CID → the tombstone event that masks it.
pub type Masks = HashMap<Cid, Cid>;

impl<S: BlockStore> Ledger<S> {
    /// Every payload masked by a tombstone on `stream`'s chain, with the tombstone's CID.
    pub fn masks(&self, stream: &StreamId) -> Result<Masks> {
        let mut masks = Masks::new();
        for event in self.walk_back(stream)? {
            let event = event?;
            if let Some(t) = Tombstone::of(self.store(), &event)? {
                for m in t.masks {
                    masks.entry(m).or_insert(event.cid());
                }
            }
        }
        Ok(masks)
    }

    /// Removes from the store every block that a tombstone on one of `streams` (every stream
    /// when `None`) masks and that is still there. Returns the CIDs removed. Idempotent: this
    /// is how an interrupted erasure is finished (`personctl gc`).
    pub fn purge_masked(&self, streams: Option<&[StreamId]>) -> Result<Vec<Cid>> {
        let streams: Vec<StreamId> = match streams {
            Some(s) => s.to_vec(),
            None => self.store().heads()?.into_iter().map(|(s, _)| s).collect(),
        };
        let mut removed = Vec::new();
        for stream in &streams {
            let mut masked: Vec<Cid> = self.masks(stream)?.into_keys().collect();
            masked.sort();
            for cid in masked {
                if self.store().remove(&cid)? {
                    tracing::debug!(%cid, %stream, "purged a masked block");
                    removed.push(cid);
                }
            }
        }
        Ok(removed)
    }
}
