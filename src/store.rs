//! Opening a store directory.
//!
//! ```text
//! DIR/index.redb            the redb index (see index/mod.rs)
//! DIR/segments/{id:016x}.seg  append-only field data (see segment/format.rs)
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checked::VerifiedChunks;
use crate::commit::{CommitStats, GroupCommit};
use crate::error::{Error, Result};
use crate::index::{Index, IndexSnapshot, guarded};
use crate::io::{OsIo, StoreIo};
use crate::process::ProcessBound;
use crate::schema::Schema;
use crate::segment::{SEGMENTS_DIR, SegmentMaps, SegmentPool};
use crate::snapshot::Snapshot;
use crate::writer::{EpisodeMeta, EpisodeWriter};

/// Name of the index file inside a store directory.
pub const INDEX_FILE: &str = "index.redb";

/// Tuning knobs of a store handle (not stored: each process may choose its own).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A segment file at or past this size is sealed and a new one started.
    pub segment_target_bytes: u64,
    /// An episode writer keeps up to this many bytes of field data in memory before writing
    /// chunks out; episodes smaller than this have each field in one contiguous chunk.
    pub spill_bytes: usize,
    /// The file system under the store: the real one ([`OsIo`]) unless a test injects power
    /// cuts or I/O faults (io.rs).
    pub io: Arc<dyn StoreIo>,
    /// Checked reads (default `true`): the first read of each chunk in this process verifies
    /// its xxh3 checksum (and lz4 framing) and a damaged chunk fails the read with
    /// [`Error::CorruptRead`]; the result is remembered, so later reads cost nothing
    /// measurable. `false` skips the check, for trusted media.
    pub verify_reads: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_target_bytes: 1 << 30,
            spill_bytes: 256 << 20,
            io: Arc::new(OsIo),
            verify_reads: true,
        }
    }
}

/// What one process has open of a store. Every part that a forked child must not touch is
/// bound to the opening process: the index (process.rs) and the segment pool.
pub(crate) struct Inner {
    pub root: PathBuf,
    pub index: Index,
    pub maps: SegmentMaps,
    /// `None` for a read-only handle.
    pub pool: Option<ProcessBound<SegmentPool>>,
    pub commits: GroupCommit,
    pub options: StoreOptions,
    /// Chunks whose checksums this process verified (checked reads; see checked.rs).
    pub verified: Arc<VerifiedChunks>,
    schema_ids: Mutex<Vec<(Arc<Schema>, u64)>>,
}

impl Inner {
    /// The segment pool of a writer handle, in the process that opened it.
    pub fn pool(&self) -> Result<&SegmentPool> {
        let pool = self.pool.as_ref().ok_or(Error::ReadOnly)?;
        pool.get().ok_or_else(|| Error::ForkedHandle {
            what: "a segment pool",
            opened_in: pool.owner(),
            used_in: crate::process::current(),
        })
    }
}

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
    home: Arc<Inner>,
    forked: Arc<Mutex<Option<ProcessBound<Arc<Inner>>>>>,
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
            return Err(Error::NotADirectory {
                path: path.to_owned(),
            });
        }
        let segments = path.join(SEGMENTS_DIR);
        io.create_dir_all(&segments)
            .map_err(|e| Error::io(&segments, e))?;
        io.sync_dir(path).map_err(|e| Error::io(path, e))?;
        // Never an empty index over existing segments: that would hide their episodes.
        crate::repair::refuse_missing_index(path)?;
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
        Ok(Store::new(Arc::new(Inner::open_write(path, options)?)))
    }

    /// Opens an existing store for reading only; recording through it fails with
    /// [`Error::ReadOnly`]. Follows commits of writers in other processes.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_read_only_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::open_read_only`] with options.
    pub fn open_read_only_with(path: &Path, options: StoreOptions) -> Result<Store> {
        check_store_dir(path, &*options.io)?;
        Ok(Store::new(Arc::new(Inner::open_read(path, options)?)))
    }

    fn new(home: Arc<Inner>) -> Store {
        Store {
            home,
            forked: Arc::new(Mutex::new(None)),
        }
    }

    /// What this process has open of the store: the handle's own in the process that opened
    /// it; in a forked child, the store reopened for the child on first use (same mode and
    /// options), never the parent's index, appenders or commit queue.
    pub(crate) fn here(&self) -> Result<Arc<Inner>> {
        if self.home.index.is_home() {
            return Ok(self.home.clone());
        }
        // Only children get here; the parent never takes this lock, so it cannot have been
        // held by a parent thread at the fork. A poisoned slot is just reopened.
        let mut slot = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inner) = slot.as_ref().and_then(|bound| bound.get()) {
            return Ok(inner.clone());
        }
        let inner = Arc::new(self.home.reopen()?);
        // A grandchild replaces its parent's reopened handle; ProcessBound leaks that one.
        *slot = Some(ProcessBound::new(inner.clone()));
        Ok(inner)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.home.root
    }

    /// Starts recording an episode of `schema`. Nothing of it is visible until
    /// [`EpisodeWriter::commit`] returns; dropping the writer discards it.
    pub fn begin_episode(&self, meta: EpisodeMeta, schema: &Schema) -> Result<EpisodeWriter> {
        let inner = self.here()?;
        inner.pool()?;
        meta.validate()?;
        let (schema, schema_id) = inner.register_schema(schema)?;
        Ok(EpisodeWriter::new(inner, meta, schema, schema_id))
    }

    /// A consistent, read-only view of everything committed so far. Later commits are not
    /// visible in it; take a new snapshot to see them.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let inner = self.here()?;
        let index = guarded(inner.index.path(), || inner.index.begin_read())?;
        Snapshot::new(self.clone(), inner, IndexSnapshot::new(index))
    }

    /// Whether reads are checked ([`StoreOptions::verify_reads`]).
    pub fn verify_reads(&self) -> bool {
        self.home.options.verify_reads
    }

    /// Chunks this handle has verified so far in this process (checked reads; 0 when reads
    /// are unchecked).
    pub fn verified_chunks(&self) -> usize {
        self.here().map_or(0, |inner| inner.verified.len())
    }

    /// Commit counters of this handle in this process (episodes per durable index
    /// transaction).
    pub fn commit_stats(&self) -> CommitStats {
        self.here()
            .map(|inner| inner.commits.stats())
            .unwrap_or_default()
    }
}

