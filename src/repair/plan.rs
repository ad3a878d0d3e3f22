//! Deciding what `repair` does: whether the index agrees with the segments, and if not, which
//! episodes the rebuilt index holds under which ids (the rules are in schema/format.md,
//! "Repair").

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::old_index::{IndexState, OldIndex};
use super::scan::{FoundManifest, Scan, Unrestorable};
use crate::ids::{EpisodeId, SegmentId};
use crate::index::PendingEpisode;
use crate::index::records::EpisodeRecordV1;
use crate::schema::FieldSpec;
use crate::segment::format::ChunkRef;
use crate::segment::manifest::{ABORTED, ManifestV1};
use crate::value::Info;

/// An episode restored from a manifest that had no durable commit marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmarkedEpisode {
    /// The id it got in the rebuilt index.
    pub id: EpisodeId,
    pub user: String,
    /// Where its manifest is.
    pub segment: SegmentId,
    pub offset: u64,
}

/// Whole manifests, their markers, and how they compare with the index.
pub struct Findings<'s> {
    /// Manifests whose every chunk checked out, in segment order, with their marker's id.
    pub whole: Vec<(&'s FoundManifest, Option<u64>)>,
    pub unrestorable: Vec<Unrestorable>,
    /// Why the index is not healthy and complete (empty: it is).
    pub index_problems: Vec<String>,
    /// Whole manifests with no marker that the readable index does not hold either: commits
    /// in flight at a crash. Left alone when the index is healthy.
    pub uncommitted: u64,
    /// Manifests whose index commit failed (an aborted marker): never restored.
    pub aborted: u64,
    /// Manifests (and markers) of episodes whose later copy, by compaction, is kept.
    pub superseded: u64,
}

/// The first chunk of an episode identifies it: no two episodes share a chunk.
fn key(chunks: &[Vec<ChunkRef>]) -> Option<(u64, u64)> {
    chunks.first()?.first().map(|c| (c.segment, c.offset))
}

/// Checks every manifest, pairs it with its marker, and compares with the index.
pub fn examine<'s>(scan: &'s Scan, state: &IndexState) -> Findings<'s> {
    let mut unrestorable = scan.skipped.clone();
    let mut marker_of: HashMap<(u64, u64), u64> = HashMap::new();
    let mut aborted_at: HashSet<(u64, u64)> = HashSet::new();
    for m in &scan.markers {
        let at = (m.segment, m.marker.manifest_offset);
        if m.marker.episode == ABORTED {
            aborted_at.insert(at);
        } else if marker_of.insert(at, m.marker.episode).is_some() {
            unrestorable.push(Unrestorable {
                segment: SegmentId(m.segment),
                offset: m.offset,
                reason: "a second commit marker for the same manifest (ignored)".into(),
            });
        }
    }
    // Reading every chunk is the expensive part: on all cores, results in segment order.
    let checks: Vec<std::result::Result<(), String>> = scan
        .manifests
        .par_iter()
        .map(|found| scan.check_manifest(&found.manifest))
        .collect();
    let mut whole = Vec::new();
    let mut broken = Vec::new();
    let mut aborted = 0;
    for (found, check) in scan.manifests.iter().zip(checks) {
        let at = (found.segment, found.offset);
        if aborted_at.contains(&at) && !marker_of.contains_key(&at) {
            aborted += 1; // its index commit failed and its recorder was told so
            continue;
        }
        match check {
            Ok(()) => whole.push((found, marker_of.remove(&at))),
            Err(reason) => broken.push((found, reason, marker_of.remove(&at))),
        }
    }
    // Compaction copies an episode into a new segment with a fresh manifest and a marker of
    // the same id; until the old segment is deleted both exist. The copy in the highest
    // segment (the latest written, scan order) is the one kept; the others are superseded
    // (format.md, "Compaction").
    let mut latest: HashMap<u64, usize> = HashMap::new();
    for (i, (_, marker)) in whole.iter().enumerate() {
        if let Some(id) = marker {
            latest.insert(*id, i);
        }
    }
    let mut alternates: HashMap<u64, Vec<Vec<Vec<ChunkRef>>>> = HashMap::new();
    let mut superseded = 0;
    let mut kept = Vec::with_capacity(whole.len());
    for (i, (found, marker)) in whole.into_iter().enumerate() {
        match marker {
            Some(id) if latest[&id] != i => {
                superseded += 1;
                alternates
                    .entry(id)
                    .or_default()
                    .push(found.manifest.chunks.clone());
            }
            _ => kept.push((found, marker)),
        }
    }
    let whole = kept;
    for (found, reason, marker) in broken {
        if marker.is_some_and(|id| latest.contains_key(&id)) {
            superseded += 1; // its chunks were moved (and the old ones removed) by compaction
            continue;
        }
        unrestorable.push(Unrestorable {
            segment: SegmentId(found.segment),
            offset: found.offset,
            reason: format!("manifest of an episode that is not whole: {reason}"),
        });
    }
    for ((segment, offset), episode) in marker_of {
        if latest.contains_key(&episode) {
            superseded += 1;
            continue;
        }
        unrestorable.push(Unrestorable {
            segment: SegmentId(segment),
            offset,
            reason: format!(
                "commit marker of episode {episode} names a manifest at offset {offset} that is missing or damaged"
            ),
        });
    }
    let (index_problems, uncommitted) = compare(&whole, &alternates, state);
    Findings {
        whole,
        unrestorable,
        index_problems,
        uncommitted,
        aborted,
        superseded,
    }
}

