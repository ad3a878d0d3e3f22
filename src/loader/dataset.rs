//! The [`Loader`]: one rank's (and one DataLoader worker's) share of a selection of episodes,
//! in serving order, read from one store snapshot.
//!
//! The loader is the bridge between the pure [`partition`](super::partition) contract, which
//! only sees `(id, steps)` pairs, and the store: it turns a [`Query`] into an
//! [`EpisodeSet`], computes the share with [`remaining`] and opens the episodes' fields.
//! Everything a rank computes depends only on the store contents below the cutoff and on
//! `(seed, epoch, world_size, rank, num_workers, worker)`, so ranks agree without talking.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, ReadError, Result};
use crate::ids::EpisodeId;
use crate::partition::{Assignment, Cursor, EpisodeLen, EpisodeSet, Share, remaining_in};
use crate::read::Episode;
use crate::read::{EpisodeSummary, Field, Query, Snapshot};
use crate::store::Store;

/// Which episodes, and which share of them, a loader serves.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The filter. `before_id` is the snapshot cutoff shared by all ranks; when `None`, the
    /// snapshot's own cutoff is used (and reported by [`Loader::cutoff`] so rank 0 can
    /// broadcast it).
    pub query: Query,
    pub world_size: u32,
    pub rank: u32,
    /// DataLoader workers per rank (1 when the rank reads on its own).
    pub num_workers: u32,
    pub worker: u32,
    pub seed: u64,
    pub epoch: u64,
}

impl Selection {
    /// Rank `rank` of `world_size`, one worker, epoch 0.
    pub fn new(query: Query, world_size: u32, rank: u32, seed: u64) -> Self {
        Selection {
            query,
            world_size,
            rank,
            num_workers: 1,
            worker: 0,
            seed,
            epoch: 0,
        }
    }

    /// The same selection for another epoch.
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// Which share of the selected set: rank and worker.
    pub fn share(&self) -> Share {
        Share::rank(self.rank, self.world_size).worker(self.worker, self.num_workers)
    }

    /// The same selection for worker `worker` of `num_workers`.
    pub fn worker(mut self, num_workers: u32, worker: u32) -> Self {
        self.num_workers = num_workers;
        self.worker = worker;
        self
    }
}

/// What a query selects in a snapshot, as the partition sees it.
pub struct Selected {
    /// `(id, steps)` of every selected episode.
    pub set: EpisodeSet,
    /// Their catalog rows, in id order.
    pub episodes: Vec<EpisodeSummary>,
    /// The cutoff applied: the query's `before_id`, or the snapshot's own cutoff.
    pub cutoff: EpisodeId,
}

/// The episodes a query selects in a snapshot, cut off at the query's `before_id` (or the
/// snapshot's own cutoff). Shared by the loader and `trajstore partition` so both agree.
/// Reads the index's catalog only (no chunk lists, no metadata maps).
pub fn select(snapshot: &Snapshot, query: &Query) -> Result<Selected> {
    let cutoff = match query.before_id {
        Some(c) => c,
        None => snapshot.cutoff()?,
    };
    let query = Query {
        before_id: Some(cutoff),
        ..query.clone()
    };
    let episodes = snapshot.catalog(&query)?;
    let lens: Vec<EpisodeLen> = episodes
        .iter()
        .map(|e| EpisodeLen {
            id: e.id().get(),
            steps: u64::from(e.steps()),
        })
        .collect();
    Ok(Selected {
        set: EpisodeSet::new(&lens)?,
        episodes,
        cutoff,
    })
}

/// One rank's (one worker's) share of the selected episodes for one epoch, in serving order.
///
/// Reading: [`Loader::iter`] yields whole episodes with their fields (raw fields are zero-copy
/// slices of the segment maps); [`Sampler::new`](crate::loader::Sampler::new) gathers
/// random or sequential batches of steps or windows into reusable buffers.
pub struct Loader {
    snapshot: Arc<Snapshot>,
    store: Store,
    query: Query,
    set: EpisodeSet,
    assignment: Assignment,
    /// Where `share[0]` stands in this worker's list for the epoch.
    cursor: Cursor,
    share: Vec<EpisodeSummary>,
}

impl Loader {
    /// The share of `selection` at the start of its epoch.
    pub fn new(store: &Store, selection: &Selection) -> Result<Loader> {
        let snapshot = store.snapshot()?;
        let Selected {
            set,
            episodes,
            cutoff,
        } = select(&snapshot, &selection.query)?;
        // Checked once, with the share, in `build`.
        let cursor = Cursor::unchecked(&set, selection.share())
            .seed(selection.seed)
            .epoch(selection.epoch);
        let query = Query {
            before_id: Some(cutoff),
            ..selection.query.clone()
        };
        Self::build(store, snapshot, query, set, episodes, cursor)
    }

