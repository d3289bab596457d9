//! [`Command`]s: what a caller asks of one person, in the imperative.
//!
//! Commands derive serde: their JSON form (`{"command": "add-email", "address": ...}`, field
//! names as below, dates `YYYY-MM-DD`) is the documented input of `personctl append --file`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DomainError;

use crate::lifecycle::Action;
use crate::model::{
    key_of, Address, Attribute, Certification, Date, Email, Employment, Item, ItemKind, Phone,
    Preferences, Relationship, Skill,
};
use crate::PersonId;

/// A command to one person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)] // the variants' fields are named for what they hold
pub enum Command {
    /// Register a new person.
    Register { legal_name: String },
    /// Change the legal name.
    Rename {
        legal_name: String,
        #[serde(default)]
        reason: String,
    },
    /// Set (or correct) the date of birth.
    SetBirthDate {
        #[serde(deserialize_with = "crate::model::strict_date::date")]
        date: Date,
    },
    /// Record the person's death.
    RecordDeath {
        #[serde(deserialize_with = "crate::model::strict_date::date")]
        date: Date,
    },
    /// Suspend the person.
    Suspend {
        #[serde(default)]
        reason: String,
    },
    /// Reactivate a suspended person.
    Reactivate {
        #[serde(default)]
        reason: String,
    },
    /// Archive the person for good.
    Archive {
        #[serde(default)]
        reason: String,
    },
    /// Merge this person into another one, which survives.
    Merge { into: PersonId },
    /// Add an email address (unverified).
    AddEmail { address: String },
    /// Mark an email address as verified.
    VerifyEmail { address: String },
    /// Remove an email address.
    RemoveEmail { address: String },
    /// Add a phone number.
    AddPhone(Phone),
    /// Change a phone number's kind.
    UpdatePhone(Phone),
    /// Remove a phone number.
    RemovePhone { number: String },
    /// Add a postal address.
    AddAddress(Address),
    /// Change a postal address (by label).
    UpdateAddress(Address),
    /// Remove a postal address.
    RemoveAddress { label: String },
    /// Add a skill.
    AddSkill(Skill),
    /// Change a skill's level.
    UpdateSkill(Skill),
    /// Remove a skill.
    RemoveSkill { name: String },
    /// Add an employment.
    AddEmployment(Employment),
    /// Change an employment (by id).
    UpdateEmployment(Employment),
    /// Remove an employment.
    RemoveEmployment { id: String },
    /// Add a certification.
    AddCertification(Certification),
    /// Change a certification (by name).
    UpdateCertification(Certification),
    /// Remove a certification.
    RemoveCertification { name: String },
    /// Add a relationship to another person.
    AddRelationship(Relationship),
    /// Remove a relationship.
    RemoveRelationship { other: PersonId, kind: String },
    /// Add a custom attribute.
    AddAttribute(Attribute),
    /// Change a custom attribute (by name).
    UpdateAttribute(Attribute),
    /// Remove a custom attribute.
    RemoveAttribute { name: String },
    /// Set the preferences.
    SetPreferences(Preferences),
    /// Remove the preferences.
    ClearPreferences {},
}

/// Every command's name, as in its JSON form and on the command line (a test keeps it equal to
/// what the JSON form accepts).
pub const NAMES: [&str; 33] = [
    "register",
    "rename",
    "set-birth-date",
    "record-death",
    "suspend",
    "reactivate",
    "archive",
    "merge",
    "add-email",
    "verify-email",
    "remove-email",
    "add-phone",
    "update-phone",
    "remove-phone",
    "add-address",
    "update-address",
    "remove-address",
    "add-skill",
    "update-skill",
    "remove-skill",
    "add-employment",
    "update-employment",
    "remove-employment",
    "add-certification",
    "update-certification",
    "remove-certification",
    "add-relationship",
    "remove-relationship",
    "add-attribute",
    "update-attribute",
    "remove-attribute",
    "set-preferences",
    "clear-preferences",
];

