//! Reading segments through memory maps.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::format::{FileHeaderError, newer_segment_format};
use super::link::{RETIRED_DIR, check_file_header};
use super::segment_path;
use crate::error::{Error, Result};
use crate::io::{FileView, StoreIo};

/// Bytes inside a segment's memory map. Cheap to clone; keeps the map alive, so it stays valid
/// after the snapshot or store it came from is dropped.
#[derive(Clone)]
pub struct MappedBytes {
    map: Arc<dyn FileView>,
    start: usize,
    len: usize,
}

impl MappedBytes {
    /// A sub-range, or `None` when out of bounds.
    pub fn slice(&self, start: usize, len: usize) -> Option<MappedBytes> {
        let end = start.checked_add(len)?;
        (end <= self.len).then(|| MappedBytes {
            map: self.map.clone(),
            start: self.start + start,
            len,
        })
    }

    /// The whole map these bytes lie in, and where in it they start: for a reader of many
    /// ranges of one map that keeps the map once and an offset per range, rather than a
    /// [`MappedBytes`] (with its reference to the map) per range.
    pub fn in_whole_map(&self) -> (MappedBytes, usize) {
        let whole = MappedBytes {
            map: self.map.clone(),
            start: 0,
            len: self.map.len(),
        };
        (whole, self.start)
    }

    /// Which map these bytes lie in: equal for bytes of one map (and never for another map
    /// while these bytes keep theirs alive), so a key to group ranges by map.
    pub fn map_identity(&self) -> usize {
        // The data address only: a `dyn` pointer's vtable part may differ for one map.
        Arc::as_ptr(&self.map).cast::<u8>() as usize
    }

    /// Hands back this process's pages of `range` of these bytes ([`FileView::release`]):
    /// they stay readable, mapped again on the next access.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.len);
        if range.start < end {
            self.map.release(self.start + range.start..self.start + end);
        }
    }
}

#[cfg(test)]
impl MappedBytes {
    /// `bytes` as a map of their own: for tests of readers of mapped bytes.
    pub(crate) fn owning(bytes: Vec<u8>) -> MappedBytes {
        #[derive(Debug)]
        struct Owned(Vec<u8>);
        impl Deref for Owned {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                &self.0
            }
        }
        impl FileView for Owned {}
        let len = bytes.len();
        MappedBytes {
            map: Arc::new(Owned(bytes)),
            start: 0,
            len,
        }
    }
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedBytes({} bytes at {})", self.len, self.start)
    }
}

/// The memory maps of one store's segments, shared by every snapshot of a process.
///
/// A segment that is still being appended to is mapped up to its length at the time; when a
/// newer snapshot references bytes past that, the segment is mapped again, longer. Old maps
/// stay alive while anything holds bytes from them.
#[derive(Debug)]
pub struct SegmentMaps {
    dir: PathBuf,
    io: Arc<dyn StoreIo>,
    maps: RwLock<HashMap<u64, Arc<dyn FileView>>>,
}

impl SegmentMaps {
    pub fn new(dir: PathBuf, io: Arc<dyn StoreIo>) -> Self {
        SegmentMaps {
            dir,
            io,
            maps: RwLock::new(HashMap::new()),
        }
    }

    /// `len` bytes of segment `id` from `offset`, checked against the file's length.
    pub fn bytes(&self, id: u64, offset: u64, len: u64) -> Result<MappedBytes> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| Error::corrupted(id, offset, "record length overflows"))?;
        Ok(MappedBytes {
            map: self.map_checked(id, offset, end)?,
            start: offset as usize,
            len: len as usize,
        })
    }

    /// The whole map of segment `id`, at least `end` bytes long (a record at `offset` ends
    /// there): what a caller reading many records of the segment holds once instead of one
    /// [`MappedBytes`] per record.
    pub fn covering(&self, id: u64, offset: u64, end: u64) -> Result<MappedBytes> {
        let map = self.map_checked(id, offset, end)?;
        let len = map.len();
        Ok(MappedBytes { map, start: 0, len })
    }

    /// A map of segment `id` at least `end` bytes long, or why there is none.
    fn map_checked(&self, id: u64, offset: u64, end: u64) -> Result<Arc<dyn FileView>> {
        let map = self.map_covering(id, end)?;
        if end > map.len() as u64 {
            return Err(Error::corrupted(
                id,
                offset,
                format!(
                    "record ends at {end}, past the end of the segment file ({} bytes)",
                    map.len()
                ),
            ));
        }
        Ok(map)
    }

    fn map_covering(&self, id: u64, end: u64) -> Result<Arc<dyn FileView>> {
        if let Some(map) = self.maps.read().unwrap_or_else(|e| e.into_inner()).get(&id)
            && map.len() as u64 >= end
        {
            return Ok(map.clone());
        }
        let map = self.map_file(id)?;
        self.maps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, map.clone());
        Ok(map)
    }

    fn map_file(&self, id: u64) -> Result<Arc<dyn FileView>> {
        let mut dir = self.dir.clone();
        let mut path = segment_path(&dir, id);
        let map = match self.io.map(&path) {
            // Compaction replaced it after this process's snapshot was taken: the file waits in
            // `retired/` until no reader can use it (segment/link.rs).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                dir = self.dir.join(RETIRED_DIR);
                let retired = segment_path(&dir, id);
                match self.io.map(&retired) {
                    Ok(map) => {
                        path = retired;
                        map
                    }
                    Err(_) => return Err(Error::io(&path, e)),
                }
            }
            other => other.map_err(|e| Error::io(&path, e))?,
        };
        match check_file_header(&*self.io, &dir, id, &map).map(|(version, _)| version) {
            Ok(_) => Ok(map),
            Err(FileHeaderError::NewerVersion(found)) => Err(newer_segment_format(path, found)),
            Err(FileHeaderError::Invalid(reason)) => Err(Error::corrupted(id, 0, reason)),
        }
    }

    /// The segments mapped so far in this process.
    pub fn mapped_ids(&self) -> Vec<u64> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        maps.keys().copied().collect()
    }

    /// Length of a segment file on disk (for statistics), 0 when missing.
    pub fn file_len(&self, id: u64) -> u64 {
        self.io.len(&segment_path(&self.dir, id)).unwrap_or(0)
    }
}
