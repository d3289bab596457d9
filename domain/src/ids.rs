//! [`PersonId`]: a person's identity, a time-ordered UUID (v7), and the stream it names.

use std::fmt;
use std::str::FromStr;

use personctl_ledger::StreamId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The aggregate type of person streams: a person's chain is the stream `person/<id>`.
pub const AGGREGATE: &str = "person";

/// A person's id: a UUID, version 7 for new persons (time-ordered). Text form: hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(Uuid);

impl PersonId {
    /// A new, time-ordered id.
    pub fn new_v7() -> PersonId {
        PersonId(Uuid::now_v7())
    }

    /// Wraps a UUID.
    pub const fn from_uuid(uuid: Uuid) -> PersonId {
        PersonId(uuid)
    }

    /// The UUID.
    pub const fn uuid(&self) -> Uuid {
        self.0
    }

    /// The person's stream, `person/<id>`.
    pub fn stream(&self) -> StreamId {
        StreamId::new(AGGREGATE, self.0.hyphenated().to_string())
            .expect("a hyphenated UUID is a valid stream id")
    }

    /// The person whose stream this is, if it is a person stream.
    pub fn from_stream(stream: &StreamId) -> Option<PersonId> {
        if stream.aggregate() != AGGREGATE {
            return None;
        }
        stream.id().parse().ok()
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonId({self})")
    }
}

impl FromStr for PersonId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<PersonId, uuid::Error> {
        Uuid::parse_str(s.trim()).map(PersonId)
    }
}
