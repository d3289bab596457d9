//! The person model: value types, the optional components a person can carry, and [`Person`],
//! the aggregate state that `decide` reads and `apply` folds events into.
//!
//! The value types double as the payload wire format of the events that carry them (they
//! derive serde); the components derive `bevy_ecs::Component` so that `ecs` can hold them.

use bevy_ecs::component::Component;
use serde::{Deserialize, Serialize};

use crate::lifecycle::Lifecycle;
use crate::PersonId;

/// A calendar date (ISO 8601 `YYYY-MM-DD` in every wire format).
pub type Date = jiff::civil::Date;

/// Dates as commands and payloads spell them: exactly `YYYY-MM-DD`. A date with a time or an
/// offset (`2020-01-02T10:00`, which a lenient parser would cut to its day) is refused.
pub(crate) mod strict_date {
    use serde::{Deserialize, Deserializer};

    use super::Date;

    fn parse<E: serde::de::Error>(field: &str, text: &str) -> Result<Date, E> {
        parse_any(text).map_err(|e: E| E::custom(format!("{field}: {e}")))
    }

    fn parse_any<E: serde::de::Error>(text: &str) -> Result<Date, E> {
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return Err(E::custom(format!(
                "{text:?} is not a date in the form YYYY-MM-DD"
            )));
        }
        text.parse()
            .map_err(|e| E::custom(format!("{text:?} is not a valid date (YYYY-MM-DD): {e}")))
    }

    fn one<'de, D: Deserializer<'de>>(field: &str, d: D) -> Result<Date, D::Error> {
        parse(field, &String::deserialize(d)?)
    }

    fn opt<'de, D: Deserializer<'de>>(field: &str, d: D) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| parse(field, &t))
            .transpose()
    }

    // One function per date field, so that an error names the field it is about.
    macro_rules! fields {
        ($($name:ident: $kind:ident -> $t:ty),* $(,)?) => {$(
            pub(crate) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                $kind(stringify!($name), d)
            }
        )*};
    }
    fields! {
        date: one -> Date,
        start: one -> Date,
        end: opt -> Option<Date>,
        issued: one -> Date,
        expires: opt -> Option<Date>,
        valid_from: opt -> Option<Date>,
        valid_until: opt -> Option<Date>,
    }
}

/// An email address and whether it was verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// The address, as given (compared case-insensitively).
    pub address: String,
    /// Whether the address was verified (`EmailVerified`).
    #[serde(default)]
    pub verified: bool,
}

/// A phone number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// The number: an optional `+`, then digits, spaces and dashes.
    pub number: String,
    /// What kind of line (`mobile`, `home`, `work`, ...).
    #[serde(default)]
    pub kind: String,
}

/// A postal address, keyed by its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// The key: `home`, `work`, ...
    pub label: String,
    /// Street and number.
    #[serde(default)]
    pub street: String,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Postal code.
    #[serde(default)]
    pub postal_code: String,
    /// Country.
    #[serde(default)]
    pub country: String,
}

/// A skill with a level from 1 (novice) to 5 (expert).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    /// The skill's name (compared case-insensitively).
    pub name: String,
    /// 1 to 5.
    pub level: u8,
}

/// An employment at an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Employment {
    /// The key, chosen by the writer (for example the organisation's id and the start year).
    pub id: String,
    /// The organisation's id.
    pub organisation: String,
    /// The role.
    pub role: String,
    /// First day.
    #[serde(deserialize_with = "strict_date::start")]
    pub start: Date,
    /// Last day, if it ended.
    #[serde(default, deserialize_with = "strict_date::end")]
    pub end: Option<Date>,
}

/// A certification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// The key: the certification's name.
    pub name: String,
    /// Who issued it.
    #[serde(default)]
    pub issuer: String,
    /// When it was issued.
    #[serde(deserialize_with = "strict_date::issued")]
    pub issued: Date,
    /// When it expires, if it does.
    #[serde(default, deserialize_with = "strict_date::expires")]
    pub expires: Option<Date>,
}

/// A relationship to another person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    /// The other person. (Named `other` so that it never collides with the `person` a command
    /// is addressed to.)
    pub other: PersonId,
    /// What kind (`colleague`, `manager`, `spouse`, ...).
    pub kind: String,
}

