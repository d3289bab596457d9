//! `decide`: every business rule, as a pure function of the current state and a command.
//!
//! Invariant 12: every rule lives here, pure.

use crate::command::{Command, ItemOp};
use crate::error::DomainError;
use crate::event::{ErasedScope, Event};
use crate::lifecycle::{self, State};
use crate::model::{key_of, Date, Item, ItemKind, Person, Preferences};
use crate::PersonId;
use personctl_ledger::Cid;

fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
    DomainError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn check_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::EmptyName);
    }
    if name.chars().count() > 200 {
        return Err(invalid("legal_name", "must have at most 200 characters"));
    }
    Ok(name.to_string())
}

/// The longest text value a command may carry, in bytes (`legal_name` has its own, smaller
/// limit of 200 characters). See README, Limits.
pub const MAX_TEXT: usize = 1024;
/// The most entries a list in a command may have.
pub const MAX_LIST: usize = 64;

/// Checks every text value and list of a command against [`MAX_TEXT`] and [`MAX_LIST`], naming
/// the field, before any rule runs: no value over them reaches a payload block.
fn check_limits(command: &Command) -> Result<(), DomainError> {
    use personctl_ledger::Ipld;
    fn walk(field: &str, value: &Ipld) -> Result<(), String> {
        match value {
            Ipld::String(s) if s.len() > MAX_TEXT => Err(format!(
                "{field}: {} bytes, over the limit of {MAX_TEXT} bytes",
                s.len()
            )),
            Ipld::List(items) if items.len() > MAX_LIST => Err(format!(
                "{field}: {} entries, over the limit of {MAX_LIST}",
                items.len()
            )),
            Ipld::List(items) => items.iter().try_for_each(|v| walk(field, v)),
            Ipld::Map(map) => map.iter().try_for_each(|(k, v)| walk(k, v)),
            _ => Ok(()),
        }
    }
    let value = ipld_core::serde::to_ipld(command).map_err(|e| DomainError::Invalid {
        field: "command",
        reason: e.to_string(),
    })?;
    walk("command", &value).map_err(|reason| DomainError::Invalid {
        field: "limits",
        reason,
    })
}

fn non_empty(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(())
}

fn ordered(field: &'static str, from: Option<Date>, to: Option<Date>) -> Result<(), DomainError> {
    match (from, to) {
        (Some(a), Some(b)) if b < a => Err(invalid(field, format!("{b} lies before {a}"))),
        _ => Ok(()),
    }
}

/// Checks the values of an item (not its relation to other items).
fn check_item(id: PersonId, item: &Item) -> Result<(), DomainError> {
    match item {
        Item::Email(e) => {
            let a = e.address.trim();
            let ok = a.len() <= 254
                && !a.chars().any(char::is_whitespace)
                && a.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains('@')
                });
            if !ok {
                return Err(invalid("address", format!("{a:?} is not an email address")));
            }
        }
        Item::Phone(p) => {
            let n = key_of(ItemKind::Phone, &p.number);
            let digits = n.strip_prefix('+').unwrap_or(&n);
            if !(5..=20).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(
                    "number",
                    format!(
                        "{:?} is not a phone number (optional +, 5 to 20 digits)",
                        p.number
                    ),
                ));
            }
        }
        Item::Address(a) => non_empty("label", &a.label)?,
        Item::Skill(s) => {
            non_empty("name", &s.name)?;
            if !(1..=5).contains(&s.level) {
                return Err(invalid(
                    "level",
                    format!("{} is not a level from 1 to 5", s.level),
                ));
            }
        }
        Item::Employment(e) => {
            non_empty("id", &e.id)?;
            non_empty("organisation", &e.organisation)?;
            non_empty("role", &e.role)?;
            ordered("end", Some(e.start), e.end)?;
        }
        Item::Certification(c) => {
            non_empty("name", &c.name)?;
            ordered("expires", Some(c.issued), c.expires)?;
        }
        Item::Relationship(r) => {
            non_empty("kind", &r.kind)?;
            if r.other == id {
                return Err(invalid(
                    "person",
                    "a person cannot have a relationship with itself",
                ));
            }
        }
        Item::Attribute(a) => {
            non_empty("name", &a.name)?;
            if a.confidence > 100 {
                return Err(invalid(
                    "confidence",
                    format!("{} is not a percentage", a.confidence),
                ));
            }
            ordered("valid_until", a.valid_from, a.valid_until)?;
        }
    }
    Ok(())
}

