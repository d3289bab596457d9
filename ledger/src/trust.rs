//! [`TrustSet`]: the authors whose signatures a verification accepts.

use std::collections::HashSet;

use crate::Author;

/// A set of trusted authors.
#[derive(Clone, Debug, Default)]
pub struct TrustSet {
    authors: HashSet<Author>,
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

    /// Number of trusted authors.
    pub fn len(&self) -> usize {
        self.authors.len()
    }

    /// The trusted authors, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Author> {
        self.authors.iter()
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.authors.is_empty()
    }
}

impl FromIterator<Author> for TrustSet {
    fn from_iter<I: IntoIterator<Item = Author>>(iter: I) -> TrustSet {
        TrustSet {
            authors: iter.into_iter().collect(),
        }
    }
}
