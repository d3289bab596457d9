//! The person read side on the ledger's follower: [`PersonProjector`] keeps the
//! [`Projections`] current from verified events (folding each person incrementally from a
//! cache), runs the policies and the onboarding saga on each event ([`Policies`]) and the
//! time-based ones when the log is idle. The follower that feeds it (JetStream consumer,
//! batches, checkpoint, retries, dead letters) is the ledger's; nothing here names NATS.
//!
//! Invariants 5 and 9: no NATS here, and only verified, trusted events arrive.

use std::collections::HashMap;

use personctl_ledger::{BlockStore, Cid, Event, Head, Ledger, Projector, Publisher, Signer};

use crate::policy::{self, Periods, Trigger};
use crate::read_model::{derive, Entry};
use crate::{onboarding, Error, PersonId, Persons, Projections, Replayed, Update};

/// What the policies need: the key their events are signed with, the periods, the clock.
pub struct Policies {
    /// The service's key.
    pub signer: Signer,
    /// The time-based policies' periods.
    pub periods: Periods,
    /// How long an onboarding may wait before it times out (microseconds).
    pub onboarding_us: u64,
    /// A fixed now (microseconds since the Unix epoch), or the system clock.
    pub now_us: Option<u64>,
    /// The retention policy to apply when idle (`None`: none).
    pub retention: Option<crate::retention::Retention>,
}

impl Policies {
    fn now(&self) -> u64 {
        self.now_us.unwrap_or_else(personctl_ledger::now_us)
    }
}

/// One event's effect on the read models, and whether it erases (the read models are then
/// compacted, so that the erased values leave the disk).
pub struct PersonUpdate {
    update: Update,
    erases: bool,
}

/// Told of every event applied to the read models (its CID), after its commit.
pub type Observer<'a> = Box<dyn Fn(&Cid) + 'a>;

/// Keeps the person [`Projections`] current: the ledger's follower hands it verified events.
pub struct PersonProjector<'a, S> {
    persons: Persons<S>,
    projections: &'a Projections,
    policies: Option<Policies>,
    /// Publishes what the policies append (a lost race is an error: the follower's retry
    /// decides again).
    publisher: Option<&'a dyn Publisher>,
    cache: HashMap<PersonId, Replayed>,
    observer: Option<Observer<'a>>,
}

impl<'a, S: BlockStore> PersonProjector<'a, S> {
    /// A projector writing `projections`, reading chains from `store`.
    pub fn new(store: S, projections: &'a Projections) -> Self {
        PersonProjector {
            persons: Persons::new(Ledger::new(store)),
            projections,
            policies: None,
            publisher: None,
            cache: HashMap::new(),
            observer: None,
        }
    }

    /// Runs the policies, publishing their events with `publisher`.
    pub fn with_policies(
        mut self,
        policies: Policies,
        publisher: Option<&'a dyn Publisher>,
    ) -> Self {
        self.policies = Some(policies);
        self.publisher = publisher;
        self
    }

    /// Refuses up front what the policies would append that the write policies in force
    /// under `trust` do not allow ([`Ledger::enforce_policies`]): such a reaction is skipped
    /// with a warning instead of writing an event `verify` reports as `unauthorized`.
    pub fn enforcing(mut self, trust: personctl_ledger::TrustSet) -> Self {
        self.persons = Persons::new(self.persons.into_ledger().enforce_policies(trust));
        self
    }

