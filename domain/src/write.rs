//! The write path of persons with a shared log: commands decided, appended and published, and
//! decided again on the newest state when their events lose a race
//! ([`Persons::execute_published`]); erasure in its safe order ([`Persons::erase_and_purge`]).
//! The log is the ledger's [`Publisher`] (JetStream in `personctl`); `None` works on the local
//! store alone. Nothing here names NATS.

use std::collections::HashSet;

use personctl_ledger::{Appended, BlockStore, Cid, Draft, Publisher, Retry, Signer};
use uuid::Uuid;

use crate::execute::{draft, Working};
use crate::retention::{Due, Retention};
use crate::{apply, decide_erasure, Command, Erasure, Error, PersonId, Persons, Recorded};

/// What [`Persons::execute_published`] did.
#[derive(Debug, Default)]
pub struct Executed {
    /// The events of each command done, in the batch's order: a prefix of the batch.
    pub appended: Vec<Vec<Appended>>,
    /// The first command that failed (its index in the batch) and why; nothing of it was
    /// appended and the commands after it were not run.
    pub failure: Option<(usize, Error)>,
    /// Why the shared log stopped taking events ([`personctl_ledger::Error::is_offline`]). From
    /// then on, commands were appended here alone: those events are stored and pending, and
    /// the next publish sends them.
    pub unpublished: Option<personctl_ledger::Error>,
}

/// What [`Persons::erase_and_purge`] did.
#[derive(Debug)]
pub struct Erasing {
    /// The tombstone appended (`None`: nothing was left to erase; masked blocks an
    /// interrupted erasure left were still removed).
    pub tombstone: Option<Appended>,
    /// How many payloads the tombstone masks.
    pub masked: usize,
    /// Masked blocks removed from the local store.
    pub removed: Vec<Cid>,
    /// Masked blocks removed from the log's block store (`None`: no publisher).
    pub erased_remote: Option<u64>,
}

/// One erasure a retention policy made due, and how applying it ended
/// ([`Persons::apply_retention`]).
pub type Retained = (Due, Result<Erasing, Error>);

/// What [`Persons::execute_once`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Once {
    /// The command's events, in the order they were appended: appended now, or found, when
    /// the command id had already run.
    pub events: Vec<Appended>,
    /// Whether the command id had already run (nothing was appended this time).
    pub repeated: bool,
}

impl<S: BlockStore> Persons<S> {
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
            Some(d) => Ok(Some(self.ledger().append(signer, d)?)),
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

    /// What erasing `erasure` of person `id` would mask now, writing nothing: each payload with
    /// the event (head, type) that links it, genesis first. Empty: nothing is left to erase.
    pub fn erasure_preview(
        &self,
        id: PersonId,
        erasure: &Erasure,
        reason: &str,
    ) -> Result<Vec<(personctl_ledger::Head, String, Cid)>, Error> {
        let history = self.history(id)?;
        let person = history.iter().fold(None, |p, (_, r)| apply(p, &r.event));
        let recorded: Vec<Recorded> = history.iter().map(|(_, r)| r.clone()).collect();
        let events = decide_erasure(person.as_ref(), &recorded, erasure, reason)
            .map_err(|error| Error::Rule { person: id, error })?;
        let masks: Vec<Cid> = events
            .iter()
            .flat_map(|e| match e {
                crate::Event::Erased { masks, .. } => masks.clone(),
                _ => Vec::new(),
            })
            .collect();
        Ok(history
            .iter()
            .filter_map(|(head, r)| {
                let payload = r.payload.filter(|p| masks.contains(p))?;
                Some((*head, r.event.type_name(), payload))
            })
            .collect())
    }

    /// Removes from the store every block a tombstone on person `id`'s chain masks; returns
    /// the CIDs removed. Idempotent: after a crash it finishes an erasure.
    pub fn purge(&self, id: PersonId) -> Result<Vec<Cid>, Error> {
        Ok(self.ledger().purge_masked(Some(&[id.stream()]))?)
    }

