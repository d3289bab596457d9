//! Errors of the domain crate: [`DomainError`] (a broken business rule, from `decide`) and
//! [`Error`] (anything the service layer can meet: a rule, a concurrency conflict, bad stored
//! data, or the ledger's infrastructure).

use personctl_ledger::Cid;

use crate::event::DecodeError;
use crate::lifecycle::State;
use crate::model::{Date, ItemKind};
use crate::PersonId;

/// A command broke a business rule. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The lifecycle does not allow this command in the current state.
    #[error("`{command}` is not allowed for a person in state {state}")]
    InvalidTransition {
        /// The person's state.
        state: State,
        /// The command's name.
        command: String,
    },
    /// A legal name must not be empty.
    #[error("the legal name must not be empty")]
    EmptyName,
    /// An item with this key exists already.
    #[error("{} {key:?} already exists", kind.command_name())]
    Duplicate {
        /// The item kind.
        kind: ItemKind,
        /// The key.
        key: String,
    },
    /// No item with this key exists.
    #[error("no {} {key:?}", kind.command_name())]
    Missing {
        /// The item kind.
        kind: ItemKind,
        /// The key.
        key: String,
    },
    /// The date of birth would lie after the date of death.
    #[error("the date of birth {birth} would lie after the date of death {death}")]
    BirthAfterDeath {
        /// Date of birth.
        birth: Date,
        /// Date of death.
        death: Date,
    },
    /// A person cannot be merged into itself.
    #[error("a person cannot be merged into itself")]
    MergeIntoSelf,
    /// A value is malformed.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Everything the domain's service layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A business rule (see [`DomainError`]).
    #[error("person {person}: {error}")]
    Rule {
        /// The person the command was for.
        person: PersonId,
        /// The broken rule.
        error: DomainError,
    },
    /// A stored event could not be read back.
    #[error("event {cid}: {error}")]
    Decode {
        /// The event.
        cid: Cid,
        /// What was wrong.
        error: DecodeError,
    },
    /// An event's payload block is not in the store.
    #[error("event {event}: payload {payload} is missing")]
    MissingPayload {
        /// The event.
        event: Cid,
        /// The missing payload block.
        payload: Cid,
    },
    /// `--at` names a height or CID that is not on the person's chain.
    #[error("{0}")]
    NotOnChain(String),
    /// No chain of this person, here (nor in the shared log, when one is used).
    #[error("no person {0}: nothing was ever registered under this id")]
    UnknownPerson(PersonId),
    /// Only some of a command's events were accepted by the shared log: another writer
    /// changed one of its persons at the same time (a merge touches two). Read the persons
    /// again before going on.
    #[error("person {person}: the shared log accepted only some of the command's events (another writer changed one of its persons at the same time)")]
    PartlyAccepted {
        /// The person the command was for.
        person: PersonId,
    },
    /// A line of commands (JSON Lines) that cannot be read: too long, not UTF-8, not a
    /// command, or unreadable.
    #[error("{0}")]
    BadLine(String),
    /// The ledger failed (a concurrency conflict is `personctl_ledger::Error::Conflict`).
    #[error(transparent)]
    Ledger(#[from] personctl_ledger::Error),
    /// The read models' store failed or holds something unreadable.
    #[error("read models at {path}: {reason}")]
    ReadModels {
        /// The store's directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Whether this is a concurrency conflict (reload and retry).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Ledger(e) if e.is_conflict())
    }
}
