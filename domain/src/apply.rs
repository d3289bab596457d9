//! `apply`: folds one event into a person's state. No rules, never fails: `decide` already
//! checked everything, and an event that does not fit (which only a foreign writer could make)
//! changes nothing.

use crate::event::{ErasedScope, Event};
use crate::lifecycle::Lifecycle;
use crate::model::{key_of, Item, ItemKind, Keyed, Person};

fn add<T: Keyed>(items: &mut Vec<T>, item: T) {
    let key = item.key();
    if !items.iter().any(|i| i.key() == key) {
        items.push(item);
    }
}

fn update<T: Keyed>(items: &mut [T], item: T) {
    let key = item.key();
    if let Some(slot) = items.iter_mut().find(|i| i.key() == key) {
        *slot = item;
    }
}

fn remove<T: Keyed>(items: &mut Vec<T>, key: &str) {
    items.retain(|i| i.key() != key);
}

/// Adds or updates `item` in the vector of its kind, creating the component if needed.
fn with_items(p: &mut Person, item: Item, add_or_update: bool) {
    match item {
        Item::Email(x) => put(
            &mut p.contact.get_or_insert_default().emails,
            x,
            add_or_update,
        ),
        Item::Phone(x) => put(
            &mut p.contact.get_or_insert_default().phones,
            x,
            add_or_update,
        ),
        Item::Address(x) => put(
            &mut p.contact.get_or_insert_default().addresses,
            x,
            add_or_update,
        ),
        Item::Skill(x) => put(
            &mut p.professional.get_or_insert_default().skills,
            x,
            add_or_update,
        ),
        Item::Employment(x) => put(
            &mut p.professional.get_or_insert_default().employments,
            x,
            add_or_update,
        ),
        Item::Certification(x) => put(
            &mut p.professional.get_or_insert_default().certifications,
            x,
            add_or_update,
        ),
        Item::Relationship(x) => put(
            &mut p.social.get_or_insert_default().relationships,
            x,
            add_or_update,
        ),
        Item::Attribute(x) => put(
            &mut p.attributes.get_or_insert_default().items,
            x,
            add_or_update,
        ),
    }
}

fn put<T: Keyed>(items: &mut Vec<T>, item: T, add_not_update: bool) {
    if add_not_update {
        add(items, item)
    } else {
        update(items, item)
    }
}

fn remove_item(p: &mut Person, kind: ItemKind, key: &str) {
    match kind {
        ItemKind::Email => p
            .contact
            .iter_mut()
            .for_each(|c| remove(&mut c.emails, key)),
        ItemKind::Phone => p
            .contact
            .iter_mut()
            .for_each(|c| remove(&mut c.phones, key)),
        ItemKind::Address => p
            .contact
            .iter_mut()
            .for_each(|c| remove(&mut c.addresses, key)),
        ItemKind::Skill => p
            .professional
            .iter_mut()
            .for_each(|x| remove(&mut x.skills, key)),
        ItemKind::Employment => p
            .professional
            .iter_mut()
            .for_each(|x| remove(&mut x.employments, key)),
        ItemKind::Certification => p
            .professional
            .iter_mut()
            .for_each(|x| remove(&mut x.certifications, key)),
        ItemKind::Relationship => p
            .social
            .iter_mut()
            .for_each(|x| remove(&mut x.relationships, key)),
        ItemKind::Attribute => p
            .attributes
            .iter_mut()
            .for_each(|x| remove(&mut x.items, key)),
    }
    // Components come and go with their content.
    if p.contact
        .as_ref()
        .is_some_and(|c| c.emails.is_empty() && c.phones.is_empty() && c.addresses.is_empty())
    {
        p.contact = None;
    }
    if p.professional.as_ref().is_some_and(|x| {
        x.skills.is_empty() && x.employments.is_empty() && x.certifications.is_empty()
    }) {
        p.professional = None;
    }
    if p.social
        .as_ref()
        .is_some_and(|x| x.relationships.is_empty())
    {
        p.social = None;
    }
    if p.attributes.as_ref().is_some_and(|x| x.items.is_empty()) {
        p.attributes = None;
    }
}

