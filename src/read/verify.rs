//! Whole-store checks: every checksum, and that index and segments agree.

mod chunks;
mod rows;

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use rayon::prelude::*;

use crate::error::Result;
use crate::ids::{EpisodeId, SegmentId};
use crate::read::Snapshot;
use crate::segment::SegmentMaps;
use chunks::{Checked, Segments, check_row};
use rows::{Batch, RowReader};

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
    ///
    /// Streams: the episodes are read from the index a batch at a time (decoding only what is
    /// checked; the first batches small, so that checking starts early) while the previous
    /// batch is checked, and the pages checked are handed back every 16 MiB or so, so
    /// memory stays flat however many episodes there are.
    pub fn verify(&self) -> Result<VerifyReport> {
        let view = self.view()?;
        let maps = view.open.maps();
        // Segments this process mapped before: their pages are left mapped for whoever reads
        // them (a loader, a later verify); those verify maps itself it hands back.
        let mapped_before: HashSet<u64> = maps.mapped_ids().into_iter().collect();
        let mut reader = RowReader::new(self)?;
        let mut report = VerifyReport::default();
        let mut held = HeldPages::default();
        let mut listed = Vec::new();
        crate::pool::install(|| -> Result<()> {
            let (mut current, mut next) = (Batch::default(), Batch::default());
            // Nothing is checked while the first rows are read: the segment files are listed
            // and measured beside it.
            let (filled, segments) =
                rayon::join(|| reader.fill(&mut current), || self.listed_segments());
            filled?;
            listed = segments?;
            while !current.rows.is_empty() {
                let (checked, filled) =
                    rayon::join(|| check_batch(maps, &current), || reader.fill(&mut next));
                report.add(&current, checked, &reader.tally.users);
                held.add(&current);
                if held.bytes() >= RELEASE_BYTES {
                    held.release(maps, &mapped_before);
                }
                filled?;
                std::mem::swap(&mut current, &mut next);
            }
            Ok(())
        })??;
        held.release(maps, &mapped_before);
        report.episodes = reader.tally.episodes;
        let counted = reader
            .tally
            .users
            .iter()
            .map(|(name, episodes, steps)| (name.as_str(), (*episodes, *steps)))
            .collect();
        report.problems.extend(self.check_user_statistics(counted)?);
        let (segment_bytes, unreferenced) = self.segment_bytes(listed, &reader.tally.referenced);
        report.unreferenced_bytes = segment_bytes.saturating_sub(report.payload_bytes);
        report.unreferenced_segments = unreferenced;
        Ok(report)
    }

    /// The users table against the episodes and steps counted per user.
    fn check_user_statistics(
        &self,
        mut counted: HashMap<&str, (u64, u64)>,
    ) -> Result<Vec<Problem>> {
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

    /// The segment files in `segments/` now, each with its length.
    fn listed_segments(&self) -> Result<Vec<(u64, u64)>> {
        let ids = self.segment_ids()?;
        Ok(ids
            .into_iter()
            .map(|id| (id, self.segment_file_len(SegmentId(id))))
            .collect())
    }

    /// Total size of the store's segment files (those `listed`, and those episodes
    /// reference), and those no episode references.
    fn segment_bytes(
        &self,
        mut listed: Vec<(u64, u64)>,
        referenced: &HashSet<u64>,
    ) -> (u64, Vec<SegmentId>) {
        let seen: HashSet<u64> = listed.iter().map(|(id, _)| *id).collect();
        for &id in referenced {
            if !seen.contains(&id) {
                listed.push((id, self.segment_file_len(SegmentId(id))));
            }
        }
        listed.sort_unstable();
        listed.dedup_by_key(|(id, _)| *id);
        let total = listed.iter().map(|(_, len)| len).sum();
        let unreferenced = listed
            .into_iter()
            .filter(|(id, _)| !referenced.contains(id))
            .map(|(id, _)| SegmentId(id))
            .collect();
        (total, unreferenced)
    }
}

