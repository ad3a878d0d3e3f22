//! `Store`, `Snapshot` and `EpisodeRecorder`: thin wrappers over the library.

use std::sync::Arc;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyDict, PyList};
use trajstore::{
    CurateOptions, Curated, DType, Episode, EpisodeId, EpisodeMeta, EpisodeSummary, FieldSpec,
    LabelChange, Outcome, Query, Relabel, Restore, SchemaId, Snapshot, SplitKey, SplitRequest,
    Store, StoreOptions, Target,
};

use crate::arrow::{ArrowTable, export_err};
use crate::buffer::{MappedBuffer, dtype_of_format};
use crate::catalog::{PyCatalog, summary_dict};
use crate::error::{InputError, IntoPy};
use crate::out_array::{OutArray, Rows};
use crate::record::PyEpisodeRecorder;
use crate::schema::{FieldDecl, build_schema, field_decls};
use crate::values::{info_to_py, to_info};

/// Bytes of redb's super-header (`redb` 4.5, `tree_store/page_store/header.rs`: a 64-byte
/// header and two 128-byte commit slots).
const INDEX_HEADER_BYTES: usize = 320;

/// A store directory handle; share it freely between threads.
#[pyclass(frozen, module = "trajstore._trajstore", name = "Store")]
pub struct PyStore {
    pub(crate) store: Store,
    /// The index file, opened on the first `index_header` call.
    index_file: std::sync::OnceLock<std::fs::File>,
}

#[pymethods]
impl PyStore {
    /// Opens the store at `path`; `create` creates it when missing (never with `read_only`).
    /// `verify_reads=False` skips the checksum check of first reads (trusted media).
    #[staticmethod]
    #[pyo3(signature = (path, read_only = false, create = false, verify_reads = true))]
    fn open(
        py: Python<'_>,
        path: std::path::PathBuf,
        read_only: bool,
        create: bool,
        verify_reads: bool,
    ) -> PyResult<Self> {
        let options = StoreOptions {
            verify_reads,
            ..StoreOptions::default()
        };
        let store = py.detach(|| {
            if read_only {
                Store::open_read_only_with(&path, options)
            } else if create {
                Store::create_with(&path, options)
            } else {
                Store::open_with(&path, options)
            }
        });
        Ok(PyStore {
            store: store.py_err()?,
            index_file: std::sync::OnceLock::new(),
        })
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.store.path().to_owned()
    }

    /// Whether first reads of chunks are checked (the `verify_reads` it was opened with).
    #[getter]
    fn verify_reads(&self) -> bool {
        self.store.verify_reads()
    }

    /// Chunks this handle has verified so far.
    fn verified_chunks(&self) -> usize {
        self.store.verified_chunks()
    }