/// Whether the index agrees with the whole manifests. An episode the index holds with the
/// chunks of a superseded copy (`alternates`: a compaction stopped before its index switch)
/// agrees too.
fn compare(
    whole: &[(&FoundManifest, Option<u64>)],
    alternates: &HashMap<u64, Vec<Vec<Vec<ChunkRef>>>>,
    state: &IndexState,
) -> (Vec<String>, u64) {
    let old = match state {
        IndexState::Missing => return (vec!["index.redb is missing".into()], 0),
        IndexState::Damaged(reason) => return (vec![format!("index.redb: {reason}")], 0),
        IndexState::Readable(old) => old,
    };
    let mut problems = old.problems.clone();
    // Deleted episodes keep their manifests until compaction: they are not missing.
    let by_id: HashMap<u64, &EpisodeRecordV1> = old
        .episodes
        .iter()
        .chain(&old.deleted)
        .map(|(i, r)| (*i, r))
        .collect();
    let by_key: HashSet<(u64, u64)> = old
        .episodes
        .iter()
        .chain(&old.deleted)
        .filter_map(|(_, r)| key(&r.fields))
        .collect();
    let mut uncommitted = 0;
    for (found, marker) in whole {
        let m = &found.manifest;
        match marker {
            Some(id) => match by_id.get(id) {
                // Not the user: a relabel may have changed it since the manifest.
                Some(r)
                    if r.fields == m.chunks
                        || alternates.get(id).is_some_and(|a| a.contains(&r.fields)) => {}
                Some(_) => problems.push(format!(
                    "episode {id}: the index record disagrees with its manifest (segment {:016x} offset {})",
                    found.segment, found.offset
                )),
                None => problems.push(format!(
                    "episode {id} (manifest in segment {:016x} at offset {}) is missing from the index",
                    found.segment, found.offset
                )),
            },
            None if key(&m.chunks).is_some_and(|k| by_key.contains(&k)) => {}
            None => uncommitted += 1,
        }
    }
    (problems, uncommitted)
}

/// The contents of a rebuilt index.
#[derive(Default)]
pub struct Plan {
    pub schemas: Vec<(u64, Vec<FieldSpec>)>,
    pub episodes: Vec<(u64, PendingEpisode)>,
    /// Restored under the id of their commit marker (or of the readable old index).
    pub marked: u64,
    pub unmarked: Vec<UnmarkedEpisode>,
    /// Episodes of a readable old index that no manifest describes (v1 episodes), kept.
    pub carried_over: u64,
    pub unrestorable: Vec<Unrestorable>,
}

struct Entry {
    id: u64,
    schema_hint: u64,
    fields: Vec<FieldSpec>,
    record: EpisodeRecordV1,
    infos: Vec<(u32, Info)>,
}

