//! Reading segments without an index: a sequential scan of every record, and the checks that
//! decide whether a manifest's episode is whole.
//!
//! Records start 64-byte aligned and carry a checksummed header, so a scan needs no index: at
//! each aligned offset it either finds a valid header (and skips to the record's aligned end)
//! or steps 64 bytes on (a torn tail, a crashed writer's garbage). Nothing here writes.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::schema::{FieldKind, Schema};
use crate::segment::format::{
    ChunkRef, FIRST_MANIFEST_VERSION, FileHeaderError, HEADER_BYTES, RecordKind,
    SEGMENT_FORMAT_VERSION, align_up, check_record_header, checksum, decode_file_header,
    parse_record_header,
};
use crate::segment::manifest::{ManifestV1, MarkerV1};
use crate::segment::{list_segment_ids, segment_path};

/// One segment file as the scan found it.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub id: u64,
    pub len: u64,
    /// The segment format version, `None` when the file header is invalid.
    pub version: Option<u32>,
}

/// A manifest record whose payload checksum and encoding are good (chunks not yet checked).
#[derive(Clone, Debug)]
pub struct FoundManifest {
    pub segment: u64,
    pub offset: u64,
    pub manifest: ManifestV1,
}

/// A commit marker record whose payload checksum and encoding are good.
#[derive(Clone, Copy, Debug)]
pub struct FoundMarker {
    pub segment: u64,
    pub offset: u64,
    pub marker: MarkerV1,
}

/// Something the scan could not use, named by segment and offset.
#[derive(Clone, Debug)]
pub struct Unrestorable {
    /// Segment id; 0 (never a segment id) for an episode of the old index.
    pub segment: u64,
    /// Offset of the record (0 for a file header or an episode of the old index).
    pub offset: u64,
    pub reason: String,
}

/// Everything found in a store's segments.
#[derive(Default)]
pub struct Scan {
    pub segments: Vec<SegmentInfo>,
    /// In segment order, then offset order.
    pub manifests: Vec<FoundManifest>,
    pub markers: Vec<FoundMarker>,
    /// Manifest or marker records that failed their payload checksum or did not decode, and
    /// segment files with an invalid header.
    pub skipped: Vec<Unrestorable>,
    /// Bytes at record positions that hold no valid record header (torn tails, garbage).
    pub garbage_bytes: u64,
    maps: HashMap<u64, Mmap>,
}

/// Scans every segment in `segments_dir`, in id order. A segment of a newer format is refused
/// (its records cannot be understood), every other problem is recorded and scanned past.
pub fn scan(segments_dir: &Path) -> Result<Scan> {
    let mut out = Scan::default();
    for id in list_segment_ids(segments_dir)? {
        let path = segment_path(segments_dir, id);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: trajstore never modifies or truncates segment bytes below a length a reader
        // may have seen (segment/format.rs); repair only reads. As for every reader, another
        // program truncating the file is outside the store's contract.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let len = map.len() as u64;
        let version = match decode_file_header(&map, id) {
            Ok(v) => Some(v),
            Err(FileHeaderError::NewerVersion(found)) => {
                return Err(Error::UnsupportedFormat {
                    path,
                    found,
                    supported: SEGMENT_FORMAT_VERSION,
                });
            }
            Err(FileHeaderError::Invalid(reason)) => {
                out.skipped.push(Unrestorable {
                    segment: id,
                    offset: 0,
                    reason: format!("{}: {reason}", path.display()),
                });
                None
            }
        };
        if version.is_some_and(|v| v >= FIRST_MANIFEST_VERSION) {
            out.scan_records(id, &map);
        }
        out.segments.push(SegmentInfo { id, len, version });
        out.maps.insert(id, map);
    }
    Ok(out)
}

