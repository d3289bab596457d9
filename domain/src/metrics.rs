//! The domain's metrics, through the `metrics` facade (see `personctl_ledger::metrics`):
//! nothing is recorded unless the program installs a recorder.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `personctl_onboarding_total{stage}` | counter | onboarding events appended, by stage: `started`, `completed`, `failed` (and the steps between) |
//! | `personctl_policy_reactions_total{policy}` | counter | events the policies appended |
//! | `personctl_commands_total{outcome}` | counter | command requests answered: `appended`, `repeated`, or the error kind |
//! | `personctl_command_seconds` | histogram | one command request, from parsing to its reply |

/// Onboarding events appended, by stage.
pub const ONBOARDING: &str = "personctl_onboarding_total";
/// Events the policies appended, by policy.
pub const POLICY_REACTIONS: &str = "personctl_policy_reactions_total";
/// Command requests answered, by outcome.
pub const COMMANDS: &str = "personctl_commands_total";
/// One command request, in seconds.
pub const COMMAND_SECONDS: &str = "personctl_command_seconds";

/// Gives every metric above its help text in the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(ONBOARDING, "Onboarding events appended, by stage");
    describe_counter!(POLICY_REACTIONS, "Events the policies appended, by policy");
    describe_counter!(COMMANDS, "Command requests answered, by outcome");
    describe_histogram!(
        COMMAND_SECONDS,
        Unit::Seconds,
        "One command request, from parsing to its reply"
    );
}