    /// Tells `observer` of every event applied.
    pub fn observed(mut self, observer: Observer<'a>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The read models written.
    pub fn projections(&self) -> &Projections {
        self.projections
    }

    fn publish(&self, appended: &[personctl_ledger::Appended]) -> Result<(), Error> {
        let (Some(publisher), false) = (self.publisher, appended.is_empty()) else {
            return Ok(());
        };
        let streams: Vec<_> = appended.iter().map(|a| a.stream.clone()).collect();
        let store: &dyn BlockStore = self.persons.ledger().store();
        let report = publisher.publish(store, Some(&streams))?.settled()?;
        if let Some((stream, cids)) = report.conflicts.first() {
            return Err(personctl_ledger::Error::Withdrawn {
                stream: stream.clone(),
                cid: cids[0],
            }
            .into());
        }
        Ok(())
    }

    /// Runs the policies and the onboarding on one person event.
    fn react(
        &self,
        id: PersonId,
        event: &Event,
        person: Option<&crate::Person>,
    ) -> Result<(), Error> {
        let Some(run) = &self.policies else {
            return Ok(());
        };
        let recorded = self.persons.read_event(id, event)?;
        let trigger = Trigger {
            person: id,
            head: Head {
                cid: event.cid(),
                height: event.height(),
            },
            correlation: recorded.correlation,
            event: &recorded.event,
        };
        let mut appended = Vec::new();
        for r in policy::on_event(&trigger, person) {
            appended.extend(self.persons.react(&run.signer, &r)?);
        }
        if let Some(input) = onboarding::input_of(&recorded.event) {
            appended.extend(self.persons.onboard(
                &run.signer,
                id,
                input,
                event.cid(),
                recorded.correlation,
                run.onboarding_us,
            )?);
        }
        self.publish(&appended)
    }
}

impl<S: BlockStore> Projector for PersonProjector<'_, S> {
    type Update = PersonUpdate;
    type Error = Error;

    fn checkpoint(&self) -> Result<u64, Error> {
        self.projections.checkpoint()
    }

    fn prepare(&mut self, event: &Event) -> Result<PersonUpdate, Error> {
        let id = PersonId::from_stream(event.stream()).ok_or_else(|| {
            Error::NotOnChain(format!("{} is not a person's stream", event.stream()))
        })?;
        let base = self.cache.remove(&id).unwrap_or(Replayed {
            person: None,
            head: None,
            events: 0,
        });
        let replayed = self.persons.advance(id, base)?;
        // Policies first: after a crash before the commit they run again, and they append only
        // what they have not appended before.
        self.react(id, event, replayed.person.as_ref())?;
        let update = Update {
            person: id,
            derived: derive(replayed.person.as_ref()),
            entries: vec![Entry {
                height: event.height(),
                time_us: event.time_us(),
                event_type: event.event_type().to_string(),
                cid: event.cid().to_string(),
            }],
        };
        self.cache.insert(id, replayed);
        Ok(PersonUpdate {
            update,
            erases: event.event_type() == personctl_ledger::TOMBSTONE_TYPE,
        })
    }

    fn commit(
        &mut self,
        last: Option<u64>,
        updates: Vec<(Cid, PersonUpdate)>,
    ) -> Result<(), Error> {
        // One update per person: the newest state, every timeline entry.
        let mut merged: Vec<Update> = Vec::new();
        let mut index: HashMap<PersonId, usize> = HashMap::new();
        let mut erases = false;
        let mut cids = Vec::with_capacity(updates.len());
        for (cid, PersonUpdate { update, erases: e }) in updates {
            cids.push(cid);
            erases |= e;
            match index.get(&update.person) {
                Some(&i) => {
                    let u = &mut merged[i];
                    u.derived = update.derived;
                    u.entries.extend(update.entries);
                }
                None => {
                    index.insert(update.person, merged.len());
                    merged.push(update);
                }
            }
        }
        self.projections.apply(last, &merged)?;
        // An erasure's values leave the trees here; compaction takes them off the disk.
        if erases {
            self.projections.compact()?;
        }
        if let Some(observe) = &self.observer {
            for cid in &cids {
                observe(cid);
            }
        }
        Ok(())
    }

    fn idle(&mut self) -> Result<u64, Error> {
        let Some(run) = &self.policies else {
            return Ok(0);
        };
        // One read of every chain for the time-based policies and the retention policy.
        let (appended, due) = self.persons.sweep_with(
            &run.signer,
            run.now(),
            &run.periods,
            run.onboarding_us,
            run.retention.as_ref(),
        )?;
        self.publish(&appended)?;
        let mut done = appended.len() as u64;
        // Each erasure publishes its tombstone itself, before any block is removed; its
        // message then reaches these read models like any other event.
        for (_, erased) in self.persons.erase_due(&run.signer, due, self.publisher) {
            done += u64::from(erased.is_ok_and(|e| e.tombstone.is_some()));
        }
        Ok(done)
    }
}
