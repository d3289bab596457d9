//! [`PersonWorld`]: persons as bevy_ecs entities, and the queries the CLI needs. This is the
//! only module that names bevy_ecs's `World`.
//!
//! Each person is one entity with an [`Identity`] and a [`Lifecycle`], plus each optional
//! component ([`Contact`], [`Professional`], [`Social`], [`Preferences`], [`Attributes`]) while
//! it has content. Two indexes map ids and email addresses to entities.
//!
//! Invariant 13: the only module that names bevy_ecs's `World`.

use std::collections::BTreeMap;

use bevy_ecs::entity::Entity;
use bevy_ecs::world::World;
use rustc_hash::FxHashMap;

use crate::lifecycle::{Lifecycle, State};
use crate::model::{
    key_of, Attributes, Contact, Identity, ItemKind, Person, Preferences, Professional, Social,
};
use crate::PersonId;

/// Persons held in an ECS world.
pub struct PersonWorld {
    world: World,
    by_id: FxHashMap<PersonId, Entity>,
    by_email: FxHashMap<String, Vec<PersonId>>,
}

impl Default for PersonWorld {
    fn default() -> Self {
        PersonWorld::new()
    }
}

fn sync<C: bevy_ecs::component::Component>(world: &mut World, entity: Entity, value: Option<C>) {
    let mut e = world.entity_mut(entity);
    match value {
        Some(v) => {
            e.insert(v);
        }
        None => {
            e.remove::<C>();
        }
    }
}

impl PersonWorld {
    /// An empty world.
    pub fn new() -> PersonWorld {
        PersonWorld {
            world: World::new(),
            by_id: FxHashMap::default(),
            by_email: FxHashMap::default(),
        }
    }

    /// A world holding `persons`.
    pub fn from_persons(persons: impl IntoIterator<Item = Person>) -> PersonWorld {
        let mut world = PersonWorld::new();
        for p in persons {
            world.upsert(p);
        }
        world
    }

    /// Inserts or replaces a person.
    pub fn upsert(&mut self, person: Person) {
        let id = person.id();
        let entity = match self.by_id.get(&id) {
            Some(&e) => {
                let old: Vec<String> = self.emails_of(e);
                for address in old {
                    if let Some(ids) = self.by_email.get_mut(&address) {
                        ids.retain(|x| *x != id);
                        if ids.is_empty() {
                            self.by_email.remove(&address);
                        }
                    }
                }
                e
            }
            None => {
                let e = self.world.spawn_empty().id();
                self.by_id.insert(id, e);
                e
            }
        };
        for email in person.contact.iter().flat_map(|c| &c.emails) {
            self.by_email
                .entry(key_of(ItemKind::Email, &email.address))
                .or_default()
                .push(id);
        }
        let Person {
            identity,
            lifecycle,
            contact,
            professional,
            social,
            preferences,
            attributes,
        } = person;
        self.world.entity_mut(entity).insert((identity, lifecycle));
        sync(&mut self.world, entity, contact);
        sync(&mut self.world, entity, professional);
        sync(&mut self.world, entity, social);
        sync(&mut self.world, entity, preferences);
        sync(&mut self.world, entity, attributes);
    }

    fn emails_of(&self, entity: Entity) -> Vec<String> {
        self.world
            .get::<Contact>(entity)
            .map(|c| {
                c.emails
                    .iter()
                    .map(|e| key_of(ItemKind::Email, &e.address))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A person, read back from its components.
    pub fn get(&self, id: PersonId) -> Option<Person> {
        let entity = *self.by_id.get(&id)?;
        let w = &self.world;
        Some(Person {
            identity: w.get::<Identity>(entity)?.clone(),
            lifecycle: *w.get::<Lifecycle>(entity)?,
            contact: w.get::<Contact>(entity).cloned(),
            professional: w.get::<Professional>(entity).cloned(),
            social: w.get::<Social>(entity).cloned(),
            preferences: w.get::<Preferences>(entity).cloned(),
            attributes: w.get::<Attributes>(entity).cloned(),
        })
    }

    /// The persons with this email address (case-insensitive), by id.
    pub fn by_email(&self, address: &str) -> Vec<PersonId> {
        self.by_email
            .get(&key_of(ItemKind::Email, address))
            .cloned()
            .unwrap_or_default()
    }

    /// Number of persons.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every person id, sorted.
    pub fn ids(&self) -> Vec<PersonId> {
        let mut ids: Vec<PersonId> = self.by_id.keys().copied().collect();
        ids.sort();
        ids
    }

    /// How many persons are in each lifecycle state (an ECS query).
    pub fn count_by_state(&mut self) -> BTreeMap<State, usize> {
        let mut counts = BTreeMap::new();
        let mut query = self.world.query::<&Lifecycle>();
        for lifecycle in query.iter(&self.world) {
            *counts.entry(lifecycle.state()).or_insert(0) += 1;
        }
        counts
    }
}
