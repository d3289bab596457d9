//! [`Command`]s: what a caller asks of one person, in the imperative.
//!
//! Commands derive serde: their JSON form (`{"command": "add-email", "address": ...}`, field
//! names as below, dates `YYYY-MM-DD`) is the documented input of `personctl append --file`.

use serde::{Deserialize, Serialize};

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
        #[serde(deserialize_with = "crate::model::strict_date::one")]
        date: Date,
    },
    /// Record the person's death.
    RecordDeath {
        #[serde(deserialize_with = "crate::model::strict_date::one")]
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
