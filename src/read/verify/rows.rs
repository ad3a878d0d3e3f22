//! The `episodes` rows as verify reads them, a batch at a time: id, user, steps, schema and
//! chunk lists, decoded straight from the stored bytes without the episode's strings, tags
//! and metadata map (which verify does not check and a full decode allocates for).
//!
//! The lean decoder ([`lean`]) follows the layout of `EpisodeRecordV1` (schema/index.md). A row
//! it cannot follow (a metadata value of a variant appended after it was written, say) is
//! decoded in full instead, so the lean path only ever makes verify faster, never stricter or
//! looser: a row the full decoder refuses fails verify exactly as listing the episodes would.

mod lean;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use crate::error::Result;
use crate::ids::{EpisodeId, SchemaId};
use crate::index::records::{EpisodeRecordV1, Record};
use crate::read::{Episode, Snapshot};
use crate::schema::Schema;
use crate::segment::format::ChunkRef;
use lean::lean_row;

/// Rows per batch: enough to spread over the pool, few enough that a batch's chunk lists
/// stay small whatever the store's size. A few in unit tests, so that small stores span
/// several batches.
pub(super) const BATCH_ROWS: usize = if cfg!(test) { 3 } else { 1024 };

/// Rows of the first batch; each next batch has twice as many, up to [`BATCH_ROWS`]. Nothing
/// is checked while the first batch is read, and reading rows runs on one thread: a small
/// first batch starts the checking early, so that reading the rest overlaps it (a store of
/// 1000 episodes was a single batch, read in full before anything was checked). One in unit
/// tests, so that batches grow there too.
pub(super) const FIRST_BATCH_ROWS: usize = if cfg!(test) { 1 } else { 64 };

/// Payload bytes after which a batch ends, however few rows it has: long episodes are
/// checked (and their pages handed back) a few at a time too. Small in unit tests, so that
/// both limits end batches there.
const BATCH_BYTES: u64 = if cfg!(test) { 600 } else { 32 << 20 };

/// One episode of a batch; indices point into the batch's and the reader's tables.
#[derive(Clone, Debug)]
pub(super) struct Row {
    pub id: EpisodeId,
    /// Index into [`Tally::users`].
    pub user: u32,
    pub steps: u32,
    /// Index into [`Batch::schemas`].
    pub schema: u32,
    /// Its chunk lists: indices into [`Batch::lists`], one per field stored.
    pub lists: Range<usize>,
}

/// Rows of consecutive episodes, with their chunk lists flattened; reused from batch to batch.
#[derive(Default)]
pub(super) struct Batch {
    pub rows: Vec<Row>,
    /// Each chunk list as a range of `chunks`.
    pub lists: Vec<Range<usize>>,
    pub chunks: Vec<ChunkRef>,
    /// The schemas the rows use, or why one could not be read; their ids.
    pub schemas: Vec<Result<Arc<Schema>, String>>,
    schema_ids: Vec<u64>,
    /// Per segment the rows' chunks lie in: from the first byte of their records to the
    /// end of the last (what checking the batch maps of the segment).
    pub spans: Vec<(u64, Range<u64>)>,
    /// Payload bytes of the rows' chunks.
    payload_bytes: u64,
}

impl Batch {
    fn clear(&mut self) {
        self.rows.clear();
        self.lists.clear();
        self.chunks.clear();
        self.schemas.clear();
        self.schema_ids.clear();
        self.spans.clear();
        self.payload_bytes = 0;
    }

    /// Widens the span of the chunk's segment to its record.
    fn cover(&mut self, c: &ChunkRef) {
        self.payload_bytes = self.payload_bytes.saturating_add(c.payload_len);
        let end = (c.payload_offset()).saturating_add(c.payload_len);
        match self
            .spans
            .iter_mut()
            .find(|(segment, _)| *segment == c.segment)
        {
            Some((_, span)) => *span = span.start.min(c.offset)..span.end.max(end),
            None => self.spans.push((c.segment, c.offset..end)),
        }
    }

    /// Whether the batch holds enough to check: `rows` rows, or its bytes.
    fn is_full(&self, rows: usize) -> bool {
        self.rows.len() >= rows || self.payload_bytes >= BATCH_BYTES
    }

    /// The chunk list of field `i` of `row`, `None` when its record has none.
    pub fn list(&self, row: &Row, i: usize) -> Option<&[ChunkRef]> {
        let lists = &self.lists[row.lists.clone()];
        lists.get(i).map(|range| &self.chunks[range.clone()])
    }
}

/// Where the rows come from.
enum Source {
    /// Straight from the snapshot's `episodes` table (every row, as listing reads it), from
    /// this id on.
    Table { next: Option<u64> },
    /// Episodes listed in full first (a snapshot used in a forked child, whose rows are the
    /// parent's snapshot's: `Snapshot::episodes` decides which).
    Listed {
        episodes: std::vec::IntoIter<Episode>,
    },
}

/// Reads the snapshot's episodes a batch at a time.
pub(super) struct RowReader<'s> {
    snapshot: &'s Snapshot,
    source: Source,
    /// Rows of the next batch (growing from [`FIRST_BATCH_ROWS`] to [`BATCH_ROWS`]).
    batch_rows: usize,
    /// What spans batches.
    pub tally: Tally,
}

/// What the rows read so far add up to, and the tables their indices point into.
#[derive(Default)]
pub(super) struct Tally {
    /// User names by index, with the episodes and steps counted for each.
    pub users: Vec<(String, u64, u64)>,
    user_slots: HashMap<String, u32>,
    last_user: Option<u32>,
    schemas: HashMap<u64, Result<Arc<Schema>, String>>,
    /// Every segment a chunk of a read episode lies in.
    pub referenced: HashSet<u64>,
    recent_segments: [Option<u64>; 8],
    /// Episodes read so far.
    pub episodes: u64,
}

