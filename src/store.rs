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
use crate::index::{Index, IndexSnapshot};
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
            verify_reads: true,
        }
    }
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub index: Index,
    pub maps: SegmentMaps,
    pub pool: Option<SegmentPool>,
    pub commits: GroupCommit,
    pub options: StoreOptions,
    /// Chunks whose checksums this process verified (checked reads; see checked.rs).
    pub verified: Arc<VerifiedChunks>,
    schema_ids: Mutex<Vec<(Arc<Schema>, u64)>>,
}

/// A handle on a store directory. Cheap to clone, `Send + Sync`: share one among all the
/// recorder and reader threads of a process. Other processes may open the same directory at
/// the same time, for recording or reading.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens the store at `path`, creating the directory and an empty store if needed.
    pub fn create(path: impl AsRef<Path>) -> Result<Store> {
        Self::create_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::create`] with options.
    pub fn create_with(path: &Path, options: StoreOptions) -> Result<Store> {
        if path.is_file() {
            return Err(Error::NotADirectory {
                path: path.to_owned(),
            });
        }
        let segments = path.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segments).map_err(|e| Error::io(&segments, e))?;
        crate::segment::sync_dir(path)?;
        Self::open_index(path, options)
    }

    /// Opens an existing store for recording and reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store> {
        check_store_dir(path)?;
        Self::open_index(path, options)
    }

    fn open_index(path: &Path, options: StoreOptions) -> Result<Store> {
        let index = Index::open_write(&path.join(INDEX_FILE))?;
        let segments = path.join(SEGMENTS_DIR);
        let pool = SegmentPool::new(segments.clone(), options.segment_target_bytes);
        Ok(Self::assemble(path, index, Some(pool), options))
    }

    /// Opens an existing store for reading only; recording through it fails with
    /// [`Error::ReadOnly`]. Follows commits of writers in other processes.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_read_only_with(path.as_ref(), StoreOptions::default())
    }

    /// [`Store::open_read_only`] with options (of which only the reading ones matter).
    pub fn open_read_only_with(path: &Path, options: StoreOptions) -> Result<Store> {
        check_store_dir(path)?;
        let index = Index::open_read(&path.join(INDEX_FILE))?;
        Ok(Self::assemble(path, index, None, options))
    }

    fn assemble(
        path: &Path,
        index: Index,
        pool: Option<SegmentPool>,
        options: StoreOptions,
    ) -> Store {
        Store {
            inner: Arc::new(Inner {
                root: path.to_owned(),
                maps: SegmentMaps::new(path.join(SEGMENTS_DIR)),
                index,
                pool,
                commits: GroupCommit::default(),
                verified: Arc::new(VerifiedChunks::new(
                    options.verify_reads,
                    path.join(SEGMENTS_DIR),
                )),
                options,
                schema_ids: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Starts recording an episode of `schema`. Nothing of it is visible until
    /// [`EpisodeWriter::commit`] returns; dropping the writer discards it.
    pub fn begin_episode(&self, meta: EpisodeMeta, schema: &Schema) -> Result<EpisodeWriter> {
        if self.inner.pool.is_none() {
            return Err(Error::ReadOnly);
        }
        meta.validate()?;
        let (schema, schema_id) = self.register_schema(schema)?;
        Ok(EpisodeWriter::new(
            self.inner.clone(),
            meta,
            schema,
            schema_id,
        ))
    }

    fn register_schema(&self, schema: &Schema) -> Result<(Arc<Schema>, u64)> {
        let mut known = self.inner.schema_ids.lock().expect("schema cache");
        if let Some((s, id)) = known.iter().find(|(s, _)| **s == *schema) {
            return Ok((s.clone(), *id));
        }
        let id = self.inner.index.schema_id(schema)?;
        let schema = Arc::new(schema.clone());
        known.push((schema.clone(), id));
        Ok((schema, id))
    }

    /// A consistent, read-only view of everything committed so far. Later commits are not
    /// visible in it; take a new snapshot to see them.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.inner.index.begin_read()?;
        Ok(Snapshot::new(self.inner.clone(), IndexSnapshot::new(txn)))
    }

    /// Whether reads are checked ([`StoreOptions::verify_reads`]).
    pub fn verify_reads(&self) -> bool {
        self.inner.options.verify_reads
    }

    /// Chunks this handle has verified so far (checked reads; 0 when reads are unchecked).
    pub fn verified_chunks(&self) -> usize {
        self.inner.verified.len()
    }

    /// Commit counters of this handle (episodes per durable index transaction).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.commits.stats()
    }
}

fn check_store_dir(path: &Path) -> Result<()> {
    if path.is_file() {
        return Err(Error::NotADirectory {
            path: path.to_owned(),
        });
    }
    if !path.join(INDEX_FILE).is_file() {
        return Err(Error::NotAStore {
            path: path.to_owned(),
        });
    }
    Ok(())
}
