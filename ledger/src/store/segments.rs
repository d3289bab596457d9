//! Append-only segment files holding block bytes, for [`super::SledStore`].
//!
//! A segment is `blocks/NNNNNNNN.seg`. Each record is
//! `len: u32 little-endian | CID: 36 bytes | bytes: len`, so a segment can be read on its own.
//! Every write ends with a footer record, the commit record of the blocks before it; the write
//! and its `fdatasync` are the commit point. Records are only appended; a removed block's bytes
//! are overwritten with zeros in place (its header stays, so the segment stays parseable). The
//! one other change is made at open, by recovery (`recover.rs`): a torn tail after the last
//! complete commit of the newest segment (a commit that was never acknowledged) is cut off.
//!
//! Files are created `0600` and the directory `0700`: segments hold personal data.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::{Block, Cid, Error, Result, CID_LEN};

/// Bytes of a record header: length and CID.
pub(super) const HEADER: u64 = 4 + CID_LEN as u64;
/// A new segment is started once the active one is this large.
const MAX_SEGMENT: u64 = 256 * 1024 * 1024;

/// How a store's files are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// Appends, removals and recovery's truncation allowed; files created as needed.
    ReadWrite,
    /// Nothing is created or changed: for auditors' copies and concurrent readers.
    ReadOnly,
}

/// Where a block's bytes are: segment number, offset of the bytes (after the header), length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Loc {
    pub(super) segment: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
}

impl Loc {
    pub(super) fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&self.segment.to_be_bytes());
        out[4..12].copy_from_slice(&self.offset.to_be_bytes());
        out[12..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Loc> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        Some(Loc {
            segment: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            offset: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            len: u32::from_be_bytes(bytes[12..].try_into().ok()?),
        })
    }
}

struct Active {
    id: u32,
    end: u64,
}

/// The segment files of one store.
pub(super) struct Segments {
    dir: PathBuf,
    access: Access,
    files: RwLock<Vec<Arc<File>>>,
    /// Read-only maps of the segments, as long as they were when mapped; a read beyond a map's
    /// end remaps that segment.
    maps: RwLock<Vec<Option<Arc<memmap2::Mmap>>>>,
    active: Mutex<Active>,
}

/// Maps a segment for reading.
fn map(file: &File) -> std::io::Result<Option<Arc<memmap2::Mmap>>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: segment files are only appended to, except for two changes. Zeroing a removed
    // block may race with a reader copying those bytes; the reader then sees old bytes, zeros
    // or a mix, and the CID check that every read goes through (invariant 4) rejects anything
    // but the original bytes. Recovery cuts a torn tail at open, before this process maps the
    // segment again (`truncate_active` drops the map first) and before any location past the
    // cut exists; another process's read-only map may cover the cut bytes, but it only reads
    // at locations of complete commits, which lie before the cut (see docs/DESIGN.md).
    unsafe { memmap2::Mmap::map(file) }.map(|m| Some(Arc::new(m)))
}

/// Maps an I/O error to [`Error::Io`] with `context` (what was being done, naming the path).
pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