fn check_preferences(p: &Preferences) -> Result<(), DomainError> {
    if let Some(lang) = &p.language {
        let ok = !lang.is_empty()
            && lang.len() <= 35
            && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(invalid(
                "language",
                format!("{lang:?} is not a language tag such as en or fr-CH"),
            ));
        }
    }
    for (i, c) in p.channels.iter().enumerate() {
        non_empty("channels", c)?;
        if p.channels[..i].contains(c) {
            return Err(invalid("channels", format!("{c:?} is listed twice")));
        }
    }
    Ok(())
}

/// Decides what happens when `command` is given to person `id`, whose current state is
/// `person` (`None`: not registered). Holds every business rule; pure.
///
/// An empty result means the command changes nothing (for example verifying an email that is
/// already verified); a command that breaks a rule gets a [`DomainError`].
pub fn decide(
    id: PersonId,
    person: Option<&Person>,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    check_limits(command)?;
    let state = person.map_or(State::Unregistered, |p| p.lifecycle.state());
    if lifecycle::next(state, command.action()).is_none() {
        return Err(DomainError::InvalidTransition {
            state,
            command: command.name(),
        });
    }
    let Some(p) = person else {
        // The table allows only `register` from Unregistered.
        let Command::Register { legal_name } = command else {
            unreachable!("the table only allows register")
        };
        return Ok(vec![Event::Registered {
            person: id,
            legal_name: check_name(legal_name)?,
        }]);
    };
    if let Some(op) = command.item_op() {
        return decide_item(id, p, op);
    }
    let identity = &p.identity;
    let events = match command {
        Command::Register { .. } => {
            unreachable!("the table never allows register on a registered person")
        }
        Command::Rename { legal_name, reason } => {
            let new = check_name(legal_name)?;
            if new == identity.legal_name {
                return Ok(vec![]);
            }
            vec![Event::Renamed {
                old: identity.legal_name.clone(),
                new,
                reason: reason.trim().to_string(),
            }]
        }
        Command::SetBirthDate { date } => {
            if let Some(death) = identity.death_date.filter(|d| date > d) {
                return Err(DomainError::BirthAfterDeath {
                    birth: *date,
                    death,
                });
            }
            if identity.birth_date == Some(*date) {
                return Ok(vec![]);
            }
            vec![Event::BirthDateSet { date: *date }]
        }
        Command::RecordDeath { date } => {
            if let Some(birth) = identity.birth_date.filter(|b| b > date) {
                return Err(DomainError::BirthAfterDeath {
                    birth,
                    death: *date,
                });
            }
            vec![Event::DeathRecorded { date: *date }]
        }
        Command::Suspend { reason } => vec![Event::Suspended {
            reason: reason.trim().to_string(),
        }],
        Command::Reactivate { reason } => vec![Event::Reactivated {
            reason: reason.trim().to_string(),
        }],
        Command::Archive { reason } => vec![Event::Archived {
            reason: reason.trim().to_string(),
        }],
        Command::Merge { into } => {
            if *into == id {
                return Err(DomainError::MergeIntoSelf);
            }
            vec![Event::MergedInto { into: *into }]
        }
        Command::VerifyEmail { address } => {
            let key = key_of(ItemKind::Email, address);
            let email = p
                .contact
                .iter()
                .flat_map(|c| &c.emails)
                .find(|e| key_of(ItemKind::Email, &e.address) == key);
            match email {
                None => {
                    return Err(DomainError::Missing {
                        kind: ItemKind::Email,
                        key,
                    })
                }
                Some(e) if e.verified => vec![],
                Some(e) => vec![Event::EmailVerified {
                    address: e.address.clone(),
                }],
            }
        }
        Command::SetPreferences(prefs) => {
            check_preferences(prefs)?;
            if p.preferences.as_ref() == Some(prefs) {
                return Ok(vec![]);
            }
            vec![Event::PreferencesSet(prefs.clone())]
        }
        Command::ClearPreferences {} => {
            if p.preferences.is_none() {
                return Err(DomainError::Invalid {
                    field: "preferences",
                    reason: "there are none to clear".into(),
                });
            }
            vec![Event::PreferencesCleared]
        }
        other => unreachable!("{} is an item command", other.name()),
    };
    Ok(events)
}

fn decide_item(id: PersonId, p: &Person, op: ItemOp) -> Result<Vec<Event>, DomainError> {
    match op {
        ItemOp::Add(item) => {
            check_item(id, &item)?;
            let key = item.key();
            if p.has_item(item.kind(), &key) {
                return Err(DomainError::Duplicate {
                    kind: item.kind(),
                    key,
                });
            }
            Ok(vec![Event::ItemAdded(item)])
        }
        ItemOp::Update(item) => {
            check_item(id, &item)?;
            let key = item.key();
            match p.item(item.kind(), &key) {
                None => Err(DomainError::Missing {
                    kind: item.kind(),
                    key,
                }),
                Some(old) if old == item => Ok(vec![]),
                Some(_) => Ok(vec![Event::ItemUpdated(item)]),
            }
        }
        ItemOp::Remove(kind, key) => {
            if !p.has_item(kind, &key) {
                return Err(DomainError::Missing { kind, key });
            }
            Ok(vec![Event::ItemRemoved { kind, key }])
        }
    }
}

