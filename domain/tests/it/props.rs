//! Property tests: for random command sequences, deciding and applying in memory gives the
//! same person as replaying the chain the service stored; replaying twice gives the same
//! result; the ECS world holds the same person.

use personctl_domain::model::{Address, Preferences, Skill};
use personctl_domain::{apply, decide, Command, Person, PersonWorld};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use crate::{ada, bob, date, memory_persons};

/// A small space of commands, so that sequences hit duplicates, missing items and lifecycle
/// walls often.
fn command() -> impl Strategy<Value = Command> {
    let i = 0..3usize;
    prop_oneof![
        i.clone().prop_map(|i| Command::Rename {
            legal_name: format!("Name {i}"),
            reason: "r".into()
        }),
        (1800..2000i16).prop_map(|y| Command::SetBirthDate {
            date: date(&format!("{y}-06-15"))
        }),
        Just(Command::Suspend { reason: "s".into() }),
        Just(Command::Reactivate { reason: "r".into() }),
        i.clone().prop_map(|i| Command::AddEmail {
            address: format!("p{i}@example.org")
        }),
        i.clone().prop_map(|i| Command::VerifyEmail {
            address: format!("P{i}@example.org")
        }),
        i.clone().prop_map(|i| Command::RemoveEmail {
            address: format!("p{i}@example.org")
        }),
        (i.clone(), 1..=5u8).prop_map(|(i, level)| Command::AddSkill(Skill {
            name: format!("skill {i}"),
            level
        })),
        (i.clone(), 1..=5u8).prop_map(|(i, level)| Command::UpdateSkill(Skill {
            name: format!("Skill {i}"),
            level
        })),
        i.clone().prop_map(|i| Command::RemoveSkill {
            name: format!("skill {i}")
        }),
        i.clone().prop_map(|i| Command::AddAddress(Address {
            label: format!("a{i}"),
            street: "1 Street".into(),
            city: "City".into(),
            postal_code: "1000".into(),
            country: "CH".into()
        })),
        i.clone().prop_map(|i| Command::RemoveAddress {
            label: format!("a{i}")
        }),
        i.clone().prop_map(|i| Command::SetPreferences(Preferences {
            language: Some(["en", "fr", "de"][i].into()),
            channels: vec!["email".into()]
        })),
        Just(Command::ClearPreferences {}),
        (1850..1900i16).prop_map(|y| Command::RecordDeath {
            date: date(&format!("{y}-01-01"))
        }),
        Just(Command::Archive { reason: "a".into() }),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/it/props.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn memory_and_stored_replay_agree(commands in proptest::collection::vec(command(), 0..40)) {
        // In memory: decide and apply, keeping only the commands that are valid in turn.
        let mut state: Option<Person> = None;
        let mut valid = vec![(ada(), Command::Register { legal_name: "Ada".into() })];
        state = decide(ada(), state.as_ref(), &valid[0].1).unwrap().iter().fold(state, apply);
        for c in commands {
            if let Ok(events) = decide(ada(), state.as_ref(), &c) {
                state = events.iter().fold(state, apply);
                valid.push((ada(), c));
            }
        }
        // Through the ledger: the same commands in one batch, then a replay of the chain.
        let (persons, signer) = memory_persons();
        persons.execute_batch(&signer, &valid).map_err(|f| TestCaseError::fail(format!("{} at {}", f.error, f.index)))?;
        let first = persons.replay(ada(), None).unwrap();
        let second = persons.replay(ada(), None).unwrap();
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first.person, &state);
        let (mut world, _) = persons.replay_all().unwrap();
        prop_assert_eq!(world.get(ada()), state.clone());
        prop_assert_eq!(world.len(), 1);
        prop_assert!(world.get(bob()).is_none());
        let _ = world.count_by_state();
        let _ = PersonWorld::new();
    }
}
