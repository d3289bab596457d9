//! The Person domain of personctl, built on `personctl-ledger`.
//!
//! This crate grows into the Person aggregate (commands, events, the lifecycle state machine and
//! the ECS core). For now it names the aggregate type that person streams use, so that the rest
//! of the workspace does not spell it out.

/// The aggregate type of person streams: a person's chain is the stream `person/<id>`.
pub const AGGREGATE: &str = "person";
