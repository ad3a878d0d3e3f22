//! `Loader`, `Sampler` and `Replay`: the training side, as thin wrappers.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use trajstore::DType;
use trajstore::EpisodeId;
use trajstore::loader::{
    Batch, Cursor, Edge, FieldRequest, Loader, Order, ReplayEnv, ReplayOptions, Sampler,
    SamplerSpec, Seat, Selection, Shard, ShardStamp, ShardedCursor,
};

use crate::buffer::{BufferPool, OwnedBuffer};
use crate::error::{InputError, IntoPy, TrajstoreError, poisoned, try_lock};
use crate::store::{PyStore, QueryArgs, episode_dict};
use crate::values::info_to_py;

/// A fresh array for the caller (writable, owned by whoever holds it; see buffer.rs).
fn caller_array<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    dtype: DType,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(py, OwnedBuffer::new(data, dtype, shape, true)?)?.into_any())
}

/// The share of a loader, as Python passes it (attributes of a `trajstore.Selection`,
/// which also carries the [`QueryArgs`]).
#[derive(FromPyObject)]
pub struct ShareArgs {
    world_size: u32,
    rank: u32,
    num_workers: u32,
    worker: u32,
    seed: u64,
    epoch: u64,
}

/// The query and the share of a `trajstore.Selection`.
fn selection(args: &Bound<'_, PyAny>) -> PyResult<Selection> {
    let query = args.extract::<QueryArgs>()?.query()?;
    let s: ShareArgs = args.extract()?;
    Ok(Selection::new(query, s.world_size, s.rank, s.seed)
        .epoch(s.epoch)
        .worker(s.num_workers, s.worker))
}

/// Keys of a share's episodes, in serving order: ids for one store, `shard << 48 | id` for
/// several.
fn keys(loader: &Loader) -> Vec<u64> {
    (0..loader.len()).map(|i| loader.key_of(i)).collect()
}

/// The full records of a share's episodes (metadata maps included), in serving order.
fn full_records(loader: &Loader) -> PyResult<Vec<trajstore::Episode>> {
    (0..loader.len())
        .map(|i| loader.episode(i))
        .collect::<trajstore::Result<_>>()
        .py_err()
}

/// Metadata dicts of a share's episodes, in serving order.
fn dicts<'py>(
    py: Python<'py>,
    episodes: &[trajstore::Episode],
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    episodes.iter().map(|e| episode_dict(py, e)).collect()
}

fn cursor_dict<'py>(py: Python<'py>, c: &Cursor) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("seed", c.seed)?;
    d.set_item("epoch", c.epoch)?;
    d.set_item("world_size", c.world_size)?;
    d.set_item("rank", c.rank)?;
    d.set_item("worker", c.worker)?;
    d.set_item("num_workers", c.num_workers)?;
    d.set_item("position", c.position)?;
    d.set_item("fingerprint", c.fingerprint)?;
    Ok(d)
}

/// A loader's cursor as a dict: the plain cursor for one store; over several, with `"shards"`,
/// the stamp of each (partition.md §7.4).
fn loader_cursor_dict<'py>(py: Python<'py>, loader: &Loader) -> PyResult<Bound<'py, PyDict>> {
    let d = cursor_dict(py, &loader.cursor())?;
    if loader.shards().len() > 1 {
        let stamps = loader
            .stamps()
            .iter()
            .map(|s| {
                let stamp = PyDict::new(py);
                stamp.set_item("path", &s.path)?;
                stamp.set_item("cutoff", s.cutoff)?;
                stamp.set_item("episodes", s.episodes)?;
                stamp.set_item("fingerprint", s.fingerprint)?;
                Ok(stamp)
            })
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("shards", stamps)?;
    }
    Ok(d)
}

fn stamps_from(d: &Bound<'_, PyDict>) -> PyResult<Option<Vec<ShardStamp>>> {
    let Some(list) = d.get_item("shards")? else {
        return Ok(None);
    };
    let stamp = |item: Bound<'_, PyAny>| -> PyResult<ShardStamp> {
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            item.get_item(k)
                .map_err(|_| InputError::new_err(format!("cursor shard stamp is missing {k:?}")))
        };
        Ok(ShardStamp {
            path: get("path")?.extract()?,
            cutoff: get("cutoff")?.extract()?,
            episodes: get("episodes")?.extract()?,
            fingerprint: get("fingerprint")?.extract()?,
        })
    };
    Ok(Some(
        list.try_iter()?
            .map(|i| stamp(i?))
            .collect::<PyResult<_>>()?,
    ))
}