impl VerifyReport {
    /// The findings of one checked batch, in episode order.
    fn add(&mut self, batch: &Batch, checked: Vec<Checked>, users: &[(String, u64, u64)]) {
        for (row, checked) in batch.rows.iter().zip(checked) {
            self.chunks += checked.chunks;
            self.payload_bytes += checked.bytes;
            let schema = batch.schemas[row.schema as usize].as_ref().ok();
            self.problems
                .extend(checked.problems.into_iter().map(|found| {
                    Problem {
                        episode: Some(row.id),
                        user: users[row.user as usize].0.clone(),
                        field: found
                            .field
                            .and_then(|i| Some(schema?.fields()[i].name.clone())),
                        steps: found.steps,
                        error: found.error,
                    }
                }));
        }
    }
}

/// Bytes of segments checked after which their pages are handed back: what verifying a store
/// leaves at most in the process's resident set (the page cache keeps them all). Handed back
/// every few batches rather than after each: each hand-back is a `madvise` per segment, which
/// the small first batches would otherwise pay several times over on a small store.
const RELEASE_BYTES: u64 = 16 << 20;

/// The spans of segments checked batches mapped, per segment, not handed back yet.
#[derive(Default)]
struct HeldPages {
    spans: Vec<(u64, Range<u64>)>,
}

impl HeldPages {
    fn add(&mut self, batch: &Batch) {
        for (segment, span) in &batch.spans {
            match self.spans.iter_mut().find(|(s, _)| s == segment) {
                Some((_, held)) => *held = held.start.min(span.start)..held.end.max(span.end),
                None => self.spans.push((*segment, span.clone())),
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.spans
            .iter()
            .map(|(_, span)| span.end - span.start)
            .sum()
    }

    /// Hands the pages back; those of segments in `kept` (mapped before verify began) are
    /// left as they are.
    fn release(&mut self, maps: &SegmentMaps, kept: &HashSet<u64>) {
        for (segment, span) in self.spans.drain(..) {
            if kept.contains(&segment) {
                continue;
            }
            if let Ok(whole) = maps.covering(segment, span.start, span.end) {
                whole.release(span.start as usize..span.end as usize);
            }
        }
    }
}

/// Every row of a batch, in parallel; each thread holds the segment maps it reads once.
fn check_batch(maps: &SegmentMaps, batch: &Batch) -> Vec<Checked> {
    batch
        .rows
        .par_iter()
        .map_init(
            || Segments::new(maps),
            |segments, row| check_row(batch, row, segments),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rows::{BATCH_ROWS, FIRST_BATCH_ROWS, Tally};
    use super::*;
    use crate::{ArrayRef, Codec, DType, EpisodeMeta, Error, Info, ReadError, Schema, Store};

    /// Records an episode of `steps` steps whose 16-byte frames depend on `seed`.
    fn record(store: &Store, user: &str, seed: u8, steps: u32, codec: Codec) -> EpisodeId {
        let schema = Schema::builder()
            .observation("frame", DType::U8, &[16], codec)
            .build()
            .unwrap();
        let meta = EpisodeMeta::new(user, "Verify-v0");
        let mut w = store.begin_episode(meta, &schema).unwrap();
        let frame = |t: u32| [seed.wrapping_add(t as u8); 16];
        w.reset(&[("frame", ArrayRef::new(&frame(0)))], &Info::new())
            .unwrap();
        for t in 1..=steps {
            let (value, last) = (frame(t), t == steps);
            let fields = [
                ("frame", ArrayRef::new(&value)),
                ("reward", ArrayRef::scalar(&0.5f32)),
                ("terminated", ArrayRef::scalar(&last)),
                ("truncated", ArrayRef::scalar(&false)),
            ];
            w.step(&fields, &Info::new()).unwrap();
        }
        w.commit().unwrap()
    }

    /// Flips a bit in the middle of the first chunk of an episode's frames.
    fn damage_frames(store: &Store, id: EpisodeId) {
        use std::os::unix::fs::FileExt;
        let snap = store.snapshot().unwrap();
        let field = snap.field(&snap.episode(id).unwrap(), "frame").unwrap();
        let extent = field.extents().remove(0);
        let at = extent.payload_offset + extent.payload_len / 2;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&extent.path)
            .unwrap();
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    }

    #[test]
    fn damage_in_several_batches_is_named_in_episode_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let episodes = 3 * BATCH_ROWS as u64 + 1;
        let ids: Vec<EpisodeId> = (0..episodes)
            .map(|i| {
                let (user, codec) = match i % 3 {
                    0 => ("ann", Codec::Raw),
                    1 => ("bo", Codec::Lz4),
                    _ => ("ann", Codec::Lz4),
                };
                record(&store, user, i as u8, 4 + i as u32, codec)
            })
            .collect();
        let damaged = [ids[1], ids[BATCH_ROWS + 2], ids[ids.len() - 1]];
        for id in damaged {
            damage_frames(&store, id);
        }
        drop(store);
        let store = Store::open_read_only(dir.path()).unwrap();
        let snap = store.snapshot().unwrap();
        let report = snap.verify().unwrap();
        let again = snap.verify().unwrap();
        assert_eq!(
            format!("{:?}", again.problems),
            format!("{:?}", report.problems),
            "a second verify, over pages the first one handed back, finds the same"
        );
        let named: Vec<_> = report
            .problems
            .iter()
            .map(|p| (p.episode.unwrap(), p.field.as_deref().unwrap()))
            .collect();
        assert_eq!(
            named,
            damaged.map(|id| (id, "frame")),
            "every damaged episode, in order, nothing else (no user statistics): {report:?}"
        );
        assert!(report.problems.iter().all(|p| p.error.contains("checksum")));
        assert_eq!(report.episodes, episodes);
        // Four fields (frame, reward, terminated, truncated) of one chunk each; a damaged
        // chunk is counted (it was read), so every chunk is.
        assert_eq!(report.chunks, 4 * episodes);
        assert_eq!(
            (
                report.problems[0].user.as_str(),
                report.problems[2].user.as_str()
            ),
            ("bo", "ann")
        );
    }

    #[test]
    fn batches_grow_and_hold_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        assert_eq!(
            (FIRST_BATCH_ROWS, BATCH_ROWS),
            (1, 3),
            "the sizes this test expects"
        );
        let ids: Vec<EpisodeId> = (0..11)
            .map(|i| record(&store, "ann", i, 2, Codec::Raw))
            .collect();
        let snap = store.snapshot().unwrap();
        let mut reader = RowReader::new(&snap).unwrap();
        let (mut sizes, mut read) = (Vec::new(), Vec::new());
        let mut batch = Batch::default();
        loop {
            reader.fill(&mut batch).unwrap();
            if batch.rows.is_empty() {
                break;
            }
            sizes.push(batch.rows.len());
            read.extend(batch.rows.iter().map(|row| row.id));
        }
        assert_eq!(sizes, [1, 2, 3, 3, 2]);
        assert_eq!(read, ids);
        assert_eq!(reader.tally.episodes, 11);
    }