impl Segments {
    pub(super) fn open(dir: PathBuf, access: Access) -> Result<Segments> {
        if access == Access::ReadWrite {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(format!("creating {}", dir.display())))?;
        }
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(format!("reading {}", dir.display())))? {
            let name = entry
                .map_err(io(format!("reading {}", dir.display())))?
                .file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u32>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        if ids.iter().enumerate().any(|(i, &id)| i as u32 != id) {
            return Err(Error::Io {
                context: format!("opening the segments in {}", dir.display()),
                source: std::io::Error::other(format!(
                    "segment files are not numbered 0..n: {ids:?}"
                )),
            });
        }
        if ids.is_empty() && access == Access::ReadWrite {
            ids.push(0);
        }
        let mut files = Vec::new();
        for &id in &ids {
            let path = segment_path(&dir, id);
            let file = match access {
                Access::ReadWrite => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&path),
                Access::ReadOnly => File::open(&path),
            }
            .map_err(io(format!("opening {}", path.display())))?;
            files.push(Arc::new(file));
        }
        let (id, end) = match ids.last() {
            Some(&id) => {
                let path = segment_path(&dir, id);
                let end = files[id as usize]
                    .metadata()
                    .map_err(io(format!("reading {}", path.display())))?
                    .len();
                (id, end)
            }
            None => (0, 0),
        };
        let maps = files
            .iter()
            .map(|f| map(f))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io(format!("mapping the segments in {}", dir.display())))?;
        Ok(Segments {
            dir,
            access,
            files: RwLock::new(files),
            maps: RwLock::new(maps),
            active: Mutex::new(Active { id, end }),
        })
    }

    /// The directory of the segments.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many segments there are.
    pub(super) fn count(&self) -> u32 {
        self.files.read().unwrap_or_else(|e| e.into_inner()).len() as u32
    }

    /// The whole of one segment as it is now (empty for an empty segment), for recovery.
    pub(super) fn whole(&self, id: u32) -> Result<Option<Arc<memmap2::Mmap>>> {
        let file = self.file(id)?;
        let len = file
            .metadata()
            .map_err(io(format!(
                "reading segment {id} in {}",
                self.dir.display()
            )))?
            .len();
        if len == 0 {
            return Ok(None);
        }
        self.map_covering(id, len)
            .map(Some)
            .ok_or_else(|| Error::Io {
                context: format!("mapping segment {id} in {}", self.dir.display()),
                source: std::io::Error::other("the segment could not be mapped"),
            })
    }

    /// Cuts the newest segment at `len` (recovery's torn tail), durably, and appends continue
    /// there. Only at open, before any read is handed out.
    pub(super) fn truncate_active(&self, len: u64) -> Result<()> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.file(active.id)?;
        let path = segment_path(&self.dir, active.id);
        // Drop the map first: a map beyond a file's end faults on access.
        if let Some(slot) = self
            .maps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(active.id as usize)
        {
            *slot = None;
        }
        file.set_len(len)
            .map_err(io(format!("truncating {}", path.display())))?;
        file.sync_all()
            .map_err(io(format!("syncing {}", path.display())))?;
        active.end = len;
        Ok(())
    }

    fn file(&self, id: u32) -> Result<Arc<File>> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files.get(id as usize).cloned().ok_or_else(|| Error::Io {
            context: format!("reading segment {id} in {}", self.dir.display()),
            source: std::io::Error::other("no such segment"),
        })
    }

    /// Appends blocks (as `(label, bytes)`) and then a footer made from their locations, in one
    /// durable write. Returns the blocks' locations, and the footer's label and location.
    pub(super) fn append(
        &self,
        blocks: &[(Cid, &[u8])],
        footer: impl FnOnce(&[Loc]) -> Vec<u8>,
    ) -> Result<(Vec<Loc>, Cid, Loc)> {
        if self.access == Access::ReadOnly {
            return Err(read_only(&self.dir));
        }
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.end >= MAX_SEGMENT {
            let id = active.id + 1;
            let path = segment_path(&self.dir, id);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(format!("creating {}", path.display())))?;
            sync_dir(&self.dir)?;
            self.files
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::new(file));
            *active = Active { id, end: 0 };
        }
        let total: usize = blocks.iter().map(|(_, b)| HEADER as usize + b.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut locs = Vec::with_capacity(blocks.len());
        for (cid, bytes) in blocks {
            crate::check_block_size(&format!("block {cid}"), bytes.len())?;
            let len = bytes.len() as u32;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&cid.to_bytes());
            let offset = active.end + buf.len() as u64;
            buf.extend_from_slice(bytes);
            locs.push(Loc {
                segment: active.id,
                offset,
                len,
            });
        }
        let footer = footer(&locs);
        let footer_cid = Cid::of(&footer);
        let footer_len = u32::try_from(footer.len())
            .map_err(|_| Error::InvalidEvent("a commit record is larger than 4 GiB".into()))?;
        buf.extend_from_slice(&footer_len.to_le_bytes());
        buf.extend_from_slice(&footer_cid.to_bytes());
        let footer_loc = Loc {
            segment: active.id,
            offset: active.end + buf.len() as u64,
            len: footer_len,
        };
        buf.extend_from_slice(&footer);
        let file = self.file(active.id)?;
        let path = segment_path(&self.dir, active.id);
        file.write_all_at(&buf, active.end)
            .map_err(io(format!("writing {}", path.display())))?;
        file.sync_data()
            .map_err(io(format!("syncing {}", path.display())))?;
        active.end += buf.len() as u64;
        Ok((locs, footer_cid, footer_loc))
    }

    /// The map of a segment that covers `end`, remapping the segment if it grew.
    fn map_covering(&self, segment: u32, end: u64) -> Option<Arc<memmap2::Mmap>> {
        let covers =
            |m: &Option<Arc<memmap2::Mmap>>| m.as_ref().filter(|m| m.len() as u64 >= end).cloned();
        if let Some(m) = self
            .maps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(segment as usize)
            .and_then(covers)
        {
            return Some(m);
        }
        let file = self.file(segment).ok()?;
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let slot = maps.get_mut(segment as usize)?;
        if covers(slot).is_none() {
            *slot = map(&file).ok()?;
        }
        covers(slot)
    }

    /// Reads a block's bytes (from the segment's map, or with a positioned read).
    pub(super) fn read(&self, loc: Loc) -> Result<Vec<u8>> {
        let end = loc.offset + loc.len as u64;
        if let Some(m) = self.map_covering(loc.segment, end) {
            return Ok(m[loc.offset as usize..end as usize].to_vec());
        }
        let file = self.file(loc.segment)?;
        let mut bytes = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut bytes, loc.offset)
            .map_err(io(format!(
                "reading {} bytes at {} of segment {}",
                loc.len, loc.offset, loc.segment
            )))?;
        Ok(bytes)
    }

    /// Overwrites a block's bytes with zeros, durably.
    pub(super) fn zero(&self, loc: Loc) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(read_only(&self.dir));
        }
        let file = self.file(loc.segment)?;
        let path = segment_path(&self.dir, loc.segment);
        file.write_all_at(&vec![0u8; loc.len as usize], loc.offset)
            .map_err(io(format!("erasing in {}", path.display())))?;
        file.sync_data()
            .map_err(io(format!("syncing {}", path.display())))
    }

    /// Reads many blocks, in location order, calling `visit` with each; stops when it returns
    /// `false`.
    pub(super) fn read_sorted(
        &self,
        mut locs: Vec<(Cid, Loc)>,
        visit: &mut dyn FnMut(Cid, Result<Vec<u8>>) -> bool,
    ) {
        locs.sort_unstable_by_key(|(_, loc)| *loc);
        for (cid, loc) in locs {
            if !visit(cid, self.read(loc)) {
                break;
            }
        }
    }
}

/// The error of a write to a store opened read-only.
pub(super) fn read_only(dir: &Path) -> Error {
    Error::ReadOnly {
        path: dir.parent().unwrap_or(dir).to_path_buf(),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// Checks bytes read for `cid` (invariant 4).
pub(super) fn checked(cid: Cid, bytes: Result<Vec<u8>>) -> Result<Block> {
    bytes.and_then(|b| Block::verified(cid, b))
}
