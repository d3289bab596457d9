//! Reactions: policies ([`Persons::react`]), the onboarding saga ([`Persons::onboard`]) and
//! the time-based sweep ([`Persons::sweep`]), each idempotent through causation ids on the
//! chains.

use std::collections::HashMap;

use personctl_ledger::{Appended, BlockStore, Cid, Draft, Expected, Head, Signer, StreamId};
use uuid::Uuid;

use crate::execute::draft;
use crate::policy::{self, Periods, Reaction};
use crate::retention::{Due, Retention};
use crate::{apply, decide, onboarding, Error, PersonId, Persons, Recorded};

impl<S: BlockStore> Persons<S> {
    /// Whether an event of `stream` above `above` (a height; `None`: the whole chain) carries
    /// the causation id `causation`.
    pub fn caused(
        &self,
        stream: &StreamId,
        causation: Uuid,
        above: Option<u64>,
    ) -> Result<bool, Error> {
        for event in self.ledger().walk_back(stream)? {
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
    /// applies: for example the person was archived meanwhile), or if the write policies in
    /// force refuse `signer` those events (a warning says so: grant them, see
    /// [`policy::WRITES`]).
    pub fn react(&self, signer: &Signer, r: &Reaction) -> Result<Vec<Appended>, Error> {
        let stream = r.person.stream();
        // What a trigger on this chain caused lies above it: only that part is searched.
        let trigger = self.ledger().event(&r.trigger)?;
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
        let appended = refused_is_skipped(r.policy, self.ledger().append_batch(signer, drafts))?;
        metrics::counter!(crate::metrics::POLICY_REACTIONS, "policy" => r.policy)
            .increment(appended.len() as u64);
        Ok(appended)
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
            refused_is_skipped("onboarding", self.ledger().append_batch(signer, drafts))?
        };
        for a in &appended {
            let stage = a
                .event_type
                .strip_prefix("Onboarding")
                .unwrap_or(&a.event_type)
                .to_ascii_lowercase();
            metrics::counter!(crate::metrics::ONBOARDING, "stage" => stage).increment(1);
        }
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
        let head = self.ledger().store().head(&stream)?;
        let mut types = Vec::new();
        for event in self.ledger().walk_back(&stream)? {
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
        Ok(self
            .sweep_with(signer, now_us, periods, onboarding_us, None)?
            .0)
    }

    /// [`Persons::sweep`], and with `retention` what it makes due, judged on the same read of
    /// each person's chain (before this sweep's reactions; the next sweep sees them).
    pub(crate) fn sweep_with(
        &self,
        signer: &Signer,
        now_us: u64,
        periods: &Periods,
        onboarding_us: u64,
        retention: Option<&Retention>,
    ) -> Result<(Vec<Appended>, Vec<Due>), Error> {
        let mut appended = Vec::new();
        let mut due = Vec::new();
        for id in self.ids()? {
            let history = self.history(id)?;
            if let Some(retention) = retention {
                let recorded: Vec<Recorded> = history.iter().map(|(_, r)| r.clone()).collect();
                due.extend(retention.due(id, &recorded, now_us));
            }
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
                let started = self.ledger().event(&head.cid)?;
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
        Ok((appended, due))
    }
}

/// The onboarding chain of person `id`: `onboarding/<id>`.
pub fn onboarding_stream(id: PersonId) -> StreamId {
    StreamId::new(onboarding::AGGREGATE, id.to_string()).expect("a person id is a valid stream id")
}

/// A reaction's append, where the write policies in force refusing it (the policy's identity
/// holds no grant for those events) counts as the policy not applying: nothing is appended, a
/// warning names the policy, and the event that triggered it is applied as usual.
fn refused_is_skipped(
    policy: &str,
    appended: personctl_ledger::Result<Vec<Appended>>,
) -> Result<Vec<Appended>, Error> {
    match appended {
        Err(personctl_ledger::Error::Unauthorized { stream, reason }) => {
            tracing::warn!(policy, %stream, %reason, "the write policies in force refuse this reaction; not applied");
            Ok(Vec::new())
        }
        other => Ok(other?),
    }
}
