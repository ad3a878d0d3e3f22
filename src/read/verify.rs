//! Whole-store checks: every checksum, and that index and segments agree.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use rayon::prelude::*;

use crate::error::Result;
use crate::ids::{EpisodeId, SegmentId};
use std::sync::Arc;

use crate::read::field::verify_chunk;
use crate::read::{Episode, Query, ReadView, Snapshot, locate_chunks};
use crate::schema::Schema;
use crate::segment::MappedBytes;
use crate::segment::format::ChunkRef;

/// One thing found wrong, named down to the steps it affects.
#[derive(Clone, Debug)]
pub struct Problem {
    /// `None` for a problem of a user's statistics rather than of one episode.
    pub episode: Option<EpisodeId>,
    pub user: String,
    /// `None` when the episode as a whole is unreadable (its schema, say).
    pub field: Option<String>,
    pub steps: Option<Range<usize>>,
    pub error: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user {:?}", self.user)?;
        if let Some(episode) = self.episode {
            write!(f, " episode {episode}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field {field:?}")?;
        }
        if let Some(steps) = &self.steps {
            write!(f, " steps {}..{}", steps.start, steps.end)?;
        }
        write!(f, ": {}", self.error)
    }
}

/// What [`Snapshot::verify`] checked and found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub episodes: u64,
    pub chunks: u64,
    pub payload_bytes: u64,
    pub problems: Vec<Problem>,
    /// Bytes in segment files that no committed episode's chunks reference: manifests and
    /// commit markers (segment format 2), the tails of crashed or aborted recordings, headers
    /// and padding. Not an error.
    pub unreferenced_bytes: u64,
    /// Segment files holding no chunk of an episode of the snapshot: a recording not
    /// committed yet, a merge that crashed before its index transaction (compaction removes
    /// those), and the segment where a merge wrote the merged episodes' manifests.
    pub unreferenced_segments: Vec<SegmentId>,
}

impl Snapshot {
    /// Checks every episode of the snapshot: framing, payload checksums, lz4 blocks, step
    /// counts, schemas and user statistics. Reads every byte; runs on all cores.
    pub fn verify(&self) -> Result<VerifyReport> {
        let episodes = self.episodes(&Query::default())?;
        // Schemas fetched once, not per episode and field under the snapshot's lock.
        let schemas: HashMap<u64, Result<Arc<Schema>, String>> = episodes
            .iter()
            .map(|e| e.schema_id())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|id| (id.get(), self.schema(id).map_err(|e| e.to_string())))
            .collect();
        let view = self.view()?;
        let per_episode: Vec<(u64, u64, Vec<Problem>)> = crate::pool::install(|| {
            episodes
                .par_iter()
                .map_init(Scratch::default, |scratch, e| {
                    verify_episode(&view, e, &schemas[&e.schema_id().get()], scratch)
                })
                .collect()
        })?;
        let mut report = VerifyReport {
            episodes: episodes.len() as u64,
            ..Default::default()
        };
        for (chunks, bytes, problems) in per_episode {
            report.chunks += chunks;
            report.payload_bytes += bytes;
            report.problems.extend(problems);
        }
        report
            .problems
            .extend(self.check_user_statistics(&episodes)?);
        let (segment_bytes, unreferenced) = self.segment_bytes(&episodes)?;
        report.unreferenced_bytes = segment_bytes.saturating_sub(report.payload_bytes);
        report.unreferenced_segments = unreferenced;
        Ok(report)
    }

    fn check_user_statistics(&self, episodes: &[Episode]) -> Result<Vec<Problem>> {
        let mut counted: HashMap<&str, (u64, u64)> = HashMap::new();
        for e in episodes {
            let c = counted.entry(e.user()).or_default();
            c.0 += 1;
            c.1 += u64::from(e.steps());
        }
        let mut problems = Vec::new();
        for user in self.users()? {
            let found = counted.remove(user.name.as_str()).unwrap_or_default();
            if found != (user.episodes, user.steps) {
                problems.push(Problem {
                    episode: None,
                    user: user.name.clone(),
                    field: None,
                    steps: None,
                    error: format!(
                        "user statistics say {} episodes / {} steps, the episodes table holds {} / {}",
                        user.episodes, user.steps, found.0, found.1
                    ),
                });
            }
        }
        Ok(problems)
    }

    /// Total size of the store's segment files, and those no episode references.
    fn segment_bytes(&self, episodes: &[Episode]) -> Result<(u64, Vec<SegmentId>)> {
        let referenced: HashSet<u64> = episodes
            .iter()
            .flat_map(|e| e.chunks().iter().flatten().map(|c| c.segment))
            .collect();
        let mut ids = self.segment_ids()?;
        ids.extend(referenced.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        let total = ids
            .iter()
            .map(|id| self.segment_file_len(SegmentId(*id)))
            .sum();
        let unreferenced = ids
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .map(SegmentId)
            .collect();
        Ok((total, unreferenced))
    }
}

/// Buffers one verifying thread reuses from episode to episode.
#[derive(Default)]
struct Scratch {
    located: Vec<(usize, ChunkRef, MappedBytes)>,
    value: Vec<u8>,
}

/// Every field of one episode: what opening the field checks, then every chunk's checksum
/// and lz4 blocks. (chunks, payload bytes, problems); chunks are counted for fields that
/// open.
fn verify_episode(
    view: &ReadView,
    episode: &Episode,
    schema: &Result<Arc<Schema>, String>,
    scratch: &mut Scratch,
) -> (u64, u64, Vec<Problem>) {
    let problem = |field: Option<&str>, steps: Option<Range<usize>>, error: String| Problem {
        episode: Some(episode.id()),
        user: episode.user().to_owned(),
        field: field.map(str::to_owned),
        steps,
        error,
    };
    let schema = match schema {
        Ok(s) => s,
        Err(e) => return (0, 0, vec![problem(None, None, e.clone())]),
    };
    let (mut chunks, mut bytes, mut problems) = (0, 0, Vec::new());
    for (i, spec) in schema.fields().iter().enumerate() {
        if let Err(e) = locate_chunks(view, episode, spec, i, &mut scratch.located) {
            problems.push(problem(Some(&spec.name), None, e.to_string()));
            continue;
        }
        for (first, c, payload) in &scratch.located {
            chunks += 1;
            bytes += c.payload_len;
            let checked = verify_chunk(*first, c, payload, spec.step_bytes(), &mut scratch.value);
            if let Err((steps, e)) = checked {
                problems.push(problem(Some(&spec.name), Some(steps), e.to_string()));
                break;
            }
        }
    }
    (chunks, bytes, problems)
}
