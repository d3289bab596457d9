//! The person lifecycle: an explicit state machine written as data ([`TRANSITIONS`]), so that
//! it can be printed (`personctl states`) and tested, and so that `decide` consults the table
//! instead of scattering rules.

use std::fmt;

use bevy_ecs::component::Component;

use crate::PersonId;

/// Where a person is in its lifecycle (the component; `MergedInto` names the survivor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Component)]
pub enum Lifecycle {
    /// Registered and in use.
    Active,
    /// Temporarily not in use; can be reactivated.
    Suspended,
    /// Retired for good; read-only.
    Archived,
    /// Deceased; read-only.
    Deceased,
    /// Merged into another person (terminal); read-only.
    MergedInto(PersonId),
    /// Every personal value erased by a tombstone (GDPR); terminal. Nothing may follow but
    /// another erasure, which changes nothing.
    Erased,
}

impl Lifecycle {
    /// The state, without data.
    pub fn state(&self) -> State {
        match self {
            Lifecycle::Active => State::Active,
            Lifecycle::Suspended => State::Suspended,
            Lifecycle::Archived => State::Archived,
            Lifecycle::Deceased => State::Deceased,
            Lifecycle::MergedInto(_) => State::MergedInto,
            Lifecycle::Erased => State::Erased,
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::MergedInto(id) => write!(f, "MergedInto({id})"),
            other => fmt::Display::fmt(&other.state(), f),
        }
    }
}

/// The lifecycle states of the transition table. `Unregistered` is the state before the
/// first event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// No event yet.
    Unregistered,
    /// See [`Lifecycle::Active`].
    Active,
    /// See [`Lifecycle::Suspended`].
    Suspended,
    /// See [`Lifecycle::Archived`].
    Archived,
    /// See [`Lifecycle::Deceased`].
    Deceased,
    /// See [`Lifecycle::MergedInto`].
    MergedInto,
    /// See [`Lifecycle::Erased`].
    Erased,
}

impl State {
    /// Every state, in table order.
    pub const ALL: [State; 7] = [
        State::Unregistered,
        State::Active,
        State::Suspended,
        State::Archived,
        State::Deceased,
        State::MergedInto,
        State::Erased,
    ];
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a command does to the lifecycle. Every command maps to exactly one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `register`.
    Register,
    /// `suspend`.
    Suspend,
    /// `reactivate`.
    Reactivate,
    /// `archive`.
    Archive,
    /// `record-death`.
    RecordDeath,
    /// `merge` (the person merged away).
    MergeInto,
    /// `merge` (the surviving person).
    ReceiveMerge,
    /// Any change of data: rename, birth date, components, email verification, preferences.
    Edit,
    /// `erase` of the whole person: every personal value masked.
    Erase,
    /// `erase --component`: the values of one component masked; the state stays.
    EraseComponent,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One row of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// What happens.
    pub action: Action,
    /// The state after.
    pub to: State,
}

const fn t(from: State, action: Action, to: State) -> Transition {
    Transition { from, action, to }
}

/// The lifecycle, complete: any (state, action) pair not listed is rejected.
///
/// Erasure is a right that outlives every other state: each registered state may be erased
/// (whole, or one component), even the read-only ones. An erased person is terminal; erasing
/// it again is accepted by `decide_erasure` as a no-op before the table is consulted.
pub const TRANSITIONS: &[Transition] = &[
    t(State::Unregistered, Action::Register, State::Active),
    t(State::Active, Action::Edit, State::Active),
    t(State::Active, Action::Suspend, State::Suspended),
    t(State::Active, Action::Archive, State::Archived),
    t(State::Active, Action::RecordDeath, State::Deceased),
    t(State::Active, Action::MergeInto, State::MergedInto),
    t(State::Active, Action::ReceiveMerge, State::Active),
    t(State::Suspended, Action::Edit, State::Suspended),
    t(State::Suspended, Action::Reactivate, State::Active),
    t(State::Suspended, Action::Archive, State::Archived),
    t(State::Suspended, Action::RecordDeath, State::Deceased),
    t(State::Active, Action::Erase, State::Erased),
    t(State::Suspended, Action::Erase, State::Erased),
    t(State::Archived, Action::Erase, State::Erased),
    t(State::Deceased, Action::Erase, State::Erased),
    t(State::MergedInto, Action::Erase, State::Erased),
    t(State::Active, Action::EraseComponent, State::Active),
    t(State::Suspended, Action::EraseComponent, State::Suspended),
    t(State::Archived, Action::EraseComponent, State::Archived),
    t(State::Deceased, Action::EraseComponent, State::Deceased),
    t(State::MergedInto, Action::EraseComponent, State::MergedInto),
];

/// The state after `action` from `from`, if the table allows it.
pub fn next(from: State, action: Action) -> Option<State> {
    TRANSITIONS
        .iter()
        .find(|t| t.from == from && t.action == action)
        .map(|t| t.to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_a_function_and_terminal_states_have_no_exit() {
        for (i, a) in TRANSITIONS.iter().enumerate() {
            for b in &TRANSITIONS[i + 1..] {
                assert!(
                    !(a.from == b.from && a.action == b.action),
                    "duplicate row {a:?}"
                );
            }
        }
        // Read-only states are left only by erasure; Erased is left by nothing.
        let erasure = |t: &Transition| matches!(t.action, Action::Erase | Action::EraseComponent);
        for terminal in [State::Archived, State::Deceased, State::MergedInto] {
            assert!(
                TRANSITIONS.iter().all(|t| t.from != terminal || erasure(t)),
                "{terminal} must be terminal but for erasure"
            );
        }
        assert!(TRANSITIONS.iter().all(|t| t.from != State::Erased));
        // Every state but Unregistered is reachable from Unregistered.
        let mut reached = vec![State::Unregistered];
        loop {
            let before = reached.len();
            for t in TRANSITIONS {
                if reached.contains(&t.from) && !reached.contains(&t.to) {
                    reached.push(t.to);
                }
            }
            if reached.len() == before {
                break;
            }
        }
        assert_eq!(reached.len(), State::ALL.len());
    }
}