/// The fields of command `name` (as in its JSON form): those it requires, and those it may
/// have. `None` for an unknown name. A test keeps this equal to what the JSON form accepts.
pub fn fields(name: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const NONE: &[&str] = &[];
    const REASON: &[&str] = &["reason"];
    Some(match name {
        "register" => (&["legal_name"], NONE),
        "rename" => (&["legal_name"], REASON),
        "set-birth-date" | "record-death" => (&["date"], NONE),
        "suspend" | "reactivate" | "archive" => (NONE, REASON),
        "merge" => (&["into"], NONE),
        "add-email" | "verify-email" | "remove-email" => (&["address"], NONE),
        "add-phone" | "update-phone" => (&["number"], &["kind"]),
        "remove-phone" => (&["number"], NONE),
        "add-address" | "update-address" => {
            (&["label"], &["street", "city", "postal_code", "country"])
        }
        "remove-address" => (&["label"], NONE),
        "add-skill" | "update-skill" => (&["name", "level"], NONE),
        "remove-skill" | "remove-certification" | "remove-attribute" => (&["name"], NONE),
        "add-employment" | "update-employment" => {
            (&["id", "organisation", "role", "start"], &["end"])
        }
        "remove-employment" => (&["id"], NONE),
        "add-certification" | "update-certification" => {
            (&["name", "issued"], &["issuer", "expires"])
        }
        "add-relationship" | "remove-relationship" => (&["other", "kind"], NONE),
        "add-attribute" | "update-attribute" => (
            &["name", "value"],
            &["source", "confidence", "valid_from", "valid_until"],
        ),
        "set-preferences" => (NONE, &["language", "channels"]),
        "clear-preferences" => (NONE, NONE),
        _ => return None,
    })
}

/// What a command does to keyed items.
pub(crate) enum ItemOp {
    Add(Item),
    Update(Item),
    Remove(ItemKind, String),
}

impl Command {
    /// The command's name, as in its JSON form and on the command line.
    pub fn name(&self) -> String {
        let debug = format!("{self:?}");
        let variant: String = debug
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        kebab(&variant)
    }

    /// What the command does to the lifecycle.
    pub fn action(&self) -> Action {
        match self {
            Command::Register { .. } => Action::Register,
            Command::Suspend { .. } => Action::Suspend,
            Command::Reactivate { .. } => Action::Reactivate,
            Command::Archive { .. } => Action::Archive,
            Command::RecordDeath { .. } => Action::RecordDeath,
            Command::Merge { .. } => Action::MergeInto,
            _ => Action::Edit,
        }
    }

    pub(crate) fn item_op(&self) -> Option<ItemOp> {
        use Command as C;
        use ItemOp::*;
        Some(match self {
            C::AddEmail { address } => Add(Item::Email(Email {
                address: address.trim().to_string(),
                verified: false,
            })),
            C::RemoveEmail { address } => Remove(ItemKind::Email, key_of(ItemKind::Email, address)),
            C::AddPhone(x) => Add(Item::Phone(x.clone())),
            C::UpdatePhone(x) => Update(Item::Phone(x.clone())),
            C::RemovePhone { number } => Remove(ItemKind::Phone, key_of(ItemKind::Phone, number)),
            C::AddAddress(x) => Add(Item::Address(x.clone())),
            C::UpdateAddress(x) => Update(Item::Address(x.clone())),
            C::RemoveAddress { label } => {
                Remove(ItemKind::Address, key_of(ItemKind::Address, label))
            }
            C::AddSkill(x) => Add(Item::Skill(x.clone())),
            C::UpdateSkill(x) => Update(Item::Skill(x.clone())),
            C::RemoveSkill { name } => Remove(ItemKind::Skill, key_of(ItemKind::Skill, name)),
            C::AddEmployment(x) => Add(Item::Employment(x.clone())),
            C::UpdateEmployment(x) => Update(Item::Employment(x.clone())),
            C::RemoveEmployment { id } => {
                Remove(ItemKind::Employment, key_of(ItemKind::Employment, id))
            }
            C::AddCertification(x) => Add(Item::Certification(x.clone())),
            C::UpdateCertification(x) => Update(Item::Certification(x.clone())),
            C::RemoveCertification { name } => Remove(
                ItemKind::Certification,
                key_of(ItemKind::Certification, name),
            ),
            C::AddRelationship(x) => Add(Item::Relationship(x.clone())),
            C::RemoveRelationship { other, kind } => Remove(
                ItemKind::Relationship,
                key_of(ItemKind::Relationship, &format!("{other}:{kind}")),
            ),
            C::AddAttribute(x) => Add(Item::Attribute(x.clone())),
            C::UpdateAttribute(x) => Update(Item::Attribute(x.clone())),
            C::RemoveAttribute { name } => {
                Remove(ItemKind::Attribute, key_of(ItemKind::Attribute, name))
            }
            _ => return None,
        })
    }
}