/// Decides ids: a marker's id; else the id under which the readable old index holds the same
/// chunks; else a fresh id above every other id, in segment order. Episodes of a readable old
/// index that no whole manifest describes are kept with their ids.
pub fn plan(findings: &Findings<'_>, state: &IndexState) -> Plan {
    let old = match state {
        IndexState::Readable(old) => Some(old),
        _ => None,
    };
    let old_by_key: HashMap<(u64, u64), u64> = old
        .map(|o| {
            o.episodes
                .iter()
                .chain(&o.deleted)
                .filter_map(|(id, r)| Some((key(&r.fields)?, *id)))
                .collect()
        })
        .unwrap_or_default();
    let mut plan = Plan {
        unrestorable: findings.unrestorable.clone(),
        ..Plan::default()
    };
    let mut used: HashSet<u64> = HashSet::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut fresh: Vec<&FoundManifest> = Vec::new();
    let mut claimed_keys: HashSet<(u64, u64)> = HashSet::new();
    for (found, marker) in &findings.whole {
        let k = key(&found.manifest.chunks);
        claimed_keys.extend(k);
        let known = marker.or_else(|| k.and_then(|k| old_by_key.get(&k).copied()));
        match known {
            Some(id) if id > 0 && used.insert(id) => {
                plan.marked += 1;
                entries.push(entry(id, &found.manifest));
            }
            _ => fresh.push(found),
        }
    }
    if let Some(old) = old {
        carry_over(old, &claimed_keys, &mut used, &mut entries, &mut plan);
    }
    let floor = old.map_or(0, |o| o.next_episode_id.saturating_sub(1));
    let first_fresh = used.iter().copied().max().unwrap_or(0).max(floor) + 1;
    for (id, found) in (first_fresh..).zip(fresh) {
        plan.unmarked.push(UnmarkedEpisode {
            id: EpisodeId(id),
            user: found.manifest.user.clone(),
            segment: SegmentId(found.segment),
            offset: found.offset,
        });
        entries.push(entry(id, &found.manifest));
    }
    entries.sort_by_key(|e| e.id);
    assign_schemas(&mut entries, &mut plan);
    plan.episodes = entries
        .into_iter()
        .map(|e| {
            (
                e.id,
                PendingEpisode {
                    record: e.record,
                    infos: e.infos,
                    // Manifests carry no statistics: `trajstore stats` lists these episodes
                    // as missing and `--compute-missing` reads their frames.
                    stats: None,
                    // The manifest's metadata already holds the schema's keys.
                    schema_metadata: Info::new(),
                },
            )
        })
        .collect();
    plan
}

fn carry_over(
    old: &OldIndex,
    claimed: &HashSet<(u64, u64)>,
    used: &mut HashSet<u64>,
    entries: &mut Vec<Entry>,
    plan: &mut Plan,
) {
    for (id, r) in &old.episodes {
        if key(&r.fields).is_some_and(|k| claimed.contains(&k)) {
            continue;
        }
        let Some(fields) = old.schemas.get(&r.schema_id) else {
            plan.unrestorable.push(Unrestorable {
                segment: SegmentId(0),
                offset: 0,
                reason: format!(
                    "episode {id} of the old index names schema {} that it does not hold",
                    r.schema_id
                ),
            });
            continue;
        };
        if !used.insert(*id) {
            // A durable commit marker claims this id for another episode: the marker wins.
            plan.unrestorable.push(Unrestorable {
                segment: SegmentId(0),
                offset: 0,
                reason: format!(
                    "episode {id} of the old index conflicts with a commit marker for another episode under that id; the marked episode was kept"
                ),
            });
            continue;
        }
        plan.carried_over += 1;
        entries.push(Entry {
            id: *id,
            schema_hint: r.schema_id,
            fields: fields.clone(),
            record: r.clone(),
            infos: old.infos.get(id).cloned().unwrap_or_default(),
        });
    }
}

fn entry(id: u64, m: &ManifestV1) -> Entry {
    Entry {
        id,
        schema_hint: m.schema_id,
        fields: m.fields.clone(),
        record: m.record(0), // its schema id is assigned by assign_schemas
        infos: m.infos.clone(),
    }
}

/// One schema per distinct field list. Each keeps the id it had (the hint recorded at commit)
/// unless another field list took that id first (in episode id order); those get fresh ids.
fn assign_schemas(entries: &mut [Entry], plan: &mut Plan) {
    let mut id_of: HashMap<Vec<FieldSpec>, u64> = HashMap::new();
    let mut taken: HashSet<u64> = HashSet::new();
    for e in entries.iter() {
        if !id_of.contains_key(&e.fields) && e.schema_hint > 0 && taken.insert(e.schema_hint) {
            id_of.insert(e.fields.clone(), e.schema_hint);
        }
    }
    let mut next = taken.iter().copied().max().unwrap_or(0) + 1;
    for e in entries.iter_mut() {
        let id = *id_of.entry(e.fields.clone()).or_insert_with(|| {
            next += 1;
            next - 1
        });
        e.record.schema_id = id;
    }
    let mut schemas: Vec<(u64, Vec<FieldSpec>)> =
        id_of.into_iter().map(|(f, id)| (id, f)).collect();
    schemas.sort_by_key(|(id, _)| *id);
    plan.schemas = schemas;
}
