//! [`Projections`]: the read models, kept in sled beside a checkpoint (the last stream sequence
//! applied), both written in one transaction, so a restart resumes exactly where it stopped.
//!
//! Trees (keys are text, `\0`-separated; values DAG-CBOR):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `summary` | person | [`Summary`] |
//! | `search` | token, person | empty |
//! | `timeline` | person, page (height / 256, 8 bytes big-endian) | the page's [`Entry`]s |
//! | `skills` | skill, person | level (1 byte) |
//! | `links` / `links_rev` | person, other, kind / other, person, kind | empty |
//! | `derived` | person | the [`Derived`] last written (what to remove when it changes) |
//! | `meta` | `checkpoint` | u64 big-endian |
//!
//! An update writes the difference between a person's old and new [`Derived`], so values that
//! an erasure removed from the state disappear from every tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use personctl_ledger::codec;
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use crate::read_model::{tokens, Derived, Entry, Summary};
use crate::{Error, PersonId};

const PAGE: u64 = 256;
const CHECKPOINT: &[u8] = b"checkpoint";
const TREES: [&str; 8] = [
    "summary",
    "search",
    "timeline",
    "skills",
    "links",
    "links_rev",
    "derived",
    "meta",
];

/// What one person's read models become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The person.
    pub person: PersonId,
    /// What the person's state derives now.
    pub derived: Derived,
    /// Timeline entries to record (an entry at a height already recorded replaces it).
    pub entries: Vec<Entry>,
}

/// One relationship in the network projection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// The other person.
    pub other: PersonId,
    /// The relationship's kind.
    pub kind: String,
    /// Whether the person named the other (`true`) or the other named the person.
    pub outgoing: bool,
}

/// The read models of a directory.
///
/// Erasure reaches them too: sled keeps overwritten and removed values in its files until it
/// happens to compact, so after an update that erases values, [`Projections::compact`] copies
/// what is live into a new directory and replaces the old one, whose files are deleted; a
/// rebuild is written the same way. The swap is crash-safe: [`Projections::open`] finishes or
/// undoes one that was interrupted, and removes what held old values.
pub struct Projections {
    path: PathBuf,
    trees: std::sync::RwLock<Option<Trees>>,
}

/// The open sled database and its trees.
struct Trees {
    db: sled::Db,
    summary: sled::Tree,
    search: sled::Tree,
    timeline: sled::Tree,
    skills: sled::Tree,
    links: sled::Tree,
    links_rev: sled::Tree,
    derived: sled::Tree,
    meta: sled::Tree,
}