/// What a masked value reads as.
pub const MASKED: &str = "[masked]";

/// Folds `event` into `person` (`None`: not registered yet).
///
/// A masked event ([`Event::Masked`]) still moves the lifecycle as its type says, with
/// [`MASKED`] or nothing in place of its values; masked items are left out. An erasure of the
/// whole person clears every value and ends in [`Lifecycle::Erased`]. An erasure of a
/// component changes nothing by itself: the events it masks are read as masked from then on,
/// so the component's values are absent from every fold of the chain (a live state held
/// across the erasure must be folded again from the chain).
pub fn apply(person: Option<Person>, event: &Event) -> Option<Person> {
    let mut p = match (person, event) {
        (None, Event::Registered { person, legal_name }) => {
            return Some(Person::new(*person, legal_name.clone()))
        }
        (None, Event::Masked { person, event_type }) if event_type == "PersonRegistered" => {
            return Some(Person::new(*person, MASKED.into()))
        }
        (None, _) => return None,
        // Nothing but another erasure may follow an erasure of the person (`decide` refuses
        // the rest; a foreign writer's event changes nothing, and brings no value back).
        (Some(p), e) if p.lifecycle == Lifecycle::Erased && !matches!(e, Event::Erased { .. }) => {
            return Some(p)
        }
        (Some(p), _) => p,
    };
    match event {
        Event::Registered { .. } | Event::MergeReceived { .. } => {}
        Event::Renamed { new, .. } => p.identity.legal_name = new.clone(),
        Event::BirthDateSet { date } => p.identity.birth_date = Some(*date),
        Event::DeathRecorded { date } => {
            p.identity.death_date = Some(*date);
            p.lifecycle = Lifecycle::Deceased;
        }
        Event::Suspended { .. } => p.lifecycle = Lifecycle::Suspended,
        Event::Reactivated { .. } => p.lifecycle = Lifecycle::Active,
        Event::Archived { .. } => p.lifecycle = Lifecycle::Archived,
        Event::MergedInto { into } => p.lifecycle = Lifecycle::MergedInto(*into),
        Event::ItemAdded(item) => with_items(&mut p, item.clone(), true),
        Event::ItemUpdated(item) => with_items(&mut p, item.clone(), false),
        Event::ItemRemoved { kind, key } => remove_item(&mut p, *kind, key),
        Event::EmailVerified { address } => {
            let key = key_of(ItemKind::Email, address);
            for e in p.contact.iter_mut().flat_map(|c| c.emails.iter_mut()) {
                if e.key() == key {
                    e.verified = true;
                }
            }
        }
        Event::PreferencesSet(prefs) => p.preferences = Some(prefs.clone()),
        Event::PreferencesCleared => p.preferences = None,
        Event::Erased {
            scope: ErasedScope::Person,
            ..
        } => {
            let id = p.id();
            p = Person::new(id, MASKED.into());
            p.lifecycle = Lifecycle::Erased;
        }
        Event::Erased {
            scope: ErasedScope::Component(_),
            ..
        } => {}
        Event::Masked { event_type, .. } => match event_type.as_str() {
            "PersonRenamed" => p.identity.legal_name = MASKED.into(),
            "BirthDateSet" => p.identity.birth_date = None,
            "DeathRecorded" => {
                p.identity.death_date = None;
                p.lifecycle = Lifecycle::Deceased;
            }
            "PersonSuspended" => p.lifecycle = Lifecycle::Suspended,
            "PersonReactivated" => p.lifecycle = Lifecycle::Active,
            "PersonArchived" => p.lifecycle = Lifecycle::Archived,
            // Items, email verifications, preferences: their values are gone.
            _ => {}
        },
    }
    Some(p)
}
