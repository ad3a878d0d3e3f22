//! Segments linked in from another store by `merge`, and segments retired by compaction.
//!
//! A segment file's header names the id it was created with. `merge` hard-links (or copies)
//! a source store's segment into the merged store under a new id that is never equal to the
//! id in its header, and writes a *link sidecar* `{id:016x}.link` naming that header id, the
//! source store and the source's segment id (schema/format.md, "Merge"). So:
//!
//! - a file whose header names another id is readable only through its sidecar; without one
//!   (a merge that crashed between the link and the sidecar) it has an invalid header, is
//!   never adopted, never read and never scanned for records;
//! - a linked file's own `MANI`/`DONE` records describe the source store (its ids), so repair
//!   never scans them: the merge wrote the merged episodes' manifests into a segment of the
//!   merged store.
//!
//! Compaction moves segments it replaced into `segments/retired/` (with their sidecars)
//! before deleting them; a reader holding an index snapshot from before the switch finds a
//! segment there when its name is gone from `segments/`.

use std::io;
use std::path::{Path, PathBuf};

use super::format::{FileHeaderError, decode_file_header_id};
use crate::io::StoreIo;

/// Directory inside `segments/` holding files compaction replaced, until no reader can use them.
pub const RETIRED_DIR: &str = "retired";

const LINK_MAGIC_LINE: &str = "trajstore segment link 1";

/// What a link sidecar says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentLink {
    /// The segment id in the linked file's header (the id it was created with).
    pub header_segment: u64,
    /// The segment's id (file name) in the store it was merged from.
    pub origin_segment: u64,
    /// That store's directory (for people; never opened).
    pub origin_store: String,
}

/// Path of the link sidecar of segment `id` in `dir`.
pub fn link_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.link"))
}

impl SegmentLink {
    /// The sidecar's bytes: four lines of UTF-8 text.
    pub fn encode(&self) -> Vec<u8> {
        let store: String = self
            .origin_store
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        format!(
            "{LINK_MAGIC_LINE}\nheader_segment {:016x}\norigin_segment {:016x}\norigin_store {store}\n",
            self.header_segment, self.origin_segment
        )
        .into_bytes()
    }

    /// Parses a sidecar; `None` when it is not a complete one (a torn write).
    pub fn decode(bytes: &[u8]) -> Option<SegmentLink> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body = text.strip_suffix('\n')?;
        let mut lines = body.split('\n');
        if lines.next()? != LINK_MAGIC_LINE {
            return None;
        }
        let hex = |line: Option<&str>, key: &str| {
            let value = line?.strip_prefix(key)?.strip_prefix(' ')?;
            (value.len() == 16)
                .then(|| u64::from_str_radix(value, 16).ok())
                .flatten()
        };
        let header_segment = hex(lines.next(), "header_segment")?;
        let origin_segment = hex(lines.next(), "origin_segment")?;
        let origin_store = lines.next()?.strip_prefix("origin_store ")?.to_owned();
        if lines.next().is_some() {
            return None;
        }
        Some(SegmentLink {
            header_segment,
            origin_segment,
            origin_store,
        })
    }

    /// Reads the sidecar of segment `id` in `dir`: `Ok(None)` when there is none.
    pub fn read(io: &dyn StoreIo, dir: &Path, id: u64) -> io::Result<Option<SegmentLink>> {
        let path = link_path(dir, id);
        match io.map(&path) {
            Ok(view) => SegmentLink::decode(&view).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a complete segment link sidecar", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How a segment file found under its name `id` in `dir` is to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentOrigin {
    /// Created in this store: its header names `id`.
    Native,
    /// Linked from another store by `merge`: its records are the other store's.
    Linked(SegmentLink),
}

/// Checks the header of the segment file named `id` in `dir` (its first bytes, `bytes`):
/// its own id, or the id its link sidecar names. Returns its format version and origin.
pub fn check_file_header(
    io: &dyn StoreIo,
    dir: &Path,
    id: u64,
    bytes: &[u8],
) -> Result<(u32, SegmentOrigin), FileHeaderError> {
    let (version, header_id) = decode_file_header_id(bytes)?;
    if header_id == id {
        return Ok((version, SegmentOrigin::Native));
    }
    match SegmentLink::read(io, dir, id) {
        Ok(Some(link)) if link.header_segment == header_id => {
            Ok((version, SegmentOrigin::Linked(link)))
        }
        Ok(Some(_)) => Err(FileHeaderError::Invalid(
            "file header names another segment id than its link sidecar".into(),
        )),
        Ok(None) => Err(FileHeaderError::Invalid(
            "file header names another segment id (and no link sidecar says why)".into(),
        )),
        Err(e) => Err(FileHeaderError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_sidecar_round_trips_and_torn_ones_are_refused() {
        let link = SegmentLink {
            header_segment: 3,
            origin_segment: 7,
            origin_store: "/data/host\na".into(),
        };
        let bytes = link.encode();
        let back = SegmentLink::decode(&bytes).unwrap();
        assert_eq!(back.origin_store, "/data/host?a");
        assert_eq!((back.header_segment, back.origin_segment), (3, 7));
        for cut in 0..bytes.len() {
            assert_eq!(SegmentLink::decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }
}
