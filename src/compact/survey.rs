//! What each segment file holds for the index: live chunk bytes, live manifest and marker
//! bytes, and the rest (dead: aborted or crashed recordings, stale manifests, padding of
//! dead records). Decides which segments compaction rewrites and which it drops.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::records::EpisodeRecordV1;
use crate::io::{OsIo, StoreIo};
use crate::segment::format::{
    ChunkRef, FIRST_MANIFEST_VERSION, FileHeaderError, HEADER_BYTES, RecordKind, align_up,
    checksum, newer_segment_format, parse_record_header,
};
use crate::segment::link::{SegmentOrigin, check_file_header};
use crate::segment::manifest::{ManifestV1, MarkerV1};
use crate::segment::segment_path;

/// Rewrite a segment when at least this fraction (1/N) of it is dead.
const DEAD_FRACTION: u64 = 8;

/// One segment file as the index uses it.
#[derive(Clone, Debug)]
pub struct SegmentUse {
    pub id: u64,
    pub len: u64,
    /// Header + payload (aligned) of every chunk a live episode references.
    pub live_chunk_bytes: u64,
    /// Manifests and markers describing live episodes as the index has them.
    pub live_meta_bytes: u64,
    /// Live episodes with a chunk here.
    pub episodes: BTreeSet<u64>,
    /// Live episodes whose current manifest (with or without its marker) is here.
    pub manifests: BTreeSet<u64>,
    /// The file header is invalid (a torn creation, a linked file without its sidecar).
    pub invalid: bool,
    /// A deleted episode (a tombstone, restorable) has chunks here: kept as it is until the
    /// tombstone is purged (`Store::purge_tombstones`).
    pub pinned: bool,
}

/// What compaction does with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to gain.
    Keep,
    /// Live chunks and manifests are copied out, then the file is retired.
    Rewrite,
    /// Nothing in it is live: retired as it is.
    Drop,
}

impl SegmentUse {
    pub fn live_bytes(&self) -> u64 {
        self.live_chunk_bytes + self.live_meta_bytes
    }

    /// Bytes nothing live needs (the file header excluded).
    pub fn dead_bytes(&self) -> u64 {
        self.len
            .saturating_sub(HEADER_BYTES as u64)
            .saturating_sub(self.live_bytes())
    }

    pub fn verdict(&self) -> Verdict {
        if self.pinned {
            return Verdict::Keep;
        }
        if self.episodes.is_empty() && self.manifests.is_empty() {
            return Verdict::Drop;
        }
        if self.invalid {
            return Verdict::Keep; // referenced but unreadable: verify reports it
        }
        let dead = self.dead_bytes();
        if dead > 0 && dead * DEAD_FRACTION >= self.len {
            Verdict::Rewrite
        } else {
            Verdict::Keep
        }
    }
}

/// The size a record of `payload_len` bytes takes in a segment.
pub fn record_bytes(payload_len: u64) -> u64 {
    align_up(HEADER_BYTES as u64 + payload_len)
}

/// Surveys the segment files `ids` against the live episodes.
pub fn survey(
    segments_dir: &Path,
    ids: &[u64],
    live: &HashMap<u64, EpisodeRecordV1>,
) -> Result<Vec<SegmentUse>> {
    let mut uses: HashMap<u64, SegmentUse> = ids
        .iter()
        .map(|&id| {
            let len = OsIo.len(&segment_path(segments_dir, id)).unwrap_or(0);
            let u = SegmentUse {
                id,
                len,
                live_chunk_bytes: 0,
                live_meta_bytes: 0,
                episodes: BTreeSet::new(),
                manifests: BTreeSet::new(),
                invalid: false,
                pinned: false,
            };
            (id, u)
        })
        .collect();
    for (&episode, record) in live {
        for chunk in record.fields.iter().flatten() {
            if let Some(u) = uses.get_mut(&chunk.segment) {
                u.live_chunk_bytes += record_bytes(chunk.payload_len);
                u.episodes.insert(episode);
            }
        }
    }
    let by_first_chunk: HashMap<(u64, u64), u64> = live
        .iter()
        .filter_map(|(&id, r)| Some((first_chunk(&r.fields)?, id)))
        .collect();
    for &id in ids {
        let path = segment_path(segments_dir, id);
        let Ok(map) = OsIo.map(&path) else {
            continue; // gone since listed (another compaction): nothing to do with it
        };
        let u = uses.get_mut(&id).expect("listed");
        u.len = map.len() as u64;
        match check_file_header(&OsIo, segments_dir, id, &map) {
            Ok((version, SegmentOrigin::Native)) if version >= FIRST_MANIFEST_VERSION => {
                live_meta(id, &map, live, &by_first_chunk, u);
            }
            Ok(_) => {} // v1 (no manifests) or linked (its records are another store's)
            Err(FileHeaderError::NewerVersion(found)) => {
                return Err(newer_segment_format(path, found));
            }
            Err(FileHeaderError::Invalid(_)) => u.invalid = true,
        }
    }
    let mut out: Vec<SegmentUse> = uses.into_values().collect();
    out.sort_by_key(|u| u.id);
    Ok(out)
}

