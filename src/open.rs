//! What a process has open of a store, and the handle that finds it in any process.
//!
//! [`OpenStore`] is the shared core under the three faces of a store: readers (`read/`) use
//! its index, segment maps and verified-chunk cache; recorders (`write/`) also use its
//! [`Recording`] parts (segment pool, group-commit queue, schema ids), which a read-only
//! open lacks. Neither side reaches the other: each takes only the accessors it needs, and
//! this module imports neither.
//!
//! Invariant (schema/concurrency.md, "Fork"): everything a forked child must not touch is
//! bound to the process that opened it ([`ProcessBound`]): the index handle and the segment
//! pool. [`StoreHandle::here`] hands each process its own [`OpenStore`], reopened on first use
//! in a child and shared by every clone of the handle there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, OpenError, Result};
use crate::index::board::{Board, QUEUE_DIR as BOARD_QUEUE_DIR};
use crate::index::commit::GroupCommit;
use crate::index::{INDEX_FILE, Index, guarded};
use crate::io::StoreIo;
use crate::options::StoreOptions;
use crate::process::ProcessBound;
use crate::schema::Schema;
use crate::segment::checked::VerifiedChunks;
use crate::segment::readers::ReadersLock;
use crate::segment::{SEGMENTS_DIR, SegmentMaps, SegmentPool, list_segment_ids};
use crate::workers::Workers;

/// What one process has open of a store.
pub(crate) struct OpenStore {
    root: PathBuf,
    options: StoreOptions,
    index: Index,
    maps: SegmentMaps,
    /// Chunks whose checksums this process verified (checked reads; see segment/checked.rs).
    verified: Arc<VerifiedChunks>,
    /// `None` for a read-only open.
    recording: Option<Recording>,
    /// Held while the store is open, so compaction never deletes a segment file a snapshot
    /// of this handle may still read (segment/readers.rs). Declared last: released after
    /// the index is closed.
    _readers: Option<ReadersLock>,
}

/// The parts only recorders use.
pub(crate) struct Recording {
    pool: ProcessBound<SegmentPool>,
    commits: GroupCommit,
    /// The cross-process group commit (index/board.rs), on a file system other processes
    /// share; `None` in the simulations.
    board: Option<Board>,
    /// Schemas this process has registered, with their ids (saves an index transaction per
    /// episode).
    schema_ids: Mutex<Vec<(Arc<Schema>, u64)>>,
    /// Where background commits run (write/background.rs).
    background: Workers,
}

impl OpenStore {
    pub fn open_write(path: &Path, options: StoreOptions) -> Result<OpenStore> {
        let file = path.join(INDEX_FILE);
        let index = guarded(&file, || {
            Index::open_write_caching(&file, &*options.io, options.index_cache_bytes)
        })?;
        let pool = SegmentPool::new(
            path.join(SEGMENTS_DIR),
            options.segment_target_bytes,
            options.io.clone(),
        );
        let board = if options.io.overlapped_syncs() {
            Some(Board::open(path).map_err(|e| Error::io(path.join(BOARD_QUEUE_DIR), e))?)
        } else {
            None
        };
        let recording = Recording {
            pool: ProcessBound::new(pool),
            board,
            commits: GroupCommit::default(),
            schema_ids: Mutex::new(Vec::new()),
            background: Workers::new(options.background_commits),
        };
        Ok(OpenStore::assemble(path, index, Some(recording), options))
    }

    pub fn open_read(path: &Path, options: StoreOptions) -> Result<OpenStore> {
        let file = path.join(INDEX_FILE);
        let index = guarded(&file, || {
            Index::open_read_caching(&file, &*options.io, options.index_cache_bytes)
        })?;
        Ok(OpenStore::assemble(path, index, None, options))
    }

    fn assemble(
        path: &Path,
        index: Index,
        recording: Option<Recording>,
        options: StoreOptions,
    ) -> OpenStore {
        OpenStore {
            _readers: ReadersLock::shared(path),
            root: path.to_owned(),
            maps: SegmentMaps::new(path.join(SEGMENTS_DIR), options.io.clone()),
            index,
            recording,
            verified: Arc::new(VerifiedChunks::new(
                options.verify_reads,
                path.join(SEGMENTS_DIR),
            )),
            options,
        }
    }