    /// Runs commands in order ([`Persons::execute_batch`]) and, with a publisher, publishes
    /// their events. Before deciding, every person of the batch is brought level with the log.
    /// Commands whose events lost a race (withdrawn, the person now level with the winner) are
    /// decided again on the new state, in their order, at most `retry.rounds` times. When the
    /// log stops answering, the rest is stored here, pending ([`Executed::unpublished`]).
    ///
    /// Fails (`Err`, nothing appended) only when a person cannot be brought level with the log
    /// for another reason than the log being unreachable (for example untrusted events there).
    pub fn execute_published(
        &self,
        signer: &Signer,
        batch: &[(PersonId, Command)],
        publisher: Option<&dyn Publisher>,
        retry: Retry,
    ) -> Result<Executed, Error> {
        let mut out = Executed::default();
        let mut publisher = publisher;
        let store: &dyn BlockStore = self.ledger().store();
        if let Some(p) = publisher {
            let mut seen = HashSet::new();
            for (id, _) in batch {
                if !seen.insert(*id) {
                    continue;
                }
                match p.pull(store, &id.stream()) {
                    Ok(_) => {}
                    Err(e) if e.is_offline() => {
                        out.unpublished = Some(e);
                        publisher = None;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut results: Vec<Option<Vec<Appended>>> = vec![None; batch.len()];
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        for round in 0.. {
            let commands: Vec<(PersonId, Command)> =
                todo.iter().map(|&i| batch[i].clone()).collect();
            let (appended, failed) = match self.execute_batch(signer, &commands) {
                Ok(appended) => (appended, None),
                Err(f) => (f.appended, Some((f.index, f.error))),
            };
            let mut withdrawn = HashSet::new();
            if let Some(p) = publisher {
                let streams: Vec<_> = appended
                    .iter()
                    .flatten()
                    .map(|a| a.stream.clone())
                    .collect();
                match p.publish(store, Some(&streams)).and_then(|r| r.settled()) {
                    Ok(report) => withdrawn = report.withdrawn(),
                    // Stored, not published: pending, like the rest of the batch from now on.
                    Err(e) if e.is_offline() => {
                        out.unpublished = Some(e);
                        publisher = None;
                    }
                    Err(e) => {
                        out.failure = Some((todo[0], e.into()));
                        break;
                    }
                }
            }
            let mut again = Vec::new();
            for (k, events) in appended.into_iter().enumerate() {
                let i = todo[k];
                let lost = events.iter().filter(|a| withdrawn.contains(&a.cid)).count();
                if lost == 0 {
                    results[i] = Some(events);
                } else if lost == events.len() {
                    again.push(i);
                } else {
                    out.failure = Some((i, Error::PartlyAccepted { person: batch[i].0 }));
                    break;
                }
            }
            if out.failure.is_some() {
                break;
            }
            match failed {
                Some((k, error)) if again.is_empty() => {
                    out.failure = Some((todo[k], error));
                    break;
                }
                // Commands after a failed one were never run: they run again with the others.
                Some((k, _)) => again.extend_from_slice(&todo[k..]),
                None if again.is_empty() => break,
                None => {}
            }
            if round + 1 >= retry.rounds.max(1) {
                let i = again[0];
                out.failure = Some((
                    i,
                    personctl_ledger::Error::StillLosing {
                        stream: batch[i].0.stream(),
                        rounds: retry.rounds,
                    }
                    .into(),
                ));
                break;
            }
            tracing::debug!(
                round,
                again = again.len(),
                "lost races on the log; deciding again"
            );
            again.sort_unstable();
            again.dedup();
            todo = again;
        }
        out.appended = results.into_iter().map_while(|r| r).collect();
        if let Some((i, _)) = &out.failure {
            debug_assert!(*i >= out.appended.len());
        }
        Ok(out)
    }

    /// Runs `command` for person `id` at most once per `command_id`, with a shared log or
    /// without: the person (and a merge's target) is first brought level with the log, and if
    /// events caused by `command_id` are on its chain, they are returned and nothing is
    /// appended ([`Once::repeated`]). Otherwise the command is decided on the newest state,
    /// its events carry `command_id` as their correlation and causation id, and they are
    /// appended and published; when they lose a race the check runs again before the command
    /// is decided again (at most `retry.rounds` times). So a request retried, here or by
    /// another writer on the same log, appends nothing twice.
    ///
    /// A command id names one command: the same id sent with another command returns the
    /// first one's events. A command that changes nothing leaves no trace, so running it again
    /// decides it again (and changes nothing again). With the log unreachable, the events are
    /// stored here, pending, and the error says so.
    #[tracing::instrument(skip_all, fields(person = %id, command = command.name(), correlation = %command_id))]
    pub fn execute_once(
        &self,
        signer: &Signer,
        id: PersonId,
        command: &Command,
        command_id: Uuid,
        publisher: Option<&dyn Publisher>,
        retry: Retry,
    ) -> Result<Once, Error> {
        let store: &dyn BlockStore = self.ledger().store();
        let mut persons = vec![id];
        if let Command::Merge { into } = command {
            // A merge appends to its target first: its events come first.
            persons.insert(0, *into);
        }
        for round in 0..retry.rounds.max(1) {
            if let Some(p) = publisher {
                for person in &persons {
                    p.pull(store, &person.stream())?;
                }
            }
            let found = self.caused_by(&persons, command_id)?;
            if !found.is_empty() {
                return Ok(Once {
                    events: found,
                    repeated: true,
                });
            }
            let appended = match self.execute_as(signer, id, command, command_id) {
                Ok(appended) => appended,
                // Another writer on this store (a follower adopting the log) moved the head
                // since it was read: look again.
                Err(e) if e.is_conflict() => {
                    tracing::debug!(round, %command_id, "the head moved; checking again");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let (Some(p), false) = (publisher, appended.is_empty()) {
                let streams: Vec<_> = appended.iter().map(|a| a.stream.clone()).collect();
                let withdrawn = p.publish(store, Some(&streams))?.settled()?.withdrawn();
                if appended.iter().any(|a| withdrawn.contains(&a.cid)) {
                    tracing::debug!(round, %command_id, "lost a race on the log; checking again");
                    continue;
                }
            }
            return Ok(Once {
                events: appended,
                repeated: false,
            });
        }
        Err(personctl_ledger::Error::StillLosing {
            stream: id.stream(),
            rounds: retry.rounds,
        }
        .into())
    }

    /// The events on `persons`' chains (in that order, each genesis first) caused by
    /// `command_id`.
    fn caused_by(&self, persons: &[PersonId], command_id: Uuid) -> Result<Vec<Appended>, Error> {
        let mut out = Vec::new();
        for person in persons {
            let mut found = Vec::new();
            for event in self.ledger().walk_back(&person.stream())? {
                let event = event?;
                if event.body().causation == command_id {
                    found.push(Appended {
                        stream: event.stream().clone(),
                        cid: event.cid(),
                        height: event.height(),
                        event_type: event.event_type().to_string(),
                        payload: event.payload(),
                    });
                }
            }
            out.extend(found.into_iter().rev());
        }
        Ok(out)
    }

    /// What `retention` makes due at `now_us` over every person here (see
    /// [`crate::retention`]), person by person.
    pub fn retention_due(&self, retention: &Retention, now_us: u64) -> Result<Vec<Due>, Error> {
        let mut out = Vec::new();
        for id in self.ids()? {
            let history: Vec<Recorded> = self.history(id)?.into_iter().map(|(_, r)| r).collect();
            out.extend(retention.due(id, &history, now_us));
        }
        Ok(out)
    }

    /// Erases what `retention` makes due at `now_us`: each erasure in the safe order of
    /// [`Persons::erase_and_purge`] (with `publisher`, the person is brought level with the log
    /// first and decided again there), a tombstone signed by `signer` whose reason names the
    /// rule. Returns each erasure with how it ended; one failing does not stop the others.
    pub fn apply_retention(
        &self,
        signer: &Signer,
        retention: &Retention,
        now_us: u64,
        publisher: Option<&dyn Publisher>,
    ) -> Result<Vec<Retained>, Error> {
        let due = self.retention_due(retention, now_us)?;
        Ok(self.erase_due(signer, due, publisher))
    }

    /// Erases each of `due` ([`Persons::apply_retention`]); one failing does not stop the
    /// others.
    pub(crate) fn erase_due(
        &self,
        signer: &Signer,
        due: Vec<Due>,
        publisher: Option<&dyn Publisher>,
    ) -> Vec<Retained> {
        let mut out = Vec::new();
        for due in due {
            let erased =
                self.erase_and_purge(signer, due.person, &due.erasure, &due.reason(), publisher);
            match &erased {
                Ok(e) => {
                    tracing::info!(person = %due.person, rule = due.rule + 1, masked = e.masked, "retention erased")
                }
                Err(error) => {
                    tracing::warn!(person = %due.person, rule = due.rule + 1, %error, "retention could not erase")
                }
            }
            out.push((due, erased));
        }
        out
    }

    /// Erases personal data of person `id` for good, in the ledger's safe order
    /// ([`personctl_ledger::Ledger::erase`]): with a publisher the person is first brought
    /// level with the log, then the erasure is decided on it, the tombstone appended and
    /// acknowledged, and only then are the masked blocks removed here and from the log.
    /// Nothing left to erase still removes what an interrupted erasure left behind.
    pub fn erase_and_purge(
        &self,
        signer: &Signer,
        id: PersonId,
        erasure: &Erasure,
        reason: &str,
        publisher: Option<&dyn Publisher>,
    ) -> Result<Erasing, Error> {
        let stream = id.stream();
        let store: &dyn BlockStore = self.ledger().store();
        if let Some(p) = publisher {
            p.pull(store, &stream)?;
        }
        if store.head(&stream)?.is_none() {
            return Err(Error::UnknownPerson(id));
        }
        let Some(tombstone) = self.erasure_draft(id, erasure, reason)? else {
            // Nothing left to erase: finish what an interrupted erasure left behind.
            let collected = self
                .ledger()
                .collect_garbage(Some(std::slice::from_ref(&stream)), publisher)?;
            return Ok(Erasing {
                tombstone: None,
                masked: 0,
                removed: collected.removed,
                erased_remote: collected.erased_remote,
            });
        };
        let erased = self.ledger().erase(signer, tombstone, publisher)?;
        Ok(Erasing {
            tombstone: Some(erased.tombstone),
            masked: erased.masked,
            removed: erased.removed,
            erased_remote: erased.erased_remote,
        })
    }
}
