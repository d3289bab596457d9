//! The transition table is the truth: for every state and every action, `decide` allows exactly
//! what the table lists, and `apply` lands in the state the table names.

use personctl_domain::lifecycle::{self, Action, State, TRANSITIONS};
use personctl_domain::model::{Email, Item, ItemKind};
use personctl_domain::{
    decide, decide_erasure, decide_merge_target, Command, DomainError, ErasedScope, Erasure, Event,
    Recorded,
};
use personctl_ledger::Cid;

use crate::{ada, bob, date, fold, registered};

fn events_for(state: State) -> Vec<Event> {
    let mut events = registered();
    match state {
        State::Unregistered => events.clear(),
        State::Active => {}
        State::Suspended => events.push(Event::Suspended { reason: "".into() }),
        State::Archived => events.push(Event::Archived { reason: "".into() }),
        State::Deceased => events.push(Event::DeathRecorded {
            date: date("1852-11-27"),
        }),
        State::MergedInto => events.push(Event::MergedInto { into: bob() }),
        State::Erased => events.push(Event::Erased {
            scope: ErasedScope::Person,
            reason: "r".into(),
            masks: vec![],
        }),
    }
    events
}

/// The history erasure reads: the events of `state`, each with a payload, and an email.
fn history_for(state: State) -> Vec<Recorded> {
    let mut events = events_for(state);
    events.push(Event::ItemAdded(Item::Email(Email {
        address: "ada@example.org".into(),
        verified: false,
    })));
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Recorded {
            payload: Some(Cid::of(&[i as u8])),
            event,
            time_us: 0,
            correlation: uuid::Uuid::nil(),
        })
        .collect()
}

fn erasure_for(action: Action) -> Option<Erasure> {
    match action {
        Action::Erase => Some(Erasure::Person),
        Action::EraseComponent => Some(Erasure::Component {
            kind: ItemKind::Email,
            key: None,
        }),
        _ => None,
    }
}

fn command_for(action: Action) -> Option<Command> {
    Some(match action {
        Action::Register => Command::Register {
            legal_name: "Ada Lovelace".into(),
        },
        Action::Suspend => Command::Suspend { reason: "r".into() },
        Action::Reactivate => Command::Reactivate { reason: "r".into() },
        Action::Archive => Command::Archive { reason: "r".into() },
        Action::RecordDeath => Command::RecordDeath {
            date: date("1852-11-27"),
        },
        Action::MergeInto => Command::Merge { into: bob() },
        Action::Edit => Command::AddEmail {
            address: "ada@example.org".into(),
        },
        Action::ReceiveMerge | Action::Erase | Action::EraseComponent => return None,
    })
}

const ACTIONS: [Action; 10] = [
    Action::Register,
    Action::Suspend,
    Action::Reactivate,
    Action::Archive,
    Action::RecordDeath,
    Action::MergeInto,
    Action::ReceiveMerge,
    Action::Edit,
    Action::Erase,
    Action::EraseComponent,
];

#[test]
fn decide_and_apply_follow_the_table_for_every_state_and_action() {
    let mut checked = 0;
    for from in State::ALL {
        for action in ACTIONS {
            let before = fold(&events_for(from));
            let allowed = lifecycle::next(from, action);
            let outcome = match (command_for(action), erasure_for(action)) {
                (Some(command), _) => {
                    decide(ada(), before.as_ref(), &command).map_err(|e| (e, command.name()))
                }
                (None, Some(erasure)) => {
                    decide_erasure(before.as_ref(), &history_for(from), &erasure, "r")
                        .map_err(|e| (e, "erase".into()))
                }
                (None, None) => decide_merge_target(ada(), before.as_ref(), bob())
                    .map_err(|e| (e, "merge".into())),
            };
            match (allowed, outcome) {
                // Erasing an erased person is harmless: nothing to decide.
                (None, Ok(events)) if from == State::Erased && erasure_for(action).is_some() => {
                    assert!(events.is_empty(), "{from} {action}: {events:?}");
                }
                (Some(to), Ok(events)) => {
                    assert!(!events.is_empty(), "{from} {action}: no events");
                    let after = events.iter().fold(before, personctl_domain::apply);
                    assert_eq!(
                        after.unwrap().lifecycle.state(),
                        to,
                        "{from} --{action}--> ?"
                    );
                }
                (None, Err((DomainError::InvalidTransition { state, command }, name))) => {
                    assert_eq!(state, from);
                    assert!(command.starts_with(&name), "{command} vs {name}");
                }
                (allowed, outcome) => {
                    panic!("{from} {action}: table says {allowed:?}, decide says {outcome:?}")
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, State::ALL.len() * ACTIONS.len());
    assert!(TRANSITIONS.len() >= 21);
}