    /// The same store opened again, in the same mode, by the calling process.
    fn reopen(&self) -> Result<OpenStore> {
        check_store_dir(&self.root, &*self.options.io)?;
        if self.recording.is_some() {
            OpenStore::open_write(&self.root, self.options.clone())
        } else {
            OpenStore::open_read(&self.root, self.options.clone())
        }
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn maps(&self) -> &SegmentMaps {
        &self.maps
    }

    pub fn verified(&self) -> &Arc<VerifiedChunks> {
        &self.verified
    }

    /// The recorder's parts: an error on a read-only open.
    pub fn recording(&self) -> Result<&Recording> {
        self.recording.as_ref().ok_or(OpenError::ReadOnly.into())
    }
}

impl Recording {
    /// The segment pool, in the process that opened the store.
    pub fn pool(&self) -> Result<&SegmentPool> {
        self.pool.get().ok_or_else(|| {
            Error::Open(OpenError::ForkedHandle {
                what: "a segment pool",
                opened_in: self.pool.owner(),
                used_in: crate::process::current(),
            })
        })
    }

    pub fn commits(&self) -> &GroupCommit {
        &self.commits
    }

    pub fn board(&self) -> Option<&Board> {
        self.board.as_ref()
    }

    pub fn background(&self) -> &Workers {
        &self.background
    }

    /// The id of `schema` in the index, registering it on first use.
    pub fn register_schema(&self, index: &Index, schema: &Schema) -> Result<(Arc<Schema>, u64)> {
        let mut known = self.schema_ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, id)) = known.iter().find(|(s, _)| **s == *schema) {
            return Ok((s.clone(), *id));
        }
        let id = guarded(index.path(), || index.schema_id(schema))?;
        let schema = Arc::new(schema.clone());
        known.push((schema.clone(), id));
        Ok((schema, id))
    }
}

/// An open store that works in every process: the opener's [`OpenStore`], or in a forked
/// child one reopened for it. Cheap to clone; clones share the child's reopened store.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    home: Arc<OpenStore>,
    forked: Arc<Mutex<Option<ProcessBound<Arc<OpenStore>>>>>,
}

impl StoreHandle {
    pub fn new(home: OpenStore) -> StoreHandle {
        StoreHandle {
            home: Arc::new(home),
            forked: Arc::new(Mutex::new(None)),
        }
    }

    /// The store as opened by the process that made the handle (for what does not depend on
    /// the process: its path and options).
    pub fn home(&self) -> &OpenStore {
        &self.home
    }

    /// What this process has open of the store: the handle's own in the process that opened
    /// it; in a forked child, the store reopened for the child on first use (same mode and
    /// options), never the parent's index, appenders or commit queue.
    pub fn here(&self) -> Result<Arc<OpenStore>> {
        if self.home.index.is_home() {
            return Ok(self.home.clone());
        }
        // Only children get here; the parent never takes this lock, so it cannot have been
        // held by a parent thread at the fork. A poisoned slot is just reopened.
        let mut slot = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = slot.as_ref().and_then(|bound| bound.get()) {
            return Ok(open.clone());
        }
        let open = Arc::new(self.home.reopen()?);
        // A grandchild replaces its parent's reopened store; ProcessBound leaks that one.
        *slot = Some(ProcessBound::new(open.clone()));
        Ok(open)
    }
}

/// Refuses what is not a store directory, naming why.
pub(crate) fn check_store_dir(path: &Path, io: &dyn StoreIo) -> Result<()> {
    if io.len(path).is_ok() && !io.is_dir(path) {
        return Err(OpenError::NotADirectory {
            path: path.to_owned(),
        }
        .into());
    }
    refuse_missing_index(path)?;
    if io.len(&path.join(INDEX_FILE)).is_err() {
        return Err(OpenError::NotAStore {
            path: path.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Refuses a store directory whose index is missing while `segments/` holds segment files:
/// creating an empty index there would hide every episode; the index must be rebuilt.
pub(crate) fn refuse_missing_index(store: &Path) -> Result<()> {
    if store.join(INDEX_FILE).exists() {
        return Ok(());
    }
    let Ok(ids) = list_segment_ids(&store.join(SEGMENTS_DIR)) else {
        return Ok(()); // no segments directory: simply not a store (yet)
    };
    if ids.is_empty() {
        return Ok(());
    }
    Err(OpenError::IndexDamaged {
        path: store.to_owned(),
        reason: format!(
            "{INDEX_FILE} is missing but {SEGMENTS_DIR}/ holds {} segment file{}",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" }
        ),
    }
    .into())
}
