//! Running commands: [`Persons::execute_batch`] decides each command on the state the ones
//! before it left (loading each person once), turns the events into drafts pinned to the heads
//! read, and appends them in one commit; a merge commits both sides together.

use std::collections::HashMap;

use personctl_ledger::{Appended, BlockStore, Cid, Draft, Expected, Head, Payload, Signer};
use uuid::Uuid;

use crate::event::{encode_payload, Event};
use crate::{apply, decide, decide_merge_target, Command, Error, Person, PersonId, Persons};

/// A person's state inside a batch of commands.
pub(crate) struct Working {
    pub(crate) person: Option<Person>,
    /// The stored head when the batch started (the optimistic-concurrency expectation).
    pub(crate) stored: Option<Head>,
    /// Whether the batch already holds drafts for this person.
    pub(crate) drafted: bool,
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
    // The failure carries what was appended before it, once per batch: its size costs nothing.
    #[allow(clippy::result_large_err)]
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
                match self.merge(signer, *id, *into, &mut working, Uuid::now_v7()) {
                    Ok(appended) => done.push(appended),
                    Err(error) => return Err(fail(error, done)),
                }
                continue;
            }
            match self.decide_one(*id, command, &mut working, Uuid::now_v7()) {
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

    /// Runs one command whose events carry `command_id` as their correlation and causation
    /// id (what [`Persons::execute_once`] finds a command's earlier events by).
    #[tracing::instrument(name = "decide", skip_all, fields(person = %id, command = command.name(), correlation = %command_id, causation = %command_id))]
    pub(crate) fn execute_as(
        &self,
        signer: &Signer,
        id: PersonId,
        command: &Command,
        command_id: Uuid,
    ) -> Result<Vec<Appended>, Error> {
        let mut working = HashMap::new();
        if let Command::Merge { into } = command {
            return self.merge(signer, id, *into, &mut working, command_id);
        }
        let drafts = self.decide_one(id, command, &mut working, command_id)?;
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let appended = self.ledger().append_batch(signer, drafts);
        self.settle(appended, &mut working)
    }

    pub(crate) fn working<'w>(
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
        command_id: Uuid,
    ) -> Result<Vec<Draft>, Error> {
        let w = self.working(id, working)?;
        // A command for an id with no chain names a person that does not exist, whatever the
        // lifecycle would say of it.
        if w.person.is_none() && !matches!(command, Command::Register { .. }) {
            return Err(Error::UnknownPerson(id));
        }
        let events = decide(id, w.person.as_ref(), command)
            .map_err(|error| Error::Rule { person: id, error })?;
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
        command_id: Uuid,
    ) -> Result<Vec<Appended>, Error> {
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
        let appended = self.ledger().append_batch(signer, drafts);
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
        let appended = self.settle(self.ledger().append_batch(signer, drafts), working)?;
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

/// A ledger draft for one event of person `id`. The first draft of a person in a commit
/// expects the stored head; later ones build on the commit's own progress.
pub(crate) fn draft(
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
