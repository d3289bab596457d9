//! [`Event`]s: what happened to a person, in the past tense, and their payload wire format with
//! schema versions and upcasters.
//!
//! Every event is stored as a ledger event whose `type` is the name below, whose `schema` is the
//! version of its payload, and whose payload block holds the fields below as a DAG-CBOR map
//! (dates as `YYYY-MM-DD` text, person ids as 16 bytes). Personal values exist only in the
//! payload. Reading an older schema version runs its upcaster, so the rest of the domain only
//! ever sees current events.
//!
//! | type | schema | payload |
//! |---|---|---|
//! | `PersonRegistered` | 2 | `person`, `legal_name` (v1: `person`, `name`) |
//! | `PersonRenamed` | 1 | `old`, `new`, `reason` |
//! | `BirthDateSet`, `DeathRecorded` | 1 | `date` |
//! | `PersonSuspended`, `PersonReactivated`, `PersonArchived` | 1 | `reason` |
//! | `PersonMergedInto` | 1 | `into` |
//! | `PersonMergeReceived` | 1 | `from` |
//! | `EmailAdded` | 2 | `address`, `verified` (v1: `email`) |
//! | `<Kind>Added`, `<Kind>Updated` | 1 | the item's fields (see `model`) |
//! | `<Kind>Removed` | 1 | `key` |
//! | `EmailVerified` | 1 | `address` |
//! | `PreferencesSet` | 1 | `language`, `channels` |
//! | `PreferencesCleared` | 1 | none |
//! | `Tombstone` | 1 | the ledger's tombstone: `masks`, `reason`, `scope` (`person` or `component:<kind>`) |
//!
//! An event whose payload a later tombstone masks is read as [`Event::Masked`]: its type and
//! height stay known, its values are gone.

use ipld_core::ipld::Ipld;
use personctl_ledger::{Block, Cid, Payload, Tombstone, TOMBSTONE_SCHEMA, TOMBSTONE_TYPE};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::{
    Address, Attribute, Certification, Date, Email, Employment, Item, ItemKind, Phone, Preferences,
    Relationship, Skill,
};
use crate::PersonId;

/// Something that happened to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the variants' fields are named for what they hold
pub enum Event {
    /// A person was registered.
    Registered {
        person: PersonId,
        legal_name: String,
    },
    /// The legal name changed.
    Renamed {
        old: String,
        new: String,
        reason: String,
    },
    /// The date of birth was set.
    BirthDateSet { date: Date },
    /// The death was recorded.
    DeathRecorded { date: Date },
    /// The person was suspended.
    Suspended { reason: String },
    /// The person was reactivated.
    Reactivated { reason: String },
    /// The person was archived.
    Archived { reason: String },
    /// The person was merged into another person.
    MergedInto { into: PersonId },
    /// Another person was merged into this one.
    MergeReceived { from: PersonId },
    /// An item was added.
    ItemAdded(Item),
    /// An item was changed (same key).
    ItemUpdated(Item),
    /// An item was removed.
    ItemRemoved { kind: ItemKind, key: String },
    /// An email address was verified.
    EmailVerified { address: String },
    /// Preferences were set.
    PreferencesSet(Preferences),
    /// Preferences were removed.
    PreferencesCleared,
    /// Personal data was erased (a ledger tombstone): the payloads named are masked from now
    /// on. Carries no personal value: only what kind of data, why, and which blocks.
    Erased {
        scope: ErasedScope,
        reason: String,
        masks: Vec<Cid>,
    },
    /// An event whose payload a later tombstone masks: its type is known, its values are not.
    /// Only ever read, never appended.
    Masked {
        person: PersonId,
        event_type: String,
    },
}

/// What an erasure covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErasedScope {
    /// Every personal value of the person.
    Person,
    /// The values of one component (one item, or every item of the kind).
    Component(ItemKind),
}

impl ErasedScope {
    /// The tombstone's `scope` text: `person` or `component:<kind>`.
    pub fn label(&self) -> String {
        match self {
            ErasedScope::Person => "person".into(),
            ErasedScope::Component(kind) => format!("component:{}", kind.command_name()),
        }
    }