    /// The index file's header: redb's super-header (magic, god byte and both commit slots).
    /// Every index commit, by any process, writes a new transaction id into a commit slot, so
    /// equal headers read before two snapshots mean no commit happened in between: the Python
    /// layer reuses a snapshot while the header it was taken after is unchanged.
    fn index_header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        use std::os::unix::fs::FileExt;
        let path = self.store.path().join(trajstore::INDEX_FILE);
        let mut header = [0u8; INDEX_HEADER_BYTES];
        // Kept open, as the handle's own index database is (opening costs more than the read).
        let file = match self.index_file.get() {
            Some(f) => Ok(f),
            None => std::fs::File::open(&path).map(|f| self.index_file.get_or_init(|| f)),
        };
        let n = file.and_then(|f| f.read_at(&mut header, 0)).map_err(|e| {
            crate::error::StorageError::new_err(format!("reading {}: {e}", path.display()))
        })?;
        Ok(PyBytes::new(py, &header[..n]))
    }

    /// A consistent view of everything committed so far.
    fn snapshot(&self) -> PyResult<PySnapshot> {
        Ok(PySnapshot {
            snapshot: Arc::new(self.store.snapshot().py_err()?),
        })
    }

    /// Starts recording an episode. `fields`: (name, dtype, shape, kind, codec) tuples;
    /// `schema_metadata`: key/values stored once per schema (the spaces).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (user, env, fields, seed = None, tags = Vec::new(), metadata = None, schema_metadata = None))]
    fn begin_episode(
        &self,
        user: String,
        env: String,
        fields: Vec<FieldDecl>,
        seed: Option<u64>,
        tags: Vec<String>,
        metadata: Option<&Bound<'_, PyDict>>,
        schema_metadata: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyEpisodeRecorder> {
        let schema = build_schema(&fields)?;
        let mut meta = EpisodeMeta::new(user, env);
        meta.seed = seed;
        meta.tags = tags;
        meta.metadata = to_info(metadata)?;
        meta.schema_metadata = to_info(schema_metadata)?;
        let writer = self.store.begin_episode(meta, &schema).py_err()?;
        Ok(PyEpisodeRecorder::new(writer))
    }

    /// (durable index transactions, episodes they committed) of this handle.
    fn commit_stats(&self) -> (u64, u64) {
        let s = self.store.commit_stats();
        (s.transactions, s.episodes)
    }

    /// Deletes the episodes `ids` (all of them, when given) that match `args` (a
    /// `trajstore.Selection`), in one index transaction; the core refuses a bare "delete
    /// everything", unknown ids and already deleted ones.
    #[pyo3(signature = (ids, args, dry_run = false, by = None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<u64>,
        args: QueryArgs,
        dry_run: bool,
        by: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let target = Target {
            ids: ids.into_iter().map(EpisodeId).collect(),
            query: args.query()?,
        };
        let options = CurateOptions { dry_run, by };
        let store = &self.store;
        let done = py.detach(|| store.delete(&target, &options)).py_err()?;
        curated_dict(py, &done)
    }

    /// Restores deleted episodes (`ids`, or every one when `None`).
    #[pyo3(signature = (ids, dry_run = false, by = None))]
    fn restore<'py>(
        &self,
        py: Python<'py>,
        ids: Option<Vec<u64>>,
        dry_run: bool,
        by: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let which = match ids {
            Some(ids) => Restore::Ids(ids.into_iter().map(EpisodeId).collect()),
            None => Restore::All,
        };
        let options = CurateOptions { dry_run, by };
        let store = &self.store;
        let done = py.detach(|| store.restore(&which, &options)).py_err()?;
        curated_dict(py, &done)
    }

    /// Computes and stores the statistics of the live episodes recorded without them;
    /// returns `(saved ids, [(id, why not)])`.
    fn save_missing_stats(&self, py: Python<'_>) -> PyResult<SavedStatsTuple> {
        let store = self.store.clone();
        let r = py.detach(|| store.save_missing_stats()).py_err()?;
        Ok((
            r.saved.iter().map(|e| e.get()).collect(),
            r.failed
                .into_iter()
                .map(|(e, why)| (e.get(), why))
                .collect(),
        ))
    }

    /// Deleted episodes (restorable until compaction purges them): episode dicts with
    /// `deleted_at_us` and `deleted_by`.
    fn deleted<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let tombstones = self.store.snapshot().py_err()?.tombstones().py_err()?;
        let list = PyList::empty(py);
        for t in &tombstones {
            let d = episode_dict(py, &t.episode)?;
            d.set_item("deleted_at_us", t.deleted_at_us)?;
            d.set_item("deleted_by", &t.deleted_by)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Changes labels of the episodes `ids` that match `args`, in one index transaction.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (ids, args, set_user = None, set_outcome = None, add_tags = Vec::new(),
        remove_tags = Vec::new(), set_meta = None, unset_meta = Vec::new(), dry_run = false, by = None))]
    fn relabel<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<u64>,
        args: QueryArgs,
        set_user: Option<String>,
        set_outcome: Option<String>,
        add_tags: Vec<String>,
        remove_tags: Vec<String>,
        set_meta: Option<&Bound<'py, PyDict>>,
        unset_meta: Vec<String>,
        dry_run: bool,
        by: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let relabel = Relabel {
            set_user,
            set_outcome: set_outcome
                .map(|o| o.parse::<Outcome>())
                .transpose()
                .py_err()?,
            add_tags,
            remove_tags,
            set_meta: to_info(set_meta)?.into_iter().collect(),
            unset_meta,
        };
        let target = Target {
            ids: ids.into_iter().map(EpisodeId).collect(),
            query: args.query()?,
        };
        let options = CurateOptions { dry_run, by };
        let store = &self.store;
        let done = py
            .detach(|| store.relabel(&target, &relabel, &options))
            .py_err()?;
        curated_dict(py, &done)
    }

    /// An episode's curation history, oldest first: dicts `{at_us, by, changes}`, each change
    /// a dict naming what changed (`{"user": (from, to)}`, `{"add_tag": t}`, ...).
    fn history<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyList>> {
        let entries = self
            .store
            .snapshot()
            .py_err()?
            .history(EpisodeId(id))
            .py_err()?;
        let list = PyList::empty(py);
        for h in &entries {
            let d = PyDict::new(py);
            d.set_item("at_us", h.at_us)?;
            d.set_item("by", &h.by)?;
            let changes = PyList::empty(py);
            for c in &h.changes {
                changes.append(change_dict(py, c)?)?;
            }
            d.set_item("changes", changes)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Sets the store's split: (name, fraction) pairs summing to 1, a seed, and what is
    /// hashed ("episode" or "user").
    fn set_split(
        &self,
        py: Python<'_>,
        fractions: Vec<(String, f64)>,
        seed: u64,
        by: &str,
    ) -> PyResult<()> {
        let by = match by {
            "episode" => SplitKey::Episode,
            "user" => SplitKey::User,
            other => {
                return Err(InputError::new_err(format!(
                    "split by {other:?}: expected \"episode\" or \"user\""
                )));
            }
        };
        let request = SplitRequest {
            fractions,
            seed,
            by,
        };
        let store = &self.store;
        py.detach(|| store.set_split(&request, &CurateOptions::default()))
            .py_err()?;
        Ok(())
    }

    /// The split each episode falls in (episode id -> split name); empty without a split.
    fn split_labels(&self) -> PyResult<std::collections::BTreeMap<u64, String>> {
        let snap = self.store.snapshot().py_err()?;
        let Some(spec) = snap.split_spec().py_err()? else {
            return Ok(Default::default());
        };
        Ok(snap
            .episodes(&Query::default())
            .py_err()?
            .iter()
            .map(|e| (e.id().get(), spec.label(e.id().get(), e.user()).to_owned()))
            .collect())
    }

    /// Merges whole stores into this one (no frame decoded); returns what was merged, with
    /// each source's old -> new episode ids.
    fn merge_from<'py>(
        &self,
        py: Python<'py>,
        sources: Vec<std::path::PathBuf>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = &self.store;
        let report = py.detach(|| store.merge_from(&sources)).py_err()?;
        let d = PyDict::new(py);
        d.set_item("schemas_added", report.schemas_added)?;
        let merged = PyList::empty(py);
        for s in &report.sources {
            let source = PyDict::new(py);
            source.set_item("path", &s.path)?;
            let ids = PyDict::new(py);
            for (old, new) in &s.episodes {
                ids.set_item(old.get(), new.get())?;
            }
            source.set_item("episodes", ids)?;
            let copied = s.segments.iter().filter(|g| g.copied).count();
            source.set_item("segments_linked", s.segments.len() - copied)?;
            source.set_item("segments_copied", copied)?;
            source.set_item("bytes", s.segments.iter().map(|g| g.bytes).sum::<u64>())?;
            merged.append(source)?;
        }
        d.set_item("sources", merged)?;
        Ok(d)
    }
}