/// Decides the surviving person's side of a merge: `from` is merged into `survivor`.
pub fn decide_merge_target(
    survivor: PersonId,
    person: Option<&Person>,
    from: PersonId,
) -> Result<Vec<Event>, DomainError> {
    let state = person.map_or(State::Unregistered, |p| p.lifecycle.state());
    if lifecycle::next(state, lifecycle::Action::ReceiveMerge).is_none() {
        return Err(DomainError::InvalidTransition {
            state,
            command: "merge (as the surviving person)".into(),
        });
    }
    if survivor == from {
        return Err(DomainError::MergeIntoSelf);
    }
    Ok(vec![Event::MergeReceived { from }])
}

/// What to erase: the whole person, or one component (every item of a kind, or the one with
/// this key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Erasure {
    /// Every personal value of the person.
    Person,
    /// Items of one kind: all of them (`key: None`) or the one with this key (normalised as
    /// commands normalise keys).
    Component {
        /// The kind.
        kind: ItemKind,
        /// The item's key, if only one.
        key: Option<String>,
    },
}

/// One event of a person's chain as erasure sees it: the event as read, and its payload block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The event's payload block, if it has one.
    pub payload: Option<Cid>,
    /// The event (masked if a tombstone masks its payload already).
    pub event: Event,
    /// When it was recorded (microseconds since the Unix epoch).
    pub time_us: u64,
    /// Its correlation id.
    pub correlation: uuid::Uuid,
}

/// Decides an erasure of person `person` (its current state) whose chain is `history`
/// (genesis first). Pure, like [`decide`]: the payloads to mask are read off the history.
///
/// - The whole person: every payload but those of tombstones (which hold no personal value and
///   make the masking checkable) and of merges (which hold only person ids, already in every
///   event block); the person ends Erased.
/// - A component: the payloads of every event that carries a value of it (added, updated,
///   removed, and for emails verified).
///
/// Erasing what is already erased, or a component no unmasked event mentions, decides nothing
/// (an empty result): erasing twice is harmless.
pub fn decide_erasure(
    person: Option<&Person>,
    history: &[Recorded],
    erasure: &Erasure,
    reason: &str,
) -> Result<Vec<Event>, DomainError> {
    let state = person.map_or(State::Unregistered, |p| p.lifecycle.state());
    let (action, name) = match erasure {
        Erasure::Person => (lifecycle::Action::Erase, "erase"),
        Erasure::Component { .. } => (lifecycle::Action::EraseComponent, "erase-component"),
    };
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid(
            "reason",
            "an erasure needs a reason (it is the audit trail)",
        ));
    }
    if state == State::Erased {
        return Ok(vec![]);
    }
    if lifecycle::next(state, action).is_none() {
        return Err(DomainError::InvalidTransition {
            state,
            command: name.into(),
        });
    }
    let wanted = |event: &Event| -> bool {
        match erasure {
            Erasure::Person => !matches!(
                event,
                Event::Erased { .. }
                    | Event::Masked { .. }
                    | Event::MergedInto { .. }
                    | Event::MergeReceived { .. }
            ),
            Erasure::Component { kind, key } => {
                let want = key.as_deref().map(|k| key_of(*kind, k));
                let matches = |k: ItemKind, item_key: &str| {
                    k == *kind && want.as_deref().is_none_or(|w| w == item_key)
                };
                match event {
                    Event::ItemAdded(item) | Event::ItemUpdated(item) => {
                        matches(item.kind(), &item.key())
                    }
                    Event::ItemRemoved { kind, key } => matches(*kind, key),
                    Event::EmailVerified { address } => {
                        matches(ItemKind::Email, &key_of(ItemKind::Email, address))
                    }
                    _ => false,
                }
            }
        }
    };
    let mut masks: Vec<Cid> = history
        .iter()
        .filter(|r| wanted(&r.event))
        .filter_map(|r| r.payload)
        .collect();
    masks.sort();
    masks.dedup();
    let scope = match erasure {
        Erasure::Person => ErasedScope::Person,
        Erasure::Component { .. } if masks.is_empty() => return Ok(vec![]),
        Erasure::Component { kind, .. } => ErasedScope::Component(*kind),
    };
    Ok(vec![Event::Erased {
        scope,
        reason: reason.to_string(),
        masks,
    }])
}
