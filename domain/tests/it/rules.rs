//! Business rules: given events, when a command, then events or an error.

use personctl_domain::lifecycle::State;
use personctl_domain::model::{
    Attribute, Email, Employment, Item, ItemKind, Phone, Preferences, Relationship, Skill,
};
use personctl_domain::{Command, DomainError, Event};

use crate::{ada, bob, date, given, registered};

fn with(extra: &[Event]) -> Vec<Event> {
    let mut events = registered();
    events.extend_from_slice(extra);
    events
}

fn email(address: &str, verified: bool) -> Item {
    Item::Email(Email {
        address: address.into(),
        verified,
    })
}

#[test]
fn register_needs_a_name_and_happens_once() {
    given(&[])
        .when(Command::Register {
            legal_name: "  Ada Lovelace ".into(),
        })
        .then(&registered());
    given(&[])
        .when(Command::Register {
            legal_name: "   ".into(),
        })
        .then_err(DomainError::EmptyName);
    given(&registered())
        .when(Command::Register {
            legal_name: "Ada".into(),
        })
        .then_err(DomainError::InvalidTransition {
            state: State::Active,
            command: "register".into(),
        });
}

#[test]
fn commands_before_registration_name_the_state_and_the_command() {
    given(&[])
        .when(Command::Suspend { reason: "x".into() })
        .then_err_says(&["suspend", "Unregistered"]);
    given(&[])
        .when(Command::AddEmail {
            address: "a@b.org".into(),
        })
        .then_err_says(&["add-email", "Unregistered"]);
}

#[test]
fn rename_records_old_and_new_and_rejects_empty_names() {
    given(&registered())
        .when(Command::Rename {
            legal_name: "Augusta Ada King".into(),
            reason: "marriage".into(),
        })
        .then(&[Event::Renamed {
            old: "Ada Lovelace".into(),
            new: "Augusta Ada King".into(),
            reason: "marriage".into(),
        }]);
    given(&registered())
        .when(Command::Rename {
            legal_name: "".into(),
            reason: "".into(),
        })
        .then_err(DomainError::EmptyName);
    given(&registered())
        .when(Command::Rename {
            legal_name: "Ada Lovelace".into(),
            reason: "".into(),
        })
        .then(&[]);
}

#[test]
fn birth_and_death_dates_stay_in_order() {
    let born = with(&[Event::BirthDateSet {
        date: date("1815-12-10"),
    }]);
    given(&born)
        .when(Command::RecordDeath {
            date: date("1800-01-01"),
        })
        .then_err(DomainError::BirthAfterDeath {
            birth: date("1815-12-10"),
            death: date("1800-01-01"),
        });
    given(&born)
        .when(Command::RecordDeath {
            date: date("1852-11-27"),
        })
        .then(&[Event::DeathRecorded {
            date: date("1852-11-27"),
        }]);
    let dead = with(&[Event::DeathRecorded {
        date: date("1852-11-27"),
    }]);
    given(&dead)
        .when(Command::SetBirthDate {
            date: date("1900-01-01"),
        })
        .then_err_says(&["set-birth-date", "Deceased"]);
    // While alive, a birth date after a recorded... there is none: correct it freely.
    given(&born)
        .when(Command::SetBirthDate {
            date: date("1815-12-11"),
        })
        .then(&[Event::BirthDateSet {
            date: date("1815-12-11"),
        }]);
}

#[test]
fn birth_date_after_death_date_is_rejected_even_when_death_came_first() {
    // A suspended person's death can be recorded; correcting the birth date afterwards is not
    // possible (Deceased is read-only), so the rule is exercised through RecordDeath.
    let suspended = with(&[
        Event::BirthDateSet {
            date: date("1900-05-05"),
        },
        Event::Suspended { reason: "".into() },
    ]);
    given(&suspended)
        .when(Command::RecordDeath {
            date: date("1899-01-01"),
        })
        .then_err(DomainError::BirthAfterDeath {
            birth: date("1900-05-05"),
            death: date("1899-01-01"),
        });
}

