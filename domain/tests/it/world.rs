//! The ECS world: upserts, component presence, indexes and queries.

use personctl_domain::lifecycle::State;
use personctl_domain::model::{Email, Item, Preferences};
use personctl_domain::{Event, PersonWorld};

use crate::{ada, bob, fold, registered};

#[test]
fn upsert_get_and_query_by_email_and_state() {
    let mut ada_events = registered();
    ada_events.push(Event::ItemAdded(Item::Email(Email {
        address: "Ada@Example.org".into(),
        verified: false,
    })));
    ada_events.push(Event::PreferencesSet(Preferences {
        language: Some("en".into()),
        channels: vec!["email".into()],
    }));
    let ada_person = fold(&ada_events).unwrap();
    let bob_person = fold(&[
        Event::Registered {
            person: bob(),
            legal_name: "Bob".into(),
        },
        Event::Suspended { reason: "".into() },
    ])
    .unwrap();

    let mut world = PersonWorld::from_persons([ada_person.clone(), bob_person.clone()]);
    assert_eq!(world.len(), 2);
    assert_eq!(world.get(ada()), Some(ada_person.clone()));
    assert_eq!(world.get(bob()), Some(bob_person));
    assert_eq!(world.by_email("ada@example.ORG"), vec![ada()]);
    let counts = world.count_by_state();
    assert_eq!(counts.get(&State::Active), Some(&1));
    assert_eq!(counts.get(&State::Suspended), Some(&1));

    // Components come and go with the state; the email index follows.
    let mut changed = ada_person;
    changed.contact = None;
    changed.preferences = None;
    world.upsert(changed.clone());
    assert_eq!(world.get(ada()), Some(changed));
    assert!(world.by_email("ada@example.org").is_empty());
    assert_eq!(world.len(), 2);
}
