//! Opening a store directory.
//!
//! ```text
//! DIR/index.redb            the redb index (see index/mod.rs)
//! DIR/segments/{id:016x}.seg  append-only field data (see segment/format.rs)
//! ```

use std::path::Path;

use crate::curate::{CurateOptions, Curated, Relabel, Restore, SavedStats, SplitRequest, Target};
use crate::error::{Error, OpenError, Result};
use crate::ids::EpisodeId;
use crate::index::commit::CommitStats;
use crate::index::records::SplitSpecV1;
use crate::open::{OpenStore, StoreHandle, check_store_dir};
use crate::options::StoreOptions;
use crate::read::{Snapshot, Tombstone};
use crate::schema::Schema;
use crate::segment::SEGMENTS_DIR;
use crate::write::{EpisodeMeta, EpisodeWriter};

/// A handle on a store directory. Cheap to clone, `Send + Sync`: share one among all the
/// recorder and reader threads of a process. Other processes may open the same directory at
/// the same time, for recording or reading.
///
/// A handle also works in a child after `fork()`: the first use there reopens the store for
/// the child (its own index handle, segment appenders and commit queue), shared by the clones
/// of the handle in that child; the parent's are never used nor dropped there
/// (schema/concurrency.md, "Fork").
#[derive(Clone)]
pub struct Store {
    handle: StoreHandle,
}

impl Store {
    /// Opens the store at `path`, creating the directory and an empty store if needed.
    pub fn create(path: impl AsRef<Path>) -> Result<Store> {
        Self::create_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::create`] with options.
    pub fn create_with(path: &Path, options: StoreOptions) -> Result<Store> {
        let io = &options.io;
        if io.len(path).is_ok() && !io.is_dir(path) {
            return Err(OpenError::NotADirectory {
                path: path.to_owned(),
            }
            .into());
        }
        let segments = path.join(SEGMENTS_DIR);
        io.create_dir_all(&segments)
            .map_err(|e| Error::io(&segments, e))?;
        io.sync_dir(path).map_err(|e| Error::io(path, e))?;
        // Never an empty index over existing segments: that would hide their episodes.
        crate::open::refuse_missing_index(path)?;
        Self::open_index(path, options)
    }

    /// Opens an existing store for recording and reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store> {
        check_store_dir(path, &*options.io)?;
        Self::open_index(path, options)
    }

    fn open_index(path: &Path, options: StoreOptions) -> Result<Store> {
        Ok(Store::new(OpenStore::open_write(path, options)?))
    }

    /// Opens an existing store for reading only; recording through it fails with
    /// [`OpenError::ReadOnly`]. Follows commits of writers in other processes.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_read_only_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::open_read_only`] with options.
    pub fn open_read_only_with(path: &Path, options: StoreOptions) -> Result<Store> {
        check_store_dir(path, &*options.io)?;
        Ok(Store::new(OpenStore::open_read(path, options)?))
    }

    fn new(open: OpenStore) -> Store {
        Store {
            handle: StoreHandle::new(open),
        }
    }

    /// What the calling process has open of the store (merge, compaction).
    pub(crate) fn here(&self) -> Result<std::sync::Arc<crate::open::OpenStore>> {
        self.handle.here()
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.handle.home().root()
    }

    /// Starts recording an episode of `schema`. Nothing of it is visible until
    /// [`EpisodeWriter::commit`] returns; dropping the writer discards it.
    pub fn begin_episode(&self, meta: EpisodeMeta, schema: &Schema) -> Result<EpisodeWriter> {
        let open = self.handle.here()?;
        let recording = open.recording()?;
        recording.pool()?;
        meta.validate()?;
        let (schema, schema_id) = recording.register_schema(open.index(), schema)?;
        // A bad two-player declaration would otherwise surface only at replay, after commit.
        crate::loader::players::player_layout(&meta.metadata, &schema, "the new episode")?;
        Ok(EpisodeWriter::new(open, meta, schema, schema_id))
    }

    /// A consistent, read-only view of everything committed so far. Later commits are not
    /// visible in it; take a new snapshot to see them.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::new(self.handle.clone())
    }

    /// Whether reads are checked ([`StoreOptions::verify_reads`]).
    pub fn verify_reads(&self) -> bool {
        self.handle.home().options().verify_reads
    }

    /// Chunks this handle has verified so far in this process (checked reads; 0 when reads
    /// are unchecked).
    pub fn verified_chunks(&self) -> usize {
        self.handle.here().map_or(0, |open| open.verified().len())
    }

    /// Commit counters of this handle in this process (episodes per durable index
    /// transaction).
    pub fn commit_stats(&self) -> CommitStats {
        self.handle
            .here()
            .ok()
            .and_then(|open| open.recording().ok().map(|r| r.commits().stats()))
            .unwrap_or_default()
    }

    /// Deletes the episodes `target` selects, in one index transaction: they leave every
    /// query, loader, partition and replay (snapshots taken before keep them, schema/index.md
    /// "Deletes and cutoffs"); their bytes stay until compaction. Named ids that are unknown or
    /// already deleted are an error naming them, before anything changes; an empty selection
    /// changes nothing and returns no ids.
    pub fn delete(&self, target: &Target, options: &CurateOptions) -> Result<Curated> {
        crate::curate::delete(&*self.handle.here()?, target, options)
    }

    /// Puts deleted episodes back on every query path (until compaction purged them).
    pub fn restore(&self, which: &Restore, options: &CurateOptions) -> Result<Curated> {
        crate::curate::restore(&*self.handle.here()?, which, options)
    }

    /// Changes labels (user, outcome, tags, metadata) of the episodes `target` selects, in one
    /// index transaction; each episode's history keeps who changed what, when.
    pub fn relabel(
        &self,
        target: &Target,
        relabel: &Relabel,
        options: &CurateOptions,
    ) -> Result<Curated> {
        crate::curate::relabel(&*self.handle.here()?, target, relabel, options)
    }

    /// Sets the store's split (replacing any earlier one): only the specification is stored;
    /// an episode's split is a pure function of it and the episode's id or user.
    pub fn set_split(
        &self,
        request: &SplitRequest,
        options: &CurateOptions,
    ) -> Result<SplitSpecV1> {
        crate::curate::set_split(&*self.handle.here()?, request, options)
    }

    /// Computes, from their frames, the statistics of every live episode that has none
    /// (recorded before store format 2 or with statistics off, or restored by `repair`) and
    /// stores them, so [`Snapshot::stats`] combines them without reading frames again. Reads
    /// only the fields small enough to have statistics. An episode whose frames cannot be
    /// read is reported and left without statistics.
    pub fn save_missing_stats(&self) -> Result<SavedStats> {
        let snapshot = self.snapshot()?;
        crate::curate::save_missing_stats(&*self.handle.here()?, &snapshot)
    }

    /// Tombstones older than `retention` (deleted at least that long ago): what compaction
    /// may purge.
    pub fn expired_tombstones(&self, retention: std::time::Duration) -> Result<Vec<Tombstone>> {
        let limit = crate::write::now_us()
            .saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX));
        Ok(self
            .snapshot()?
            .tombstones()?
            .into_iter()
            .filter(|t| t.deleted_at_us <= limit)
            .collect())
    }

    /// Removes these tombstones for good, in one transaction (compaction calls it once the
    /// episodes' bytes are no longer referenced). Every id must be a tombstone.
    pub fn purge_tombstones(&self, ids: &[EpisodeId]) -> Result<Curated> {
        crate::curate::purge(&*self.handle.here()?, ids, &CurateOptions::default())
    }
}
