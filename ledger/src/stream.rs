//! [`StreamId`]: which chain an event belongs to (aggregate type and aggregate id).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The identity of a stream: an aggregate type (`person`) and an aggregate id.
///
/// Both parts are restricted so that they can be used verbatim as NATS subject tokens and in
/// file names: the type matches `[a-z][a-z0-9_-]{0,63}`, the id `[A-Za-z0-9_-]{1,128}`.
/// Text form: `type/id`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    aggregate: String,
    id: String,
}

impl StreamId {
    /// A key below every stream of `aggregate` and above every stream of a lesser type, for a
    /// range over an ordered map of streams (never a stream itself: its id is empty).
    pub(crate) fn before_all_of(aggregate: &str) -> StreamId {
        StreamId {
            aggregate: aggregate.to_string(),
            id: String::new(),
        }
    }

    /// Validates and builds a stream id.
    pub fn new(aggregate: impl Into<String>, id: impl Into<String>) -> Result<StreamId> {
        let (aggregate, id) = (aggregate.into(), id.into());
        let bad = |reason: String| {
            Err(Error::InvalidStream {
                input: format!("{aggregate}/{id}"),
                reason,
            })
        };
        let first_ok = aggregate
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase());
        if !first_ok || aggregate.len() > 64 {
            return bad(
                "the aggregate type must start with a lowercase letter and have 1 to 64 characters"
                    .into(),
            );
        }
        if let Some(c) = aggregate
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        {
            return bad(format!(
                "the aggregate type may not contain {c:?} (allowed: a-z 0-9 _ -)"
            ));
        }
        if id.is_empty() || id.len() > 128 {
            return bad("the aggregate id must have 1 to 128 characters".into());
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return bad(format!(
                "the aggregate id may not contain {c:?} (allowed: A-Z a-z 0-9 _ -)"
            ));
        }
        Ok(StreamId { aggregate, id })
    }

    /// The aggregate type, for example `person`.
    pub fn aggregate(&self) -> &str {
        &self.aggregate
    }

    /// The aggregate id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key under which the store indexes this stream: `type 0x00 id`.
    pub(crate) fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.aggregate.len() + 1 + self.id.len());
        key.extend_from_slice(self.aggregate.as_bytes());
        key.push(0);
        key.extend_from_slice(self.id.as_bytes());
        key
    }

    pub(crate) fn from_key(key: &[u8]) -> Result<StreamId> {
        let bad = || Error::InvalidStream {
            input: String::from_utf8_lossy(key).into_owned(),
            reason: "corrupt stream key in the store".into(),
        };
        let pos = key.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let aggregate = std::str::from_utf8(&key[..pos]).map_err(|_| bad())?;
        let id = std::str::from_utf8(&key[pos + 1..]).map_err(|_| bad())?;
        StreamId::new(aggregate, id)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.aggregate, self.id)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

impl FromStr for StreamId {
    type Err = Error;

    fn from_str(s: &str) -> Result<StreamId> {
        match s.split_once('/') {
            Some((aggregate, id)) => StreamId::new(aggregate, id),
            None => Err(Error::InvalidStream {
                input: s.into(),
                reason: "expected TYPE/ID, for example person/0193...".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rules() {
        let ok = ["person/abc", "org-unit/A_b-9", "x/1"];
        for s in ok {
            let id: StreamId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(StreamId::from_key(&id.key()).unwrap(), id);
        }
        let bad = [
            ("person", "expected TYPE/ID"),
            ("Person/a", "lowercase"),
            ("person/", "1 to 128"),
            ("person/a.b", "'.'"),
            ("per son/a", "' '"),
            ("person/a/b", "'/'"),
            ("person/*", "'*'"),
        ];
        for (s, why) in bad {
            let err = s.parse::<StreamId>().unwrap_err().to_string();
            assert!(err.contains(why), "{s}: {err}");
        }
    }
}