/// The shard list as the core takes it: each store with its cutoff, if given.
fn shard_list(stores: &[PyRef<'_, PyStore>], cutoffs: Option<Vec<u64>>) -> PyResult<Vec<Shard>> {
    if let Some(c) = &cutoffs
        && c.len() != stores.len()
    {
        return Err(InputError::new_err(format!(
            "{} cutoff(s) for {} store(s): give one per store, in their order",
            c.len(),
            stores.len()
        )));
    }
    Ok(stores
        .iter()
        .enumerate()
        .map(|(i, s)| match &cutoffs {
            Some(c) => Shard::new(&s.store).cutoff(EpisodeId(c[i])),
            None => Shard::new(&s.store),
        })
        .collect())
}

fn cursor_from(d: &Bound<'_, PyDict>) -> PyResult<Cursor> {
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(k)?
            .ok_or_else(|| InputError::new_err(format!("cursor is missing {k:?}")))
    };
    Ok(Cursor {
        seed: get("seed")?.extract()?,
        epoch: get("epoch")?.extract()?,
        world_size: get("world_size")?.extract()?,
        rank: get("rank")?.extract()?,
        worker: get("worker")?.extract()?,
        num_workers: get("num_workers")?.extract()?,
        position: get("position")?.extract()?,
        fingerprint: get("fingerprint")?.extract()?,
    })
}

/// This rank's (and worker's) share of the selected episodes for one epoch. Immutable (every
/// method of `Loader` takes `&self`), so no lock: threads may share it freely.
#[pyclass(frozen, module = "trajstore._trajstore", name = "Loader")]
pub struct PyLoader {
    loader: Loader,
}

#[pymethods]
impl PyLoader {
    /// Over one store, or several as one dataset (shards, in list order, each with its
    /// cutoff from `cutoffs` when given).
    #[new]
    #[pyo3(signature = (stores, args, cutoffs = None))]
    fn new(
        py: Python<'_>,
        stores: Vec<PyRef<'_, PyStore>>,
        args: &Bound<'_, PyAny>,
        cutoffs: Option<Vec<u64>>,
    ) -> PyResult<Self> {
        let selection = selection(args)?;
        let shards = shard_list(&stores, cutoffs)?;
        let loader = py
            .detach(|| Loader::new_sharded(&shards, &selection))
            .py_err()?;
        Ok(PyLoader { loader })
    }

    /// Rebuilds a loader from a cursor (with the same query and shard list): it serves exactly
    /// the rest. A cursor over several shards carries their stamps and cutoffs.
    #[staticmethod]
    fn resume(
        py: Python<'_>,
        stores: Vec<PyRef<'_, PyStore>>,
        args: &Bound<'_, PyAny>,
        cursor: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let query = args.extract::<QueryArgs>()?.query()?;
        let plain = cursor_from(cursor)?;
        let loader = match stamps_from(cursor)? {
            None if stores.len() == 1 => {
                let store = stores[0].store.clone();
                py.detach(|| Loader::resume(&store, &query, plain))
            }
            None => {
                return Err(InputError::new_err(format!(
                    "the cursor was taken on one store, {} given",
                    stores.len()
                )));
            }
            Some(shards) => {
                let cutoffs = shards.iter().map(|s| s.cutoff).collect();
                let list = shard_list(&stores, Some(cutoffs)).map_err(|_| {
                    InputError::new_err(format!(
                        "the cursor was taken on {} shard(s), {} given",
                        shards.len(),
                        stores.len()
                    ))
                })?;
                let cursor = ShardedCursor {
                    cursor: plain,
                    shards,
                };
                py.detach(|| Loader::resume_sharded(&list, &query, &cursor))
            }
        }
        .py_err()?;
        Ok(PyLoader { loader })
    }

    fn next_epoch(&self, py: Python<'_>) -> PyResult<PyLoader> {
        let loader = py.detach(|| self.loader.next_epoch()).py_err()?;
        Ok(PyLoader { loader })
    }

