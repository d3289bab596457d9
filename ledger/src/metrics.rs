//! The ledger's metrics, recorded through the `metrics` facade: nothing is exported unless the
//! program installs a recorder (`personctl --metrics ADDR` installs a Prometheus exporter), as
//! tracing records nothing without a subscriber. Each name is a constant here; [`describe`]
//! gives them their help texts once a recorder is installed.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `personctl_events_appended_total` | counter | events committed to the local store |
//! | `personctl_append_seconds` | histogram | one append commit (signing, durable write) |
//! | `personctl_events_published_total` | counter | events the shared log acknowledged |
//! | `personctl_publish_seconds` | histogram | one publish of pending events, to the last ack |
//! | `personctl_publish_withdrawn_total` | counter | events withdrawn after a lost race |
//! | `personctl_nats_retries_total` | counter | JetStream requests retried after a transport error |
//! | `personctl_projection_applied_total` | counter | messages the follower applied |
//! | `personctl_projection_lag_seconds` | histogram | from a message's storing in JetStream to its application |
//! | `personctl_projection_lag_messages` | gauge | messages the follower has still to apply |
//! | `personctl_projection_retries_total` | counter | applications retried |
//! | `personctl_dead_letters_total` | counter | messages moved to the dead-letter stream |
//! | `personctl_verification_failures_total` | counter | events a follower met that failed verification |

/// Events committed to the local store.
pub const EVENTS_APPENDED: &str = "personctl_events_appended_total";
/// One append commit, in seconds.
pub const APPEND_SECONDS: &str = "personctl_append_seconds";
/// Events the shared log acknowledged.
pub const EVENTS_PUBLISHED: &str = "personctl_events_published_total";
/// One publish of pending events, in seconds.
pub const PUBLISH_SECONDS: &str = "personctl_publish_seconds";
/// Events withdrawn after a lost race.
pub const PUBLISH_WITHDRAWN: &str = "personctl_publish_withdrawn_total";
/// JetStream requests retried after a transport error.
pub const NATS_RETRIES: &str = "personctl_nats_retries_total";
/// Messages the follower applied.
pub const PROJECTION_APPLIED: &str = "personctl_projection_applied_total";
/// From a message's storing in JetStream to its application, in seconds.
pub const PROJECTION_LAG_SECONDS: &str = "personctl_projection_lag_seconds";
/// Messages the follower has still to apply.
pub const PROJECTION_LAG_MESSAGES: &str = "personctl_projection_lag_messages";
/// Applications retried.
pub const PROJECTION_RETRIES: &str = "personctl_projection_retries_total";
/// Messages moved to the dead-letter stream.
pub const DEAD_LETTERS: &str = "personctl_dead_letters_total";
/// Events a follower met that failed verification.
pub const VERIFICATION_FAILURES: &str = "personctl_verification_failures_total";

/// Gives every metric above its help text and unit in the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(EVENTS_APPENDED, "Events committed to the local store");
    describe_histogram!(
        APPEND_SECONDS,
        Unit::Seconds,
        "One append commit: signing and the durable write"
    );
    describe_counter!(EVENTS_PUBLISHED, "Events the shared log acknowledged");
    describe_histogram!(
        PUBLISH_SECONDS,
        Unit::Seconds,
        "One publish of pending events, to the last acknowledgement"
    );
    describe_counter!(
        PUBLISH_WITHDRAWN,
        "Events withdrawn after losing a race on the shared log"
    );
    describe_counter!(
        NATS_RETRIES,
        "JetStream requests retried after a transport error"
    );
    describe_counter!(
        PROJECTION_APPLIED,
        "Messages the follower applied to its projector"
    );
    describe_histogram!(
        PROJECTION_LAG_SECONDS,
        Unit::Seconds,
        "From a message's storing in JetStream to its application"
    );
    describe_gauge!(
        PROJECTION_LAG_MESSAGES,
        "Messages the follower has still to apply"
    );
    describe_counter!(
        PROJECTION_RETRIES,
        "Applications of a message retried after a failure"
    );
    describe_counter!(DEAD_LETTERS, "Messages moved to the dead-letter stream");
    describe_counter!(
        VERIFICATION_FAILURES,
        "Events a follower met that failed verification"
    );
}
