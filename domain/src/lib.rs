//! The Person domain of personctl, built on `personctl-ledger`.
//!
//! - [`Command`]s (imperative) go through [`decide`], a pure function holding every business
//!   rule, and become [`Event`]s (past tense); [`apply`] folds events into a [`Person`] and holds
//!   no rules.
//! - The lifecycle is a state machine written as data: [`lifecycle::TRANSITIONS`].
//! - Every event type has a schema version; older versions are upcast on read ([`event::decode`]).
//! - [`Persons`] runs commands against the ledger (optimistic concurrency on the person's
//!   chain) and replays chains; [`PersonWorld`] holds replayed persons as bevy_ecs entities and
//!   answers queries. bevy_ecs stays behind that facade.
//!
//! This crate knows nothing about clap, NATS or terminals.

mod apply;
pub mod command;
mod decide;
mod ecs;
mod error;
pub mod event;
mod execute;
mod ids;
pub mod lifecycle;
pub mod lines;
pub mod metrics;
pub mod model;
pub mod onboarding;
pub mod policy;
mod projections;
mod react;
pub mod read_model;
pub mod read_side;
pub mod requests;
pub mod retention;
mod service;
mod write;

pub use crate::apply::{apply, MASKED};
pub use crate::command::Command;
pub use crate::decide::{
    decide, decide_erasure, decide_merge_target, Erasure, Recorded, MAX_LIST, MAX_TEXT,
};
pub use crate::ecs::PersonWorld;
pub use crate::error::{DomainError, Error};
pub use crate::event::{ErasedScope, Event};
pub use crate::execute::BatchFailure;
pub use crate::ids::{PersonId, AGGREGATE};
pub use crate::model::Person;
pub use crate::projections::{Link, Projections, Update};
pub use crate::react::onboarding_stream;
pub use crate::service::{At, Judged, Persons, Replayed};
pub use crate::write::{Erasing, Executed, Once, Retained};