fn curated_dict<'py>(py: Python<'py>, done: &Curated) -> PyResult<Bound<'py, PyDict>> {
    let ids = |v: &[EpisodeId]| v.iter().map(|i| i.get()).collect::<Vec<u64>>();
    let d = PyDict::new(py);
    d.set_item("selected", ids(&done.selected))?;
    d.set_item("changed", ids(&done.changed))?;
    d.set_item("dry_run", done.dry_run)?;
    d.set_item("upgraded_from", done.upgraded_from)?;
    Ok(d)
}

fn change_dict<'py>(py: Python<'py>, c: &LabelChange) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let value = |v: &trajstore::Value| -> PyResult<Bound<'py, PyAny>> {
        let mut info = trajstore::Info::new();
        info.insert("v".into(), v.clone());
        info_to_py(py, &info)?
            .get_item("v")?
            .ok_or_else(|| InputError::new_err("value"))
    };
    match c {
        LabelChange::User { from, to } => d.set_item("user", (from, to))?,
        LabelChange::Outcome { from, to } => d.set_item("outcome", (from.name(), to.name()))?,
        LabelChange::AddTag(t) => d.set_item("add_tag", t)?,
        LabelChange::RemoveTag(t) => d.set_item("remove_tag", t)?,
        LabelChange::SetMeta { key, from, to } => {
            let from = from.as_ref().map(&value).transpose()?;
            d.set_item("set_meta", (key, from, value(to)?))?
        }
        LabelChange::UnsetMeta { key, from } => d.set_item("unset_meta", (key, value(from)?))?,
        LabelChange::Deleted => d.set_item("deleted", true)?,
        LabelChange::Restored => d.set_item("restored", true)?,
    }
    Ok(d)
}