    fn parse(label: &str) -> Option<ErasedScope> {
        if label == "person" {
            return Some(ErasedScope::Person);
        }
        let kind = label.strip_prefix("component:")?;
        ItemKind::ALL
            .into_iter()
            .find(|k| k.command_name() == kind)
            .map(ErasedScope::Component)
    }
}

/// The current schema version of every event type, for printing and tests.
pub fn schemas() -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = FIXED_TYPES
        .iter()
        .map(|t| (t.to_string(), current_schema(t)))
        .collect();
    for kind in ItemKind::ALL {
        for verb in ["Added", "Updated", "Removed"] {
            let name = format!("{}{verb}", kind.name());
            let schema = current_schema(&name);
            out.push((name, schema));
        }
    }
    out.push((TOMBSTONE_TYPE.into(), TOMBSTONE_SCHEMA));
    out
}

fn is_known_type(event_type: &str) -> bool {
    FIXED_TYPES.contains(&event_type)
        || event_type == TOMBSTONE_TYPE
        || ItemKind::ALL.iter().any(|k| {
            event_type
                .strip_prefix(k.name())
                .is_some_and(|verb| matches!(verb, "Added" | "Updated" | "Removed"))
        })
}

/// Event types that are not per item kind.
const FIXED_TYPES: [&str; 12] = [
    "PersonRegistered",
    "PersonRenamed",
    "BirthDateSet",
    "DeathRecorded",
    "PersonSuspended",
    "PersonReactivated",
    "PersonArchived",
    "PersonMergedInto",
    "PersonMergeReceived",
    "EmailVerified",
    "PreferencesSet",
    "PreferencesCleared",
];

fn current_schema(event_type: &str) -> u64 {
    match event_type {
        "PersonRegistered" | "EmailAdded" => 2,
        TOMBSTONE_TYPE => TOMBSTONE_SCHEMA,
        _ => 1,
    }
}

impl Event {
    /// The ledger event type name.
    pub fn type_name(&self) -> String {
        match self {
            Event::Registered { .. } => "PersonRegistered".into(),
            Event::Renamed { .. } => "PersonRenamed".into(),
            Event::BirthDateSet { .. } => "BirthDateSet".into(),
            Event::DeathRecorded { .. } => "DeathRecorded".into(),
            Event::Suspended { .. } => "PersonSuspended".into(),
            Event::Reactivated { .. } => "PersonReactivated".into(),
            Event::Archived { .. } => "PersonArchived".into(),
            Event::MergedInto { .. } => "PersonMergedInto".into(),
            Event::MergeReceived { .. } => "PersonMergeReceived".into(),
            Event::ItemAdded(item) => format!("{}Added", item.kind().name()),
            Event::ItemUpdated(item) => format!("{}Updated", item.kind().name()),
            Event::ItemRemoved { kind, .. } => format!("{}Removed", kind.name()),
            Event::EmailVerified { .. } => "EmailVerified".into(),
            Event::PreferencesSet(_) => "PreferencesSet".into(),
            Event::PreferencesCleared => "PreferencesCleared".into(),
            Event::Erased { .. } => TOMBSTONE_TYPE.into(),
            Event::Masked { event_type, .. } => event_type.clone(),
        }
    }

    /// The schema version this software writes for the event's type.
    pub fn schema(&self) -> u64 {
        current_schema(&self.type_name())
    }
}

