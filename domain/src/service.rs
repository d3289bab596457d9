//! [`Persons`]: the application service, and its reading side: replaying chains into persons
//! and into a [`PersonWorld`], reading events as the domain sees them (masked where a
//! tombstone masks them). Its other sides: `execute` (commands), `react` (policies and the
//! onboarding saga), `write` (with a shared log, and erasure). All I/O of the domain lives in
//! these four.

use personctl_ledger::policy::Judge;
use personctl_ledger::{BlockStore, Cid, Head, Ledger, Masks};
use rayon::prelude::*;
use tracing::instrument;

use crate::event::{self, Event};
use crate::read_model::{derive, Entry};
use crate::{apply, Error, Person, PersonId, PersonWorld, Recorded, Update, AGGREGATE};

/// Where a replay stops: after the event at this height, or with this CID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Stop after the event at this height.
    Height(u64),
    /// Stop after the event with this CID.
    Cid(Cid),
}

/// The result of replaying one person's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// The person (`None` if the chain is empty).
    pub person: Option<Person>,
    /// The last event applied.
    pub head: Option<Head>,
    /// How many events were applied.
    pub events: u64,
}

/// A replay of everyone: the world, the events applied, and per person the events whose
/// author or grant `verify` fails (see [`Persons::replay_all_judged`]).
pub type Judged = (PersonWorld, u64, Vec<(PersonId, Vec<Cid>)>);

/// A person's chain as the domain reads it, genesis first.
type History = Vec<(Head, Recorded)>;

/// Persons on a ledger.
pub struct Persons<S> {
    ledger: Ledger<S>,
}