    /// Episode keys in serving order: ids for one store, `shard << 48 | id` for several.
    fn episode_ids(&self) -> Vec<u64> {
        keys(&self.loader)
    }

    /// Metadata dicts in serving order, each with its `shard` (position in the store list).
    fn episodes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let episodes = py.detach(|| full_records(&self.loader))?;
        let dicts = dicts(py, &episodes)?;
        for (i, d) in dicts.iter().enumerate() {
            d.set_item("shard", self.loader.shard_of(i))?;
        }
        Ok(dicts)
    }

    /// Every shard's cutoff, in list order (one for one store).
    #[getter]
    fn cutoffs(&self) -> Vec<u64> {
        self.loader.cutoffs().iter().map(|c| c.get()).collect()
    }

    #[getter]
    fn steps(&self) -> u64 {
        self.loader.steps()
    }

    /// Max over min steps across ranks (1.0 is perfect balance).
    #[getter]
    fn imbalance(&self) -> f64 {
        self.loader.imbalance()
    }

    /// The snapshot cutoff every rank must share (broadcast rank 0's).
    #[getter]
    fn cutoff(&self) -> u64 {
        self.loader.cutoff().get()
    }

    /// A small, serializable position to resume from (episodes of this epoch served: 0).
    fn cursor<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        loader_cursor_dict(py, &self.loader)
    }

    /// A batch sampler over this share. `fields`: (field, key, offsets) triples.
    #[pyo3(signature = (fields, batch_size, order, window = None, pad = false, edge = "clamp"))]
    #[allow(clippy::too_many_arguments)]
    fn sampler(
        &self,
        py: Python<'_>,
        fields: Vec<(String, String, Vec<i64>)>,
        batch_size: usize,
        order: &str,
        window: Option<u32>,
        pad: bool,
        edge: &str,
    ) -> PyResult<PySampler> {
        let order = match order {
            "sequential" => Order::Sequential,
            "shuffle" => Order::Shuffle,
            "replacement" => Order::Replacement,
            o => {
                return Err(InputError::new_err(format!(
                    "order {o:?}: expected sequential, shuffle or replacement"
                )));
            }
        };
        let edge = match edge {
            "clamp" => Edge::Clamp,
            "zero" => Edge::Zero,
            e => {
                return Err(InputError::new_err(format!(
                    "edge {e:?}: expected clamp or zero"
                )));
            }
        };
        let requests = fields
            .iter()
            .map(|(f, key, offsets)| FieldRequest::new(f).offsets(offsets).key(key))
            .collect();
        let mut spec = SamplerSpec::steps(requests, batch_size, order).edge(edge);
        if let Some(len) = window {
            spec = spec.windows(len, pad);
        }
        let sampler = py.detach(|| Sampler::new(&self.loader, spec)).py_err()?;
        Ok(PySampler {
            state: Mutex::new((sampler, Batch::new())),
            pool: Arc::default(),
            windowed: window.is_some(),
            stacked: fields.iter().map(|(_, _, o)| o.len() > 1).collect(),
        })
    }
}

/// Batches of steps or windows, gathered in parallel.
///
/// Threads may share one: calls are serialized by a lock that is only ever taken with the GIL
/// released and never held while Python objects are built, so a thread waiting for it never
/// holds the GIL the holder needs. Concurrent `next_batch` calls each get distinct batches.
#[pyclass(frozen, module = "trajstore._trajstore", name = "Sampler")]
pub struct PySampler {
    state: Mutex<(Sampler, Batch)>,
    /// The column buffers of dropped batches, gathered into again.
    pool: Arc<BufferPool>,
    /// Whether units are windows: then every row-wise array has a window axis, even for
    /// `window=1`, so `mask` and `obs` agree on their leading axes.
    windowed: bool,
    /// Per requested field (in order), whether it has an offsets (stacking) axis.
    stacked: Vec<bool>,
}

/// One batch moved out of the sampler's buffers, so it can be handed to Python after the
/// sampler's lock is released.
struct OwnedBatch {
    columns: Vec<OwnedColumn>,
    units: usize,
    rows_per_unit: usize,
    episode: Vec<u8>,
    step: Vec<u8>,
    mask: Vec<u8>,
}

struct OwnedColumn {
    key: String,
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
    valid: Vec<u8>,
}