/// `Store.save_missing_stats`' answer: the ids saved, and the ids that failed with why.
type SavedStatsTuple = (Vec<u64>, Vec<(u64, String)>);

/// Compacts the store at `path` (`trajstore compact`); returns its report. Tombstones of
/// episodes deleted at least `retention_seconds` ago are purged first (`None`: none are).
#[pyfunction]
#[pyo3(signature = (path, dry_run = false, retention_seconds = None))]
pub fn compact<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    dry_run: bool,
    retention_seconds: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let retention = retention_seconds
        .map(|s| {
            std::time::Duration::try_from_secs_f64(s).map_err(|_| {
                InputError::new_err(format!(
                    "retention: {s} seconds is not a duration (a number of seconds >= 0)"
                ))
            })
        })
        .transpose()?;
    let options = trajstore::CompactOptions {
        dry_run,
        retention,
        ..Default::default()
    };
    let r = py.detach(|| trajstore::compact(&path, &options)).py_err()?;
    let ids = |v: &[trajstore::SegmentId]| v.iter().map(|s| s.get()).collect::<Vec<u64>>();
    let d = PyDict::new(py);
    d.set_item("dry_run", r.dry_run)?;
    d.set_item("segments", r.segments)?;
    d.set_item("segment_bytes", r.segment_bytes)?;
    d.set_item("rewritten", ids(&r.rewritten))?;
    d.set_item("dropped", ids(&r.dropped))?;
    d.set_item(
        "purged",
        r.purged.iter().map(|e| e.get()).collect::<Vec<u64>>(),
    )?;
    d.set_item("skipped_locked", ids(&r.skipped_locked))?;
    d.set_item("new_segments", ids(&r.new_segments))?;
    d.set_item("episodes_moved", r.episodes_moved)?;
    d.set_item("bytes_written", r.bytes_written)?;
    d.set_item("bytes_retired", r.bytes_retired)?;
    d.set_item("bytes_reclaimed", r.bytes_reclaimed)?;
    d.set_item("deleted_files", r.deleted_files)?;
    d.set_item("pending_files", r.pending_files)?;
    Ok(d)
}

/// Non-negative integers from a 1-d integer array (any integer dtype) or a sequence of ints;
/// `what` names the argument in errors.
fn index_values(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    if let Ok(buffer) = PyUntypedBuffer::get(obj)
        && buffer.dimensions() == 1
        && buffer.is_c_contiguous()
    {
        let format = buffer.format().to_string_lossy();
        let Some(dtype) = dtype_of_format(&format, buffer.item_size()) else {
            return Err(InputError::new_err(format!(
                "{what}: expected integers, got elements of format {format:?}"
            )));
        };
        // SAFETY: the buffer is C-contiguous and `len_bytes` long, and stays alive (and
        // unresized) while `buffer` is held, past the last use of `bytes`; we hold the GIL.
        let bytes = unsafe {
            std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes())
        };
        let n = buffer.item_size();
        let signed = match dtype {
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => true,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => false,
            other => {
                return Err(InputError::new_err(format!(
                    "{what}: expected integers, got {other}"
                )));
            }
        };
        return bytes
            .chunks_exact(n)
            .map(|b| {
                let mut word = [0u8; 8];
                word[..n].copy_from_slice(b);
                if signed && b[n - 1] & 0x80 != 0 {
                    word[n..].fill(0xFF);
                    let v = i64::from_le_bytes(word);
                    return Err(InputError::new_err(format!("{what}: {v} is negative")));
                }
                Ok(u64::from_le_bytes(word))
            })
            .collect();
    }
    let values: Vec<i128> = obj.extract().map_err(|_| {
        InputError::new_err(format!(
            "{what}: expected a 1-d integer array or a sequence of ints"
        ))
    })?;
    values
        .into_iter()
        .map(|v| {
            u64::try_from(v)
                .map_err(|_| InputError::new_err(format!("{what}: {v} is out of range")))
        })
        .collect()
}