    /// Resumes mid-epoch: exactly the episodes of the cursor's list not served yet. `query`
    /// must select the same episode set the cursor was taken on (same filter and cutoff;
    /// see [`Loader::cutoff`]), otherwise [`ReadError::Partition`] (fingerprint mismatch).
    pub fn resume(store: &Store, query: &Query, cursor: Cursor) -> Result<Loader> {
        let snapshot = store.snapshot()?;
        let Selected {
            set,
            episodes,
            cutoff,
        } = select(&snapshot, query)?;
        let query = Query {
            before_id: Some(cutoff),
            ..query.clone()
        };
        Self::build(store, snapshot, query, set, episodes, cursor)
    }

    fn build(
        store: &Store,
        snapshot: Snapshot,
        query: Query,
        set: EpisodeSet,
        episodes: Vec<EpisodeSummary>,
        cursor: Cursor,
    ) -> Result<Loader> {
        let (assignment, items) = remaining_in(&set, &cursor)?;
        let mut by_id: HashMap<u64, EpisodeSummary> =
            episodes.into_iter().map(|e| (e.id().get(), e)).collect();
        let share = items
            .iter()
            .map(|item| {
                by_id.remove(&item.id).ok_or(
                    ReadError::EpisodeNotFound {
                        id: EpisodeId(item.id),
                    }
                    .into(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Loader {
            snapshot: Arc::new(snapshot),
            store: store.clone(),
            query,
            set,
            assignment,
            cursor,
            share,
        })
    }

    /// The same rank and worker at the start of the next epoch (a new serving order and, in
    /// general, a different share), on the same episode set.
    pub fn next_epoch(&self) -> Result<Loader> {
        let cursor = self.cursor.next_epoch().ok_or_else(|| {
            Error::invalid_request("epoch", "the epoch counter is exhausted (u64::MAX)")
        })?;
        Self::resume(&self.store, &self.query, cursor)
    }

    /// The snapshot the episodes are read from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The snapshot, shared (a sampler keeps it to open episodes at their first batch).
    pub(crate) fn shared_snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// The store the loader reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The query with the cutoff filled in: hand it (or just its `before_id`) to the other
    /// ranks so they select the same set.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The snapshot cutoff in use (every selected episode id is below it).
    pub fn cutoff(&self) -> EpisodeId {
        self.query.before_id.unwrap_or_default()
    }

    /// The whole selected set (every rank's episodes).
    pub fn episode_set(&self) -> &EpisodeSet {
        &self.set
    }

    /// The assignment of the whole set to all ranks for this epoch.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Step imbalance across ranks, `max / min` (1.0 is perfect).
    pub fn imbalance(&self) -> f64 {
        self.assignment.imbalance()
    }

    /// The cursor pointing at the first episode of [`Loader::episodes`]. Checkpoint
    /// `cursor().advanced(n)` after consuming `n` episodes (or use
    /// [`EpisodeData::cursor_after`]) and pass it to [`Loader::resume`].
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The episodes still to serve in this epoch, in serving order (catalog rows: open one
    /// with [`Loader::episode`] to read its fields).
    pub fn episodes(&self) -> &[EpisodeSummary] {
        &self.share
    }

    /// The full metadata of [`Loader::episodes`]`()[i]`, read from the loader's snapshot.
    pub fn episode(&self, i: usize) -> Result<Episode> {
        let summary = self.share.get(i).ok_or_else(|| {
            Error::invalid_request(
                "loader episode",
                format!("{i} is past the share's {} episodes", self.share.len()),
            )
        })?;
        self.snapshot.episode(summary.id())
    }

    /// Steps (transitions) in [`Loader::episodes`].
    pub fn steps(&self) -> u64 {
        self.share.iter().map(|e| u64::from(e.steps())).sum()
    }

    /// Whole episodes in serving order, each with all its fields opened. Raw fields serve
    /// their data as slices of the segment maps ([`Field::contiguous`], [`Field::raw_step`]):
    /// nothing is copied until the caller copies.
    pub fn iter(&self) -> impl Iterator<Item = Result<EpisodeData>> + '_ {
        self.share.iter().enumerate().map(move |(i, e)| {
            let episode = self.snapshot.episode(e.id())?;
            Ok(EpisodeData {
                fields: self.snapshot.fields(&episode)?,
                episode,
                cursor_after: self.cursor.advanced(i as u64 + 1),
            })
        })
    }
}

/// One episode served by [`Loader::iter`].
pub struct EpisodeData {
    pub episode: Episode,
    /// Every field, in schema order.
    pub fields: Vec<Field>,
    /// The cursor to checkpoint once this episode is consumed.
    pub cursor_after: Cursor,
}

impl EpisodeData {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.spec().name == name)
    }
}