impl OwnedBatch {
    /// Moves the batch's column data out, leaving in its place a dropped batch's buffer of
    /// the same size when `pool` keeps one (the sampler then gathers into it without
    /// allocating or zero-filling anything).
    fn take(batch: &mut Batch, pool: &BufferPool) -> OwnedBatch {
        OwnedBatch {
            columns: batch
                .columns
                .iter_mut()
                .map(|c| OwnedColumn {
                    key: c.key.clone(),
                    dtype: c.dtype,
                    shape: c.shape.clone(),
                    data: {
                        let recycled = pool.take(c.data.len()).unwrap_or_default();
                        std::mem::replace(&mut c.data, recycled)
                    },
                    valid: c.valid.clone(),
                })
                .collect(),
            units: batch.units,
            rows_per_unit: batch.rows_per_unit,
            episode: batch.episode.iter().flat_map(|x| x.to_le_bytes()).collect(),
            step: batch.step.iter().flat_map(|x| x.to_le_bytes()).collect(),
            mask: batch.mask.clone(),
        }
    }
}

impl PySampler {
    /// Runs `f` on the sampler with the GIL released; the lock is taken and released inside.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Sampler, &mut Batch) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.state.lock().map_err(|_| poisoned("Sampler"))?;
            let (sampler, batch) = &mut *guard;
            f(sampler, batch)
        })
    }

    /// A batch as Python gets it; see `next_batch`.
    fn batch_dict<'py>(&self, py: Python<'py>, batch: OwnedBatch) -> PyResult<Bound<'py, PyDict>> {
        let rows = if self.windowed {
            vec![batch.units, batch.rows_per_unit]
        } else {
            vec![batch.units]
        };
        let d = PyDict::new(py);
        for (column, &stacked) in batch.columns.into_iter().zip(&self.stacked) {
            // One valid byte per row and offset: the row axes, then the offsets axis if any.
            let valid_axes = rows.len() + usize::from(stacked);
            let valid_shape = column.shape.get(..valid_axes).ok_or_else(|| {
                TrajstoreError::new_err(format!(
                    "internal error: column {:?} of shape {:?} has no {valid_axes} row axes",
                    column.key, column.shape
                ))
            })?;
            let valid = caller_array(py, column.valid, DType::Bool, valid_shape)?;
            d.set_item(format!("valid/{}", column.key), valid)?;
            let data = OwnedBuffer::recycled(column.data, column.dtype, &column.shape, &self.pool)?;
            let data = Bound::new(py, data)?.into_any();
            d.set_item(&column.key, data)?;
        }
        d.set_item(
            "episode",
            caller_array(py, batch.episode, DType::U64, &rows)?,
        )?;
        d.set_item("step", caller_array(py, batch.step, DType::U32, &rows)?)?;
        d.set_item("mask", caller_array(py, batch.mask, DType::Bool, &rows)?)?;
        Ok(d)
    }
}

#[pymethods]
impl PySampler {
    /// The next batch as a dict of key -> array buffer, plus `episode`, `step`, `mask` and
    /// `valid/<key>`; `None` at the end of the epoch. Every array is the caller's (writable)
    /// and starts with the same row axes: `(units,)` for steps, `(units, window)` for windows.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let next = self.with(py, |sampler, batch| {
            Ok(sampler
                .next_into(batch)
                .py_err()?
                .then(|| OwnedBatch::take(batch, &self.pool)))
        })?;
        next.map(|batch| self.batch_dict(py, batch)).transpose()
    }

    /// The batch of the given units (indices in sequential order: episodes in serving
    /// order, then steps), as `next_batch` lays it out; the epoch's position stays.
    fn batch_of<'py>(&self, py: Python<'py>, units: Vec<u64>) -> PyResult<Bound<'py, PyDict>> {
        let batch = self.with(py, |sampler, batch| {
            sampler.units_into(&units, batch).py_err()?;
            Ok(OwnedBatch::take(batch, &self.pool))
        })?;
        self.batch_dict(py, batch)
    }

    /// Units (steps or windows) served this epoch so far.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s, _| Ok(s.position()))
    }

    #[getter]
    fn units(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s, _| Ok(s.units()))
    }

    #[getter]
    fn batches_left(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s, _| Ok(s.batches_left()))
    }

    /// Continues from `position` units into the epoch (resume).
    fn seek(&self, py: Python<'_>, position: u64) -> PyResult<()> {
        self.with(py, |s, _| s.seek(position).py_err())
    }
}