/// Where a chunk is: (segment file path, payload offset, payload bytes, steps, codec).
type ChunkLocation = (std::path::PathBuf, u64, u64, u32, String);

/// Episode filters, as Python passes them (attributes of a `trajstore.Selection`).
#[derive(FromPyObject)]
pub struct QueryArgs {
    users: Vec<String>,
    envs: Vec<String>,
    tags: Vec<String>,
    outcomes: Vec<String>,
    splits: Vec<String>,
    min_return: Option<f64>,
    max_return: Option<f64>,
    min_steps: Option<u32>,
    before_id: Option<u64>,
}

impl QueryArgs {
    pub fn query(self) -> PyResult<Query> {
        let outcomes = self
            .outcomes
            .iter()
            .map(|o| o.parse::<Outcome>().py_err())
            .collect::<PyResult<_>>()?;
        Ok(Query {
            users: self.users,
            envs: self.envs,
            tags: self.tags,
            outcomes,
            splits: self.splits,
            min_return: self.min_return,
            max_return: self.max_return,
            min_steps: self.min_steps,
            before_id: self.before_id.map(EpisodeId),
        })
    }
}

/// A consistent read-only view of the store. `Snapshot` is `Sync`: no lock, so any number of
/// threads may use one snapshot at once, with the GIL released around the long reads.
#[pyclass(frozen, weakref, module = "trajstore._trajstore", name = "Snapshot")]
pub struct PySnapshot {
    pub(crate) snapshot: Arc<Snapshot>,
}

pub(crate) fn episode_dict<'py>(py: Python<'py>, e: &Episode) -> PyResult<Bound<'py, PyDict>> {
    summary_dict(py, &EpisodeSummary::from(e), e.metadata())
}

#[pymethods]
impl PySnapshot {
    /// Every committed episode id is below this.
    fn cutoff(&self) -> PyResult<u64> {
        self.snapshot.cutoff().py_err().map(EpisodeId::get)
    }

    fn format_version(&self) -> PyResult<u32> {
        self.snapshot.format_version().py_err()
    }

