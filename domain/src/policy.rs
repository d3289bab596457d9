//! Policies: reactive rules that turn what happened into commands, pure. The service runs
//! what they return through the normal `decide` path (`Persons::execute_caused`), signed by the
//! service's key, each event linking its trigger in `causes` and carrying its correlation id.
//!
//! | policy | trigger | command |
//! |---|---|---|
//! | `welcome` | `PersonRegistered` | attribute `onboarding.welcome` = `sent` |
//! | `skill-recommendation` | `SkillAdded` of a skill with a known neighbour | attribute `recommended_skill.<skill>` = the neighbour |
//! | `data-quality` | an `EmailAdded` still unverified after a period (time-based) | attribute `data_quality.unverified_email.<height>` |
//! | `auto-archive` | the last event of an Active or Suspended person, older than a period (time-based) | `archive` |
//!
//! Each reaction has a deterministic causation id ([`Reaction::causation`]) derived from the
//! policy and the trigger's CID; the service appends a reaction only if no event of the target
//! chain carries that id yet, so a policy never fires twice for the same event, across
//! restarts and redeliveries, with no state besides the ledger.

use personctl_ledger::{Cid, Head};
use uuid::Uuid;

use crate::decide::Recorded;
use crate::event::Event;
use crate::lifecycle::State;
use crate::model::{Attribute, Item, ItemKind, Keyed};
use crate::{Command, Person, PersonId};

/// The attribute source that marks what a policy wrote.
pub const SOURCE: &str = "personctl policy";

/// What the policies and the onboarding saga write, as (aggregate type, event types; none:
/// any): the grants their identity needs where write policies are in force, and no more (it
/// never writes a legal name, for one). For example
/// `personctl grant --admin A --grantee P --aggregate person --event AttributeAdded ...`.
pub const WRITES: &[(&str, &[&str])] = &[
    (
        crate::AGGREGATE,
        &["AttributeAdded", "PersonSuspended", "PersonArchived"],
    ),
    (crate::onboarding::AGGREGATE, &[]),
];

/// Periods of the time-based policies, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periods {
    /// An email still unverified this long after it was added is flagged.
    pub unverified_email_us: u64,
    /// A person with no event for this long is archived.
    pub inactive_us: u64,
}

/// One day in microseconds.
pub const DAY_US: u64 = 86_400_000_000;

impl Default for Periods {
    fn default() -> Periods {
        Periods {
            unverified_email_us: 7 * DAY_US,
            inactive_us: 365 * DAY_US,
        }
    }
}

/// Something happened to `person` that a policy may react to.
#[derive(Clone, Copy, Debug)]
pub struct Trigger<'a> {
    /// Whose event.
    pub person: PersonId,
    /// The event's CID and height.
    pub head: Head,
    /// The event's correlation id.
    pub correlation: Uuid,
    /// The event.
    pub event: &'a Event,
}

/// A command a policy wants run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// The policy's name.
    pub policy: &'static str,
    /// Whom the command is for.
    pub person: PersonId,
    /// The event that triggered it (linked in `causes`).
    pub trigger: Cid,
    /// The trigger's correlation id, carried on.
    pub correlation: Uuid,
    /// What to do.
    pub command: Command,
}

impl Reaction {
    /// The causation id of the events this reaction appends: derived from the policy and the
    /// trigger, so the same reaction always has the same id.
    pub fn causation(&self) -> Uuid {
        causation(self.policy, &self.trigger)
    }
}

/// The causation id of `policy` reacting to `trigger`: the first 16 bytes of
/// BLAKE3(`personctl-policy\0` policy `\0` trigger CID).
pub fn causation(policy: &str, trigger: &Cid) -> Uuid {
    let mut h = blake3::Hasher::new();
    h.update(b"personctl-policy\0");
    h.update(policy.as_bytes());
    h.update(b"\0");
    h.update(&trigger.to_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&h.finalize().as_bytes()[..16]);
    Uuid::from_bytes(bytes)
}

fn attribute(name: String, value: String) -> Command {
    Command::AddAttribute(Attribute {
        name,
        value,
        source: SOURCE.into(),
        confidence: 100,
        valid_from: None,
        valid_until: None,
    })
}

/// A skill that goes with `skill`, if the recommendation table knows one.
pub fn neighbour(skill: &str) -> Option<&'static str> {
    const TABLE: [(&str, &str); 8] = [
        ("rust", "webassembly"),
        ("nats", "jetstream"),
        ("cbor", "ipld"),
        ("sql", "data modelling"),
        ("python", "data analysis"),
        ("kubernetes", "observability"),
        ("go", "concurrency"),
        ("typescript", "react"),
    ];
    let skill = skill.trim().to_lowercase();
    TABLE.iter().find(|(s, _)| *s == skill).map(|(_, n)| *n)
}

/// The reactions to one event, given the person's state after it.
pub fn on_event(t: &Trigger<'_>, person: Option<&Person>) -> Vec<Reaction> {
    let react = |policy, command| Reaction {
        policy,
        person: t.person,
        trigger: t.head.cid,
        correlation: t.correlation,
        command,
    };
    let active =
        person.is_some_and(|p| matches!(p.lifecycle.state(), State::Active | State::Suspended));
    if !active {
        return Vec::new();
    }
    match t.event {
        Event::Registered { .. } => {
            vec![react(
                "welcome",
                attribute("onboarding.welcome".into(), "sent".into()),
            )]
        }
        Event::ItemAdded(Item::Skill(s)) => match neighbour(&s.name) {
            Some(n) => vec![react(
                "skill-recommendation",
                attribute(format!("recommended_skill.{}", s.key()), n.into()),
            )],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The time-based reactions due at `now_us` for a person whose chain is `history` (genesis
/// first) and whose state is `person`.
pub fn due(
    person: &Person,
    history: &[(Head, Recorded)],
    now_us: u64,
    periods: &Periods,
) -> Vec<Reaction> {
    if !matches!(person.lifecycle.state(), State::Active | State::Suspended) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let react = |policy, head: &Head, command| Reaction {
        policy,
        person: person.id(),
        trigger: head.cid,
        correlation: Uuid::nil(),
        command,
    };
    // Unverified email addresses, flagged once each, from the event that added them.
    for (head, r) in history {
        let Event::ItemAdded(Item::Email(e)) = &r.event else {
            continue;
        };
        let still_unverified = person
            .item(ItemKind::Email, &e.key())
            .is_some_and(|i| matches!(i, Item::Email(x) if !x.verified));
        if still_unverified && now_us.saturating_sub(r.time_us) >= periods.unverified_email_us {
            out.push(react(
                "data-quality",
                head,
                attribute(
                    format!("data_quality.unverified_email.{}", head.height),
                    "unverified".into(),
                ),
            ));
        }
    }
    // Inactive: no event for the period.
    if let Some((head, last)) = history.last() {
        if now_us.saturating_sub(last.time_us) >= periods.inactive_us {
            out.push(react(
                "auto-archive",
                head,
                Command::Archive {
                    reason: format!(
                        "inactive: no event for {} days (policy auto-archive)",
                        periods.inactive_us / DAY_US
                    ),
                },
            ));
        }
    }
    out
}
