//! Verifying the events a reader meets (a follower, a consumer): each named event is read,
//! its CID re-derived, decoded, its signature checked (in batches, the same verdicts as
//! [`crate::verify()`]) and its author and grant judged ([`crate::policy::Rules`]).

use super::Problem;
use crate::keys::{verify_many, SigCheck, VERIFY_BATCH};
use crate::store::BlockStore;
use crate::{event::signing_message, Cid, Event, Result};

/// Verifies the stored events `cids`: per CID, in order, the event or what is wrong with it
/// ([`Problem::Missing`], [`Problem::Malformed`], [`Problem::BadSignature`], or what `judge`
/// says of an event whose signature verifies: [`Problem::UntrustedAuthor`],
/// [`Problem::RevokedKey`], [`Problem::Unauthorized`]). Fails only when the store cannot be
/// read (a block whose bytes do not hash to its CID is an error of the store,
/// [`crate::Error::CidMismatch`]) or `judge` fails.
///
/// `judge` is usually [`crate::policy::Judge::judge`] (positions in the store's own log) or,
/// on the JetStream path, `jetstream::Backbone::judge` (positions in the shared log).
pub fn verify_events<S: BlockStore + ?Sized>(
    store: &S,
    cids: &[Cid],
    judge: &mut dyn FnMut(&Event) -> Result<Option<Problem>>,
) -> Result<Vec<(Cid, std::result::Result<Event, Problem>)>> {
    let mut out: Vec<(Cid, std::result::Result<Event, Problem>)> = Vec::with_capacity(cids.len());
    // (index in out, signed message) of the events whose signature is to be checked.
    let mut to_check: Vec<(usize, Vec<u8>)> = Vec::new();
    for cid in cids {
        let Some(block) = store.get(cid)? else {
            out.push((
                *cid,
                Err(Problem::Missing {
                    role: "event",
                    from: None,
                }),
            ));
            continue;
        };
        let decoded = Event::decode(&block).and_then(|e| Ok((e, signing_message(block.bytes())?)));
        match decoded {
            Ok((event, message)) => {
                to_check.push((out.len(), message));
                out.push((*cid, Ok(event)));
            }
            Err(e) => out.push((
                *cid,
                Err(Problem::Malformed {
                    reason: e.to_string(),
                }),
            )),
        }
    }
    for chunk in to_check.chunks(VERIFY_BATCH) {
        let verdicts = {
            let checks: Vec<SigCheck<'_>> = chunk
                .iter()
                .map(|(i, message)| {
                    let event = out[*i].1.as_ref().expect("decoded above");
                    SigCheck {
                        message,
                        signature: event.signature(),
                        author: event.author(),
                    }
                })
                .collect();
            verify_many(&checks)
        };
        for ((i, _), ok) in chunk.iter().zip(verdicts) {
            let slot = &mut out[*i].1;
            let problem = match slot.as_ref() {
                Ok(_) if !ok => Some(Problem::BadSignature),
                Ok(event) => judge(event)?,
                Err(_) => None,
            };
            if let Some(problem) = problem {
                *slot = Err(problem);
            }
        }
    }
    Ok(out)
}