impl<S: BlockStore> Persons<S> {
    /// Wraps a ledger.
    pub fn new(ledger: Ledger<S>) -> Persons<S> {
        Persons { ledger }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger<S> {
        &self.ledger
    }

    /// Unwraps the ledger.
    pub fn into_ledger(self) -> Ledger<S> {
        self.ledger
    }

    /// Replays one person's chain, from genesis, up to `at` (or the head).
    ///
    /// Two threads work on it: one walks the chain back from the head (each event names its
    /// parent, so this part is sequential), the other loads and decodes the payloads of the
    /// events already found; the events are then applied from genesis on.
    #[instrument(skip_all, fields(person = %id))]
    pub fn replay(&self, id: PersonId, at: Option<At>) -> Result<Replayed, Error> {
        // Events go over in runs: one hand-over (and thread wake-up) per run, not per event.
        const RUN: usize = 256;
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<personctl_ledger::Event>>(8);
        let stream = id.stream();
        let (walked, decoded) = std::thread::scope(|scope| {
            let walker = scope.spawn(move || -> Result<(), Error> {
                let mut run = Vec::with_capacity(RUN);
                for event in self.ledger.walk_back(&stream)? {
                    run.push(event?);
                    if run.len() == RUN {
                        let full = std::mem::replace(&mut run, Vec::with_capacity(RUN));
                        if sender.send(full).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !run.is_empty() {
                    let _ = sender.send(run);
                }
                Ok(())
            });
            let mut masks = Masks::new();
            let decoded: Result<Vec<(Head, Event)>, Error> = receiver
                .iter()
                .flatten()
                .map(|stored| {
                    self.read(id, &stored, &mut masks)
                        .map(|(h, r)| (h, r.event))
                })
                .collect();
            (
                walker.join().expect("the chain walker does not panic"),
                decoded,
            )
        });
        walked?;
        let mut decoded = decoded?;
        decoded.reverse();
        fold_until(id, decoded, at)
    }

    /// Reads a person's chain, genesis first: each event as the domain sees it (masked where
    /// a tombstone masks its payload) with its payload's CID.
    pub fn history(&self, id: PersonId) -> Result<Vec<(Head, Recorded)>, Error> {
        Ok(self.history_judged(id, None)?.0)
    }

    /// [`Persons::history`], and the events `judge` finds fault with (newest first).
    fn history_judged(
        &self,
        id: PersonId,
        judge: Option<&Judge>,
    ) -> Result<(History, Vec<Cid>), Error> {
        let mut masks = Masks::new();
        let mut out = Vec::new();
        let mut faulted = Vec::new();
        for stored in self.ledger.walk_back(&id.stream())? {
            let stored = stored?;
            if judge.is_some_and(|j| j.judge(&stored).is_some()) {
                faulted.push(stored.cid());
            }
            out.push(self.read(id, &stored, &mut masks)?);
        }
        out.reverse();
        Ok((out, faulted))
    }

    /// Brings `base`, a replay of person `id` up to some event, to the chain's head, reading only
    /// the events above it, unless one of them is a tombstone (masks change what earlier events
    /// read as) or `base` is not on the chain: then the whole chain is read again.
    pub fn advance(&self, id: PersonId, base: Replayed) -> Result<Replayed, Error> {
        let mut newer = Vec::new();
        let mut met = base.head.is_none();
        for stored in self.ledger.walk_back(&id.stream())? {
            let stored = stored?;
            if Some(stored.cid()) == base.head.map(|h| h.cid) {
                met = true;
                break;
            }
            if stored.event_type() == personctl_ledger::TOMBSTONE_TYPE {
                return self.replay_here(id);
            }
            newer.push(stored);
        }
        if !met {
            return self.replay_here(id);
        }
        let mut out = base;
        let mut masks = Masks::new();
        for stored in newer.iter().rev() {
            let (head, recorded) = self.read(id, stored, &mut masks)?;
            out.person = apply(out.person.take(), &recorded.event);
            out.head = Some(head);
            out.events += 1;
        }
        Ok(out)
    }

    /// What the read models derive from every person's chain: one [`Update`] per person with
    /// its whole timeline (for a rebuild), and the number of events read. In parallel.
    pub fn read_models(&self) -> Result<(Vec<Update>, u64), Error> {
        let ids = self.ids()?;
        let updates: Vec<Update> = ids
            .par_iter()
            .map(|id| {
                let history = self.history(*id)?;
                let mut person = None;
                let mut entries = Vec::with_capacity(history.len());
                for (head, recorded) in &history {
                    person = apply(person, &recorded.event);
                    entries.push(Entry {
                        height: head.height,
                        time_us: recorded.time_us,
                        event_type: recorded.event.type_name(),
                        cid: head.cid.to_string(),
                    });
                }
                Ok(Update {
                    person: *id,
                    derived: derive(person.as_ref()),
                    entries,
                })
            })
            .collect::<Result<_, Error>>()?;
        let events = updates.iter().map(|u| u.entries.len() as u64).sum();
        Ok((updates, events))
    }

    /// Reads one stored event of person `id` as the domain sees it. A missing payload that a
    /// tombstone of the chain masks reads as [`Event::Masked`]; one that none masks is an error.
    pub fn read_event(
        &self,
        id: PersonId,
        stored: &personctl_ledger::Event,
    ) -> Result<Recorded, Error> {
        let mut masks = Masks::new();
        if let Some(p) = stored.payload() {
            if !self.ledger.store().contains(&p)? {
                masks = self.ledger.masks(&id.stream())?;
            }
        }
        Ok(self.read(id, stored, &mut masks)?.1)
    }

    /// Replays one person's chain on the calling thread only (for callers that already run
    /// many replays in parallel).
    pub(crate) fn replay_here(&self, id: PersonId) -> Result<Replayed, Error> {
        Ok(self.replay_here_judged(id, None)?.0)
    }

    fn replay_here_judged(
        &self,
        id: PersonId,
        judge: Option<&Judge>,
    ) -> Result<(Replayed, Vec<Cid>), Error> {
        let (history, faulted) = self.history_judged(id, judge)?;
        let decoded = history.into_iter().map(|(h, r)| (h, r.event)).collect();
        Ok((fold_until(id, decoded, None)?, faulted))
    }

    /// Reads one event of person `id`'s chain, walking back from the head: `masks` holds the
    /// masks of the tombstones met so far (all later on the chain) and takes this event's if
    /// it is one. A masked payload is not read, even if it is still stored.
    pub(crate) fn read(
        &self,
        id: PersonId,
        stored: &personctl_ledger::Event,
        masks: &mut Masks,
    ) -> Result<(Head, Recorded), Error> {
        let head = Head {
            cid: stored.cid(),
            height: stored.height(),
        };
        let payload = stored.payload();
        let event = if payload.is_some_and(|p| masks.contains_key(&p)) {
            Event::Masked {
                person: id,
                event_type: stored.event_type().to_string(),
            }
        } else {
            let block =
                match payload {
                    Some(cid) => Some(self.ledger.store().get(&cid)?.ok_or(
                        Error::MissingPayload {
                            event: stored.cid(),
                            payload: cid,
                        },
                    )?),
                    None => None,
                };
            event::decode(stored.event_type(), stored.schema(), block.as_ref()).map_err(
                |error| Error::Decode {
                    cid: stored.cid(),
                    error,
                },
            )?
        };
        if let Event::Erased { masks: m, .. } = &event {
            for cid in m {
                masks.entry(*cid).or_insert(stored.cid());
            }
        }
        Ok((
            head,
            Recorded {
                payload,
                event,
                time_us: stored.time_us(),
                correlation: stored.body().correlation,
            },
        ))
    }

    /// Every person stream in the store.
    pub fn ids(&self) -> Result<Vec<PersonId>, Error> {
        Ok(self
            .ledger
            .store()
            .heads()?
            .into_iter()
            .filter(|(s, _)| s.aggregate() == AGGREGATE)
            .filter_map(|(s, _)| PersonId::from_stream(&s))
            .collect())
    }

    /// Replays every person (in parallel, one chain per task) into one [`PersonWorld`].
    /// Returns the world and the number of events applied.
    #[instrument(skip_all)]
    pub fn replay_all(&self) -> Result<(PersonWorld, u64), Error> {
        let (world, events, _) = self.replay_all_with(None)?;
        Ok((world, events))
    }

    /// [`Persons::replay_all`], judging every event's author and grant on the way as `verify`
    /// does ([`Judge`]): also returns, per person, the events it finds fault with (newest
    /// first), for a reader to mark. Persons with none are left out.
    #[instrument(skip_all)]
    pub fn replay_all_judged(&self, judge: &Judge) -> Result<Judged, Error> {
        self.replay_all_with(Some(judge))
    }

    fn replay_all_with(&self, judge: Option<&Judge>) -> Result<Judged, Error> {
        let ids = self.ids()?;
        let replayed: Vec<(PersonId, Replayed, Vec<Cid>)> = ids
            .par_iter()
            .map(|id| {
                self.replay_here_judged(*id, judge)
                    .map(|(r, faulted)| (*id, r, faulted))
            })
            .collect::<Result<_, _>>()?;
        let events = replayed.iter().map(|(_, r, _)| r.events).sum();
        let mut faulted = Vec::new();
        let mut persons = Vec::with_capacity(replayed.len());
        for (id, r, f) in replayed {
            if !f.is_empty() {
                faulted.push((id, f));
            }
            persons.extend(r.person);
        }
        Ok((PersonWorld::from_persons(persons), events, faulted))
    }
}

/// Applies decoded events from genesis on, stopping after `at`.
fn fold_until(
    id: PersonId,
    decoded: Vec<(Head, Event)>,
    at: Option<At>,
) -> Result<Replayed, Error> {
    let mut out = Replayed {
        person: None,
        head: None,
        events: 0,
    };
    for (head, event) in decoded {
        out.person = apply(out.person.take(), &event);
        out.head = Some(head);
        out.events += 1;
        let stop = match at {
            Some(At::Height(h)) => head.height == h,
            Some(At::Cid(c)) => head.cid == c,
            None => false,
        };
        if stop {
            return Ok(out);
        }
    }
    match at {
        None => Ok(out),
        Some(At::Height(h)) => Err(Error::NotOnChain(format!(
            "person {id} has no event at height {h}"
        ))),
        Some(At::Cid(c)) => Err(Error::NotOnChain(format!(
            "event {c} is not on the chain of person {id}"
        ))),
    }
}
