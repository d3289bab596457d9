//! Onboarding: a process manager with its own state machine ([`STEPS`]) and its own chain
//! (`onboarding/<person id>`), driven by the person's events.
//!
//! ```text
//! (none) --registered--> Started --email added--> EmailAdded --email verified--> EmailVerified
//!   --> Completed
//! Started | EmailAdded --no verified email within the period--> Failed (compensation: suspend)
//! ```
//!
//! The chain's events carry no payload: their type is the step, their `causes` name the
//! person event that drove them, and their correlation is that event's. Failing compensates:
//! the person is suspended until someone reactivates it. Pure: [`advance`] says what to append
//! and what to run; the service does it.

use std::fmt;

use crate::event::Event;
use crate::model::Item;
use crate::policy::DAY_US;
use crate::Command;

/// The aggregate type of onboarding chains.
pub const AGGREGATE: &str = "onboarding";

/// Where an onboarding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The person is registered; waiting for an email address.
    Started,
    /// An email address was added; waiting for its verification.
    EmailAdded,
    /// An email address was verified.
    EmailVerified,
    /// Done (terminal).
    Completed,
    /// Not done in time; compensated (terminal).
    Failed,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What moves an onboarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The person was registered.
    Registered,
    /// The person got an email address.
    EmailAdded,
    /// One of its email addresses was verified.
    EmailVerified,
    /// The period ran out.
    TimedOut,
}

/// The onboarding chain's event type for entering each stage.
pub fn event_type(stage: Stage) -> &'static str {
    match stage {
        Stage::Started => "OnboardingStarted",
        Stage::EmailAdded => "OnboardingEmailAdded",
        Stage::EmailVerified => "OnboardingEmailVerified",
        Stage::Completed => "OnboardingCompleted",
        Stage::Failed => "OnboardingFailed",
    }
}

/// The state machine: (from, input, to). `None` is "no onboarding yet".
pub const STEPS: &[(Option<Stage>, Input, Stage)] = &[
    (None, Input::Registered, Stage::Started),
    (Some(Stage::Started), Input::EmailAdded, Stage::EmailAdded),
    (
        Some(Stage::Started),
        Input::EmailVerified,
        Stage::EmailVerified,
    ),
    (
        Some(Stage::EmailAdded),
        Input::EmailVerified,
        Stage::EmailVerified,
    ),
    (
        Some(Stage::EmailVerified),
        Input::EmailVerified,
        Stage::Completed,
    ),
    (Some(Stage::Started), Input::TimedOut, Stage::Failed),
    (Some(Stage::EmailAdded), Input::TimedOut, Stage::Failed),
];

/// The stage an onboarding chain's event types lead to (`None`: no onboarding).
pub fn stage_of<'a>(types: impl IntoIterator<Item = &'a str>) -> Option<Stage> {
    let mut stage = None;
    for t in types {
        for s in [
            Stage::Started,
            Stage::EmailAdded,
            Stage::EmailVerified,
            Stage::Completed,
            Stage::Failed,
        ] {
            if event_type(s) == t {
                stage = Some(s);
            }
        }
    }
    stage
}

/// The input a person event is to onboarding, if any.
pub fn input_of(event: &Event) -> Option<Input> {
    match event {
        Event::Registered { .. } => Some(Input::Registered),
        Event::ItemAdded(Item::Email(e)) if e.verified => Some(Input::EmailVerified),
        Event::ItemAdded(Item::Email(_)) => Some(Input::EmailAdded),
        Event::EmailVerified { .. } => Some(Input::EmailVerified),
        _ => None,
    }
}

/// What advancing does: the stages entered, in order (each one event on the onboarding chain),
/// and the compensation to run on the person, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advance {
    /// Stages entered.
    pub stages: Vec<Stage>,
    /// A command for the person (the compensation of a failure).
    pub compensation: Option<Command>,
}

/// Advances an onboarding at `stage` by `input`. A verified email completes it at once.
/// An input the machine does not take changes nothing.
pub fn advance(stage: Option<Stage>, input: Input, period_us: u64) -> Advance {
    let mut stages = Vec::new();
    let mut at = stage;
    let mut input = Some(input);
    while let Some(i) = input.take() {
        let Some((_, _, to)) = STEPS.iter().find(|(f, inp, _)| *f == at && *inp == i) else {
            break;
        };
        stages.push(*to);
        at = Some(*to);
        if *to == Stage::EmailVerified {
            input = Some(Input::EmailVerified);
        }
    }
    let compensation = stages.contains(&Stage::Failed).then(|| Command::Suspend {
        reason: format!(
            "onboarding failed: no verified email address within {} days",
            period_us / DAY_US
        ),
    });
    Advance {
        stages,
        compensation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path_failure_and_ignored_inputs() {
        let a = advance(None, Input::Registered, DAY_US);
        assert_eq!(a.stages, [Stage::Started]);
        let a = advance(Some(Stage::Started), Input::EmailAdded, DAY_US);
        assert_eq!(a.stages, [Stage::EmailAdded]);
        let a = advance(Some(Stage::EmailAdded), Input::EmailVerified, DAY_US);
        assert_eq!(a.stages, [Stage::EmailVerified, Stage::Completed]);
        assert_eq!(a.compensation, None);
        let a = advance(Some(Stage::EmailAdded), Input::TimedOut, 7 * DAY_US);
        assert_eq!(a.stages, [Stage::Failed]);
        assert!(
            matches!(a.compensation, Some(Command::Suspend { ref reason }) if reason.contains("7 days"))
        );
        for terminal in [Stage::Completed, Stage::Failed] {
            for input in [
                Input::Registered,
                Input::EmailAdded,
                Input::EmailVerified,
                Input::TimedOut,
            ] {
                assert!(advance(Some(terminal), input, DAY_US).stages.is_empty());
            }
        }
        assert_eq!(
            stage_of(["OnboardingStarted", "OnboardingEmailAdded"]),
            Some(Stage::EmailAdded)
        );
    }
}