impl Scan {
    fn scan_records(&mut self, segment: u64, map: &[u8]) {
        let len = map.len() as u64;
        let mut pos = HEADER_BYTES as u64;
        while pos + HEADER_BYTES as u64 <= len {
            let at = pos as usize;
            let header = parse_record_header(&map[at..at + HEADER_BYTES]);
            let Some((h, end)) = header.and_then(|h| Some((h, h.payload_end(pos)?))) else {
                self.garbage_bytes += HEADER_BYTES as u64;
                pos += HEADER_BYTES as u64;
                continue;
            };
            if end > len {
                // A torn tail: the header made it to disk, the payload did not.
                self.garbage_bytes += HEADER_BYTES as u64;
                pos += HEADER_BYTES as u64;
                continue;
            }
            let payload = &map[at + HEADER_BYTES..end as usize];
            let skip = |reason: String| Unrestorable {
                segment,
                offset: pos,
                reason,
            };
            match h.kind {
                RecordKind::Blob => {} // checked through the manifests that name it
                _ if checksum(payload) != h.checksum => {
                    self.skipped
                        .push(skip("record payload checksum mismatch".into()));
                    self.garbage_bytes += HEADER_BYTES as u64;
                    pos += HEADER_BYTES as u64;
                    continue;
                }
                RecordKind::Manifest => match ManifestV1::decode(payload, segment, pos) {
                    Ok(manifest) => self.manifests.push(FoundManifest {
                        segment,
                        offset: pos,
                        manifest,
                    }),
                    Err(e) => self.skipped.push(skip(e.to_string())),
                },
                RecordKind::Marker => match MarkerV1::decode(payload, segment, pos) {
                    Ok(marker) => self.markers.push(FoundMarker {
                        segment,
                        offset: pos,
                        marker,
                    }),
                    Err(e) => self.skipped.push(skip(e.to_string())),
                },
            }
            pos = align_up(end);
        }
    }

    /// Checks that a manifest describes a whole episode: a valid schema, one chunk list per
    /// field with the right step counts, and every chunk's header and payload checksum good.
    pub fn check_manifest(&self, m: &ManifestV1) -> std::result::Result<(), String> {
        crate::writer::validate_user(&m.user).map_err(|e| e.to_string())?;
        let schema = Schema::from_fields(m.fields.clone()).map_err(|e| e.to_string())?;
        if m.chunks.len() != schema.fields().len() {
            return Err(format!(
                "{} chunk lists for {} fields",
                m.chunks.len(),
                schema.fields().len()
            ));
        }
        for (spec, chunks) in schema.fields().iter().zip(&m.chunks) {
            let want = match spec.kind {
                FieldKind::Observation => u64::from(m.steps) + 1,
                FieldKind::Transition => u64::from(m.steps),
            };
            let got: u64 = chunks.iter().map(|c| u64::from(c.steps)).sum();
            if got != want {
                return Err(format!(
                    "field {:?}: chunks hold {got} values, the episode needs {want}",
                    spec.name
                ));
            }
            for chunk in chunks {
                self.check_chunk(chunk, spec.step_bytes())
                    .map_err(|e| format!("field {:?}: {e}", spec.name))?;
            }
        }
        Ok(())
    }

    fn check_chunk(&self, chunk: &ChunkRef, step_bytes: usize) -> Result<()> {
        let map = self.maps.get(&chunk.segment).ok_or_else(|| {
            Error::corrupted(chunk.segment, chunk.offset, "the segment file is missing")
        })?;
        let header_at = usize::try_from(chunk.offset).unwrap_or(usize::MAX);
        let header = map
            .get(header_at..header_at.saturating_add(HEADER_BYTES))
            .unwrap_or(&[]);
        check_record_header(header, chunk, step_bytes)?;
        let start = header_at + HEADER_BYTES;
        let end = usize::try_from(chunk.payload_len)
            .ok()
            .and_then(|n| start.checked_add(n));
        let payload = end.and_then(|end| map.get(start..end)).ok_or_else(|| {
            Error::corrupted(
                chunk.segment,
                chunk.offset,
                "payload past the end of the file",
            )
        })?;
        if checksum(payload) != chunk.checksum {
            return Err(Error::corrupted(
                chunk.segment,
                chunk.offset,
                "payload checksum mismatch",
            ));
        }
        Ok(())
    }
}
