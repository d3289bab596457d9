//! Retention: how long personal data is kept once a person reaches a state, as data, and what
//! is due for erasure at a given time, pure. The service erases what is due with ordinary
//! signed tombstones ([`crate::Persons::apply_retention`], run by `serve --policies
//! --retention FILE`); `personctl retention show` lists it.
//!
//! A policy is a JSON object of rules; each names the lifecycle states it applies to, how many
//! days after the person entered its current state it is due, and what it erases: the whole
//! person, or every item of some component kinds.
//!
//! ```json
//! {"rules": [
//!   {"when": ["archived", "deceased"], "after_days": 365, "erase": "person"},
//!   {"when": ["suspended"], "after_days": 90, "erase": ["email", "phone", "address"]}
//! ]}
//! ```
//!
//! States: `active`, `suspended`, `archived`, `deceased`. A person entered its state at the
//! time of the event that moved it there (its registration for `active`). Kinds: `email`,
//! `phone`, `address`, `skill`, `employment`, `certification`, `relationship`, `attribute`.
//! Only what is still there is due: an erasure already done, or a kind the person never had,
//! is not listed, so applying a policy twice erases nothing twice.

use serde::Deserialize;

use crate::decide::{decide_erasure, Erasure, Recorded};
use crate::lifecycle::State;
use crate::model::ItemKind;
use crate::{apply, DomainError, Person, PersonId};

/// A microsecond day.
const DAY_US: u64 = 86_400_000_000;

/// A retention policy: its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// One rule: persons in one of `states` for at least `after_days` have `erase` erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The states it applies to.
    pub states: Vec<State>,
    /// Days in the state before it is due.
    pub after_days: u64,
    /// What it erases.
    pub erase: Scope,
}

/// What a rule erases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every personal value: the person ends Erased.
    Person,
    /// Every item of these kinds.
    Kinds(Vec<ItemKind>),
}

/// One erasure due under a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The person.
    pub person: PersonId,
    /// What to erase.
    pub erasure: Erasure,
    /// The rule's index in the policy (0-based).
    pub rule: usize,
    /// The person's state.
    pub state: State,
    /// When the person entered it (microseconds since the Unix epoch).
    pub since_us: u64,
}

