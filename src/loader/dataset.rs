//! The [`Loader`]: one rank's (and one DataLoader worker's) share of a selection of episodes,
//! in serving order, read from one store snapshot.
//!
//! The loader is the bridge between the pure [`partition`](super::partition) contract, which
//! only sees `(id, steps)` pairs, and the store: it turns a [`Query`] into an
//! [`EpisodeSet`], computes the share with `remaining` (partition/cursor.rs) and opens the
//! episodes' fields.
//! Everything a rank computes depends only on the store contents below the cutoff and on
//! `(seed, epoch, world_size, rank, num_workers, worker)`, so ranks agree without talking.

use std::sync::Arc;

use crate::error::{Error, ReadError, Result};
use crate::ids::EpisodeId;
use serde::{Deserialize, Serialize};

use crate::partition::{
    Assignment, Cursor, EpisodeLen, EpisodeSet, ShardStamp, Share, check_shards, remaining_in,
    split_key, union_sets,
};
use crate::read::{Catalog, Episode, EpisodeSummary, Field, Query, Snapshot};
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
    /// The cutoff applied: the query's `before_id`, or the snapshot's own cutoff.
    pub cutoff: EpisodeId,
}

/// The episodes a query selects in a snapshot, cut off at the query's `before_id` (or the
/// snapshot's own cutoff). Shared by the loader and `trajstore partition` so both agree.
/// Reads the index's catalog only, and of it only ids and steps unless the query filters on
/// more.
pub fn select(snapshot: &Snapshot, query: &Query) -> Result<Selected> {
    let cutoff = match query.before_id {
        Some(c) => c,
        None => snapshot.cutoff()?,
    };
    let query = Query {
        before_id: Some(cutoff),
        ..query.clone()
    };
    Ok(Selected {
        set: EpisodeSet::from_vec(snapshot.catalog_lens(&query)?)?,
        cutoff,
    })
}

/// One store of a dataset recorded on several hosts (`schema/partition.md` §7), with the
/// cutoff that fixes its part of the set: every rank must give the same list, in the same
/// order, with the same cutoffs.
#[derive(Clone)]
pub struct Shard {
    pub store: Store,
    /// Episodes with an id below it are selected; `None`: the store's own cutoff when the
    /// snapshot is taken (report it with [`Loader::cutoffs`] so every rank uses the same).
    pub cutoff: Option<EpisodeId>,
}

impl Shard {
    /// The store, cut off at its snapshot.
    pub fn new(store: &Store) -> Shard {
        Shard {
            store: store.clone(),
            cutoff: None,
        }
    }

    /// The same shard, cut off below `cutoff`.
    pub fn cutoff(self, cutoff: EpisodeId) -> Shard {
        Shard {
            cutoff: Some(cutoff),
            ..self
        }
    }
}

/// What a query selects in every shard of a list, keyed as one set (§7).
pub struct SelectedShards {
    /// `(key, steps)` of every selected episode of every shard.
    pub set: EpisodeSet,
    /// Each shard's stamp, in list order.
    pub stamps: Vec<ShardStamp>,
    /// Each shard's snapshot, in list order.
    pub snapshots: Vec<Snapshot>,
}

/// The episodes `query` selects in each shard (below each shard's cutoff), as one set. Shared
/// by the loader and `trajstore partition` so both agree. The query's own `before_id` must be
/// unset when the list has several shards: each has its own cutoff.
pub fn select_shards(shards: &[Shard], query: &Query) -> Result<SelectedShards> {
    if shards.len() > 1 && query.before_id.is_some() {
        return Err(Error::invalid_request(
            "before_id",
            "several shards each have their own cutoff (Shard::cutoff), not one before_id",
        ));
    }
    refuse_repeated_stores(shards)?;
    let mut parts = Vec::with_capacity(shards.len());
    let mut snapshots = Vec::with_capacity(shards.len());
    for shard in shards {
        let snapshot = shard.store.snapshot()?;
        let query = Query {
            before_id: shard.cutoff.or(query.before_id),
            ..query.clone()
        };
        let Selected { set, cutoff } = select(&snapshot, &query)?;
        parts.push((shard.store.path().display().to_string(), cutoff.get(), set));
        snapshots.push(snapshot);
    }
    let (set, stamps) = union_sets(parts)?;
    Ok(SelectedShards {
        set,
        stamps,
        snapshots,
    })
}

