//! Recording one episode: validate each step, buffer its field data, write chunks to a
//! segment, and at commit make them durable and index them.
//!
//! Commit order (the crash-safety argument, also in schema/format.md):
//! 1. every chunk of the episode is written to this writer's own segment file, then the
//!    episode's manifest (everything needed to restore it without the index); a small episode
//!    is instead carried to the leader of its commit round, which writes its chunks and
//!    manifest into a segment of its own and runs 2-4 for it (carry.rs, index/carried.rs);
//! 2. the segment is fdatasync'ed: chunks and manifest are durable (one sync per commit);
//! 3. one redb transaction (durable on return) adds the episode to the index; on the real file
//!    system 2 runs on a helper thread beside 3, whose first index sync does not return before
//!    2 finished (index/presync.rs), so nothing names the bytes before they are durable;
//! 4. a commit marker (episode id, manifest offset) is appended, not synced: it becomes durable
//!    with this appender's next sync or its clean drop.
//!
//! A crash before 3 completes leaves only unreferenced bytes in a segment, which readers never
//! look at (and an unmarked manifest, see `trajstore repair`). A crash after leaves a complete
//! episode. There is no other state.

mod background;
mod carry;
mod column;
mod meta;
mod validate;

pub use background::PendingCommit;
pub use meta::EpisodeMeta;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dtype::DType;
use crate::error::{OpenError, RecordError, Result};
use crate::ids::EpisodeId;
use crate::index::PendingEpisode;
use crate::index::carried::{CARRY_BYTES, Carried};
use crate::index::commit::Queued;
use crate::index::records::{EpisodeRecordV1, Outcome};
use crate::open::OpenStore;
use crate::schema::{REWARD, Schema, TERMINATED, TRUNCATED};
use crate::segment::format::MANIFEST_MAGIC;
use crate::segment::manifest::{ABORTED, ManifestV1, MarkerV1};
use crate::segment::{Appender, RecordBuf};
use crate::stats::EpisodeStatsBuilder;
use crate::value::{ArrayRef, Info};
use carry::SegmentPlacer;
use column::Column;
use meta::check_info_size;
use validate::Matched;

/// Most transitions in one episode.
pub const MAX_EPISODE_STEPS: u32 = u32::MAX - 1;

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Streams the steps of one episode into the store. Get one from
/// [`Store::begin_episode`](crate::Store::begin_episode).
///
/// Call [`reset`](Self::reset) once, then [`step`](Self::step) per transition, then
/// [`commit`](Self::commit). A call that fails validation changes nothing: fix the value and
/// call again. Dropping the writer without committing discards the episode.
pub struct EpisodeWriter {
    store: Arc<OpenStore>,
    /// The process that began the episode: the only one that may record or commit it (its
    /// buffered steps and its segment tail are that process's).
    owner: u32,
    schema: Arc<Schema>,
    schema_id: u64,
    /// Positions of `reward`, `terminated` and `truncated` in the schema (read every step).
    outcome_fields: [usize; 3],
    meta: EpisodeMeta,
    started_at_us: i64,
    columns: Vec<Column>,
    /// The current call's values per field (scratch, reused from step to step).
    matched: Matched,
    infos: Vec<(u32, Info)>,
    observations: u32,
    transitions: u32,
    total_return: f64,
    ended: Option<Outcome>,
    appender: Option<Appender>,
    /// The column whose values are streamed into `appender` as they come (options.rs,
    /// `stream_bytes`): at most one, since its chunk grows at the segment's end.
    streaming: Option<usize>,
    raw_bytes: u64,
    stored_bytes: u64,
    /// Statistics of the small numeric fields, gathered step by step (stats/); `None` when
    /// the store's options turn them off.
    stats: Option<EpisodeStatsBuilder>,
}

