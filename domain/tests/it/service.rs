//! The service on a ledger: commands append events, merges link chains, batches stop at the
//! first invalid command, races are conflicts and never forks, replay stops where asked.

use personctl_domain::lifecycle::Lifecycle;
use personctl_domain::model::Skill;
use personctl_domain::{At, Command, Error, PersonId, Persons};
use personctl_ledger::{verify, BlockStore, Ledger, MemoryStore, TrustSet, VerifyOptions};

use crate::{ada, bob, fixture_signer, memory_persons};

fn register(persons: &Persons<impl BlockStore>, id: PersonId, name: &str) {
    persons
        .execute(
            &fixture_signer(),
            id,
            &Command::Register {
                legal_name: name.into(),
            },
        )
        .unwrap();
}

fn verifies(store: &impl BlockStore) {
    let trust: TrustSet = [fixture_signer().author()].into_iter().collect();
    let report = verify(store, &trust, &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
}

#[test]
fn commands_append_events_that_replay_to_the_same_person() {
    let (persons, signer) = memory_persons();
    register(&persons, ada(), "Ada Lovelace");
    let out = persons
        .execute(
            &signer,
            ada(),
            &Command::AddEmail {
                address: "ada@example.org".into(),
            },
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].height, 1);
    let event = persons.ledger().event(&out[0].cid).unwrap();
    assert_eq!((event.event_type(), event.schema()), ("EmailAdded", 2));
    persons
        .execute(
            &signer,
            ada(),
            &Command::VerifyEmail {
                address: "ADA@example.org".into(),
            },
        )
        .unwrap();
    let replayed = persons.replay(ada(), None).unwrap();
    let person = replayed.person.unwrap();
    assert!(person.contact.unwrap().emails[0].verified);
    assert_eq!(replayed.events, 3);
    // A rule violation appends nothing.
    let err = persons
        .execute(
            &signer,
            ada(),
            &Command::AddEmail {
                address: "Ada@Example.org".into(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Rule { .. }), "{err}");
    assert_eq!(persons.replay(ada(), None).unwrap().events, 3);
    verifies(persons.ledger().store());
}

#[test]
fn a_merge_appends_to_both_chains_and_links_them() {
    let (persons, signer) = memory_persons();
    register(&persons, ada(), "Ada Lovelace");
    register(&persons, bob(), "Ada King");
    let ada_head = persons
        .ledger()
        .store()
        .head(&ada().stream())
        .unwrap()
        .unwrap();
    let out = persons
        .execute(&signer, ada(), &Command::Merge { into: bob() })
        .unwrap();
    assert_eq!(out.len(), 2, "one event on each chain");
    let survivor = out.iter().find(|a| a.stream == bob().stream()).unwrap();
    let survivor_event = persons.ledger().event(&survivor.cid).unwrap();
    assert_eq!(survivor_event.event_type(), "PersonMergeReceived");
    assert_eq!(
        survivor_event.causes(),
        &[ada_head.cid],
        "the survivor's event names the merged person's head"
    );
    let merged = persons.replay(ada(), None).unwrap().person.unwrap();
    assert_eq!(merged.lifecycle, Lifecycle::MergedInto(bob()));
    assert_eq!(
        persons
            .replay(bob(), None)
            .unwrap()
            .person
            .unwrap()
            .lifecycle,
        Lifecycle::Active
    );
    // A merged person is read-only, and cannot be merged again.
    assert!(persons
        .execute(&signer, ada(), &Command::Merge { into: bob() })
        .is_err());
    verifies(persons.ledger().store());
}

#[test]
fn a_batch_stops_at_the_first_invalid_command() {
    let (persons, signer) = memory_persons();
    let commands = vec![
        (
            ada(),
            Command::Register {
                legal_name: "Ada".into(),
            },
        ),
        (
            ada(),
            Command::AddSkill(Skill {
                name: "Maths".into(),
                level: 5,
            }),
        ),
        (
            ada(),
            Command::AddSkill(Skill {
                name: "maths".into(),
                level: 3,
            }),
        ),
        (
            ada(),
            Command::Suspend {
                reason: "never reached".into(),
            },
        ),
    ];
    let failure = persons.execute_batch(&signer, &commands).unwrap_err();
    assert_eq!(failure.index, 2);
    assert!(
        failure
            .error
            .to_string()
            .contains("skill \"maths\" already exists"),
        "{}",
        failure.error
    );
    assert_eq!(
        failure.appended.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 1]
    );
    let replayed = persons.replay(ada(), None).unwrap();
    assert_eq!(replayed.events, 2);
    assert_eq!(replayed.person.unwrap().lifecycle, Lifecycle::Active);
}