/// Replays this rank's share of episodes: DIAMBRA's `ImitationLearning`, done right.
///
/// An env is stepped by one thread at a time: its lock is only taken with `try_lock`, so a
/// second thread calling in meanwhile gets a `TrajstoreError` instead of waiting.
#[pyclass(frozen, module = "trajstore._trajstore", name = "Replay")]
pub struct PyReplay {
    env: Mutex<ReplayEnv>,
}

fn observation_dict<'py>(
    py: Python<'py>,
    observation: &trajstore::loader::Observation,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for a in &observation.arrays {
        d.set_item(
            &a.name,
            caller_array(py, a.data.clone(), a.dtype, &a.shape)?,
        )?;
    }
    Ok(d)
}

fn seat_name(seat: Seat) -> &'static str {
    match seat {
        Seat::P1 => "P1",
        Seat::P2 => "P2",
    }
}

#[pymethods]
impl PyReplay {
    #[new]
    #[pyo3(signature = (store, args, cycle = false))]
    fn new(
        py: Python<'_>,
        store: &PyStore,
        args: &Bound<'_, PyAny>,
        cycle: bool,
    ) -> PyResult<Self> {
        let selection = selection(args)?;
        let env = py
            .detach(|| ReplayEnv::new(&store.store, &selection, ReplayOptions { cycle }))
            .py_err()?;
        Ok(PyReplay {
            env: Mutex::new(env),
        })
    }

    /// Resumes from a cursor: the episode in progress restarts.
    #[staticmethod]
    #[pyo3(signature = (store, args, cursor, cycle = false))]
    fn resume(
        store: &PyStore,
        args: &Bound<'_, PyAny>,
        cursor: &Bound<'_, PyDict>,
        cycle: bool,
    ) -> PyResult<Self> {
        let loader = Loader::resume(
            &store.store,
            &args.extract::<QueryArgs>()?.query()?,
            cursor_from(cursor)?,
        )
        .py_err()?;
        Ok(PyReplay {
            env: Mutex::new(ReplayEnv::from_loader(loader, ReplayOptions { cycle })),
        })
    }

    /// (observation dict, info, episode id, seat) of the next episode; EndOfData at the end.
    fn reset<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, u64, &'static str)> {
        let mut env = try_lock(&self.env, "ImitationLearning env")?;
        let r = env.reset().py_err()?;
        Ok((
            observation_dict(py, r.observation)?,
            info_to_py(py, r.info)?,
            r.episode.get(),
            seat_name(r.seat),
        ))
    }

    /// (observation, reward, terminated, truncated, info, recorded action or None, every
    /// recorded action field by name: the leaves of a Dict or Tuple action space).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Bound<'py, PyDict>,
        f64,
        bool,
        bool,
        Bound<'py, PyDict>,
        Option<Bound<'py, PyAny>>,
        Bound<'py, PyDict>,
    )> {
        let mut env = try_lock(&self.env, "ImitationLearning env")?;
        let t = env.step(&()).py_err()?;
        let action = match t.action {
            Some(a) => Some(caller_array(py, a.data.clone(), a.dtype, &a.shape)?),
            None => None,
        };
        let info = info_to_py(py, t.info)?;
        Ok((
            observation_dict(py, t.observation)?,
            t.reward,
            t.terminated,
            t.truncated,
            info,
            action,
            observation_dict(py, t.action_fields)?,
        ))
    }

    fn cursor<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cursor = try_lock(&self.env, "ImitationLearning env")?.cursor();
        cursor_dict(py, &cursor)
    }

    /// Episode ids of this share, in serving order.
    fn episode_ids(&self) -> PyResult<Vec<u64>> {
        Ok(keys(try_lock(&self.env, "ImitationLearning env")?.loader()))
    }

    fn episodes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let episodes = full_records(try_lock(&self.env, "ImitationLearning env")?.loader())?;
        dicts(py, &episodes)
    }

    #[getter]
    fn imbalance(&self) -> PyResult<f64> {
        Ok(try_lock(&self.env, "ImitationLearning env")?
            .loader()
            .imbalance())
    }
}