impl EpisodeWriter {
    pub(crate) fn new(
        store: Arc<OpenStore>,
        meta: EpisodeMeta,
        schema: Arc<Schema>,
        schema_id: u64,
    ) -> Self {
        let columns: Vec<Column> = schema
            .fields()
            .iter()
            .map(|f| Column::new(f.step_bytes(), f.codec))
            .collect();
        let position = |name| {
            schema
                .index_of(name)
                .expect("every schema has it (schema.rs)")
        };
        let outcome_fields = [position(REWARD), position(TERMINATED), position(TRUNCATED)];
        let stats = if store.options().field_stats {
            Some(EpisodeStatsBuilder::new(schema.fields()))
        } else {
            None
        };
        EpisodeWriter {
            stats,
            store,
            owner: crate::process::current(),
            outcome_fields,
            schema,
            schema_id,
            meta,
            started_at_us: now_us(),
            matched: Matched::new(columns.len()),
            columns,
            infos: Vec::new(),
            observations: 0,
            transitions: 0,
            total_return: 0.0,
            ended: None,
            appender: None,
            streaming: None,
            raw_bytes: 0,
            stored_bytes: 0,
        }
    }

    /// The schema this episode is recorded with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Transitions recorded so far.
    pub fn steps(&self) -> u32 {
        self.transitions
    }

    /// Refuses use in a forked child: parent and child would both hold the episode's steps
    /// and append at the same segment tail.
    fn check_process(&self) -> Result<()> {
        let here = crate::process::current();
        if here == self.owner {
            return Ok(());
        }
        Err(OpenError::ForkedHandle {
            what: "an episode being recorded",
            opened_in: self.owner,
            used_in: here,
        }
        .into())
    }

