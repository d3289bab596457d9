//! [`Persons`]: the application service. Runs commands against the ledger (load, `decide`,
//! append with optimistic concurrency) and replays chains into persons and into a
//! [`PersonWorld`]. All I/O of the domain lives here.

use std::collections::HashMap;

use personctl_ledger::{
    Appended, BlockStore, Cid, Draft, Expected, Head, Ledger, Masks, Payload, Signer, StreamId,
};
use rayon::prelude::*;
use tracing::instrument;
use uuid::Uuid;

use crate::event::{self, encode_payload, Event};
use crate::onboarding;
use crate::policy::{self, Periods, Reaction};
use crate::read_model::{derive, Entry};
use crate::{
    apply, decide, decide_erasure, decide_merge_target, Command, Erasure, Error, Person, PersonId,
    PersonWorld, Recorded, Update, AGGREGATE,
};

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

/// Persons on a ledger.
pub struct Persons<S> {
    ledger: Ledger<S>,
}

/// A person's state inside a batch of commands.
struct Working {
    person: Option<Person>,
    /// The stored head when the batch started (the optimistic-concurrency expectation).
    stored: Option<Head>,
    /// Whether the batch already holds drafts for this person.
    drafted: bool,
}

/// A failed batch: the index of the command that failed, what went wrong, and what was
/// appended before it (in one commit).
#[derive(Debug)]
pub struct BatchFailure {
    /// Index of the failing command in the batch.
    pub index: usize,
    /// Why it failed.
    pub error: Error,
    /// Events appended for the commands before it, per command.
    pub appended: Vec<Vec<Appended>>,
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
        let mut masks = Masks::new();
        let mut out = Vec::new();
        for stored in self.ledger.walk_back(&id.stream())? {
            out.push(self.read(id, &stored?, &mut masks)?);
        }
        out.reverse();
        Ok(out)
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