/// Converts a variant name to its serde `kebab-case` form (`AddEmail` to `add-email`).
fn kebab(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one command in its JSON form (a line of `personctl append --file`): the person it
/// names (`"person"`, a UUID), if any, and the command. Strict: an object with a key given
/// twice is refused (plain JSON parsers let the last one win), as are unknown fields and
/// dates that are not exactly `YYYY-MM-DD`.
pub fn from_json(text: &str) -> Result<(Option<PersonId>, Command), DomainError> {
    let value = strict_json(text).map_err(|e| DomainError::Invalid {
        field: "json",
        reason: e.to_string(),
    })?;
    from_json_value(value)
}

/// The person a parsed command goes to: the one it names, or a new id for `register` (the only
/// command that makes a person).
pub fn for_person(
    (person, command): (Option<PersonId>, Command),
) -> Result<(PersonId, Command), DomainError> {
    let person = match (person, &command) {
        (Some(p), _) => p,
        (None, Command::Register { .. }) => PersonId::new_v7(),
        (None, c) => {
            return Err(DomainError::Invalid {
                field: "person",
                reason: format!(
                    "the person is required for {} (only register makes a new person)",
                    c.name()
                ),
            })
        }
    };
    Ok((person, command))
}

/// [`from_json`] of a JSON value already parsed (its keys are unique by construction).
pub fn from_json_value(mut value: Value) -> Result<(Option<PersonId>, Command), DomainError> {
    let object = value.as_object_mut().ok_or_else(|| DomainError::Invalid {
        field: "json",
        reason: "expected a JSON object".into(),
    })?;
    let person = match object.remove("person") {
        Some(Value::String(s)) => {
            Some(s.parse::<PersonId>().map_err(|_| DomainError::Invalid {
                field: "person",
                reason: format!("{s:?} is not a UUID"),
            })?)
        }
        Some(other) => {
            return Err(DomainError::Invalid {
                field: "person",
                reason: format!("must be a UUID string, found {other}"),
            })
        }
        None => None,
    };
    // A missing field is named from the table, not from serde's words.
    let name = object
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some((required, _)) = fields(name) {
        if let Some(field) = required.iter().find(|f| !object.contains_key(**f)) {
            return Err(DomainError::Invalid {
                field,
                reason: format!("{name} requires it"),
            });
        }
    }
    let command: Command = serde_json::from_value(value).map_err(|e| DomainError::Invalid {
        field: "command",
        reason: e.to_string(),
    })?;
    Ok((person, command))
}

/// Parses one JSON value, refusing an object with a key given twice (which plain JSON parsers
/// resolve silently, the last one winning).
fn strict_json(text: &str) -> serde_json::Result<Value> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict(Value);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Strict, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_bool<E>(self, v: bool) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::Bool(v)))
                }
                fn visit_i64<E>(self, v: i64) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::from(v)))
                }
                fn visit_u64<E>(self, v: u64) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::from(v)))
                }
                fn visit_f64<E>(self, v: f64) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::from(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::String(v.to_string())))
                }
                fn visit_string<E>(self, v: String) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::String(v)))
                }
                fn visit_unit<E>(self) -> std::result::Result<Strict, E> {
                    Ok(Strict(Value::Null))
                }
                fn visit_seq<A: SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> std::result::Result<Strict, A::Error> {
                    let mut out = Vec::new();
                    while let Some(Strict(v)) = seq.next_element()? {
                        out.push(v);
                    }
                    Ok(Strict(Value::Array(out)))
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Strict, A::Error> {
                    let mut out = Map::new();
                    while let Some(key) = map.next_key::<String>()? {
                        let Strict(v) = map.next_value()?;
                        if out.insert(key.clone(), v).is_some() {
                            return Err(serde::de::Error::custom(format!(
                                "the key {key:?} is given twice"
                            )));
                        }
                    }
                    Ok(Strict(Value::Object(out)))
                }
            }
            d.deserialize_any(V)
        }
    }
    let Strict(value) = serde_json::from_str(text)?;
    Ok(value)
}