#[test]
fn emails_are_unique_per_person_case_insensitively_and_verified_once() {
    let one = with(&[Event::ItemAdded(email("Ada@Example.org", false))]);
    given(&registered())
        .when(Command::AddEmail {
            address: " Ada@Example.org ".into(),
        })
        .then(&[Event::ItemAdded(email("Ada@Example.org", false))]);
    given(&one)
        .when(Command::AddEmail {
            address: "ada@example.ORG".into(),
        })
        .then_err(DomainError::Duplicate {
            kind: ItemKind::Email,
            key: "ada@example.org".into(),
        });
    given(&one)
        .when(Command::VerifyEmail {
            address: "ADA@example.org".into(),
        })
        .then(&[Event::EmailVerified {
            address: "Ada@Example.org".into(),
        }]);
    let verified = with(&[
        Event::ItemAdded(email("Ada@Example.org", false)),
        Event::EmailVerified {
            address: "Ada@Example.org".into(),
        },
    ]);
    given(&verified)
        .when(Command::VerifyEmail {
            address: "ada@example.org".into(),
        })
        .then(&[]);
    given(&one)
        .when(Command::VerifyEmail {
            address: "other@example.org".into(),
        })
        .then_err(DomainError::Missing {
            kind: ItemKind::Email,
            key: "other@example.org".into(),
        });
    for bad in [
        "no-at-sign",
        "@example.org",
        "a@nodot",
        "a b@example.org",
        "a@.org",
    ] {
        given(&registered())
            .when(Command::AddEmail {
                address: bad.into(),
            })
            .then_err_says(&["address", "is not an email address"]);
    }
}

#[test]
fn removing_what_does_not_exist_is_rejected_for_every_kind() {
    let cases = [
        (
            Command::RemoveEmail {
                address: "x@y.org".into(),
            },
            ItemKind::Email,
            "x@y.org",
        ),
        (
            Command::RemovePhone {
                number: "+41 44 000 00 00".into(),
            },
            ItemKind::Phone,
            "+41440000000",
        ),
        (
            Command::RemoveAddress {
                label: "home".into(),
            },
            ItemKind::Address,
            "home",
        ),
        (
            Command::RemoveSkill {
                name: "Rust".into(),
            },
            ItemKind::Skill,
            "rust",
        ),
        (
            Command::RemoveEmployment { id: "e1".into() },
            ItemKind::Employment,
            "e1",
        ),
        (
            Command::RemoveCertification { name: "CKA".into() },
            ItemKind::Certification,
            "CKA",
        ),
        (
            Command::RemoveAttribute {
                name: "shoe".into(),
            },
            ItemKind::Attribute,
            "shoe",
        ),
    ];
    for (command, kind, key) in cases {
        given(&registered())
            .when(command)
            .then_err(DomainError::Missing {
                kind,
                key: key.into(),
            });
    }
    let rel_key = format!("{}:colleague", bob());
    given(&registered())
        .when(Command::RemoveRelationship {
            other: bob(),
            kind: "colleague".into(),
        })
        .then_err(DomainError::Missing {
            kind: ItemKind::Relationship,
            key: rel_key,
        });
}

#[test]
fn components_are_added_updated_and_removed() {
    let skill = Skill {
        name: "Mathematics".into(),
        level: 4,
    };
    given(&registered())
        .when(Command::AddSkill(skill.clone()))
        .then(&[Event::ItemAdded(Item::Skill(skill.clone()))]);
    let has = with(&[Event::ItemAdded(Item::Skill(skill.clone()))]);
    let better = Skill {
        name: "mathematics".into(),
        level: 5,
    };
    given(&has)
        .when(Command::UpdateSkill(better.clone()))
        .then(&[Event::ItemUpdated(Item::Skill(better))]);
    given(&has)
        .when(Command::UpdateSkill(skill.clone()))
        .then(&[]);
    given(&has)
        .when(Command::RemoveSkill {
            name: "MATHEMATICS".into(),
        })
        .then(&[Event::ItemRemoved {
            kind: ItemKind::Skill,
            key: "mathematics".into(),
        }]);
    given(&registered())
        .when(Command::AddSkill(Skill {
            name: "x".into(),
            level: 6,
        }))
        .then_err_says(&["level", "6"]);
    given(&registered())
        .when(Command::UpdatePhone(Phone {
            number: "+1 555 0100".into(),
            kind: "work".into(),
        }))
        .then_err(DomainError::Missing {
            kind: ItemKind::Phone,
            key: "+15550100".into(),
        });
}

#[test]
fn value_rules_of_items() {
    let job = Employment {
        id: "e1".into(),
        organisation: "org-1".into(),
        role: "Analyst".into(),
        start: date("1843-01-01"),
        end: Some(date("1842-01-01")),
    };
    given(&registered())
        .when(Command::AddEmployment(job))
        .then_err_says(&["end", "1842-01-01"]);
    given(&registered())
        .when(Command::AddPhone(Phone {
            number: "12ab".into(),
            kind: "".into(),
        }))
        .then_err_says(&["number"]);
    given(&registered())
        .when(Command::AddRelationship(Relationship {
            other: ada(),
            kind: "self".into(),
        }))
        .then_err_says(&["relationship with itself"]);
    let attr = Attribute {
        name: "eyes".into(),
        value: "grey".into(),
        source: "portrait".into(),
        confidence: 101,
        valid_from: None,
        valid_until: None,
    };
    given(&registered())
        .when(Command::AddAttribute(attr))
        .then_err_says(&["confidence"]);
    given(&registered())
        .when(Command::SetPreferences(Preferences {
            language: Some("en GB".into()),
            channels: vec![],
        }))
        .then_err_says(&["language"]);
    given(&registered())
        .when(Command::SetPreferences(Preferences {
            language: None,
            channels: vec!["email".into(), "email".into()],
        }))
        .then_err_says(&["listed twice"]);
    given(&registered())
        .when(Command::ClearPreferences {})
        .then_err_says(&["none to clear"]);
}