    #[test]
    fn verify_reads_chunks_appended_after_their_segment_was_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let first = record(&store, "ann", 1, 3, Codec::Raw);
        // The handle maps the segment now, as long as it is now.
        let report = store.snapshot().unwrap().verify().unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
        let later = record(&store, "ann", 2, 5, Codec::Raw);
        let snap = store.snapshot().unwrap();
        let segment = |id| {
            snap.field(&snap.episode(id).unwrap(), "frame")
                .unwrap()
                .extents()[0]
                .segment
        };
        assert_eq!(segment(first), segment(later), "one segment, grown");
        let report = snap.verify().unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
        assert_eq!(report.episodes, 2);
    }

    #[test]
    fn an_episode_row_the_lean_decoder_refuses_fails_as_the_full_decoder_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        record(&store, "ann", 1, 3, Codec::Raw);
        let snap = store.snapshot().unwrap();
        let (mut tally, mut batch) = (Tally::default(), rows::Batch::default());
        // Record version 2 of an episode row: unknown to both decoders.
        let err = tally
            .push_row(&snap, &mut batch, EpisodeId(9), &[1, 2, 3])
            .expect_err("refused");
        assert!(
            matches!(
                err,
                Error::Read(ReadError::CorruptRecord {
                    table: "episodes",
                    ..
                })
            ),
            "{err}"
        );
        assert!(batch.rows.is_empty() && batch.chunks.is_empty());
        assert_eq!(tally.episodes, 0, "nothing counted for the refused row");
    }
}