    /// Whether an event of `stream` above `above` (a height; `None`: the whole chain) carries
    /// the causation id `causation`.
    pub fn caused(
        &self,
        stream: &StreamId,
        causation: Uuid,
        above: Option<u64>,
    ) -> Result<bool, Error> {
        for event in self.ledger.walk_back(stream)? {
            let event = event?;
            if above.is_some_and(|h| event.height() <= h) {
                break;
            }
            if event.body().causation == causation {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs a policy's reaction: its command is decided on the person's current state and its
    /// events are appended with the trigger in `causes`, the trigger's correlation id and the
    /// reaction's causation id. Appends nothing if the reaction ran before (an event of the
    /// chain carries its causation id) or if the rules refuse it now (the policy no longer
    /// applies: for example the person was archived meanwhile).
    pub fn react(&self, signer: &Signer, r: &Reaction) -> Result<Vec<Appended>, Error> {
        let stream = r.person.stream();
        // What a trigger on this chain caused lies above it: only that part is searched.
        let trigger = self.ledger.event(&r.trigger)?;
        let above = (trigger.stream() == &stream).then(|| trigger.height());
        if self.caused(&stream, r.causation(), above)? {
            return Ok(Vec::new());
        }
        let mut working = HashMap::new();
        let w = self.working(r.person, &mut working)?;
        let events = match decide(r.person, w.person.as_ref(), &r.command) {
            Ok(events) => events,
            Err(error) => {
                tracing::debug!(policy = r.policy, person = %r.person, %error, "policy does not apply");
                return Ok(Vec::new());
            }
        };
        let mut drafts = Vec::with_capacity(events.len());
        for event in &events {
            let mut d = draft(r.person, w, event, vec![r.trigger], r.correlation)?;
            d.causation = Some(r.causation());
            drafts.push(d);
            w.person = apply(w.person.take(), event);
        }
        Ok(self.ledger.append_batch(signer, drafts)?)
    }

    /// Drives person `id`'s onboarding by `input`, caused by the event `trigger` (with
    /// `correlation`): appends the stages entered to its onboarding chain and runs the
    /// compensation of a failure. Idempotent per trigger.
    pub fn onboard(
        &self,
        signer: &Signer,
        id: PersonId,
        input: onboarding::Input,
        trigger: Cid,
        correlation: Uuid,
        period_us: u64,
    ) -> Result<Vec<Appended>, Error> {
        let stream = onboarding_stream(id);
        let causation = policy::causation("onboarding", &trigger);
        if self.caused(&stream, causation, None)? {
            return Ok(Vec::new());
        }
        let (stage, head) = self.onboarding(id)?;
        let step = onboarding::advance(stage, input, period_us);
        let mut drafts = Vec::new();
        for (i, s) in step.stages.iter().enumerate() {
            let mut d = Draft::new(stream.clone(), onboarding::event_type(*s), 1);
            d.expected = match (i, head) {
                (0, None) => Expected::Empty,
                (0, Some(h)) => Expected::Height(h.height),
                _ => Expected::Any,
            };
            d.causes = vec![trigger];
            d.correlation = Some(correlation);
            d.causation = Some(causation);
            drafts.push(d);
        }
        let mut appended = if drafts.is_empty() {
            Vec::new()
        } else {
            self.ledger.append_batch(signer, drafts)?
        };
        if let (Some(command), Some(failed)) = (step.compensation, appended.last()) {
            let r = Reaction {
                policy: "onboarding-compensation",
                person: id,
                trigger: failed.cid,
                correlation,
                command,
            };
            appended.extend(self.react(signer, &r)?);
        }
        Ok(appended)
    }

    /// Where person `id`'s onboarding stands, and its chain's head.
    pub fn onboarding(
        &self,
        id: PersonId,
    ) -> Result<(Option<onboarding::Stage>, Option<Head>), Error> {
        let stream = onboarding_stream(id);
        let head = self.ledger.store().head(&stream)?;
        let mut types = Vec::new();
        for event in self.ledger.walk_back(&stream)? {
            types.push(event?.event_type().to_string());
        }
        types.reverse();
        Ok((onboarding::stage_of(types.iter().map(String::as_str)), head))
    }

    /// Runs the time-based policies and onboarding timeouts due at `now_us` for every person;
    /// returns what was appended.
    pub fn sweep(
        &self,
        signer: &Signer,
        now_us: u64,
        periods: &Periods,
        onboarding_us: u64,
    ) -> Result<Vec<Appended>, Error> {
        let mut appended = Vec::new();
        for id in self.ids()? {
            let history = self.history(id)?;
            let person = history.iter().fold(None, |p, (_, r)| apply(p, &r.event));
            let Some(person) = person else { continue };
            for r in policy::due(&person, &history, now_us, periods) {
                let correlation = history
                    .iter()
                    .find(|(h, _)| h.cid == r.trigger)
                    .map_or(r.correlation, |(_, rec)| rec.correlation);
                appended.extend(self.react(signer, &Reaction { correlation, ..r })?);
            }
            let (stage, head) = self.onboarding(id)?;
            if let (Some(stage), Some(head)) = (stage, head) {
                let started = self.ledger.event(&head.cid)?;
                let waiting = matches!(
                    stage,
                    onboarding::Stage::Started | onboarding::Stage::EmailAdded
                );
                if waiting && now_us.saturating_sub(started.time_us()) >= onboarding_us {
                    appended.extend(self.onboard(
                        signer,
                        id,
                        onboarding::Input::TimedOut,
                        head.cid,
                        started.body().correlation,
                        onboarding_us,
                    )?);
                }
            }
        }
        Ok(appended)
    }

    /// Replays one person's chain on the calling thread only (for callers that already run
    /// many replays in parallel).
    fn replay_here(&self, id: PersonId) -> Result<Replayed, Error> {
        let decoded = self
            .history(id)?
            .into_iter()
            .map(|(h, r)| (h, r.event))
            .collect();
        fold_until(id, decoded, None)
    }

    /// Reads one event of person `id`'s chain, walking back from the head: `masks` holds the
    /// masks of the tombstones met so far (all later on the chain) and takes this event's if
    /// it is one. A masked payload is not read, even if it is still stored.
    fn read(
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

    /// Erases personal data of person `id`: decides the erasure on its chain
    /// ([`decide_erasure`]) and appends the tombstone at the head it read (a concurrent append
    /// is a conflict, reported). Returns the tombstone (`None`: nothing was left to erase).
    ///
    /// The masked blocks are still stored afterwards, though never read again: remove them
    /// with [`Persons::purge`] once the tombstone is where it must be, or use
    /// [`Persons::erase_and_purge`], which does all of it in the safe order (with a shared log
    /// too).
    pub fn erase(
        &self,
        signer: &Signer,
        id: PersonId,
        erasure: &Erasure,
        reason: &str,
    ) -> Result<Option<Appended>, Error> {
        match self.erasure_draft(id, erasure, reason)? {
            Some(d) => Ok(Some(self.ledger.append(signer, d)?)),
            None => Ok(None),
        }
    }

    /// The tombstone that erases `erasure` of person `id` now, pinned to the head it was
    /// decided on (`None`: nothing is left to erase).
    pub(crate) fn erasure_draft(
        &self,
        id: PersonId,
        erasure: &Erasure,
        reason: &str,
    ) -> Result<Option<Draft>, Error> {
        let history = self.history(id)?;
        let stored = history.last().map(|(h, _)| *h);
        let person = history.iter().fold(None, |p, (_, r)| apply(p, &r.event));
        let recorded: Vec<Recorded> = history.into_iter().map(|(_, r)| r).collect();
        let events = decide_erasure(person.as_ref(), &recorded, erasure, reason)
            .map_err(|error| Error::Rule { person: id, error })?;
        let Some(event) = events.first() else {
            return Ok(None);
        };
        let mut w = Working {
            person,
            stored,
            drafted: false,
        };
        Ok(Some(draft(id, &mut w, event, Vec::new(), Uuid::now_v7())?))
    }

    /// Removes from the store every block a tombstone on person `id`'s chain masks; returns
    /// the CIDs removed. Idempotent: after a crash it finishes an erasure.
    pub fn purge(&self, id: PersonId) -> Result<Vec<Cid>, Error> {
        Ok(self.ledger.purge_masked(Some(&[id.stream()]))?)
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
        let ids = self.ids()?;
        let replayed: Vec<Replayed> = ids
            .par_iter()
            .map(|id| self.replay_here(*id))
            .collect::<Result<_, _>>()?;
        let events = replayed.iter().map(|r| r.events).sum();
        let world = PersonWorld::from_persons(replayed.into_iter().filter_map(|r| r.person));
        Ok((world, events))
    }

    /// Runs one command; returns the appended events.
    pub fn execute(
        &self,
        signer: &Signer,
        id: PersonId,
        command: &Command,
    ) -> Result<Vec<Appended>, Error> {
        match self.execute_batch(signer, &[(id, command.clone())]) {
            Ok(mut out) => Ok(out.pop().unwrap_or_default()),
            Err(failure) => Err(failure.error),
        }
    }

    /// Runs commands in order, deciding each against the state left by the ones before, and
    /// appends their events in one atomic commit. At the first command that fails, the events
    /// of the commands before it are appended and the failure names its index; nothing of the
    /// failing command is appended. A merge commits the commands before it first, so that the
    /// surviving person's event can name the merged person's head in `causes`.
    pub fn execute_batch(
        &self,
        signer: &Signer,
        commands: &[(PersonId, Command)],
    ) -> Result<Vec<Vec<Appended>>, BatchFailure> {
        let mut done: Vec<Vec<Appended>> = Vec::with_capacity(commands.len());
        let mut pending: Vec<(usize, Draft)> = Vec::new();
        let mut working: HashMap<PersonId, Working> = HashMap::new();
        for (index, (id, command)) in commands.iter().enumerate() {
            let fail = |error: Error, done: Vec<Vec<Appended>>| BatchFailure {
                index,
                error,
                appended: done,
            };
            if let Command::Merge { into } = command {
                // The merge needs stored heads: commit what came before.
                let first_pending = pending.first().map(|(i, _)| *i);
                if let Err(error) = self.flush(signer, &mut pending, &mut done, &mut working) {
                    let index = first_pending.unwrap_or(index);
                    return Err(BatchFailure {
                        index,
                        error,
                        appended: done,
                    });
                }
                match self.merge(signer, *id, *into, &mut working) {
                    Ok(appended) => done.push(appended),
                    Err(error) => return Err(fail(error, done)),
                }
                continue;
            }
            match self.decide_one(*id, command, &mut working) {
                Ok(drafts) => {
                    done.push(Vec::new());
                    pending.extend(drafts.into_iter().map(|d| (index, d)));
                }
                Err(error) => {
                    let first_pending = pending.first().map(|(i, _)| *i);
                    if let Err(flush_error) =
                        self.flush(signer, &mut pending, &mut done, &mut working)
                    {
                        // Nothing was appended: the commit of the earlier commands failed.
                        let index = first_pending.unwrap_or(index);
                        return Err(BatchFailure {
                            index,
                            error: flush_error,
                            appended: Vec::new(),
                        });
                    }
                    return Err(fail(error, done));
                }
            }
        }
        let first_pending = pending.first().map(|(i, _)| *i);
        if let Err(error) = self.flush(signer, &mut pending, &mut done, &mut working) {
            let index = first_pending.unwrap_or(0);
            return Err(BatchFailure {
                index,
                error,
                appended: Vec::new(),
            });
        }
        Ok(done)
    }

    fn working<'w>(
        &self,
        id: PersonId,
        working: &'w mut HashMap<PersonId, Working>,
    ) -> Result<&'w mut Working, Error> {
        if let std::collections::hash_map::Entry::Vacant(e) = working.entry(id) {
            let replayed = self.replay_here(id)?;
            e.insert(Working {
                person: replayed.person,
                stored: replayed.head,
                drafted: false,
            });
        }
        Ok(working.get_mut(&id).expect("inserted above"))
    }

    /// Decides one (non-merge) command and turns its events into drafts.
    fn decide_one(
        &self,
        id: PersonId,
        command: &Command,
        working: &mut HashMap<PersonId, Working>,
    ) -> Result<Vec<Draft>, Error> {
        let w = self.working(id, working)?;
        let events = decide(id, w.person.as_ref(), command)
            .map_err(|error| Error::Rule { person: id, error })?;
        let command_id = Uuid::now_v7();
        let mut drafts = Vec::with_capacity(events.len());
        for event in &events {
            drafts.push(draft(id, w, event, Vec::new(), command_id)?);
            w.person = apply(w.person.take(), event);
        }
        Ok(drafts)
    }

    /// Appends both sides of a merge in one commit.
    fn merge(
        &self,
        signer: &Signer,
        id: PersonId,
        into: PersonId,
        working: &mut HashMap<PersonId, Working>,
    ) -> Result<Vec<Appended>, Error> {
        let command_id = Uuid::now_v7();
        let (source_events, source_head) = {
            let w = self.working(id, working)?;
            let events = decide(id, w.person.as_ref(), &Command::Merge { into })
                .map_err(|error| Error::Rule { person: id, error })?;
            (events, w.stored)
        };
        let target = self.working(into, working)?;
        let target_events =
            decide_merge_target(into, target.person.as_ref(), id).map_err(|error| Error::Rule {
                person: into,
                error,
            })?;
        let mut drafts = Vec::new();
        let causes: Vec<Cid> = source_head.iter().map(|h| h.cid).collect();
        for event in &target_events {
            drafts.push(draft(into, target, event, causes.clone(), command_id)?);
            target.person = apply(target.person.take(), event);
        }
        let source = working.get_mut(&id).expect("loaded above");
        for event in &source_events {
            drafts.push(draft(id, source, event, Vec::new(), command_id)?);
            source.person = apply(source.person.take(), event);
        }
        let appended = self.ledger.append_batch(signer, drafts);
        let appended = self.settle(appended, working)?;
        Ok(appended)
    }

    /// Appends the pending drafts in one commit and records their results per command.
    fn flush(
        &self,
        signer: &Signer,
        pending: &mut Vec<(usize, Draft)>,
        done: &mut [Vec<Appended>],
        working: &mut HashMap<PersonId, Working>,
    ) -> Result<(), Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let (indices, drafts): (Vec<usize>, Vec<Draft>) =
            std::mem::take(pending).into_iter().unzip();
        let appended = self.settle(self.ledger.append_batch(signer, drafts), working)?;
        for (i, a) in indices.into_iter().zip(appended) {
            done[i].push(a);
        }
        Ok(())
    }

    /// After a commit: the new heads become the stored heads; after a failure, the working
    /// states are dropped so that they are reloaded.
    fn settle(
        &self,
        appended: personctl_ledger::Result<Vec<Appended>>,
        working: &mut HashMap<PersonId, Working>,
    ) -> Result<Vec<Appended>, Error> {
        match appended {
            Ok(appended) => {
                for a in &appended {
                    if let Some(id) = PersonId::from_stream(&a.stream) {
                        if let Some(w) = working.get_mut(&id) {
                            w.stored = Some(Head {
                                cid: a.cid,
                                height: a.height,
                            });
                            w.drafted = false;
                        }
                    }
                }
                Ok(appended)
            }
            Err(e) => {
                working.clear();
                Err(e.into())
            }
        }
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

/// A ledger draft for one event of person `id`. The first draft of a person in a commit
/// expects the stored head; later ones build on the commit's own progress.
fn draft(
    id: PersonId,
    w: &mut Working,
    event: &Event,
    causes: Vec<Cid>,
    command_id: Uuid,
) -> Result<Draft, Error> {
    let mut d = Draft::new(id.stream(), event.type_name(), event.schema());
    d.expected = if w.drafted {
        Expected::Any
    } else {
        w.stored
            .map_or(Expected::Empty, |h| Expected::Height(h.height))
    };
    w.drafted = true;
    d.payload = encode_payload(event).map(Payload::new).transpose()?;
    d.causes = causes;
    d.correlation = Some(command_id);
    d.causation = Some(command_id);
    Ok(d)
}

/// The onboarding chain of person `id`: `onboarding/<id>`.
pub fn onboarding_stream(id: PersonId) -> StreamId {
    StreamId::new(onboarding::AGGREGATE, id.to_string()).expect("a person id is a valid stream id")
}