/// Why a stored event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type name is not a person event.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The schema version is newer than this software knows (or was never used).
    #[error(
        "{event_type} schema version {schema} is not known (this software reads up to {known})"
    )]
    UnknownSchema {
        /// The event type.
        event_type: String,
        /// The version found.
        schema: u64,
        /// The newest version known.
        known: u64,
    },
    /// The payload is missing, or present where none is expected.
    #[error("{event_type}: {reason}")]
    Payload {
        /// The event type.
        event_type: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisteredV2 {
    person: PersonId,
    legal_name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisteredV1 {
    person: PersonId,
    name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenamedV1 {
    old: String,
    new: String,
    reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DateV1 {
    date: Date,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonV1 {
    reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergedIntoV1 {
    into: PersonId,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeReceivedV1 {
    from: PersonId,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyV1 {
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressV1 {
    address: String,
}

/// `EmailAdded` version 1 had only the address, under `email`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailAddedV1 {
    email: String,
}

fn to_ipld<T: Serialize>(value: &T) -> Ipld {
    ipld_core::serde::to_ipld(value).expect("payload types serialise to IPLD")
}

fn item_ipld(item: &Item) -> Ipld {
    match item {
        Item::Email(x) => to_ipld(x),
        Item::Phone(x) => to_ipld(x),
        Item::Address(x) => to_ipld(x),
        Item::Skill(x) => to_ipld(x),
        Item::Employment(x) => to_ipld(x),
        Item::Certification(x) => to_ipld(x),
        Item::Relationship(x) => to_ipld(x),
        Item::Attribute(x) => to_ipld(x),
    }
}

/// The payload data of an event, in its current schema (`None`: no payload).
pub fn encode_payload(event: &Event) -> Option<Ipld> {
    Some(match event {
        Event::Registered { person, legal_name } => to_ipld(&RegisteredV2 {
            person: *person,
            legal_name: legal_name.clone(),
        }),
        Event::Renamed { old, new, reason } => to_ipld(&RenamedV1 {
            old: old.clone(),
            new: new.clone(),
            reason: reason.clone(),
        }),
        Event::BirthDateSet { date } | Event::DeathRecorded { date } => {
            to_ipld(&DateV1 { date: *date })
        }
        Event::Suspended { reason }
        | Event::Reactivated { reason }
        | Event::Archived { reason } => to_ipld(&ReasonV1 {
            reason: reason.clone(),
        }),
        Event::MergedInto { into } => to_ipld(&MergedIntoV1 { into: *into }),
        Event::MergeReceived { from } => to_ipld(&MergeReceivedV1 { from: *from }),
        Event::ItemAdded(item) | Event::ItemUpdated(item) => item_ipld(item),
        Event::ItemRemoved { key, .. } => to_ipld(&KeyV1 { key: key.clone() }),
        Event::EmailVerified { address } => to_ipld(&AddressV1 {
            address: address.clone(),
        }),
        Event::PreferencesSet(p) => to_ipld(p),
        Event::Erased {
            scope,
            reason,
            masks,
        } => to_ipld(&Tombstone {
            masks: masks.clone(),
            reason: reason.clone(),
            scope: scope.label(),
        }),
        // Never appended: a masked event is what reading finds, not what a command decides.
        Event::PreferencesCleared | Event::Masked { .. } => return None,
    })
}

fn from<T: Serialize + DeserializeOwned>(
    event_type: &str,
    data: Option<&Block>,
) -> Result<T, DecodeError> {
    let data = data.ok_or_else(|| DecodeError::Payload {
        event_type: event_type.into(),
        reason: "payload missing".into(),
    })?;
    Payload::decode_as(data).map_err(|e| DecodeError::Payload {
        event_type: event_type.into(),
        reason: e.to_string(),
    })
}

fn item<T: Serialize + DeserializeOwned>(
    event_type: &str,
    data: Option<&Block>,
    wrap: fn(T) -> Item,
) -> Result<Item, DecodeError> {
    from(event_type, data).map(wrap)
}

fn decode_item(
    kind: ItemKind,
    event_type: &str,
    data: Option<&Block>,
) -> Result<Item, DecodeError> {
    match kind {
        ItemKind::Email => item(event_type, data, Item::Email),
        ItemKind::Phone => item::<Phone>(event_type, data, Item::Phone),
        ItemKind::Address => item::<Address>(event_type, data, Item::Address),
        ItemKind::Skill => item::<Skill>(event_type, data, Item::Skill),
        ItemKind::Employment => item::<Employment>(event_type, data, Item::Employment),
        ItemKind::Certification => item::<Certification>(event_type, data, Item::Certification),
        ItemKind::Relationship => item::<Relationship>(event_type, data, Item::Relationship),
        ItemKind::Attribute => item::<Attribute>(event_type, data, Item::Attribute),
    }
}

/// Reads a stored event back, upcasting older schema versions to the current one.
pub fn decode(event_type: &str, schema: u64, data: Option<&Block>) -> Result<Event, DecodeError> {
    let known = current_schema(event_type);
    if schema == 0 || schema > known {
        if !is_known_type(event_type) {
            return Err(DecodeError::UnknownType(event_type.into()));
        }
        return Err(DecodeError::UnknownSchema {
            event_type: event_type.into(),
            schema,
            known,
        });
    }
    let t = event_type;
    let event = match (t, schema) {
        ("PersonRegistered", 1) => {
            let v1: RegisteredV1 = from(t, data)?;
            Event::Registered {
                person: v1.person,
                legal_name: v1.name,
            }
        }
        ("PersonRegistered", 2) => {
            let v2: RegisteredV2 = from(t, data)?;
            Event::Registered {
                person: v2.person,
                legal_name: v2.legal_name,
            }
        }
        ("PersonRenamed", _) => {
            let v: RenamedV1 = from(t, data)?;
            Event::Renamed {
                old: v.old,
                new: v.new,
                reason: v.reason,
            }
        }
        ("BirthDateSet", _) => Event::BirthDateSet {
            date: from::<DateV1>(t, data)?.date,
        },
        ("DeathRecorded", _) => Event::DeathRecorded {
            date: from::<DateV1>(t, data)?.date,
        },
        ("PersonSuspended", _) => Event::Suspended {
            reason: from::<ReasonV1>(t, data)?.reason,
        },
        ("PersonReactivated", _) => Event::Reactivated {
            reason: from::<ReasonV1>(t, data)?.reason,
        },
        ("PersonArchived", _) => Event::Archived {
            reason: from::<ReasonV1>(t, data)?.reason,
        },
        ("PersonMergedInto", _) => Event::MergedInto {
            into: from::<MergedIntoV1>(t, data)?.into,
        },
        ("PersonMergeReceived", _) => Event::MergeReceived {
            from: from::<MergeReceivedV1>(t, data)?.from,
        },
        ("EmailAdded", 1) => {
            let v1: EmailAddedV1 = from(t, data)?;
            Event::ItemAdded(Item::Email(Email {
                address: v1.email,
                verified: false,
            }))
        }
        ("EmailVerified", _) => Event::EmailVerified {
            address: from::<AddressV1>(t, data)?.address,
        },
        ("PreferencesSet", _) => Event::PreferencesSet(from(t, data)?),
        ("PreferencesCleared", _) => {
            if data.is_some() {
                return Err(DecodeError::Payload {
                    event_type: t.into(),
                    reason: "unexpected payload".into(),
                });
            }
            Event::PreferencesCleared
        }
        (TOMBSTONE_TYPE, _) => {
            let tombstone: Tombstone = from(t, data)?;
            let scope =
                ErasedScope::parse(&tombstone.scope).ok_or_else(|| DecodeError::Payload {
                    event_type: t.into(),
                    reason: format!("unknown erasure scope {:?}", tombstone.scope),
                })?;
            Event::Erased {
                scope,
                reason: tombstone.reason,
                masks: tombstone.masks,
            }
        }
        _ => {
            let kind = ItemKind::ALL.into_iter().find(|k| t.starts_with(k.name()));
            match (kind, kind.map(|k| &t[k.name().len()..])) {
                (Some(kind), Some("Added")) => Event::ItemAdded(decode_item(kind, t, data)?),
                (Some(kind), Some("Updated")) => Event::ItemUpdated(decode_item(kind, t, data)?),
                (Some(kind), Some("Removed")) => Event::ItemRemoved {
                    kind,
                    key: from::<KeyV1>(t, data)?.key,
                },
                _ => return Err(DecodeError::UnknownType(t.into())),
            }
        }
    };
    Ok(event)
}

/// The payload of `PersonRegistered` version 1 (`{"person", "name"}`), for fixtures and tests
/// of the upcaster.
pub fn registered_v1_payload(person: PersonId, name: &str) -> Ipld {
    to_ipld(&RegisteredV1 {
        person,
        name: name.to_string(),
    })
}

/// The payload of `EmailAdded` version 1 (`{"email"}`), for fixtures and tests of the upcaster.
pub fn email_added_v1_payload(email: &str) -> Ipld {
    to_ipld(&EmailAddedV1 {
        email: email.to_string(),
    })
}
