//! Reading segments without an index: a sequential scan of every record, and the checks that
//! decide whether a manifest's episode is whole.
//!
//! Records start 64-byte aligned and carry a checksummed header, so a scan needs no index: at
//! each aligned offset it either finds a valid header (and skips to the record's aligned end)
//! or steps 64 bytes on (a torn tail, a crashed writer's garbage). Nothing here writes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids::SegmentId;
use crate::io::{FileView, OsIo, StoreIo};
use crate::schema::{FieldKind, Schema};
use crate::segment::format::{
    ChunkRef, FIRST_MANIFEST_VERSION, FileHeaderError, HEADER_BYTES, RecordKind, align_up,
    check_record_header, checksum, newer_segment_format, parse_record_header,
};
use crate::segment::link::{SegmentOrigin, check_file_header};
use crate::segment::manifest::{ManifestV1, MarkerV1};
use crate::segment::{list_segment_ids, segment_path};

/// One segment file as the scan found it.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub id: u64,
    pub len: u64,
    /// The segment format version, `None` when the file header is invalid.
    pub version: Option<u32>,
    /// Linked from another store by `merge` (segment/link.rs): its records are not scanned.
    pub linked: bool,
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
    pub segment: SegmentId,
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
    /// Manifest or marker records that did not decode (their checksum was good), and segment
    /// files with an invalid header. Records failing their checksum count as garbage: a
    /// damaged manifest of a committed episode is reported through its marker (plan.rs).
    pub skipped: Vec<Unrestorable>,
    /// Bytes at record positions that hold no valid record header (torn tails, garbage).
    pub garbage_bytes: u64,
    /// Blob records whose payload checksum matched their header, by (segment, offset).
    good_blobs: HashSet<(u64, u64)>,
    maps: HashMap<u64, Arc<dyn FileView>>,
}

/// Scans every segment in `segments_dir`, in id order. A segment of a newer format is refused
/// (its records cannot be understood), every other problem is recorded and scanned past.
/// Segments are scanned on all cores; results are in segment, then offset order.
pub fn scan(segments_dir: &Path) -> Result<Scan> {
    let mut out = Scan::default();
    for id in list_segment_ids(segments_dir)? {
        let path = segment_path(segments_dir, id);
        // Mapped through the file-system seam (io.rs), which holds the one mapping `unsafe`.
        let map = OsIo.map(&path).map_err(|e| Error::io(&path, e))?;
        let len = map.len() as u64;
        let mut linked = false;
        let version = match check_file_header(&OsIo, segments_dir, id, &map) {
            Ok((v, origin)) => {
                // A segment merged in from another store: its manifests and markers describe
                // that store; the merge wrote this store's own into one of its segments.
                linked = matches!(origin, SegmentOrigin::Linked(_));
                Some(v)
            }
            Err(FileHeaderError::NewerVersion(found)) => {
                return Err(newer_segment_format(path, found));
            }
            Err(FileHeaderError::Invalid(reason)) => {
                out.skipped.push(Unrestorable {
                    segment: SegmentId(id),
                    offset: 0,
                    reason: format!("{}: {reason}", path.display()),
                });
                None
            }
        };
        out.segments.push(SegmentInfo {
            id,
            len,
            version,
            linked,
        });
        out.maps.insert(id, map);
    }
    let with_records: Vec<u64> = out
        .segments
        .iter()
        .filter(|s| !s.linked && s.version.is_some_and(|v| v >= FIRST_MANIFEST_VERSION))
        .map(|s| s.id)
        .collect();
    let found: Vec<SegmentRecords> = with_records
        .par_iter()
        .map(|id| scan_records(*id, &out.maps[id]))
        .collect();
    for (id, records) in with_records.into_iter().zip(found) {
        out.manifests.extend(records.manifests);
        out.markers.extend(records.markers);
        out.skipped.extend(records.skipped);
        out.garbage_bytes += records.garbage_bytes;
        out.good_blobs
            .extend(records.good_blobs.into_iter().map(|offset| (id, offset)));
    }
    Ok(out)
}

/// What one segment's records are.
#[derive(Default)]
struct SegmentRecords {
    manifests: Vec<FoundManifest>,
    markers: Vec<FoundMarker>,
    skipped: Vec<Unrestorable>,
    garbage_bytes: u64,
    /// Offsets of blob records whose payload checksum matched their header.
    good_blobs: HashSet<u64>,
}

/// Walks one segment's records. A record is taken only when its header is valid and its
/// payload is within the file and matches the header's checksum; anything else is garbage
/// (a torn write of a killed recorder, or damage) and is scanned past 64 bytes at a time. The
/// payload checksum matters for blobs too: a header whose payload was torn, with records of a
/// later adopter after it, must not make the scan jump over those records.
fn scan_records(segment: u64, map: &[u8]) -> SegmentRecords {
    let mut out = SegmentRecords::default();
    let len = map.len() as u64;
    let mut pos = HEADER_BYTES as u64;
    while pos + HEADER_BYTES as u64 <= len {
        let at = pos as usize;
        let header = parse_record_header(&map[at..at + HEADER_BYTES]);
        let record = header
            .and_then(|h| Some((h, h.payload_end(pos)?)))
            .filter(|(_, end)| *end <= len)
            .filter(|(h, end)| checksum(&map[at + HEADER_BYTES..*end as usize]) == h.checksum);
        let Some((h, end)) = record else {
            out.garbage_bytes += HEADER_BYTES as u64;
            pos += HEADER_BYTES as u64;
            continue;
        };
        let payload = &map[at + HEADER_BYTES..end as usize];
        let skip = |reason: String| Unrestorable {
            segment: SegmentId(segment),
            offset: pos,
            reason,
        };
        match h.kind {
            RecordKind::Blob => {
                out.good_blobs.insert(pos);
            }
            RecordKind::Manifest => match ManifestV1::decode(payload, segment, pos) {
                Ok(manifest) => out.manifests.push(FoundManifest {
                    segment,
                    offset: pos,
                    manifest,
                }),
                Err(e) => out.skipped.push(skip(e.to_string())),
            },
            RecordKind::Marker => match MarkerV1::decode(payload, segment, pos) {
                Ok(marker) => out.markers.push(FoundMarker {
                    segment,
                    offset: pos,
                    marker,
                }),
                Err(e) => out.skipped.push(skip(e.to_string())),
            },
        }
        pos = align_up(end);
    }
    out
}

impl Scan {
    /// Checks that a manifest describes a whole episode: a valid schema, one chunk list per
    /// field with the right step counts, and every chunk's header and payload checksum good.
    pub fn check_manifest(&self, m: &ManifestV1) -> std::result::Result<(), String> {
        crate::names::validate_user(&m.user).map_err(|e| e.to_string())?;
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
        if self.good_blobs.contains(&(chunk.segment, chunk.offset)) {
            return Ok(()); // the scan matched this payload against this checksum already
        }
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