impl Inner {
    fn open_write(path: &Path, options: StoreOptions) -> Result<Inner> {
        let file = path.join(INDEX_FILE);
        let index = guarded(&file, || Index::open_write(&file, &*options.io))?;
        let pool = SegmentPool::new(
            path.join(SEGMENTS_DIR),
            options.segment_target_bytes,
            options.io.clone(),
        );
        Ok(Inner::assemble(path, index, Some(pool), options))
    }

    fn open_read(path: &Path, options: StoreOptions) -> Result<Inner> {
        let file = path.join(INDEX_FILE);
        let index = guarded(&file, || Index::open_read(&file, &*options.io))?;
        Ok(Inner::assemble(path, index, None, options))
    }

    fn assemble(
        path: &Path,
        index: Index,
        pool: Option<SegmentPool>,
        options: StoreOptions,
    ) -> Inner {
        Inner {
            root: path.to_owned(),
            maps: SegmentMaps::new(path.join(SEGMENTS_DIR), options.io.clone()),
            index,
            pool: pool.map(ProcessBound::new),
            commits: GroupCommit::default(),
            verified: Arc::new(VerifiedChunks::new(
                options.verify_reads,
                path.join(SEGMENTS_DIR),
            )),
            options,
            schema_ids: Mutex::new(Vec::new()),
        }
    }

    /// The same store opened again, in the same mode, by the calling process.
    fn reopen(&self) -> Result<Inner> {
        check_store_dir(&self.root, &*self.options.io)?;
        if self.pool.is_some() {
            Inner::open_write(&self.root, self.options.clone())
        } else {
            Inner::open_read(&self.root, self.options.clone())
        }
    }

    fn register_schema(&self, schema: &Schema) -> Result<(Arc<Schema>, u64)> {
        let mut known = self.schema_ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, id)) = known.iter().find(|(s, _)| **s == *schema) {
            return Ok((s.clone(), *id));
        }
        let id = guarded(self.index.path(), || self.index.schema_id(schema))?;
        let schema = Arc::new(schema.clone());
        known.push((schema.clone(), id));
        Ok((schema, id))
    }
}

fn check_store_dir(path: &Path, io: &dyn StoreIo) -> Result<()> {
    if io.len(path).is_ok() && !io.is_dir(path) {
        return Err(Error::NotADirectory {
            path: path.to_owned(),
        });
    }
    crate::repair::refuse_missing_index(path)?;
    if io.len(&path.join(INDEX_FILE)).is_err() {
        return Err(Error::NotAStore {
            path: path.to_owned(),
        });
    }
    Ok(())
}