/// Finds the manifests and markers of `segment` that describe live episodes as the index has
/// them (same chunks). Manifests and markers are taken as repair takes them (valid header,
/// payload within the file and matching its checksum). Blob payloads are not hashed here (the
/// copy checks each live chunk): a torn blob header could hide records after it, which only
/// makes their bytes count as dead; every live episode with a chunk in a rewritten segment
/// gets a new manifest whatever this finds.
fn live_meta(
    segment: u64,
    map: &[u8],
    live: &HashMap<u64, EpisodeRecordV1>,
    by_first_chunk: &HashMap<(u64, u64), u64>,
    u: &mut SegmentUse,
) {
    let mut manifests: HashMap<u64, (u64, &[u8])> = HashMap::new(); // offset -> (size, payload)
    let mut markers: Vec<(u64, MarkerV1)> = Vec::new();
    let len = map.len() as u64;
    let mut pos = HEADER_BYTES as u64;
    while pos + HEADER_BYTES as u64 <= len {
        let at = pos as usize;
        let record = parse_record_header(&map[at..at + HEADER_BYTES])
            .and_then(|h| Some((h, h.payload_end(pos)?)))
            .filter(|(_, end)| *end <= len)
            .filter(|(h, end)| {
                h.kind == RecordKind::Blob
                    || checksum(&map[at + HEADER_BYTES..*end as usize]) == h.checksum
            });
        let Some((h, end)) = record else {
            pos += HEADER_BYTES as u64;
            continue;
        };
        let payload = &map[at + HEADER_BYTES..end as usize];
        match h.kind {
            RecordKind::Manifest => {
                manifests.insert(pos, (record_bytes(h.payload_len), payload));
            }
            RecordKind::Marker => {
                if let Ok(m) = MarkerV1::decode(payload, segment, pos) {
                    markers.push((record_bytes(h.payload_len), m));
                }
            }
            RecordKind::Blob => {}
        }
        pos = align_up(end);
    }
    let mut marked: HashMap<u64, (u64, u64)> = HashMap::new(); // manifest offset -> (id, bytes)
    for (marker_bytes, marker) in markers {
        marked.insert(marker.manifest_offset, (marker.episode, marker_bytes));
    }
    for (offset, (manifest_bytes, payload)) in manifests {
        let Ok(m) = ManifestV1::decode(payload, segment, offset) else {
            continue;
        };
        // A marker names the episode; a manifest whose marker was lost (a crash between the
        // index commit and the marker's sync) is found by its first chunk.
        let (id, marker_bytes) = match marked.get(&offset) {
            Some(&(id, bytes)) => (id, bytes),
            None => match first_chunk(&m.chunks).and_then(|k| by_first_chunk.get(&k)) {
                Some(&id) => (id, 0),
                None => continue,
            },
        };
        let current = live.get(&id).is_some_and(|r| r.fields == m.chunks);
        if current && u.manifests.insert(id) {
            u.live_meta_bytes += marker_bytes + manifest_bytes;
        }
    }
}

/// The first chunk of an episode identifies it: no two episodes share a chunk.
pub fn first_chunk(chunks: &[Vec<ChunkRef>]) -> Option<(u64, u64)> {
    chunks.first()?.first().map(|c| (c.segment, c.offset))
}

/// The error for a chunk that fails its check while being copied.
pub fn damaged(episode: u64, field: &str, chunk: &ChunkRef, reason: &str) -> Error {
    Error::corrupted(
        chunk.segment,
        chunk.offset,
        format!(
            "episode {episode} field {field:?}: {reason}; nothing was compacted (run `trajstore verify`)"
        ),
    )
}