impl Due {
    /// The tombstone's reason: the rule, never a personal value.
    pub fn reason(&self) -> String {
        let what = match &self.erasure {
            Erasure::Person => "the person".to_string(),
            Erasure::Component { kind, .. } => format!("every {}", kind.command_name()),
        };
        format!(
            "retention rule {}: {what}, {} for longer than its period",
            self.rule + 1,
            self.state.to_string().to_lowercase()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleJson {
    when: Vec<String>,
    after_days: u64,
    erase: EraseJson,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EraseJson {
    Word(String),
    Kinds(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyJson {
    rules: Vec<RuleJson>,
}

fn invalid(reason: String) -> DomainError {
    DomainError::Invalid {
        field: "retention",
        reason,
    }
}

impl Retention {
    /// Parses a policy from its JSON text (see the module docs); an unknown state, kind or
    /// field is an error that names it.
    pub fn from_json(text: &str) -> Result<Retention, DomainError> {
        let policy: PolicyJson =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a policy: {e}")))?;
        let mut rules = Vec::with_capacity(policy.rules.len());
        for (i, r) in policy.rules.into_iter().enumerate() {
            let n = i + 1;
            if r.when.is_empty() {
                return Err(invalid(format!("rule {n}: \"when\" names no state")));
            }
            let states = r
                .when
                .iter()
                .map(|w| match w.as_str() {
                    "active" => Ok(State::Active),
                    "suspended" => Ok(State::Suspended),
                    "archived" => Ok(State::Archived),
                    "deceased" => Ok(State::Deceased),
                    other => Err(invalid(format!(
                        "rule {n}: unknown state {other:?} (active, suspended, archived, deceased)"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let erase = match r.erase {
                EraseJson::Word(w) if w == "person" => Scope::Person,
                EraseJson::Word(w) => {
                    return Err(invalid(format!(
                        "rule {n}: erase {w:?}: give \"person\" or a list of component kinds"
                    )))
                }
                EraseJson::Kinds(kinds) if kinds.is_empty() => {
                    return Err(invalid(format!("rule {n}: erase names no kind")))
                }
                EraseJson::Kinds(kinds) => Scope::Kinds(
                    kinds
                        .iter()
                        .map(|k| {
                            ItemKind::ALL
                                .into_iter()
                                .find(|x| x.command_name() == k)
                                .ok_or_else(|| {
                                    invalid(format!("rule {n}: unknown component kind {k:?}"))
                                })
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            rules.push(Rule {
                states,
                after_days: r.after_days,
                erase,
            });
        }
        Ok(Retention { rules })
    }

    /// What is due for person `id` at `now_us`, given its chain as the domain reads it
    /// (genesis first): per matching rule whose period has passed, each erasure that would
    /// still mask something.
    pub fn due(&self, id: PersonId, history: &[Recorded], now_us: u64) -> Vec<Due> {
        // The person, and when it entered its current state.
        let mut person: Option<Person> = None;
        let mut since_us = 0;
        for r in history {
            let before = person.as_ref().map(|p| p.lifecycle.state());
            person = apply(person, &r.event);
            let after = person.as_ref().map(|p| p.lifecycle.state());
            if after != before {
                since_us = r.time_us;
            }
        }
        let Some(person) = person else {
            return Vec::new();
        };
        let state = person.lifecycle.state();
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let period = rule.after_days.saturating_mul(DAY_US);
            if !rule.states.contains(&state) || now_us.saturating_sub(since_us) < period {
                continue;
            }
            let erasures = match &rule.erase {
                Scope::Person => vec![Erasure::Person],
                Scope::Kinds(kinds) => kinds
                    .iter()
                    .map(|&kind| Erasure::Component { kind, key: None })
                    .collect(),
            };
            for erasure in erasures {
                // Only what would still mask something (and nothing listed twice).
                let left = decide_erasure(Some(&person), history, &erasure, "retention")
                    .is_ok_and(|events| !events.is_empty());
                if left && !out.iter().any(|d: &Due| d.erasure == erasure) {
                    out.push(Due {
                        person: id,
                        erasure,
                        rule: i,
                        state,
                        since_us,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_names_what_is_wrong_with_it() {
        let ok = Retention::from_json(
            r#"{"rules": [{"when": ["archived", "deceased"], "after_days": 30, "erase": "person"},
                          {"when": ["suspended"], "after_days": 7, "erase": ["email", "phone"]}]}"#,
        )
        .unwrap();
        assert_eq!(ok.rules[0].states, vec![State::Archived, State::Deceased]);
        assert_eq!(
            ok.rules[1].erase,
            Scope::Kinds(vec![ItemKind::Email, ItemKind::Phone])
        );
        let err = |text: &str| Retention::from_json(text).unwrap_err().to_string();
        assert!(
            err(r#"{"rules": [{"when": ["gone"], "after_days": 1, "erase": "person"}]}"#)
                .contains("rule 1: unknown state \"gone\"")
        );
        assert!(
            err(r#"{"rules": [{"when": ["archived"], "after_days": 1, "erase": ["fax"]}]}"#)
                .contains("unknown component kind \"fax\"")
        );
        assert!(
            err(r#"{"rules": [{"when": ["archived"], "after_days": 1, "erase": "all"}]}"#)
                .contains("give \"person\"")
        );
        assert!(
            err(r#"{"rules": [{"when": [], "after_days": 1, "erase": "person"}]}"#)
                .contains("names no state")
        );
        assert!(err(r#"{"rules": [], "extra": 1}"#).contains("unknown field"));
    }
}