#[cfg(test)]
mod json_tests {
    use super::*;

    /// A sample value of each field, valid for every command that has it.
    fn sample(field: &str) -> Value {
        match field {
            "date" | "start" | "end" | "issued" | "expires" | "valid_from" | "valid_until" => {
                "2000-01-02".into()
            }
            "into" | "other" => "0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c".into(),
            "address" => "a@example.org".into(),
            "number" => "+44 20 7946 0000".into(),
            "level" => 3.into(),
            "confidence" => 50.into(),
            "channels" => serde_json::json!(["email"]),
            _ => "x".into(),
        }
    }

    #[test]
    fn fields_are_exactly_what_each_command_requires_and_accepts() {
        for name in NAMES {
            let (required, optional) = fields(name).unwrap();
            let object = |keys: &[&str]| {
                let mut o = serde_json::Map::new();
                o.insert("command".into(), name.into());
                for k in keys {
                    o.insert(k.to_string(), sample(k));
                }
                Value::Object(o)
            };
            let all: Vec<&str> = required.iter().chain(optional).copied().collect();
            assert!(
                from_json_value(object(required)).is_ok(),
                "{name}: required only"
            );
            assert!(from_json_value(object(&all)).is_ok(), "{name}: every field");
            for missing in required.iter() {
                let keys: Vec<&str> = required.iter().filter(|k| *k != missing).copied().collect();
                let err = from_json_value(object(&keys)).unwrap_err().to_string();
                assert_eq!(err, format!("{missing}: {name} requires it"), "{name}");
                // serde agrees that it is required.
                let mut o = object(&keys);
                o.as_object_mut().unwrap().remove("person");
                assert!(
                    serde_json::from_value::<Command>(o).is_err(),
                    "{name}: {missing}"
                );
            }
            let mut extra = object(&all);
            extra
                .as_object_mut()
                .unwrap()
                .insert("no_such_field".into(), "x".into());
            assert!(from_json_value(extra).is_err(), "{name}: no other field");
        }
    }

    #[test]
    fn names_are_exactly_what_the_json_form_accepts() {
        let err = from_json(r#"{"command":"no-such-command"}"#)
            .unwrap_err()
            .to_string();
        let expected: Vec<&str> = err
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|n| n.trim_matches('`'))
            .collect();
        assert_eq!(expected, NAMES);
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let err = from_json(r#"{"command":"register","legal_name":"A","legal_name":"B"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"legal_name\" is given twice"), "{err}");
        assert!(strict_json(r#"{"a":[{"x":1,"x":2}]}"#).is_err());
        assert_eq!(
            strict_json(r#"{"a":[1,{"b":null}],"c":"d"}"#).unwrap(),
            serde_json::json!({"a": [1, {"b": null}], "c": "d"})
        );
        let (person, command) = from_json(
            r#"{"command":"register","legal_name":"A","person":"0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c"}"#,
        )
        .unwrap();
        assert!(person.is_some());
        assert_eq!(command.name(), "register");
    }
}