/// The same store listed twice would serve its episodes twice.
fn refuse_repeated_stores(shards: &[Shard]) -> Result<()> {
    let paths: Vec<_> = shards
        .iter()
        .map(|s| std::fs::canonicalize(s.store.path()).unwrap_or_else(|_| s.store.path().into()))
        .collect();
    for (j, path) in paths.iter().enumerate() {
        if let Some(i) = paths[..j].iter().position(|p| p == path) {
            return Err(Error::invalid_request(
                "shards",
                format!(
                    "shards {i} and {j} are the same store ({}): list each store once",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// A [`Cursor`] of a loader over several shards, with the stamps of the shard list it was
/// taken on, so that a resume on another list, order or selection names what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardedCursor {
    pub cursor: Cursor,
    pub shards: Vec<ShardStamp>,
}

/// One rank's (one worker's) share of the selected episodes for one epoch, in serving order.
///
/// Reading: [`Loader::iter`] yields whole episodes with their fields (raw fields are zero-copy
/// slices of the segment maps); [`Sampler::new`](crate::loader::Sampler::new) gathers
/// random or sequential batches of steps or windows into reusable buffers.
///
/// A loader reads one store ([`Loader::new`]) or several as one dataset
/// ([`Loader::new_sharded`]); with several, episodes are known by their key (`(shard, id)`,
/// [`Loader::key_of`]).
///
/// Setting one up reads only the ids and lengths of the selected episodes (what the partition
/// needs), and holds its share as `(key, steps)` pairs: 16 bytes an episode, so a rank of one
/// over a million episodes costs no more per episode than a rank of eight. Catalog rows and
/// metadata are read when asked for ([`Loader::episodes`], [`Loader::episode`]).
pub struct Loader {
    shards: Vec<Shard>,
    /// Each shard's snapshot, shared (a sampler keeps them to open episodes at their first
    /// batch).
    snapshots: Vec<Arc<Snapshot>>,
    /// The filter; with one shard its `before_id` is that shard's cutoff, with several unset.
    query: Query,
    stamps: Vec<ShardStamp>,
    set: EpisodeSet,
    assignment: Assignment,
    /// Where `share[0]` stands in this worker's list for the epoch.
    cursor: Cursor,
    /// `(key, steps)` of the episodes still to serve, in serving order (§7.1 keys: the id for
    /// one shard).
    share: Vec<EpisodeLen>,
}

impl Loader {
    /// The share of `selection` at the start of its epoch.
    pub fn new(store: &Store, selection: &Selection) -> Result<Loader> {
        Self::new_sharded(&[Shard::new(store)], selection)
    }

    /// The share of `selection` of the union of several stores (`schema/partition.md` §7),
    /// at the start of its epoch. A list of one store is exactly [`Loader::new`].
    pub fn new_sharded(shards: &[Shard], selection: &Selection) -> Result<Loader> {
        let selected = select_shards(shards, &selection.query)?;
        // Checked once, with the share, in `build`.
        let cursor = Cursor::unchecked(&selected.set, selection.share())
            .seed(selection.seed)
            .epoch(selection.epoch);
        Self::build(shards, &selection.query, selected, cursor)
    }

    /// Resumes mid-epoch: exactly the episodes of the cursor's list not served yet. `query`
    /// must select the same episode set the cursor was taken on (same filter and cutoff;
    /// see [`Loader::cutoff`]), otherwise [`ReadError::Partition`] (fingerprint mismatch).
    pub fn resume(store: &Store, query: &Query, cursor: Cursor) -> Result<Loader> {
        let selected = select_shards(&[Shard::new(store)], query)?;
        Self::build(&[Shard::new(store)], query, selected, cursor)
    }

    /// Resumes a loader over several shards mid-epoch. The shard list must be the one the
    /// cursor was taken on, in the same order, with the same cutoffs and filter; otherwise
    /// [`ReadError::Partition`] names the first shard that differs and how.
    pub fn resume_sharded(
        shards: &[Shard],
        query: &Query,
        cursor: &ShardedCursor,
    ) -> Result<Loader> {
        let selected = select_shards(shards, query)?;
        check_shards(&cursor.shards, &selected.stamps)?;
        Self::build(shards, query, selected, cursor.cursor)
    }

    fn build(
        shards: &[Shard],
        query: &Query,
        selected: SelectedShards,
        cursor: Cursor,
    ) -> Result<Loader> {
        let SelectedShards {
            set,
            stamps,
            snapshots,
        } = selected;
        let (assignment, share) = remaining_in(&set, &cursor)?;
        // Every shard keeps its cutoff, so the next epoch selects the same set.
        let shards: Vec<Shard> = shards
            .iter()
            .zip(&stamps)
            .map(|(s, stamp)| s.clone().cutoff(EpisodeId(stamp.cutoff)))
            .collect();
        let query = Query {
            before_id: (shards.len() == 1).then(|| EpisodeId(stamps[0].cutoff)),
            ..query.clone()
        };
        Ok(Loader {
            shards,
            snapshots: snapshots.into_iter().map(Arc::new).collect(),
            query,
            stamps,
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
        let query = Query {
            before_id: None,
            ..self.query.clone()
        };
        let selected = select_shards(&self.shards, &query)?;
        Self::build(&self.shards, &query, selected, cursor)
    }

    /// The snapshot the episodes are read from (the first shard's; see
    /// [`Loader::snapshot_of`]).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshots[0]
    }

    /// Every shard's snapshot, shared, in list order.
    pub(crate) fn shared_snapshots(&self) -> Vec<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// The store the loader reads (the first shard's).
    pub fn store(&self) -> &Store {
        &self.shards[0].store
    }

    /// The shards, in list order, each with the cutoff in use.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Each shard's stamp (path, cutoff, episodes, fingerprint), in list order.
    pub fn stamps(&self) -> &[ShardStamp] {
        &self.stamps
    }

    /// The query with the cutoff filled in (one shard): hand it (or just its `before_id`) to
    /// the other ranks so they select the same set. With several shards, `before_id` is unset:
    /// see [`Loader::cutoffs`].
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The snapshot cutoff in use (every selected episode id is below it); the first shard's.
    pub fn cutoff(&self) -> EpisodeId {
        EpisodeId(self.stamps[0].cutoff)
    }

    /// Every shard's cutoff, in list order: give them to the other ranks.
    pub fn cutoffs(&self) -> Vec<EpisodeId> {
        self.stamps.iter().map(|s| EpisodeId(s.cutoff)).collect()
    }

    /// The whole selected set (every rank's episodes), keyed as in §7.
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

    /// The cursor pointing at the first episode still to serve ([`Loader::items`]). Checkpoint
    /// `cursor().advanced(n)` after consuming `n` episodes (or use
    /// [`EpisodeData::cursor_after`]) and pass it to [`Loader::resume`]. Over several shards,
    /// checkpoint [`Loader::sharded_cursor`] instead.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// [`Loader::cursor`] with the shard list's stamps, for [`Loader::resume_sharded`].
    pub fn sharded_cursor(&self) -> ShardedCursor {
        ShardedCursor {
            cursor: self.cursor,
            shards: self.stamps.clone(),
        }
    }

    /// Episodes still to serve in this epoch.
    pub fn len(&self) -> usize {
        self.share.len()
    }

    pub fn is_empty(&self) -> bool {
        self.share.is_empty()
    }

    /// `(key, steps)` of the episodes still to serve, in serving order: the key is the id for a
    /// loader of one store, `(shard, id)` as one number for several ([`Loader::key_of`]).
    pub fn items(&self) -> &[EpisodeLen] {
        &self.share
    }

    /// The catalog rows of the episodes still to serve, in serving order, read from their
    /// shards' snapshots at this call (the loader keeps only keys and lengths): a rank of one
    /// over many episodes pays for them only when it asks.
    pub fn episodes(&self) -> Result<Vec<EpisodeSummary>> {
        let mut wanted: Vec<Vec<u64>> = vec![Vec::new(); self.shards.len()];
        for i in 0..self.len() {
            wanted[self.shard_of(i) as usize].push(self.id_of(i).get());
        }
        let catalogs = wanted
            .iter_mut()
            .zip(&self.snapshots)
            .map(|(ids, snapshot)| {
                ids.sort_unstable();
                Ok(Arc::new(snapshot.catalog_of(ids)?))
            })
            .collect::<Result<Vec<Arc<Catalog>>>>()?;
        (0..self.len())
            .map(|i| {
                let (catalog, id) = (&catalogs[self.shard_of(i) as usize], self.id_of(i));
                catalog
                    .position(id.get())
                    .map(|row| EpisodeSummary::new(catalog.clone(), row))
                    .ok_or_else(|| ReadError::EpisodeNotFound { id }.into())
            })
            .collect()
    }

    /// The full metadata of the `i`-th episode still to serve, read from its shard's snapshot.
    pub fn episode(&self, i: usize) -> Result<Episode> {
        if i >= self.len() {
            return Err(Error::invalid_request(
                "loader episode",
                format!("{i} is past the share's {} episodes", self.len()),
            ));
        }
        self.snapshot_of(i).episode(self.id_of(i))
    }

    /// The shard (position in the list) of the `i`-th episode.
    pub fn shard_of(&self, i: usize) -> u32 {
        split_key(self.shards.len(), self.share[i].id).0
    }

    /// The id of the `i`-th episode in its own store.
    pub fn id_of(&self, i: usize) -> EpisodeId {
        EpisodeId(split_key(self.shards.len(), self.share[i].id).1)
    }

    /// The key of the `i`-th episode in the whole set: its id for one shard, `(shard, id)` as
    /// one number for several (§7).
    pub fn key_of(&self, i: usize) -> u64 {
        self.share[i].id
    }

    /// Transitions of the `i`-th episode.
    pub fn steps_of(&self, i: usize) -> u32 {
        // Read from the catalog's u32 column: it always fits.
        self.share[i].steps as u32
    }

    /// The snapshot holding the `i`-th episode: read its fields from this one.
    pub fn snapshot_of(&self, i: usize) -> &Snapshot {
        &self.snapshots[self.shard_of(i) as usize]
    }

    /// Steps (transitions) still to serve.
    pub fn steps(&self) -> u64 {
        self.share.iter().map(|e| e.steps).sum()
    }

    /// Whole episodes in serving order, each with all its fields opened. Raw fields serve
    /// their data as slices of the segment maps ([`Field::contiguous`], [`Field::raw_step`]):
    /// nothing is copied until the caller copies.
    pub fn iter(&self) -> impl Iterator<Item = Result<EpisodeData>> + '_ {
        (0..self.len()).map(move |i| {
            let episode = self.snapshot_of(i).episode(self.id_of(i))?;
            Ok(EpisodeData {
                fields: self.snapshot_of(i).fields(&episode)?,
                episode,
                shard: self.shard_of(i),
                key: self.key_of(i),
                cursor_after: self.cursor.advanced(i as u64 + 1),
            })
        })
    }
}

/// One episode served by [`Loader::iter`].
pub struct EpisodeData {
    pub episode: Episode,
    /// The shard it comes from (0 for a loader of one store).
    pub shard: u32,
    /// Its key in the whole set (its id for a loader of one store).
    pub key: u64,
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