/// `dir` with a suffix: where a compaction writes (`.new`) and what it replaces (`.old`).
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn io_error(dir: &Path, what: &str, e: std::io::Error) -> Error {
    Error::ReadModels {
        path: dir.display().to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// Finishes or undoes a swap that a crash interrupted (see [`Projections`]).
fn settle_swap(dir: &Path) -> Result<(), Error> {
    let new = sibling(dir, ".new");
    let old = sibling(dir, ".old");
    if !dir.exists() && new.exists() && old.exists() {
        // Crashed between the two renames: the new copy is complete.
        std::fs::rename(&new, dir).map_err(|e| io_error(dir, "finishing a compaction", e))?;
    }
    for leftover in [new, old] {
        if leftover.exists() {
            std::fs::remove_dir_all(&leftover)
                .map_err(|e| io_error(&leftover, "removing a compaction's leftover", e))?;
        }
    }
    Ok(())
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

fn person_key(p: PersonId) -> Vec<u8> {
    p.to_string().into_bytes()
}

type Tx = ConflictableTransactionError<String>;

fn enc<T: Serialize>(value: &T) -> Result<Vec<u8>, Tx> {
    codec::encode(value).map_err(|e| Tx::Abort(e.to_string()))
}

fn dec<T: Serialize + DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    codec::decode(&what, bytes).map_err(|e| e.to_string())
}

impl Trees {
    fn open(dir: &Path) -> Result<Trees, Error> {
        let fail = |e: sled::Error| Error::ReadModels {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let db = sled::open(dir).map_err(fail)?;
        let tree = |name: &str| db.open_tree(name).map_err(fail);
        Ok(Trees {
            summary: tree(TREES[0])?,
            search: tree(TREES[1])?,
            timeline: tree(TREES[2])?,
            skills: tree(TREES[3])?,
            links: tree(TREES[4])?,
            links_rev: tree(TREES[5])?,
            derived: tree(TREES[6])?,
            meta: tree(TREES[7])?,
            db,
        })
    }

    /// Every tree, in `TREES` order.
    fn all(&self) -> [&sled::Tree; 8] {
        [
            &self.summary,
            &self.search,
            &self.timeline,
            &self.skills,
            &self.links,
            &self.links_rev,
            &self.derived,
            &self.meta,
        ]
    }
}

impl Projections {
    /// Opens (or creates) the read models in `dir`.
    pub fn open(dir: &Path) -> Result<Projections, Error> {
        settle_swap(dir)?;
        Ok(Projections {
            path: dir.to_path_buf(),
            trees: std::sync::RwLock::new(Some(Trees::open(dir)?)),
        })
    }

    fn trees(&self) -> std::sync::RwLockReadGuard<'_, Option<Trees>> {
        self.trees.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites the read models into a new directory holding only live values and replaces the
    /// old one, whose files are deleted: what an erasure removed is then gone from the disk's
    /// files, not only from the trees. Readers wait meanwhile.
    pub fn compact(&self) -> Result<(), Error> {
        let mut slot = self.trees.write().unwrap_or_else(|e| e.into_inner());
        let new = sibling(&self.path, ".new");
        if new.exists() {
            std::fs::remove_dir_all(&new).map_err(|e| io_error(&new, "removing", e))?;
        }
        {
            let current = slot.as_ref().expect("the trees are open between calls");
            let fresh = Trees::open(&new)?;
            for (from, to) in current.all().into_iter().zip(fresh.all()) {
                let mut batch = sled::Batch::default();
                for item in from.iter() {
                    let (k, v) = item.map_err(|e| self.error(e))?;
                    batch.insert(k, v);
                }
                to.apply_batch(batch).map_err(|e| self.error(e))?;
            }
            fresh.db.flush().map_err(|e| self.error(e))?;
        }
        self.swap(&mut slot, &new)
    }

    /// Replaces the open directory with `new` (closed, complete): renames, syncs, deletes the
    /// old files, opens the new.
    fn swap(&self, slot: &mut Option<Trees>, new: &Path) -> Result<(), Error> {
        if let Some(trees) = slot.take() {
            trees.db.flush().map_err(|e| self.error(e))?;
        }
        let old = sibling(&self.path, ".old");
        std::fs::rename(&self.path, &old).map_err(|e| io_error(&self.path, "renaming", e))?;
        std::fs::rename(new, &self.path).map_err(|e| io_error(new, "renaming", e))?;
        if let Some(parent) = self.path.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(parent, "syncing", e))?;
        }
        std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, "removing", e))?;
        *slot = Some(Trees::open(&self.path)?);
        Ok(())
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::ReadModels {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, Error> {
        codec::encode(value).map_err(|e| self.error(e))
    }

    /// The last stream sequence applied (0: none).
    pub fn checkpoint(&self) -> Result<u64, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let value = t.meta.get(CHECKPOINT).map_err(|e| self.error(e))?;
        Ok(value.map_or(0, |v| {
            u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
        }))
    }

    /// Applies `updates` and, with `sequence`, moves the checkpoint to it, in one transaction.
    /// Returns `false` (writing nothing) when the checkpoint is already at or past `sequence`:
    /// a message delivered twice is applied once.
    pub fn apply(&self, sequence: Option<u64>, updates: &[Update]) -> Result<bool, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let trees = (
            &t.summary,
            &t.search,
            &t.timeline,
            &t.skills,
            &t.links,
            &t.links_rev,
            &t.derived,
            &t.meta,
        );
        let applied = trees
            .transaction(
                |(summary, search, timeline, skills, links, links_rev, derived, meta)| {
                    if let Some(seq) = sequence {
                        let at = meta.get(CHECKPOINT)?.map_or(0, |v| {
                            u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
                        });
                        if at >= seq {
                            return Ok(false);
                        }
                        meta.insert(CHECKPOINT, &seq.to_be_bytes())?;
                    }
                    for u in updates {
                        let pk = person_key(u.person);
                        let old: Derived = match derived.get(&pk)? {
                            Some(bytes) => dec("derived", &bytes).map_err(Tx::Abort)?,
                            None => Derived::default(),
                        };
                        write_derived(
                            &pk,
                            &old,
                            &u.derived,
                            [summary, search, skills, links, links_rev],
                        )?;
                        derived.insert(pk.clone(), enc(&u.derived)?)?;
                        write_entries(timeline, &pk, &u.entries)?;
                    }
                    Ok(true)
                },
            )
            .map_err(|e| self.error(format!("{e:?}")))?;
        Ok(applied)
    }

    /// Writes `updates` as the whole content, with the checkpoint `sequence` (or none): a
    /// rebuild. Written into a new directory in batches, one per tree, far faster than
    /// transactions, and swapped in for the old one, whose files (and whatever values they
    /// still held) are deleted. A crash during a rebuild leaves the old read models in place.
    pub fn rebuild(self, updates: &[Update], sequence: Option<u64>) -> Result<Projections, Error> {
        {
            let mut slot = self.trees.write().unwrap_or_else(|e| e.into_inner());
            let new = sibling(&self.path, ".new");
            if new.exists() {
                std::fs::remove_dir_all(&new).map_err(|e| io_error(&new, "removing", e))?;
            }
            {
                let fresh = Trees::open(&new)?;
                self.load(&fresh, updates, sequence)?;
            }
            self.swap(&mut slot, &new)?;
        }
        Ok(self)
    }

    fn load(&self, t: &Trees, updates: &[Update], sequence: Option<u64>) -> Result<(), Error> {
        let mut batches: [sled::Batch; 7] = Default::default();
        let [summary, search, timeline, skills, links, links_rev, derived] = &mut batches;
        for u in updates {
            let pk = person_key(u.person);
            if let Some(s) = &u.derived.summary {
                summary.insert(pk.clone(), self.encode(s)?);
            }
            for t in &u.derived.tokens {
                search.insert(key(&[t.as_bytes(), &pk]), &[]);
            }
            for (s, level) in &u.derived.skills {
                skills.insert(key(&[s.as_bytes(), &pk]), &[*level]);
            }
            for (other, kind) in &u.derived.links {
                let o = person_key(*other);
                links.insert(key(&[&pk, &o, kind.as_bytes()]), &[]);
                links_rev.insert(key(&[&o, &pk, kind.as_bytes()]), &[]);
            }
            derived.insert(pk.clone(), self.encode(&u.derived)?);
            let mut pages: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
            for e in &u.entries {
                pages.entry(e.height / PAGE).or_default().push(e.clone());
            }
            for (page, mut entries) in pages {
                entries.sort_by_key(|e| e.height);
                entries.dedup_by_key(|e| e.height);
                timeline.insert(key(&[&pk, &page.to_be_bytes()]), self.encode(&entries)?);
            }
        }
        // Every tree but `meta` (the last), in `TREES` order, as the batches are.
        for (tree, batch) in t.all().into_iter().zip(batches) {
            tree.apply_batch(batch).map_err(|e| self.error(e))?;
        }
        t.db.flush().map_err(|e| self.error(e))?;
        if let Some(seq) = sequence {
            t.meta
                .insert(CHECKPOINT, &seq.to_be_bytes())
                .map_err(|e| self.error(e))?;
        }
        t.db.flush().map(drop).map_err(|e| self.error(e))
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        t.db.flush().map(drop).map_err(|e| self.error(e))
    }

    /// One person's summary.
    pub fn summary(&self, person: PersonId) -> Result<Option<Summary>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        t.summary
            .get(person_key(person))
            .map_err(|e| self.error(e))?
            .map(|v| dec("summary", &v).map_err(|e| self.error(e)))
            .transpose()
    }

    /// Every summary, by person id.
    pub fn summaries(&self) -> Result<Vec<Summary>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        t.summary
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(|e| self.error(e))?;
                dec("summary", &v).map_err(|e| self.error(e))
            })
            .collect()
    }

    /// The persons whose names or email addresses hold every token of `text`.
    pub fn search(&self, text: &str) -> Result<Vec<PersonId>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let mut result: Option<BTreeSet<PersonId>> = None;
        for token in tokens(text) {
            let found: BTreeSet<PersonId> = self
                .scan(&t.search, &key(&[token.as_bytes(), b""]))?
                .into_iter()
                .filter_map(|(k, _)| person_at(&k, 1))
                .collect();
            result = Some(match result {
                None => found,
                Some(r) => r.intersection(&found).copied().collect(),
            });
        }
        Ok(result.unwrap_or_default().into_iter().collect())
    }

    /// A person's timeline, oldest first.
    pub fn timeline(&self, person: PersonId) -> Result<Vec<Entry>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let mut out = Vec::new();
        for (_, v) in self.scan(&t.timeline, &key(&[&person_key(person), b""]))? {
            let page: Vec<Entry> = dec("timeline", &v).map_err(|e| self.error(e))?;
            out.extend(page);
        }
        Ok(out)
    }

    /// The persons with `skill` (case-insensitive) and their levels.
    pub fn skills(&self, skill: &str) -> Result<Vec<(PersonId, u8)>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let skill = skill.trim().to_lowercase();
        Ok(self
            .scan(&t.skills, &key(&[skill.as_bytes(), b""]))?
            .into_iter()
            .filter_map(|(k, v)| Some((person_at(&k, 1)?, *v.first()?)))
            .collect())
    }

    /// Who `person` is connected to, in either direction.
    pub fn network(&self, person: PersonId) -> Result<Vec<Link>, Error> {
        let guard = self.trees();
        let t = guard.as_ref().expect("the trees are open between calls");
        let pk = key(&[&person_key(person), b""]);
        let mut out = Vec::new();
        for (tree, outgoing) in [(&t.links, true), (&t.links_rev, false)] {
            for (k, _) in self.scan(tree, &pk)? {
                let parts: Vec<&[u8]> = k.split(|b| *b == 0).collect();
                let (Some(other), Some(kind)) = (person_at(&k, 1), parts.get(2)) else {
                    continue;
                };
                out.push(Link {
                    other,
                    kind: String::from_utf8_lossy(kind).into_owned(),
                    outgoing,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    fn scan(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, Error> {
        tree.scan_prefix(prefix)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))
    }
}

/// The person id in the `index`-th `\0`-separated part of a key.
fn person_at(key: &[u8], index: usize) -> Option<PersonId> {
    let part = key.split(|b| *b == 0).nth(index)?;
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Writes what changed between `old` and `new` for the person keyed `pk`.
fn write_derived(
    pk: &[u8],
    old: &Derived,
    new: &Derived,
    [summary, search, skills, links, links_rev]: [&TransactionalTree; 5],
) -> Result<(), Tx> {
    match &new.summary {
        Some(s) => {
            summary.insert(pk, enc(s)?)?;
        }
        None => {
            summary.remove(pk)?;
        }
    }
    for t in old.tokens.difference(&new.tokens) {
        search.remove(key(&[t.as_bytes(), pk]))?;
    }
    for t in new.tokens.difference(&old.tokens) {
        search.insert(key(&[t.as_bytes(), pk]), &[])?;
    }
    let changed = |a: &BTreeMap<String, u8>, b: &BTreeMap<String, u8>| -> Vec<String> {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect()
    };
    for s in changed(&old.skills, &new.skills) {
        if !new.skills.contains_key(&s) {
            skills.remove(key(&[s.as_bytes(), pk]))?;
        }
    }
    for s in changed(&new.skills, &old.skills) {
        skills.insert(key(&[s.as_bytes(), pk]), &[new.skills[&s]])?;
    }
    for (other, kind) in old.links.difference(&new.links) {
        let o = person_key(*other);
        links.remove(key(&[pk, &o, kind.as_bytes()]))?;
        links_rev.remove(key(&[&o, pk, kind.as_bytes()]))?;
    }
    for (other, kind) in new.links.difference(&old.links) {
        let o = person_key(*other);
        links.insert(key(&[pk, &o, kind.as_bytes()]), &[])?;
        links_rev.insert(key(&[&o, pk, kind.as_bytes()]), &[])?;
    }
    Ok(())
}

/// Records timeline entries in their pages (an entry at a recorded height replaces it).
fn write_entries(timeline: &TransactionalTree, pk: &[u8], entries: &[Entry]) -> Result<(), Tx> {
    let mut pages: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        pages.entry(e.height / PAGE).or_default().push(e);
    }
    for (page, new) in pages {
        let k = key(&[pk, &page.to_be_bytes()]);
        let mut all: BTreeMap<u64, Entry> = match timeline.get(&k)? {
            Some(bytes) => dec::<Vec<Entry>>("timeline", &bytes)
                .map_err(Tx::Abort)?
                .into_iter()
                .map(|e| (e.height, e))
                .collect(),
            None => BTreeMap::new(),
        };
        for e in new {
            all.insert(e.height, e.clone());
        }
        let all: Vec<Entry> = all.into_values().collect();
        timeline.insert(k, enc(&all)?)?;
    }
    Ok(())
}