/// A custom attribute with provenance and a validity period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// The key.
    pub name: String,
    /// The value.
    pub value: String,
    /// Where the value came from.
    #[serde(default)]
    pub source: String,
    /// Confidence in percent, 0 to 100.
    #[serde(default)]
    pub confidence: u8,
    /// First day the value holds.
    #[serde(default, deserialize_with = "strict_date::valid_from")]
    pub valid_from: Option<Date>,
    /// Last day the value holds.
    #[serde(default, deserialize_with = "strict_date::valid_until")]
    pub valid_until: Option<Date>,
}

/// Preferences: language and notification channels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Component)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Preferred language (a BCP 47 tag such as `en` or `fr-CH`).
    #[serde(default)]
    pub language: Option<String>,
    /// Notification channels in order of preference (`email`, `sms`, `post`, ...).
    #[serde(default)]
    pub channels: Vec<String>,
}

/// The kinds of keyed items a person can have several of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// [`Email`], keyed by address (case-insensitive).
    Email,
    /// [`Phone`], keyed by number.
    Phone,
    /// [`Address`], keyed by label.
    Address,
    /// [`Skill`], keyed by name (case-insensitive).
    Skill,
    /// [`Employment`], keyed by id.
    Employment,
    /// [`Certification`], keyed by name.
    Certification,
    /// [`Relationship`], keyed by `<other person's id>:<kind>`.
    Relationship,
    /// [`Attribute`], keyed by name.
    Attribute,
}

impl ItemKind {
    /// Every kind.
    pub const ALL: [ItemKind; 8] = [
        ItemKind::Email,
        ItemKind::Phone,
        ItemKind::Address,
        ItemKind::Skill,
        ItemKind::Employment,
        ItemKind::Certification,
        ItemKind::Relationship,
        ItemKind::Attribute,
    ];

    /// The name used in event type names (`EmailAdded`) .
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Email => "Email",
            ItemKind::Phone => "Phone",
            ItemKind::Address => "Address",
            ItemKind::Skill => "Skill",
            ItemKind::Employment => "Employment",
            ItemKind::Certification => "Certification",
            ItemKind::Relationship => "Relationship",
            ItemKind::Attribute => "Attribute",
        }
    }

    /// The name used in commands and on the command line (`email`).
    pub fn command_name(self) -> &'static str {
        match self {
            ItemKind::Email => "email",
            ItemKind::Phone => "phone",
            ItemKind::Address => "address",
            ItemKind::Skill => "skill",
            ItemKind::Employment => "employment",
            ItemKind::Certification => "certification",
            ItemKind::Relationship => "relationship",
            ItemKind::Attribute => "attribute",
        }
    }
}

/// One keyed item of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An email address.
    Email(Email),
    /// A phone number.
    Phone(Phone),
    /// A postal address.
    Address(Address),
    /// A skill.
    Skill(Skill),
    /// An employment.
    Employment(Employment),
    /// A certification.
    Certification(Certification),
    /// A relationship.
    Relationship(Relationship),
    /// A custom attribute.
    Attribute(Attribute),
}

impl Item {
    /// The item's kind.
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Email(_) => ItemKind::Email,
            Item::Phone(_) => ItemKind::Phone,
            Item::Address(_) => ItemKind::Address,
            Item::Skill(_) => ItemKind::Skill,
            Item::Employment(_) => ItemKind::Employment,
            Item::Certification(_) => ItemKind::Certification,
            Item::Relationship(_) => ItemKind::Relationship,
            Item::Attribute(_) => ItemKind::Attribute,
        }
    }

    /// The item's key within its kind (normalised: see [`key_of`]).
    pub fn key(&self) -> String {
        match self {
            Item::Email(x) => x.key(),
            Item::Phone(x) => x.key(),
            Item::Address(x) => x.key(),
            Item::Skill(x) => x.key(),
            Item::Employment(x) => x.key(),
            Item::Certification(x) => x.key(),
            Item::Relationship(x) => x.key(),
            Item::Attribute(x) => x.key(),
        }
    }
}

/// A value with a key within its kind: the one place the key rules are written.
pub(crate) trait Keyed {
    /// The normalised key.
    fn key(&self) -> String;
}

macro_rules! keyed {
    ($t:ty, $kind:expr, |$x:ident| $raw:expr) => {
        impl Keyed for $t {
            fn key(&self) -> String {
                let $x = self;
                key_of($kind, &$raw)
            }
        }
    };
}

