//! What the read models keep of a person, derived purely from its folded state: the summary,
//! the search tokens, the skills and the relationships ([`Derived`]), and a timeline entry per
//! event ([`Entry`]). Pure: the projections store (`projections.rs`) writes what changes.
//!
//! Everything is derived from the state, so erasure needs no special case: an erased person
//! (or an erased component) derives no personal value, and what it derived before is removed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::apply::MASKED;
use crate::lifecycle::Lifecycle;
use crate::{Person, PersonId};

/// A person in one line: the summary projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The person.
    pub person: PersonId,
    /// The legal name (`[masked]` once erased).
    pub legal_name: String,
    /// The lifecycle, as `personctl states` names it.
    pub lifecycle: String,
    /// The first email address added and still present, verified ones first.
    pub primary_email: Option<String>,
}

/// Everything the read models derive from one person's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derived {
    /// The summary (`None`: not registered).
    pub summary: Option<Summary>,
    /// Search tokens: lower-case words of the names and email addresses.
    pub tokens: BTreeSet<String>,
    /// Skill name (lower case) → level.
    pub skills: BTreeMap<String, u8>,
    /// Relationships: (other person, kind).
    pub links: BTreeSet<(PersonId, String)>,
}

/// One event in a person's timeline: no personal value, only what happened when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Height on the chain.
    pub height: u64,
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    /// Event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's CID, as text.
    pub cid: String,
}

/// The search tokens of a text: lower-case runs of letters and digits, and for an email
/// address also the whole address.
pub fn tokens(text: &str) -> BTreeSet<String> {
    let lower = text.trim().to_lowercase();
    let mut out: BTreeSet<String> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if lower.contains('@') && !lower.contains(char::is_whitespace) {
        out.insert(lower);
    }
    out
}

/// What the read models keep of `person` (`None`: not registered).
pub fn derive(person: Option<&Person>) -> Derived {
    let Some(p) = person else {
        return Derived::default();
    };
    let emails: Vec<_> = p.contact.iter().flat_map(|c| c.emails.iter()).collect();
    let primary_email = emails
        .iter()
        .find(|e| e.verified)
        .or(emails.first())
        .map(|e| e.address.clone());
    let mut out = Derived {
        summary: Some(Summary {
            person: p.id(),
            legal_name: p.identity.legal_name.clone(),
            lifecycle: match p.lifecycle {
                Lifecycle::MergedInto(_) => "MergedInto".into(),
                other => other.to_string(),
            },
            primary_email,
        }),
        ..Derived::default()
    };
    if p.identity.legal_name != MASKED {
        out.tokens.extend(tokens(&p.identity.legal_name));
    }
    for e in &emails {
        out.tokens.extend(tokens(&e.address));
    }
    for s in p.professional.iter().flat_map(|x| x.skills.iter()) {
        out.skills.insert(s.name.trim().to_lowercase(), s.level);
    }
    for r in p.social.iter().flat_map(|x| x.relationships.iter()) {
        out.links.insert((r.other, r.kind.clone()));
    }
    out
}