impl<'s> RowReader<'s> {
    pub fn new(snapshot: &'s Snapshot) -> Result<Self> {
        let source = if snapshot.is_forked() {
            let episodes = snapshot.episodes(&crate::read::Query::default())?;
            Source::Listed {
                episodes: episodes.into_iter(),
            }
        } else {
            Source::Table { next: Some(0) }
        };
        Ok(RowReader {
            snapshot,
            source,
            batch_rows: FIRST_BATCH_ROWS,
            tally: Tally::default(),
        })
    }

    /// Fills `batch` with the next rows (none when every episode was read).
    pub fn fill(&mut self, batch: &mut Batch) -> Result<()> {
        batch.clear();
        let rows = self.batch_rows;
        self.batch_rows = (rows * 2).min(BATCH_ROWS);
        let snapshot = self.snapshot;
        let tally = &mut self.tally;
        match &mut self.source {
            Source::Table { next } => {
                let Some(from) = *next else { return Ok(()) };
                *next = snapshot.read_index(|index| {
                    index.episode_rows(from, u64::MAX, |id, row| {
                        tally.push_row(snapshot, batch, EpisodeId(id), row)?;
                        Ok(!batch.is_full(rows))
                    })
                })?;
            }
            Source::Listed { episodes } => {
                for e in episodes.by_ref() {
                    let r = &e.record;
                    let lists = batch.push_lists(r.fields.iter().map(Vec::as_slice));
                    let head = Head {
                        user: &r.user,
                        steps: r.steps,
                        schema_id: r.schema_id,
                    };
                    tally.push(snapshot, batch, e.id(), head, lists);
                    if batch.is_full(rows) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Batch {
    /// Appends chunk lists; their indices in `lists`.
    fn push_lists<'c>(&mut self, lists: impl Iterator<Item = &'c [ChunkRef]>) -> Range<usize> {
        let first = self.lists.len();
        for list in lists {
            let start = self.chunks.len();
            self.chunks.extend_from_slice(list);
            self.lists.push(start..self.chunks.len());
        }
        first..self.lists.len()
    }
}

impl Tally {
    /// One stored row: the lean decode, or the full one when the lean one cannot follow it.
    pub(super) fn push_row(
        &mut self,
        snapshot: &Snapshot,
        batch: &mut Batch,
        id: EpisodeId,
        bytes: &[u8],
    ) -> Result<()> {
        let (lists, chunks) = (batch.lists.len(), batch.chunks.len());
        if let Some(head) = lean_row(bytes, batch) {
            self.push(snapshot, batch, id, head, lists..batch.lists.len());
            return Ok(());
        }
        batch.lists.truncate(lists);
        batch.chunks.truncate(chunks);
        let r = EpisodeRecordV1::decode(bytes)?;
        let lists = batch.push_lists(r.fields.iter().map(Vec::as_slice));
        let head = Head {
            user: &r.user,
            steps: r.steps,
            schema_id: r.schema_id,
        };
        self.push(snapshot, batch, id, head, lists);
        Ok(())
    }

    /// A row whose chunk lists are in `batch` already (`lists`).
    fn push(
        &mut self,
        snapshot: &Snapshot,
        batch: &mut Batch,
        id: EpisodeId,
        head: Head<'_>,
        lists: Range<usize>,
    ) {
        let user = self.user_slot(head.user);
        let counted = &mut self.users[user as usize];
        counted.1 += 1;
        counted.2 += u64::from(head.steps);
        let schema = match batch.schema_ids.iter().position(|&s| s == head.schema_id) {
            Some(slot) => slot as u32,
            None => {
                let found = self.schemas.entry(head.schema_id).or_insert_with(|| {
                    snapshot
                        .schema(SchemaId(head.schema_id))
                        .map_err(|e| e.to_string())
                });
                batch.schemas.push(found.clone());
                batch.schema_ids.push(head.schema_id);
                batch.schemas.len() as u32 - 1
            }
        };
        let chunks = batch.lists[lists.clone()].first().map(|r| r.start);
        for i in chunks.map_or(0..0, |first| first..batch.chunks.len()) {
            let c = batch.chunks[i];
            self.reference(c.segment);
            batch.cover(&c);
        }
        self.episodes += 1;
        batch.rows.push(Row {
            id,
            user,
            steps: head.steps,
            schema,
            lists,
        });
    }

    /// Notes a segment as referenced. Rows read in id order come from a few segments at a
    /// time (one per recorder): those are remembered to skip the set.
    fn reference(&mut self, segment: u64) {
        if self.recent_segments.contains(&Some(segment)) {
            return;
        }
        self.referenced.insert(segment);
        self.recent_segments.rotate_right(1);
        self.recent_segments[0] = Some(segment);
    }

    /// The index of a user's name, added on first sight (rows of one user often follow
    /// each other).
    fn user_slot(&mut self, user: &str) -> u32 {
        if let Some(last) = self.last_user
            && self.users[last as usize].0 == user
        {
            return last;
        }
        let slot = match self.user_slots.get(user) {
            Some(&slot) => slot,
            None => {
                self.users.push((user.to_owned(), 0, 0));
                self.user_slots
                    .insert(user.to_owned(), self.users.len() as u32 - 1);
                self.users.len() as u32 - 1
            }
        };
        self.last_user = Some(slot);
        slot
    }
}

/// What verify needs of a row besides its chunk lists.
struct Head<'a> {
    user: &'a str,
    steps: u32,
    schema_id: u64,
}