keyed!(Email, ItemKind::Email, |x| x.address);
keyed!(Phone, ItemKind::Phone, |x| x.number);
keyed!(Address, ItemKind::Address, |x| x.label);
keyed!(Skill, ItemKind::Skill, |x| x.name);
keyed!(Employment, ItemKind::Employment, |x| x.id);
keyed!(Certification, ItemKind::Certification, |x| x.name);
keyed!(Relationship, ItemKind::Relationship, |x| format!(
    "{}:{}",
    x.other, x.kind
));
keyed!(Attribute, ItemKind::Attribute, |x| x.name);

/// The item of `items` with `key`, copied (only the match is copied).
fn find<T: Keyed + Clone>(items: Option<&Vec<T>>, key: &str, wrap: fn(T) -> Item) -> Option<Item> {
    items?.iter().find(|i| i.key() == key).cloned().map(wrap)
}

/// Normalises a key as given in a command: trimmed; emails and skills case-insensitive; phone
/// numbers without spaces and dashes.
pub fn key_of(kind: ItemKind, raw: &str) -> String {
    let raw = raw.trim();
    match kind {
        ItemKind::Email | ItemKind::Skill => raw.to_lowercase(),
        ItemKind::Phone => raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect(),
        _ => raw.to_string(),
    }
}

/// The core identity: always present.
#[derive(Clone, Debug, PartialEq, Eq, Component)]
pub struct Identity {
    /// The person's id.
    pub id: PersonId,
    /// The legal name (never empty).
    pub legal_name: String,
    /// Date of birth, if known.
    pub birth_date: Option<Date>,
    /// Date of death, if recorded.
    pub death_date: Option<Date>,
}

/// Contact details; present while the person has at least one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Component)]
pub struct Contact {
    /// Email addresses, in the order they were added.
    pub emails: Vec<Email>,
    /// Phone numbers.
    pub phones: Vec<Phone>,
    /// Postal addresses.
    pub addresses: Vec<Address>,
}

/// Professional details; present while the person has at least one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Component)]
pub struct Professional {
    /// Skills.
    pub skills: Vec<Skill>,
    /// Employments.
    pub employments: Vec<Employment>,
    /// Certifications.
    pub certifications: Vec<Certification>,
}

/// Relationships to other persons; present while there is at least one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Component)]
pub struct Social {
    /// Relationships.
    pub relationships: Vec<Relationship>,
}

/// Custom attributes; present while there is at least one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Component)]
pub struct Attributes {
    /// Attributes.
    pub items: Vec<Attribute>,
}

/// A person: the aggregate state. Optional components are `None` when empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Core identity.
    pub identity: Identity,
    /// Where the person is in its lifecycle.
    pub lifecycle: Lifecycle,
    /// Contact details.
    pub contact: Option<Contact>,
    /// Professional details.
    pub professional: Option<Professional>,
    /// Relationships.
    pub social: Option<Social>,
    /// Preferences.
    pub preferences: Option<Preferences>,
    /// Custom attributes.
    pub attributes: Option<Attributes>,
}

impl Person {
    /// A freshly registered person.
    pub fn new(id: PersonId, legal_name: String) -> Person {
        Person {
            identity: Identity {
                id,
                legal_name,
                birth_date: None,
                death_date: None,
            },
            lifecycle: Lifecycle::Active,
            contact: None,
            professional: None,
            social: None,
            preferences: None,
            attributes: None,
        }
    }

    /// The person's id.
    pub fn id(&self) -> PersonId {
        self.identity.id
    }

    /// The item of `kind` with `key` (normalised), if there is one.
    pub fn item(&self, kind: ItemKind, key: &str) -> Option<Item> {
        let c = self.contact.as_ref();
        let p = self.professional.as_ref();
        match kind {
            ItemKind::Email => find(c.map(|c| &c.emails), key, Item::Email),
            ItemKind::Phone => find(c.map(|c| &c.phones), key, Item::Phone),
            ItemKind::Address => find(c.map(|c| &c.addresses), key, Item::Address),
            ItemKind::Skill => find(p.map(|p| &p.skills), key, Item::Skill),
            ItemKind::Employment => find(p.map(|p| &p.employments), key, Item::Employment),
            ItemKind::Certification => find(p.map(|p| &p.certifications), key, Item::Certification),
            ItemKind::Relationship => find(
                self.social.as_ref().map(|s| &s.relationships),
                key,
                Item::Relationship,
            ),
            ItemKind::Attribute => find(
                self.attributes.as_ref().map(|a| &a.items),
                key,
                Item::Attribute,
            ),
        }
    }

    /// Whether an item of `kind` with `key` (normalised) exists.
    pub fn has_item(&self, kind: ItemKind, key: &str) -> bool {
        self.item(kind, key).is_some()
    }
}