#[test]
fn merge_rules() {
    given(&registered())
        .when(Command::Merge { into: ada() })
        .then_err(DomainError::MergeIntoSelf);
    given(&registered())
        .when(Command::Merge { into: bob() })
        .then(&[Event::MergedInto { into: bob() }]);
    let merged = with(&[Event::MergedInto { into: bob() }]);
    given(&merged)
        .when(Command::Rename {
            legal_name: "X".into(),
            reason: "".into(),
        })
        .then_err_says(&["rename", "MergedInto"]);
    let target = registered();
    assert_eq!(
        personctl_domain::decide_merge_target(ada(), crate::fold(&target).as_ref(), bob()),
        Ok(vec![Event::MergeReceived { from: bob() }])
    );
    assert!(
        personctl_domain::decide_merge_target(ada(), None, bob()).is_err(),
        "an unregistered person cannot survive a merge"
    );
}

#[test]
fn components_come_and_go() {
    let added = with(&[Event::ItemAdded(Item::Phone(Phone {
        number: "+41 44 000 00 00".into(),
        kind: "home".into(),
    }))]);
    assert!(crate::fold(&added).unwrap().contact.is_some());
    let mut removed = added.clone();
    removed.push(Event::ItemRemoved {
        kind: ItemKind::Phone,
        key: "+41440000000".into(),
    });
    assert_eq!(crate::fold(&removed).unwrap().contact, None);
}

#[test]
fn masked_events_keep_the_lifecycle_and_nothing_brings_values_back_after_an_erasure() {
    use personctl_domain::lifecycle::Lifecycle;
    use personctl_domain::{ErasedScope, MASKED};
    let masked = |t: &str| Event::Masked {
        person: ada(),
        event_type: t.into(),
    };
    // A chain whose payloads were masked by a component erasure and read back.
    let p = crate::fold(&[
        masked("PersonRegistered"),
        masked("PhoneAdded"),
        masked("PersonSuspended"),
        masked("DeathRecorded"),
    ])
    .unwrap();
    assert_eq!(p.identity.legal_name, MASKED);
    assert_eq!(p.lifecycle, Lifecycle::Deceased);
    assert!(p.contact.is_none() && p.identity.death_date.is_none());

    let mut events = with(&[Event::ItemAdded(Item::Email(Email {
        address: "ada@example.org".into(),
        verified: true,
    }))]);
    events.push(Event::Erased {
        scope: ErasedScope::Person,
        reason: "r".into(),
        masks: vec![],
    });
    // A foreign writer's event after the erasure changes nothing.
    events.push(Event::ItemAdded(Item::Email(Email {
        address: "back@example.org".into(),
        verified: false,
    })));
    let p = crate::fold(&events).unwrap();
    assert_eq!(p.lifecycle, Lifecycle::Erased);
    assert_eq!(p.identity.legal_name, MASKED);
    assert!(p.contact.is_none());
}

#[test]
fn text_over_the_limit_is_refused_naming_the_field() {
    let long = "x".repeat(personctl_domain::MAX_TEXT + 1);
    given(&registered())
        .when(Command::Suspend {
            reason: long.clone(),
        })
        .then_err(DomainError::Invalid {
            field: "limits",
            reason: format!(
                "reason: {} bytes, over the limit of {} bytes",
                long.len(),
                personctl_domain::MAX_TEXT
            ),
        });
    given(&registered())
        .when(Command::Suspend {
            reason: "x".repeat(personctl_domain::MAX_TEXT),
        })
        .then(
            &with(&[Event::Suspended {
                reason: "x".repeat(personctl_domain::MAX_TEXT),
            }])[registered().len()..],
        );
}

#[test]
fn a_date_is_exactly_a_day() {
    let parse = |date: &str| {
        serde_json::from_value::<Command>(serde_json::json!({
            "command": "set-birth-date", "date": date
        }))
    };
    assert!(parse("1815-12-10").is_ok());
    for bad in [
        "1815-12-10T10:00",
        "1815-12-10T00:00:00Z",
        "1815-12-10+01:00",
        "1815-1-10",
        "18151210",
        "1815-13-10",
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(bad), "{bad}: {err}");
    }
}