    /// Records the first observation (what `env.reset()` returned): every observation field.
    pub fn reset(&mut self, observation: &[(&str, ArrayRef<'_>)], info: &Info) -> Result<()> {
        self.check_process()?;
        if self.observations > 0 {
            return Err(RecordError::EpisodeState {
                call: "reset()",
                reason: "called twice: an episode has one reset; commit this one and begin another"
                    .into(),
            }
            .into());
        }
        self.matched
            .match_values(&self.schema, observation, "reset()", false)?;
        if !info.is_empty() {
            check_info_size("info", info)?;
        }
        self.append(observation, info)
    }

    /// Records one transition (what `env.step(action)` returned, plus the action): every
    /// transition field (`action`, `reward`, `terminated`, `truncated`, ...) and every
    /// observation field (the observation the step led to).
    pub fn step(&mut self, values: &[(&str, ArrayRef<'_>)], info: &Info) -> Result<()> {
        self.check_process()?;
        if self.observations == 0 {
            return Err(RecordError::EpisodeState {
                call: "step()",
                reason: "before reset(): record the first observation with reset()".into(),
            }
            .into());
        }
        if let Some(outcome) = self.ended {
            return Err(RecordError::EpisodeState {
                call: "step()",
                reason: format!(
                    "after the episode {} at step {}: commit it and begin a new episode",
                    outcome.name(),
                    self.transitions
                ),
            }
            .into());
        }
        if self.transitions >= MAX_EPISODE_STEPS {
            return Err(RecordError::TooLarge {
                what: "episode",
                got: u64::from(self.transitions) + 1,
                max: u64::from(MAX_EPISODE_STEPS),
            }
            .into());
        }
        self.matched
            .match_values(&self.schema, values, "step()", true)?;
        if !info.is_empty() {
            check_info_size("info", info)?;
        }
        let outcome = |k: usize| {
            self.matched
                .value(values, self.outcome_fields[k])
                .expect("validated: transition fields given")
        };
        let (reward, terminated, truncated) = (outcome(0), outcome(1), outcome(2));
        let reward = match reward.dtype {
            DType::F64 => f64::from_le_bytes(reward.bytes.try_into().expect("8 bytes")),
            _ => f64::from(f32::from_le_bytes(
                reward.bytes.try_into().expect("4 bytes"),
            )),
        };
        let terminated = terminated.bytes[0] != 0;
        let truncated = truncated.bytes[0] != 0;
        self.append(values, info)?;
        self.transitions += 1;
        self.total_return += reward;
        self.ended = match (terminated, truncated) {
            (true, _) => Some(Outcome::Terminated),
            (false, true) => Some(Outcome::Truncated),
            _ => None,
        };
        Ok(())
    }

    /// Buffers the values `self.matched` found in `given`.
    fn append(&mut self, given: &[(&str, ArrayRef<'_>)], info: &Info) -> Result<()> {
        let matched = &self.matched;
        // One pass over the columns per step: push, and the spill conditions.
        let (mut buffered, mut column_full) = (0, false);
        for (i, column) in self.columns.iter_mut().enumerate() {
            if let Some(value) = matched.value(given, i) {
                column.push(value.bytes);
                self.raw_bytes += value.bytes.len() as u64;
            }
            buffered += column.buffered_bytes();
            column_full |= column.is_full();
        }
        if let Some(stats) = &mut self.stats {
            // Raw columns' values reach the statistics in bulk as they leave the buffer
            // (`gather_stats`); only the others' are pushed step by step.
            let columns = &self.columns;
            stats.push(|i| {
                matched
                    .value(given, i)
                    .filter(|_| columns[i].raw_values().is_none())
            });
        }
        if !info.is_empty() {
            self.infos.push((self.observations, info.clone()));
        }
        self.observations += 1;
        if buffered > self.store.options().spill_bytes || column_full {
            self.flush()?;
            // A spill bounds the episode's memory: its chunks go to the file now, not with
            // the commit's small records (segment/writer.rs, `GATHER_BYTES`).
            self.appender.as_mut().expect("flushed").write_gathered()?;
        } else {
            self.stream()?;
        }
        Ok(())
    }

    /// Streams the streaming column's buffered values to the segment once there are
    /// `stream_bytes` of them; the first raw column to get there becomes the streaming one.
    fn stream(&mut self) -> Result<()> {
        // At least one byte: a chunk is streamed from its first values on (column.rs).
        let threshold = self.store.options().stream_bytes.max(1);
        let due = |c: &Column| c.streamable() && c.buffered_bytes() >= threshold;
        let Some(at) = self.streaming.or_else(|| self.columns.iter().position(due)) else {
            return Ok(());
        };
        if !due(&self.columns[at]) {
            return Ok(());
        }
        self.check_out()?;
        let appender = self.appender.as_mut().expect("checked out above");
        gather_stats(&mut self.stats, at, &self.columns[at]);
        self.columns[at].stream(appender)?;
        self.streaming = Some(at);
        Ok(())
    }

    /// Checks out this episode's appender at its first write.
    fn check_out(&mut self) -> Result<()> {
        if self.appender.is_none() {
            self.appender = Some(self.store.recording()?.pool()?.checkout()?);
        }
        Ok(())
    }

    /// Writes every buffered column out as a chunk (not yet durable): the streamed one first,
    /// since its chunk is open at the segment's end.
    fn flush(&mut self) -> Result<()> {
        self.check_out()?;
        let appender = self.appender.as_mut().expect("checked out above");
        if let Some(at) = self.streaming.take() {
            gather_stats(&mut self.stats, at, &self.columns[at]);
            self.stored_bytes += self.columns[at].flush(appender)?;
        }
        for (at, column) in self.columns.iter_mut().enumerate() {
            gather_stats(&mut self.stats, at, column);
            self.stored_bytes += column.flush(appender)?;
        }
        Ok(())
    }

    /// Runs [`commit`](Self::commit) on a thread of the store's and returns at once, so the
    /// recorder can go on with its next episode while this one's syncs are in flight; the
    /// episodes in flight at once share one index transaction. [`PendingCommit::wait`]
    /// returns what `commit` would have.
    ///
    /// At most [`StoreOptions::background_commits`](crate::StoreOptions::background_commits)
    /// commits are in flight per process and store: past that, this waits for one of them to
    /// finish (each holds its episode's buffered data until then). Errors found without
    /// touching the disk (an empty episode, a writer used in another process) are returned
    /// here and change nothing.
    pub fn commit_in_background(self) -> Result<PendingCommit> {
        self.check_process()?;
        if self.transitions == 0 {
            return Err(RecordError::EmptyEpisode.into());
        }
        background::start(self)
    }

    /// Makes the episode durable and visible, whole, and returns its store-unique id.
    ///
    /// The outcome is taken from the last step: terminated, truncated, or interrupted when
    /// neither flag was set (an episode cut short on purpose).
    pub fn commit(mut self) -> Result<EpisodeId> {
        self.check_process()?;
        if self.transitions == 0 {
            return Err(RecordError::EmptyEpisode.into());
        }
        // A small episode whose records were not written yet is carried to the leader of
        // its round, which writes it into a segment with the round's other episodes
        // (index/carried.rs); the others are written here, into this writer's segment.
        let record_bytes: u64 = self.columns.iter().map(Column::record_bytes).sum();
        let carried = if self.appender.is_none() && record_bytes <= CARRY_BYTES {
            let mut records = RecordBuf::default();
            for (at, column) in self.columns.iter_mut().enumerate() {
                gather_stats(&mut self.stats, at, column);
                self.stored_bytes += column.flush_into(&mut records)?;
            }
            Some(records.into_bytes())
        } else {
            self.flush()?;
            None
        };
        let now = now_us();
        let meta = std::mem::take(&mut self.meta);
        let record = EpisodeRecordV1 {
            user: meta.user,
            env: meta.env,
            schema_id: self.schema_id,
            started_at_us: self.started_at_us,
            ended_at_us: now,
            committed_at_us: now,
            steps: self.transitions,
            total_return: self.total_return,
            outcome: self.ended.unwrap_or(Outcome::Interrupted),
            seed: meta.seed,
            tags: meta.tags,
            metadata: meta.metadata,
            raw_bytes: self.raw_bytes,
            stored_bytes: self.stored_bytes,
            fields: self.columns.iter_mut().map(Column::take_chunks).collect(),
        };
        let infos = std::mem::take(&mut self.infos);
        let schema_metadata = meta.schema_metadata;
        let stats = self.stats.take().map(EpisodeStatsBuilder::finish_record);
        let recording = self.store.recording()?;
        let (commits, index, board) = (recording.commits(), self.store.index(), recording.board());
        let overlapped = self.store.options().io.overlapped_syncs();
        let placer = SegmentPlacer::new(recording.pool()?, overlapped);
        if let Some(records) = carried {
            let queued = Queued {
                episode: PendingEpisode {
                    record,
                    infos,
                    stats,
                    schema_metadata,
                },
                synced: None,
                carried: Some(Carried {
                    records,
                    fields: self.schema.fields().to_vec(),
                }),
            };
            return commits.commit(index, board, &placer, queued).map(EpisodeId);
        }
        let manifest = ManifestV1::of(&record, self.schema.fields(), &infos, &schema_metadata);
        let appender = self.appender.as_mut().expect("flushed");
        // Invariant (segment/manifest.rs): the manifest is durable, with every chunk it names,
        // before the index transaction can commit the episode; one sync covers both.
        let manifest_offset = appender.append_meta(MANIFEST_MAGIC, &manifest.encode())?;
        let episode = PendingEpisode {
            record,
            infos,
            stats,
            schema_metadata,
        };
        let queued = |synced| Queued {
            episode,
            synced,
            carried: None,
        };
        let committed = if overlapped {
            // The segment syncs on a helper thread while the transaction is built and the
            // index file syncs; the commit's first index sync waits for it (index/presync.rs).
            appender
                .sync_during(|synced| commits.commit(index, board, &placer, queued(Some(synced))))
        } else {
            appender
                .sync()
                .and_then(|()| commits.commit(index, board, &placer, queued(None)))
        };
        // Marked committed under its id, or aborted when the commit failed: the recorder is
        // told so, and `repair` must never restore the manifest (nothing is appended to an
        // appender a failed sync poisoned).
        let episode = *committed.as_ref().unwrap_or(&ABORTED);
        appender.append_markers([MarkerV1 {
            episode,
            manifest_offset,
        }]);
        committed.map(EpisodeId)
    }
}

/// Hands the raw values buffered in column `at` to the statistics, just before they leave the
/// buffer (streamed or flushed): the buffer holds the steps' values back to back, so the
/// statistics read them there in bulk and the step path copies nothing for them. The values
/// arrive in step order, and the statistics fold at the same steps however they are cut
/// (stats/accumulate.rs), so the figures are those of pushing step by step.
fn gather_stats(stats: &mut Option<EpisodeStatsBuilder>, at: usize, column: &Column) {
    if let (Some(stats), Some(values)) = (stats, column.raw_values()) {
        stats.push_field(at, values);
    }
}

impl Drop for EpisodeWriter {
    fn drop(&mut self) {
        let Some(appender) = self.appender.take() else {
            return;
        };
        match self.store.recording().and_then(|r| r.pool()) {
            Ok(pool) if self.owner == crate::process::current() => pool.checkin(appender),
            // In a forked child: the parent's appender, and its file lock, stay the parent's.
            _ => std::mem::forget(appender),
        }
    }
}