#[test]
fn racing_writers_get_conflicts_never_forks() {
    let store = MemoryStore::new();
    let persons = Persons::new(Ledger::new(&store));
    register(&persons, ada(), "Ada");
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let persons = &persons;
                s.spawn(move || {
                    let (mut ok, mut conflicts) = (0, 0);
                    for i in 0..60 {
                        let skill = Skill {
                            name: format!("skill-{t}-{i}"),
                            level: 1,
                        };
                        match persons.execute(&fixture_signer(), ada(), &Command::AddSkill(skill)) {
                            Ok(_) => ok += 1,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    (ok, conflicts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: usize = results.iter().map(|r| r.0).sum();
    let replayed = persons.replay(ada(), None).unwrap();
    assert_eq!(
        replayed.events as usize,
        1 + ok,
        "every acknowledged command is on the chain, once"
    );
    assert_eq!(
        replayed.person.unwrap().professional.unwrap().skills.len(),
        ok
    );
    verifies(&store);
}

#[test]
fn replay_stops_at_a_height_or_a_cid() {
    let (persons, signer) = memory_persons();
    register(&persons, ada(), "Ada Lovelace");
    let renamed = persons
        .execute(
            &signer,
            ada(),
            &Command::Rename {
                legal_name: "Ada King".into(),
                reason: "".into(),
            },
        )
        .unwrap();
    persons
        .execute(&signer, ada(), &Command::Suspend { reason: "".into() })
        .unwrap();
    let at0 = persons.replay(ada(), Some(At::Height(0))).unwrap();
    assert_eq!(at0.person.unwrap().identity.legal_name, "Ada Lovelace");
    let at1 = persons
        .replay(ada(), Some(At::Cid(renamed[0].cid)))
        .unwrap();
    assert_eq!(
        (at1.events, at1.person.unwrap().lifecycle),
        (2, Lifecycle::Active)
    );
    let err = persons.replay(ada(), Some(At::Height(9))).unwrap_err();
    assert!(err.to_string().contains("no event at height 9"), "{err}");
    assert_eq!(persons.replay(bob(), None).unwrap().person, None);
}

#[test]
fn erasure_masks_what_it_names_is_honoured_before_the_purge_and_reaches_the_world() {
    use personctl_domain::model::ItemKind;
    use personctl_domain::{Erasure, Event, MASKED};
    let (persons, signer) = memory_persons();
    register(&persons, ada(), "Ada Lovelace");
    register(&persons, bob(), "Bob");
    for command in [
        Command::AddEmail {
            address: "ada@example.org".into(),
        },
        Command::AddEmail {
            address: "countess@example.org".into(),
        },
        Command::VerifyEmail {
            address: "ada@example.org".into(),
        },
    ] {
        persons.execute(&signer, ada(), &command).unwrap();
    }
    // One email, named as a command would name it (case-insensitive): its addition and its
    // verification are masked, the other email is not.
    let one = Erasure::Component {
        kind: ItemKind::Email,
        key: Some("ADA@example.org".into()),
    };
    let t = persons
        .erase(&signer, ada(), &one, "ticket 9")
        .unwrap()
        .unwrap();
    // Not purged yet: the masked payloads are still stored, and still never read.
    let history = persons.history(ada()).unwrap();
    let masked: Vec<u64> = history
        .iter()
        .filter(|(_, r)| matches!(r.event, Event::Masked { .. }))
        .map(|(h, _)| h.height)
        .collect();
    assert_eq!(masked, [1, 3]);
    let emails = |p: &personctl_domain::Person| -> Vec<String> {
        p.contact
            .iter()
            .flat_map(|c| c.emails.iter().map(|e| e.address.clone()))
            .collect()
    };
    let person = persons.replay(ada(), None).unwrap().person.unwrap();
    assert_eq!(emails(&person), ["countess@example.org"]);
    assert_eq!(persons.purge(ada()).unwrap().len(), 2);
    assert_eq!(persons.replay(ada(), None).unwrap().person.unwrap(), person);
    assert_eq!(t.height, 4);
    // Nothing left of that email: a second erasure decides nothing.
    assert!(persons
        .erase(&signer, ada(), &one, "again")
        .unwrap()
        .is_none());

    // The whole person; Bob is untouched, and the World sees the erasure.
    persons
        .erase(&signer, ada(), &Erasure::Person, "Art. 17")
        .unwrap()
        .unwrap();
    persons.purge(ada()).unwrap();
    verifies(persons.ledger().store());
    let (world, _) = persons.replay_all().unwrap();
    let ada_now = world.get(ada()).unwrap();
    assert_eq!(ada_now.lifecycle, Lifecycle::Erased);
    assert_eq!(ada_now.identity.legal_name, MASKED);
    assert!(ada_now.contact.is_none());
    assert_eq!(world.get(bob()).unwrap().identity.legal_name, "Bob");
    // Nothing may follow an erasure.
    let err = persons
        .execute(
            &signer,
            ada(),
            &Command::Rename {
                legal_name: "X".into(),
                reason: "r".into(),
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("Erased"), "{err}");
    // An unregistered person cannot be erased.
    let nobody = PersonId::new_v7();
    assert!(persons
        .erase(&signer, nobody, &Erasure::Person, "r")
        .is_err());
}

/// A shared log that never answers.
struct Silent;

impl personctl_ledger::Publisher for Silent {
    fn publish(
        &self,
        _: &dyn BlockStore,
        streams: Option<&[personctl_ledger::StreamId]>,
    ) -> personctl_ledger::Result<personctl_ledger::PublishReport> {
        let mut report = personctl_ledger::PublishReport::default();
        for s in streams.unwrap_or_default() {
            report.failures.push((
                s.clone(),
                personctl_ledger::Error::InvalidEvent("no answer".into()),
            ));
        }
        Ok(report)
    }

    fn pull(
        &self,
        _: &dyn BlockStore,
        _: &personctl_ledger::StreamId,
    ) -> personctl_ledger::Result<u64> {
        Ok(0)
    }

    fn erase_blocks(&self, _: &[personctl_ledger::Cid]) -> personctl_ledger::Result<u64> {
        Ok(0)
    }
}

#[test]
fn a_silent_log_leaves_the_batch_stored_and_pending_and_unknown_persons_are_named() {
    let (persons, signer) = memory_persons();
    let batch = vec![
        (
            ada(),
            Command::Register {
                legal_name: "Ada Lovelace".into(),
            },
        ),
        (
            ada(),
            Command::AddEmail {
                address: "ada@example.org".into(),
            },
        ),
        (
            bob(),
            Command::AddEmail {
                address: "bob@example.org".into(),
            },
        ),
    ];
    let executed = persons
        .execute_published(
            &signer,
            &batch,
            Some(&Silent),
            personctl_ledger::Retry::default(),
        )
        .unwrap();
    // The log did not answer: what was decided is stored here, and said to be pending.
    assert!(executed
        .unpublished
        .as_ref()
        .is_some_and(|e| e.is_offline()));
    assert_eq!(executed.appended.len(), 2);
    assert_eq!(
        persons
            .ledger()
            .store()
            .head(&ada().stream())
            .unwrap()
            .unwrap()
            .height,
        1
    );
    // Bob was never registered: the third command names him as unknown.
    let (index, error) = executed.failure.unwrap();
    assert_eq!(index, 2);
    assert!(
        matches!(error, Error::UnknownPerson(id) if id == bob()),
        "{error}"
    );
}

/// The policies' identity, granted exactly `policy::WRITES` under an admin's policy in force:
/// the welcome, the onboarding saga and the time-based sweep write; a legal name is refused.
#[test]
fn the_policies_identity_writes_what_its_grants_allow_and_never_a_legal_name() {
    use personctl_domain::model::Attribute;
    use personctl_domain::onboarding::Input;
    use personctl_domain::policy::{Periods, Reaction, DAY_US, WRITES};
    use personctl_ledger::Signer;

    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let identity = |ledger: &Ledger<&MemoryStore>| {
        let (key, next) = (Signer::generate().unwrap(), Signer::generate().unwrap());
        (ledger.incept_identity(&key, &next.author()).unwrap(), key)
    };
    let (admin, admin_key) = identity(&ledger);
    let (service, service_key) = identity(&ledger);
    let (policies, policies_key) = identity(&ledger);
    ledger
        .grant_write(&admin, &admin_key, &service, "person", &[])
        .unwrap();
    for (aggregate, events) in WRITES {
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        ledger
            .grant_write(&admin, &admin_key, &policies, aggregate, &events)
            .unwrap();
    }
    let trust = TrustSet::new()
        .with_identity(admin)
        .with_identity(service)
        .with_identity(policies);
    let persons = Persons::new(Ledger::new(&store).enforce_policies(trust.clone()));
    let registered = persons
        .execute(
            &service_key,
            ada(),
            &Command::Register {
                legal_name: "Ada Lovelace".into(),
            },
        )
        .unwrap();
    let trigger = registered[0].cid;
    let welcome = Reaction {
        policy: "welcome",
        person: ada(),
        trigger,
        correlation: uuid::Uuid::nil(),
        command: Command::AddAttribute(Attribute {
            name: "onboarding.welcome".into(),
            value: "sent".into(),
            source: "test".into(),
            confidence: 100,
            valid_from: None,
            valid_until: None,
        }),
    };
    assert_eq!(persons.react(&policies_key, &welcome).unwrap().len(), 1);
    let onboarded = persons
        .onboard(
            &policies_key,
            ada(),
            Input::Registered,
            trigger,
            uuid::Uuid::nil(),
            DAY_US,
        )
        .unwrap();
    assert_eq!(onboarded.len(), 1);
    // The policies' key never writes a legal name: refused up front, nothing written.
    let refused = persons.execute(
        &policies_key,
        ada(),
        &Command::Rename {
            legal_name: "Eve".into(),
            reason: String::new(),
        },
    );
    assert!(
        matches!(
            refused,
            Err(Error::Ledger(personctl_ledger::Error::Unauthorized { .. }))
        ),
        "{refused:?}"
    );
    let periods = Periods {
        unverified_email_us: DAY_US,
        inactive_us: DAY_US,
    };
    let later = personctl_ledger::now_us() + 10 * DAY_US;
    let swept = persons
        .sweep(&policies_key, later, &periods, DAY_US)
        .unwrap();
    // Archived (inactive), and the onboarding timed out (its compensation no longer applies).
    let types: Vec<String> = swept
        .iter()
        .map(|a| {
            persons
                .ledger()
                .event(&a.cid)
                .unwrap()
                .event_type()
                .to_string()
        })
        .collect();
    assert!(types.contains(&"PersonArchived".to_string()), "{types:?}");
    assert!(types.contains(&"OnboardingFailed".to_string()), "{types:?}");
    let report = verify(&store, &trust, &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
}

/// A reaction the write policies refuse is skipped, not an error: the sweep goes on.
#[test]
fn a_reaction_without_a_grant_is_skipped_and_the_sweep_goes_on() {
    use personctl_domain::policy::{Periods, DAY_US};
    use personctl_ledger::Signer;

    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let (admin_key, next) = (Signer::generate().unwrap(), Signer::generate().unwrap());
    let admin = ledger.incept_identity(&admin_key, &next.author()).unwrap();
    let (key, next) = (Signer::generate().unwrap(), Signer::generate().unwrap());
    let writer = ledger.incept_identity(&key, &next.author()).unwrap();
    // Person events other than the archive; onboarding not at all.
    let events: Vec<String> = ["PersonRegistered".to_string()].into();
    ledger
        .grant_write(&admin, &admin_key, &writer, "person", &events)
        .unwrap();
    let trust = TrustSet::new().with_identity(admin).with_identity(writer);
    let persons = Persons::new(Ledger::new(&store).enforce_policies(trust));
    let register = Command::Register {
        legal_name: "Ada Lovelace".into(),
    };
    persons.execute(&key, ada(), &register).unwrap();
    let later = personctl_ledger::now_us() + 10 * DAY_US;
    let periods = Periods {
        unverified_email_us: DAY_US,
        inactive_us: DAY_US,
    };
    let swept = persons.sweep(&key, later, &periods, DAY_US).unwrap();
    assert!(swept.is_empty(), "{swept:?}");
    assert_eq!(store.head(&ada().stream()).unwrap().unwrap().height, 0);
}

#[test]
fn a_command_id_runs_once_and_its_retry_gets_the_same_events_back() {
    use personctl_domain::requests;
    use personctl_ledger::Retry;
    let (persons, signer) = memory_persons();
    let id = uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0c01);
    let register = Command::Register {
        legal_name: "Ada".into(),
    };
    let first = persons
        .execute_once(&signer, ada(), &register, id, None, Retry::default())
        .unwrap();
    assert!(!first.repeated);
    assert_eq!(first.events.len(), 1);
    let again = persons
        .execute_once(&signer, ada(), &register, id, None, Retry::default())
        .unwrap();
    assert!(again.repeated);
    assert_eq!(again.events, first.events);
    assert_eq!(persons.replay(ada(), None).unwrap().events, 1);

    // A new id is a new command: a second skill is appended, then found on its retry; the
    // events before it (another id's) are not part of its reply.
    let skill = |level| {
        Command::AddSkill(Skill {
            name: "Rust".into(),
            level,
        })
    };
    let other = uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0c02);
    let added = persons
        .execute_once(&signer, ada(), &skill(3), other, None, Retry::default())
        .unwrap();
    assert_eq!(added.events[0].height, 1);
    let retried = persons
        .execute_once(&signer, ada(), &skill(3), other, None, Retry::default())
        .unwrap();
    assert_eq!((retried.repeated, retried.events), (true, added.events));
    assert_eq!(persons.replay(ada(), None).unwrap().events, 2);

    // The same through requests: the reply repeats the events, a register with an id makes
    // the person named by that id, and a refused command is a structured error.
    let body = br#"{"id": "0192aaaa-0000-7000-8000-000000000001", "legal_name": "Bob"}"#;
    let reply = requests::handle(&persons, &signer, None, Some("register"), body);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["person"], "0192aaaa-0000-7000-8000-000000000001");
    assert_eq!(reply["repeated"], false);
    let retried = requests::handle(&persons, &signer, None, Some("register"), body);
    assert_eq!(retried["repeated"], true);
    assert_eq!(retried["events"], reply["events"]);
    let refused = requests::handle(
        &persons,
        &signer,
        None,
        Some("rename"),
        format!(r#"{{"person": "{}", "legal_name": ""}}"#, ada()).as_bytes(),
    );
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["kind"], "rule", "{refused}");
}
