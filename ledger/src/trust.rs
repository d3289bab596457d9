//! [`TrustSet`]: the authors whose signatures a verification accepts: raw keys, and
//! identities (`crate::identity`), whose keys are resolved at each event's place in the log.

use rustc_hash::FxHashSet as HashSet;

use crate::{Author, StreamId};

/// A set of trusted authors and identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustSet {
    authors: HashSet<Author>,
    identities: HashSet<StreamId>,
}

impl TrustSet {
    /// An empty set: nothing is trusted.
    pub fn new() -> TrustSet {
        TrustSet::default()
    }

    /// Whether `author` is trusted.
    pub fn contains(&self, author: &Author) -> bool {
        self.authors.contains(author)
    }

    /// Trusts the raw key `author`.
    pub fn with(mut self, author: Author) -> TrustSet {
        self.authors.insert(author);
        self
    }

    /// Trusts identity `id` (a `key/ID` stream): every event its key of the moment signed.
    pub fn with_identity(mut self, id: StreamId) -> TrustSet {
        self.identities.insert(id);
        self
    }

    /// Whether identity `id` is trusted.
    pub fn trusts_identity(&self, id: &StreamId) -> bool {
        self.identities.contains(id)
    }

    /// The trusted identities, in no particular order.
    pub fn identities(&self) -> impl Iterator<Item = &StreamId> {
        self.identities.iter()
    }

    /// Number of trusted authors and identities.
    pub fn len(&self) -> usize {
        self.authors.len() + self.identities.len()
    }

    /// The trusted authors, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Author> {
        self.authors.iter()
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.authors.is_empty() && self.identities.is_empty()
    }
}

impl FromIterator<Author> for TrustSet {
    fn from_iter<I: IntoIterator<Item = Author>>(iter: I) -> TrustSet {
        TrustSet {
            authors: iter.into_iter().collect(),
            identities: HashSet::default(),
        }
    }
}