    fn users<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let users = self.snapshot.users().py_err()?;
        let list = PyList::empty(py);
        for u in users {
            let d = PyDict::new(py);
            d.set_item("name", &u.name)?;
            d.set_item("episodes", u.episodes)?;
            d.set_item("steps", u.steps)?;
            d.set_item("raw_bytes", u.raw_bytes)?;
            d.set_item("stored_bytes", u.stored_bytes)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Episodes matching a query (a `trajstore.Selection`), in commit order (index only).
    fn episodes<'py>(&self, py: Python<'py>, args: QueryArgs) -> PyResult<Bound<'py, PyList>> {
        let query = args.query()?;
        let episodes = py.detach(|| self.snapshot.episodes(&query)).py_err()?;
        let list = PyList::empty(py);
        for e in &episodes {
            list.append(episode_dict(py, e)?)?;
        }
        Ok(list)
    }

    /// The episodes a query selects as columns of the index's compact catalog (no Python
    /// object per episode until a row is asked for): what `Store.episodes()` returns.
    fn catalog(&self, py: Python<'_>, args: QueryArgs) -> PyResult<PyCatalog> {
        let query = args.query()?;
        let rows = py.detach(|| self.snapshot.catalog(&query)).py_err()?;
        Ok(PyCatalog::new(self.snapshot.clone(), rows))
    }

    /// Episodes matching a query as an Arrow table (one row per episode, index only; the
    /// columns of schema/export.md's episodes table).
    fn episodes_table(&self, py: Python<'_>, args: QueryArgs) -> PyResult<ArrowTable> {
        let query = args.query()?;
        let batch = py
            .detach(|| -> trajstore_export::Result<_> {
                let episodes = self.snapshot.episodes(&query)?;
                trajstore_export::episodes_batch(&episodes)
            })
            .map_err(export_err)?;
        Ok(ArrowTable::new(batch.schema(), vec![batch]))
    }

    /// The steps of `episodes` (ids, in that order) as an Arrow table: one batch per episode,
    /// `T + 1` rows each (schema/export.md's steps table); `fields` in column order, or every
    /// field. Raw observation fields are views of the memory map. `schemas`: the schema ids
    /// whose fields make the columns (default: those of `episodes`), so parts of one
    /// selection read apart share its columns.
    #[pyo3(signature = (episodes, fields = None, schemas = None))]
    fn steps_table(
        &self,
        py: Python<'_>,
        episodes: Vec<u64>,
        fields: Option<Vec<String>>,
        schemas: Option<Vec<u64>>,
    ) -> PyResult<ArrowTable> {
        let snapshot = &self.snapshot;
        let (schema, batches) = py
            .detach(|| -> trajstore_export::Result<_> {
                let episodes = episodes
                    .iter()
                    .map(|id| snapshot.episode(EpisodeId(*id)))
                    .collect::<trajstore::Result<Vec<_>>>()?;
                let plan = match &schemas {
                    None => {
                        trajstore_export::StepsPlan::new(snapshot, &episodes, fields.as_deref())
                    }
                    Some(ids) => trajstore_export::StepsPlan::from_schemas(
                        snapshot,
                        &ids.iter().map(|id| SchemaId(*id)).collect::<Vec<_>>(),
                        fields.as_deref(),
                    ),
                }?;
                let batches = episodes
                    .iter()
                    .map(|e| plan.episode_batch(snapshot, e))
                    .collect::<trajstore_export::Result<Vec<_>>>()?;
                Ok((plan.schema(), batches))
            })
            .map_err(export_err)?;
        Ok(ArrowTable::new(schema, batches))
    }

    /// Raises `NotFoundError` unless `id` is an episode of this snapshot. Its record is kept
    /// (shared, as by `episode`), so the fields read next open without reading it again.
    fn require_episode(&self, id: u64) -> PyResult<()> {
        self.snapshot.episode_shared(EpisodeId(id)).py_err()?;
        Ok(())
    }

    fn episode<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyDict>> {
        // Shared: the fields read next (Episode["obs"]) open from the same decoded record.
        let e = self.snapshot.episode_shared(EpisodeId(id)).py_err()?;
        episode_dict(py, &e)
    }

    /// The key/values stored once for a schema (the spaces `RecordEpisodes` recorded with
    /// it); an episode's own metadata overrides them key by key.
    fn schema_metadata<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyDict>> {
        let metadata = self.snapshot.schema_metadata(SchemaId(id)).py_err()?;
        info_to_py(py, &metadata)
    }

    /// The fields of a schema: (name, dtype, shape, kind, codec) tuples.
    fn schema(&self, id: u64) -> PyResult<Vec<FieldDecl>> {
        let schema = self.snapshot.schema(SchemaId(id)).py_err()?;
        Ok(field_decls(&schema))
    }

    /// A field's values as one read-only array of shape `(count, *field shape)`: a buffer
    /// viewing the memory map (raw fields written in one chunk), or a numpy array the values
    /// were decoded into (lz4, or spilled). The field is opened once per snapshot (cached).
    fn field<'py>(&self, py: Python<'py>, episode: u64, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let snapshot = &self.snapshot;
        let field = py
            .detach(|| snapshot.open_field(EpisodeId(episode), name))
            .py_err()?;
        let spec = field.spec();
        if let Some(bytes) = field.contiguous().py_err()? {
            let mut shape = vec![field.len()];
            shape.extend(spec.shape_usize());
            return Ok(Bound::new(py, MappedBuffer::new(bytes, spec.dtype, &shape)?)?.into_any());
        }
        let out = OutArray::new(py, spec, field.len())?;
        out.write(py, field.len() * field.step_bytes(), |bytes| {
            field.read_into(0..field.len(), bytes)
        })
        .py_err()?;
        let array = out.rows(py, field.len())?;
        array.call_method("setflags", (), Some(&[("write", false)].into_py_dict(py)?))?;
        Ok(array)
    }

    /// Values `start..stop` of a field (`stop` default: all) copied (raw) or decoded (lz4)
    /// into `out`, a writable C-contiguous array of the field's dtype and shape
    /// `(rows, *field shape)` with `rows >= stop - start` (returned, or a view of its first
    /// `stop - start` rows when it holds more), or into a new array. Reuse one `out` from
    /// call to call: nothing is allocated, and lz4 steps decode straight into it (in
    /// parallel for large ranges), with the GIL released.
    #[pyo3(signature = (episode, name, start = 0, stop = None, out = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        episode: u64,
        name: &str,
        start: usize,
        stop: Option<usize>,
        out: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let snapshot = &self.snapshot;
        let field = py
            .detach(|| snapshot.open_field(EpisodeId(episode), name))
            .py_err()?;
        let stop = stop.unwrap_or(field.len());
        // A bad range is the core's to refuse (read_into, below): it writes nothing then.
        let rows = stop.saturating_sub(start);
        let out = match out {
            Some(out) => OutArray::caller(out, "read", name, field.spec(), Rows::AtLeast(rows))?,
            None => OutArray::new(py, field.spec(), rows)?,
        };
        out.write(py, rows * field.step_bytes(), |bytes| {
            field.read_into(start..stop, bytes)
        })
        .py_err()?;
        out.rows(py, rows)
    }

    /// Field `field` at the explicit pairs `(episodes[i], steps[i])`, value `i` at `out[i]`:
    /// into `out` (a writable C-contiguous array of the field's dtype and `len(episodes)`
    /// values, reused from call to call) or into a new array of shape `(len, *field shape)`.
    /// `episodes` and `steps` are integer arrays or sequences; the core checks every pair
    /// before writing anything. Raw values are copied from the map, lz4 values decoded
    /// straight into the array; the GIL is released meanwhile.
    #[pyo3(signature = (field, episodes, steps, out = None))]
    fn gather<'py>(
        &self,
        py: Python<'py>,
        field: &str,
        episodes: &Bound<'py, PyAny>,
        steps: &Bound<'py, PyAny>,
        out: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let episodes: Vec<EpisodeId> = index_values(episodes, "episodes")?
            .into_iter()
            .map(EpisodeId)
            .collect();
        let steps = index_values(steps, "steps")?;
        let snapshot = &self.snapshot;
        // Sized and typed from the first episode's field; the core checks every other pair.
        let spec = match episodes.first() {
            Some(&first) => Some(snapshot.gather_spec(field, first).py_err()?),
            None => None,
        };
        let out = match (out, &spec) {
            (Some(out), Some(spec)) => {
                OutArray::caller(out, "gather", field, spec, Rows::Exactly(episodes.len()))?
            }
            (None, Some(spec)) => OutArray::new(py, spec, episodes.len())?,
            (Some(out), None) => {
                // No pairs: the core is not asked; only an empty `out` fits none.
                let len = PyUntypedBuffer::get(&out)
                    .map_err(|_| InputError::new_err("gather: out= must be a numpy array"))?
                    .len_bytes();
                if len != 0 {
                    return Err(InputError::new_err(format!(
                        "gather {field:?}: no pairs given, but out= holds {len} bytes"
                    )));
                }
                return Ok(out);
            }
            (None, None) => {
                return Err(InputError::new_err(format!(
                    "gather {field:?}: no pairs given, and no out= array to take the shape from"
                )));
            }
        };
        let bytes = episodes.len() * spec.as_ref().map_or(0, FieldSpec::step_bytes);
        out.write(py, bytes, |out| {
            snapshot.gather(field, &episodes, &steps, out)
        })
        .py_err()?;
        out.rows(py, episodes.len())
    }

    /// Where a field's chunks are: (segment file path, payload offset, payload bytes, steps,
    /// codec) each, in step order. For diagnostics and for tools that map the bytes
    /// themselves (schema/format.md).
    fn chunks(&self, episode: u64, name: &str) -> PyResult<Vec<ChunkLocation>> {
        let snapshot = &self.snapshot;
        let e = snapshot.episode(EpisodeId(episode)).py_err()?;
        let field = snapshot.field(&e, name).py_err()?;
        Ok(field
            .extents()
            .into_iter()
            .map(|x| {
                (
                    x.path,
                    x.payload_offset,
                    x.payload_len,
                    x.steps.len() as u32,
                    x.codec.name().to_owned(),
                )
            })
            .collect())
    }

    /// The `info` dict of every observation step.
    fn infos<'py>(&self, py: Python<'py>, episode: u64) -> PyResult<Bound<'py, PyList>> {
        let snapshot = &self.snapshot;
        let infos = py
            .detach(|| snapshot.infos(&snapshot.episode(EpisodeId(episode))?))
            .py_err()?;
        let list = PyList::empty(py);
        for info in &infos {
            list.append(info_to_py(py, info)?)?;
        }
        Ok(list)
    }

    /// Per-element statistics of the small numeric fields over the episodes a query selects,
    /// from the index alone (`Snapshot::stats`): a dict with `episodes`, `missing`, `computed`
    /// and `fields`, a list of dicts (`name`, `dtype`, `shape`, `episodes`, and flat per-element
    /// lists `count`, `mean`, `std`, `min`, `max`, `non_finite`, `quantiles` (one list per
    /// quantile name in `quantile_names`)).
    fn stats<'py>(
        &self,
        py: Python<'py>,
        args: QueryArgs,
        fields: Vec<String>,
        compute_missing: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let query = args.query()?;
        let names: Vec<&str> = fields.iter().map(String::as_str).collect();
        let snapshot = &self.snapshot;
        let stats = py
            .detach(|| snapshot.stats(&query, &names, compute_missing))
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("episodes", stats.episodes)?;
        d.set_item(
            "missing",
            stats.missing.iter().map(|id| id.get()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "computed",
            stats.computed.iter().map(|id| id.get()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "quantile_names",
            trajstore::QUANTILES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>(),
        )?;
        let list = PyList::empty(py);
        for f in &stats.fields {
            let fd = PyDict::new(py);
            fd.set_item("name", &f.name)?;
            fd.set_item("dtype", f.dtype.name())?;
            fd.set_item("shape", f.shape.clone())?;
            fd.set_item("episodes", f.episodes)?;
            let e = &f.elements;
            fd.set_item("count", e.iter().map(|x| x.count).collect::<Vec<_>>())?;
            fd.set_item("mean", e.iter().map(|x| x.mean).collect::<Vec<_>>())?;
            fd.set_item("std", e.iter().map(|x| x.std).collect::<Vec<_>>())?;
            fd.set_item("min", e.iter().map(|x| x.min).collect::<Vec<_>>())?;
            fd.set_item("max", e.iter().map(|x| x.max).collect::<Vec<_>>())?;
            fd.set_item(
                "non_finite",
                e.iter().map(|x| x.non_finite).collect::<Vec<_>>(),
            )?;
            let quantiles: Vec<Vec<f64>> = (0..trajstore::QUANTILES.len())
                .map(|q| e.iter().map(|x| x.quantiles[q]).collect())
                .collect();
            fd.set_item("quantiles", quantiles)?;
            list.append(fd)?;
        }
        d.set_item("fields", list)?;
        Ok(d)
    }

    /// Checks every checksum; returns a dict with `ok`, counts and `problems`.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = &self.snapshot;
        let report = py.detach(|| snapshot.verify()).py_err()?;
        let d = PyDict::new(py);
        d.set_item("ok", report.problems.is_empty())?;
        d.set_item("episodes", report.episodes)?;
        d.set_item("chunks", report.chunks)?;
        d.set_item("payload_bytes", report.payload_bytes)?;
        d.set_item("unreferenced_bytes", report.unreferenced_bytes)?;
        d.set_item(
            "problems",
            report
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )?;
        Ok(d)
    }
}
