//! Integration tests of the Person domain: rules as given/when/then, the lifecycle table,
//! upcasting of stored old events, the service on a ledger, the ECS world, and property tests
//! of replay.

mod lifecycle_table;
mod props;
mod rules;
mod service;
mod upcast;
mod world;

use personctl_domain::model::{Date, Person};
use personctl_domain::{apply, decide, Command, DomainError, Event, PersonId};

/// The person every rule test is about.
pub(crate) fn ada() -> PersonId {
    PersonId::from_uuid(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_00ad,
    ))
}

/// Another person.
pub(crate) fn bob() -> PersonId {
    PersonId::from_uuid(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0b0b,
    ))
}

pub(crate) fn date(s: &str) -> Date {
    s.parse().unwrap()
}

/// The state after `events`.
pub(crate) fn fold(events: &[Event]) -> Option<Person> {
    events.iter().fold(None, apply)
}

/// `given(events).when(command)`: the outcome of deciding `command` for Ada.
pub(crate) struct Given(Option<Person>);

pub(crate) fn given(events: &[Event]) -> Given {
    Given(fold(events))
}

pub(crate) fn registered() -> Vec<Event> {
    vec![Event::Registered {
        person: ada(),
        legal_name: "Ada Lovelace".into(),
    }]
}

impl Given {
    pub(crate) fn when(self, command: Command) -> Then {
        Then(decide(ada(), self.0.as_ref(), &command))
    }
}

pub(crate) struct Then(Result<Vec<Event>, DomainError>);

impl Then {
    #[track_caller]
    pub(crate) fn then(self, expected: &[Event]) {
        assert_eq!(self.0.as_deref(), Ok(expected));
    }

    #[track_caller]
    pub(crate) fn then_err(self, expected: DomainError) {
        assert_eq!(self.0, Err(expected));
    }

    /// The error's message must contain every needle.
    #[track_caller]
    pub(crate) fn then_err_says(self, needles: &[&str]) {
        let message = self.0.expect_err("expected an error").to_string();
        for n in needles {
            assert!(message.contains(n), "{message:?} does not mention {n:?}");
        }
    }
}

/// A ledger over memory, with the fixture signer.
pub(crate) fn memory_persons() -> (
    personctl_domain::Persons<personctl_ledger::MemoryStore>,
    personctl_ledger::Signer,
) {
    let ledger = personctl_ledger::Ledger::new(personctl_ledger::MemoryStore::new());
    (personctl_domain::Persons::new(ledger), fixture_signer())
}

/// The fixture key: seed bytes 0x01 to 0x20 (as in `fixtures/golden`).
pub(crate) fn fixture_signer() -> personctl_ledger::Signer {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    personctl_ledger::Signer::from_seed(seed)
}
