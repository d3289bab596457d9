//! The trust list of a [`super::SledStore`]: a small text file, `trust`, rewritten whole and
//! atomically (a temporary file, synced, renamed over the old one, the directory synced).
//!
//! One line per trusted key: the key as 64 lowercase hex digits, a tab, and a label (UTF-8, no
//! control characters); or per trusted identity: its stream (`key/ID`), a tab, a label. It lives outside sled so that the one thing a store holds besides its
//! segments that cannot be derived from them survives anything that happens to sled.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::segments::io;
use crate::{Author, Error, Result, StreamId};

/// The file's name in the store directory.
pub(super) const NAME: &str = "trust";
const TEMPORARY: &str = "trust.tmp";

/// The path of a leftover temporary file, if one is there (an interrupted rewrite: the old
/// file is still whole).
pub(super) fn leftover(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(TEMPORARY);
    path.exists().then_some(path)
}

/// What a line trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Trusted {
    /// A raw key.
    Key(Author),
    /// An identity (`crate::identity`).
    Identity(StreamId),
}

/// Reads the raw keys of the list; a missing file is an empty list.
pub(super) fn read(dir: &Path) -> Result<Vec<(Author, String)>> {
    Ok(read_all(dir)?
        .into_iter()
        .filter_map(|(t, label)| match t {
            Trusted::Key(a) => Some((a, label)),
            Trusted::Identity(_) => None,
        })
        .collect())
}

/// Reads the whole list; a missing file is an empty list.
pub(super) fn read_all(dir: &Path) -> Result<Vec<(Trusted, String)>> {
    let path = dir.join(NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |reason: &str| Error::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::other(format!("line {}: {reason}", n + 1)),
        };
        let (what, label) = line.split_once('\t').ok_or_else(|| bad("no tab"))?;
        if what.starts_with("key/") {
            let id: StreamId = what.parse().map_err(|_| bad("not an identity"))?;
            out.push((Trusted::Identity(id), label.to_string()));
            continue;
        }
        let bytes: [u8; 32] = decode_hex(what).ok_or_else(|| bad("not 64 hex digits"))?;
        out.push((Trusted::Key(Author::from_bytes(&bytes)?), label.to_string()));
    }
    Ok(out)
}

/// Writes the list atomically.
pub(super) fn write(dir: &Path, list: &[(Trusted, String)]) -> Result<()> {
    let mut text = String::new();
    for (trusted, label) in list {
        match trusted {
            Trusted::Key(author) => {
                for b in author.to_bytes() {
                    text.push_str(&format!("{b:02x}"));
                }
            }
            Trusted::Identity(id) => text.push_str(&id.to_string()),
        }
        text.push('\t');
        text.push_str(&clean_label(label));
        text.push('\n');
    }
    write_atomically(&dir.join(NAME), &dir.join(TEMPORARY), text.as_bytes())
}

/// Writes `bytes` to `path` atomically and durably (mode 0600): to `tmp`, synced, renamed over
/// `path`, the directory synced. A crash leaves the old file or the new one, and maybe `tmp`.
pub(crate) fn write_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(tmp, path).map_err(io(format!("renaming {}", tmp.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// A label as the file keeps it: control characters (which would break the line format or a
/// terminal) become spaces.
fn clean_label(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
