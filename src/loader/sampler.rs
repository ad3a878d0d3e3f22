//! Batches of steps or windows from a [`Loader`]'s share, gathered in parallel into reusable
//! buffers.
//!
//! A sampler walks a list of *units* (single steps, or windows of `L` consecutive steps) over
//! the loader's episodes, in one of three [`Order`]s, and serves them `batch_size` at a time.
//! Every order serves exactly [`Sampler::units`] units per epoch (the last batch may be
//! short), so epoch loops look the same whichever order is used.
//!
//! Determinism: the random orders draw from a SplitMix64 stream derived from the loader's
//! `(seed, epoch, rank, worker)` with the purpose word `sampler\0` (see `schema/partition.md`),
//! never from the machine's entropy: the same seed gives the same batches, on every run.
//!
//! Resume: [`Sampler::position`] is the number of units served so far this epoch; build the
//! same loader (from the cursor it had when the sampler was made) and [`Sampler::seek`] to it.

use std::ops::Range;

use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::loader::batch::{Batch, Column, Edge, FieldRequest};
use crate::loader::dataset::Loader;
use crate::loader::rng::{Permutation, SplitMix64};
use crate::loader::rowcopy::{copy_row, touch_lines};
use crate::loader::rows::{Placed, RowTable};
use crate::loader::unit_buckets::UnitBuckets;
use crate::partition::split_key;
use crate::read::{Field, Snapshot};
use std::sync::Arc;

/// Sub-stream purpose of the sampler's random draws: the little-endian reading of `sampler\0`.
pub const PURPOSE_SAMPLER: u64 = u64::from_le_bytes(*b"sampler\0");

/// What one unit of a batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One step (one row).
    Step,
    /// `len` consecutive steps of one episode (`len` rows). Strict (`pad: false`): only
    /// windows wholly inside an episode, so episodes shorter than `len` contribute none.
    /// Padded (`pad: true`): a window starts at every step, and rows past the episode's end
    /// are padding ([`Batch::mask`] 0, zeros). Windows never cross episodes.
    Window { len: u32, pad: bool },
}

/// In which order units are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Episodes in serving order, steps in order.
    Sequential,
    /// A seeded permutation of all units: each served exactly once per epoch. Evaluated a
    /// unit at a time ([`Permutation`]): no list of all units is built, whatever their number.
    Shuffle,
    /// Seeded uniform draws with replacement, [`Sampler::units`] of them per epoch.
    Replacement,
}

/// How a sampler batches.
#[derive(Clone, Debug)]
pub struct SamplerSpec {
    pub fields: Vec<FieldRequest>,
    /// Units per batch.
    pub batch_size: usize,
    pub unit: Unit,
    pub order: Order,
    pub edge: Edge,
}

impl SamplerSpec {
    /// Batches of `batch_size` single steps of `fields`, in `order`, clamped at edges.
    pub fn steps(fields: Vec<FieldRequest>, batch_size: usize, order: Order) -> Self {
        SamplerSpec {
            fields,
            batch_size,
            unit: Unit::Step,
            order,
            edge: Edge::Clamp,
        }
    }

    /// The same spec with windows of `len` steps.
    pub fn windows(mut self, len: u32, pad: bool) -> Self {
        self.unit = Unit::Window { len, pad };
        self
    }

    /// The same spec with another edge policy.
    pub fn edge(mut self, edge: Edge) -> Self {
        self.edge = edge;
        self
    }
}

/// A requested field, resolved against the schemas of the loader's episodes.
struct Resolved {
    request: FieldRequest,
    dtype: DType,
    shape: Vec<usize>,
    step_bytes: usize,
}

/// One unit of a batch: which episode (index into the sampler's lists, and its key) and its
/// first step.
#[derive(Clone, Copy)]
struct Pick {
    key: u64,
    /// Below `u32::MAX` ([`Sampler::new`]): 16 bytes a pick, a batch's picks in few lines.
    slot: u32,
    start: u32,
}

/// What locating a unit reads of its episode, side by side: the key is on the cache line the
/// search for the unit brought in, rather than one more miss in a list of its own.
#[derive(Clone, Copy)]
struct SlotStart {
    /// Index of the episode's first unit.
    first_unit: u64,
    /// The episode's key in the whole set, served as its `episode`: the id for one store,
    /// `(shard, id)` as one number for several (`schema/partition.md` §7). Its shard and id
    /// are decoded from it ([`Sampler::locate`]) when the episode is opened.
    key: u64,
}

/// Serves batches from a loader's share; see the module docs.
pub struct Sampler {
    spec: SamplerSpec,
    rows_per_unit: usize,
    steps: Vec<u32>,
    /// Per slot: 0 until the episode's first batch (see [`Sampler::new`]), then 1 + its index
    /// in `open`. Four bytes a slot, so an episode never picked costs little.
    opened: Vec<u32>,
    /// The requested fields of each opened episode, in the order they were opened.
    open: Vec<Vec<Field>>,
    /// Where each opened episode's columns lie in the maps, when raw, in one chunk and
    /// requested at one offset (the usual case): small-row gathers read one entry a row, not
    /// the field's chunk table, whose walk misses the cache two or three times a row once
    /// the episodes number 10^4 and more (see `rows.rs`).
    rows: RowTable,
    /// Each shard's snapshot.
    snapshots: Vec<Arc<Snapshot>>,
    resolved: Vec<Resolved>,
    /// Per slot, in serving order, then one past the last slot whose first unit is the total
    /// (so that [`UnitBuckets::slot_of`] may read the slot after any slot).
    starts: Vec<SlotStart>,
    /// Units per epoch.
    total: u64,
    /// Where to look in `starts`: units `b << bucket_shift ..` lie in slots
    /// `bucket[b] ..= bucket[b + 1]`.
    bucket: UnitBuckets,
    seed: u64,
    rng: SplitMix64,
    /// The order of [`Order::Shuffle`]: unit at position `p` is `permutation.at(p)`.
    permutation: Permutation,
    position: u64,
    picks: Vec<Pick>,
    /// The units of the batch being served ([`Order::Shuffle`]), reused.
    units: Vec<u64>,
}

impl Sampler {
    /// A sampler over `loader`'s episodes. Resolves the requested fields on the first
    /// episode; every other episode's fields are opened at its first batch (so setup costs
    /// the same whatever the number of episodes), and one whose field has another dtype or
    /// shape fails that batch naming it.
    pub fn new(loader: &Loader, spec: SamplerSpec) -> Result<Sampler> {
        let bad = |m: String| Err(Error::invalid_request("sampler", m));
        if spec.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if spec.fields.is_empty() {
            return bad("no field requested".into());
        }
        if let Some(r) = spec.fields.iter().find(|r| r.offsets.is_empty()) {
            return bad(format!(
                "field {:?}: at least one offset is needed",
                r.field
            ));
        }
        for (i, r) in spec.fields.iter().enumerate() {
            if spec.fields[..i].iter().any(|o| o.key == r.key) {
                return bad(format!(
                    "two columns named {:?}: rename one with FieldRequest::key",
                    r.key
                ));
            }
        }
        let rows_per_unit = match spec.unit {
            Unit::Step => 1,
            Unit::Window { len: 0, .. } => return bad("window length must be at least 1".into()),
            Unit::Window { len, .. } => len as usize,
        };

        if u32::try_from(loader.len()).is_err() {
            return bad(format!(
                "{} episodes: a sampler serves at most {}",
                loader.len(),
                u32::MAX - 1
            ));
        }
        let snapshots = loader.shared_snapshots();
        let mut resolved: Vec<Resolved> = Vec::new();
        if !loader.is_empty() {
            let first = open_fields(loader.snapshot_of(0), &spec, loader.id_of(0).get())?;
            resolved = spec
                .fields
                .iter()
                .zip(&first)
                .map(|(r, f)| Resolved {
                    request: r.clone(),
                    dtype: f.spec().dtype,
                    shape: f.spec().shape_usize(),
                    step_bytes: f.step_bytes(),
                })
                .collect();
        }

        let steps: Vec<u32> = (0..loader.len()).map(|i| loader.steps_of(i)).collect();
        let mut starts = Vec::with_capacity(steps.len());
        let mut total = 0u64;
        for (i, &t) in steps.iter().enumerate() {
            starts.push(SlotStart {
                first_unit: total,
                key: loader.key_of(i),
            });
            total += units_in(spec.unit, t);
        }
        let bucket = UnitBuckets::new(starts.len(), |slot| starts[slot].first_unit, total);
        let rows = RowTable::new(starts.len(), resolved.len());
        let opened = vec![0; starts.len()];
        starts.push(SlotStart {
            first_unit: total,
            key: 0,
        });

        let cursor = loader.cursor();
        let seed = crate::loader::rng::derive_seed(
            cursor.seed,
            &[
                PURPOSE_SAMPLER,
                cursor.epoch,
                (u64::from(cursor.rank) << 32) | u64::from(cursor.worker),
            ],
        );
        let permutation = Permutation::new(total, seed);
        Ok(Sampler {
            rows_per_unit,
            opened,
            steps,
            open: Vec::new(),
            rows,
            snapshots,
            resolved,
            starts,
            total,
            bucket,
            seed,
            rng: SplitMix64::new(seed),
            permutation,
            position: 0,
            picks: Vec::with_capacity(spec.batch_size),
            units: Vec::new(),
            spec,
        })
    }

    /// Units served per epoch.
    pub fn units(&self) -> u64 {
        self.total
    }

    /// Units served so far this epoch.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Batches left this epoch.
    pub fn batches_left(&self) -> u64 {
        (self.units() - self.position).div_ceil(self.spec.batch_size as u64)
    }

    /// Continues as if `position` units had been served: the following batches are exactly
    /// those an uninterrupted sampler would have served next.
    pub fn seek(&mut self, position: u64) -> Result<()> {
        if position > self.units() {
            return Err(Error::invalid_request(
                "sampler position",
                format!(
                    "{position} is past the end of the epoch ({} units)",
                    self.units()
                ),
            ));
        }
        if self.spec.order == Order::Replacement {
            self.rng = SplitMix64::new(self.seed);
            for _ in 0..position {
                self.rng.below(self.units());
            }
        }
        self.position = position;
        Ok(())
    }

    /// Fills `batch` with the next batch; `Ok(false)` (and an empty batch) at the end of the
    /// epoch. The rows are gathered in parallel (on the library's rayon pool, `pool.rs`),
    /// straight into `batch`'s buffers.
    pub fn next_into(&mut self, batch: &mut Batch) -> Result<bool> {
        let total = self.units();
        let n = (self.spec.batch_size as u64).min(total - self.position) as usize;
        self.picks.clear();
        if self.spec.order == Order::Shuffle {
            self.units.resize(n, 0);
            self.permutation.at_each(self.position, &mut self.units);
        }
        if self.spec.order == Order::Replacement {
            self.units.clear();
            self.units.extend((0..n).map(|_| self.rng.below(total)));
        }
        let mut picks = std::mem::take(&mut self.picks);
        if self.spec.order == Order::Sequential {
            picks.extend((self.position..self.position + n as u64).map(|u| self.pick(u)));
        } else {
            self.bucket
                .warm(|slot| self.starts[slot].first_unit, &self.units);
            picks.extend(self.units.iter().map(|&u| self.pick(u)));
        }
        self.picks = picks;
        self.position += n as u64;
        self.open_picked()?;
        self.fill(batch)?;
        Ok(n > 0)
    }

    /// Fills `batch` with the given units (indices into the epoch's units in sequential
    /// order: episodes in serving order, then steps), for random access such as a map-style
    /// dataset; the epoch's position is not moved. A unit past [`Sampler::units`] is refused.
    pub fn units_into(&mut self, units: &[u64], batch: &mut Batch) -> Result<()> {
        let total = self.units();
        if let Some(&bad) = units.iter().find(|&&u| u >= total) {
            return Err(Error::invalid_request(
                "sampler unit",
                format!("{bad} is out of range (this share has {total} units)"),
            ));
        }
        self.picks.clear();
        for &unit in units {
            let pick = self.pick(unit);
            self.picks.push(pick);
        }
        self.open_picked()?;
        self.fill(batch)
    }

    /// Opens the fields of the picked episodes not opened yet (their first batch), checking
    /// each against the resolved dtype and shape. A raw field in one chunk requested at one
    /// offset is checked (its checksum, segment/checked.rs) here, at the first batch that
    /// reads it, rather than at its first row, and placed in `rows`.
    fn open_picked(&mut self) -> Result<()> {
        // Every episode opened (a small store, after its first batches): nothing to look at.
        if self.open.len() == self.opened.len() {
            return Ok(());
        }
        for i in 0..self.picks.len() {
            let slot = self.picks[i].slot as usize;
            // An entry in `rows` says the episode is open without a look at `opened` (a
            // cache miss a row); the entry is read for the row next anyway.
            if self.rows.has_entry(slot) || self.opened[slot] != 0 {
                continue;
            }
            let (snapshot, id) = self.locate(slot);
            let opened = open_fields(snapshot, &self.spec, id)?;
            for (r, f) in self.resolved.iter().zip(&opened) {
                if f.spec().dtype != r.dtype || !same_shape(&f.spec().shape, &r.shape) {
                    return Err(Error::invalid_request(
                        "sampler",
                        format!(
                            "field {:?} is {} {:?} in episode {} but {} {:?} in the first one: \
                             select episodes of one schema",
                            r.request.field,
                            f.spec().dtype,
                            f.spec().shape,
                            id,
                            r.dtype,
                            r.shape
                        ),
                    ));
                }
            }
            for (c, (r, f)) in self.resolved.iter().zip(&opened).enumerate() {
                let [offset] = r.request.offsets[..] else {
                    continue;
                };
                if let Some(values) = f.contiguous()? {
                    let placed = Placed {
                        values: &values,
                        step_bytes: r.step_bytes,
                        steps: self.steps[slot],
                        offset,
                        rows: self.rows_per_unit,
                    };
                    self.rows.place(slot, c, &placed);
                }
            }
            self.open.push(opened);
            self.opened[slot] = u32::try_from(self.open.len()).expect("checked in Sampler::new");
        }
        Ok(())
    }

    /// The snapshot and id of the episode in `slot`.
    fn locate(&self, slot: usize) -> (&Snapshot, u64) {
        let (shard, id) = split_key(self.snapshots.len(), self.starts[slot].key);
        (&self.snapshots[shard as usize], id)
    }

    /// The episode and first step of unit `unit` (below [`Sampler::units`]).
    #[inline]
    fn pick(&self, unit: u64) -> Pick {
        let slot = self
            .bucket
            .slot_of(|slot| self.starts[slot].first_unit, unit);
        let SlotStart { first_unit, key } = self.starts[slot];
        Pick {
            slot: slot as u32,
            key,
            start: (unit - first_unit) as u32,
        }
    }

    fn fill(&self, batch: &mut Batch) -> Result<()> {
        let per = self.rows_per_unit;
        batch.units = self.picks.len();
        batch.rows_per_unit = per;
        let rows = batch.rows();
        batch.episode.clear();
        batch.step.clear();
        batch.mask.clear();
        if per == 1 {
            // A one-row unit is a real step of its episode (mask 1): its length need not be
            // read (a cache miss a row, as costly as the row itself). One list at a time, in
            // loops the compiler vectorises, rather than three pushes a row.
            batch.episode.extend(self.picks.iter().map(|p| p.key));
            batch.step.extend(self.picks.iter().map(|p| p.start));
            batch.mask.resize(rows, 1);
        } else {
            for p in &self.picks {
                let t = self.steps[p.slot as usize];
                for j in 0..per as u32 {
                    batch.episode.push(p.key);
                    batch.step.push(p.start + j);
                    batch.mask.push(u8::from(p.start + j < t));
                }
            }
        }
        let keys_match = batch.columns.len() == self.resolved.len()
            && batch
                .columns
                .iter()
                .zip(&self.resolved)
                .all(|(c, r)| c.key == r.request.key);
        if !keys_match {
            batch.columns = self
                .resolved
                .iter()
                .map(|r| Column {
                    key: r.request.key.clone(),
                    field: r.request.field.clone(),
                    dtype: r.dtype,
                    shape: Vec::new(),
                    data: Vec::new(),
                    valid: Vec::new(),
                })
                .collect();
        }
        // The maps the row table points into, dereferenced once for every column.
        let views = self.rows.views();
        for (c, (column, r)) in batch.columns.iter_mut().zip(&self.resolved).enumerate() {
            let k = r.request.offsets.len();
            column.dtype = r.dtype;
            column.shape.clear();
            column.shape.push(batch.units);
            if matches!(self.spec.unit, Unit::Window { .. }) {
                column.shape.push(per);
            }
            if k > 1 {
                column.shape.push(k);
            }
            column.shape.extend_from_slice(&r.shape);
            let unit_bytes = per * k * r.step_bytes;
            size_gathered(&mut column.data, batch.units * unit_bytes);
            column.valid.resize(rows * k, 0);
            if batch.units == 0 {
                continue;
            }
            // Small values (rewards, flags) are not worth a task each.
            let min_len = (TASK_MIN_BYTES / unit_bytes.max(1)).max(1);
            let gather = Gather {
                offsets: &r.request.offsets,
                edge: self.spec.edge,
                rows: per,
                step_bytes: r.step_bytes,
            };
            if batch.units <= min_len {
                // One task's worth (a map-style dataset's single step, a column of rewards
                // or small observations): gathered on this thread, without a round trip to
                // the pool's threads.
                let (data, valid) = (&mut column.data, &mut column.valid);
                self.gather_units(c, &gather, &views, &self.picks, data, valid)?;
                continue;
            }
            // On this process's pool, never rayon's global one (which a fork breaks), in
            // tasks of even length, as many as `min_len` asks for rounded up to a multiple of
            // the pool's threads: cut by `min_len` alone, a batch of 1024 68-byte rows was a
            // task of 963 and one of 61, as slow as one thread plus the hand-off.
            let pool = crate::pool::pool()?;
            let threads = pool.current_num_threads().max(1);
            let tasks = batch.units.div_ceil(min_len).div_ceil(threads) * threads;
            let task_len = batch.units.div_ceil(tasks);
            pool.install(|| {
                column
                    .data
                    .par_chunks_mut(unit_bytes * task_len)
                    .zip(column.valid.par_chunks_mut(per * k * task_len))
                    .zip(self.picks.par_chunks(task_len))
                    .try_for_each(|((data, valid), picks)| {
                        self.gather_units(c, &gather, &views, picks, data, valid)
                    })
            })?;
        }
        Ok(())
    }
}

/// Bytes of a batch column up to which it is gathered on the calling thread, and about the
/// least a task of the pool gathers. Handing tasks to the pool's threads and waiting for them
/// costs tens of microseconds on a VM (sleeping threads are woken): at 64 KiB, batches of
/// 1024 68-byte rows cost 25-34 ns a row against 18-19 on one thread (10^3 episodes).
const TASK_MIN_BYTES: usize = 256 << 10;

/// Units [`Sampler::gather_units`] locates and touches before it copies them: enough to have
/// many misses in flight, few enough that what was touched is still in the L1 cache (128 rows
/// of 68 bytes: 9 KiB) when it is copied, whatever the batch size. The locations live on the
/// stack.
const TOUCH_AHEAD: usize = 128;

/// Units above this many bytes are copied as they are located, without a touch first: their
/// copy is bound by bandwidth (the prefetchers follow a unit's lines), and a touch would
/// read them twice.
const TOUCH_MAX_BYTES: usize = 4096;

impl Sampler {
    /// Gathers column `c` of `picks` (all of a batch's, or one task's share of them) on this
    /// thread into `data` and `valid`, [`TOUCH_AHEAD`] units at a time in three passes: their
    /// bytes are located, then touched, then copied. The touches are independent loads in a
    /// loop of a few instructions, so the CPU has many cache and TLB misses in flight at once
    /// instead of waiting for each copy in turn (random small rows are bound by memory
    /// latency, not bandwidth). Units above [`TOUCH_MAX_BYTES`] are copied as located.
    #[inline(always)]
    fn gather_units(
        &self,
        c: usize,
        gather: &Gather<'_>,
        views: &[&[u8]],
        picks: &[Pick],
        data: &mut [u8],
        valid: &mut [u8],
    ) -> Result<()> {
        let unit_bytes = data.len() / picks.len();
        let valid_per = valid.len() / picks.len();
        // Every row of a unit in place is recorded; a unit read through its field writes its
        // own.
        valid.fill(1);
        if unit_bytes > TOUCH_MAX_BYTES {
            let units = data.chunks_mut(unit_bytes).zip(valid.chunks_mut(valid_per));
            for ((out, valid), p) in units.zip(picks) {
                let source = (self.rows).unit(
                    views,
                    p.slot as usize,
                    c,
                    p.start,
                    gather.step_bytes,
                    unit_bytes,
                );
                self.copy_unit(c, gather, p, source, out, valid)?;
            }
            return Ok(());
        }
        let units = data
            .chunks_mut(unit_bytes * TOUCH_AHEAD)
            .zip(valid.chunks_mut(valid_per * TOUCH_AHEAD))
            .zip(picks.chunks(TOUCH_AHEAD));
        for ((data, valid), picks) in units {
            // From the row table alone, in a loop without a call or an error path a row:
            // the units it does not serve are read through their field in the copy pass.
            let mut sources = [None; TOUCH_AHEAD];
            for (source, p) in sources.iter_mut().zip(picks) {
                *source = self.rows.unit(
                    views,
                    p.slot as usize,
                    c,
                    p.start,
                    gather.step_bytes,
                    unit_bytes,
                );
            }
            // The located ones alone: a short batch (a map-style dataset's single step) fills
            // few of the TOUCH_AHEAD.
            let touched = sources[..picks.len()]
                .iter()
                .flatten()
                .fold(0u8, |acc, bytes| acc ^ touch_lines(bytes));
            std::hint::black_box(touched);
            let units = data.chunks_mut(unit_bytes).zip(valid.chunks_mut(valid_per));
            for (((out, valid), p), source) in units.zip(picks).zip(sources) {
                self.copy_unit(c, gather, p, source, out, valid)?;
            }
        }
        Ok(())
    }

    /// Writes unit `p` of column `c` into `out` and `valid`: copied from `source`, its bytes
    /// as the row table located them, or read through its field when the table does not
    /// serve it (`None`: another offset, the episode's edge, lz4, several chunks).
    #[inline(always)]
    fn copy_unit(
        &self,
        c: usize,
        gather: &Gather<'_>,
        p: &Pick,
        source: Option<&[u8]>,
        out: &mut [u8],
        valid: &mut [u8],
    ) -> Result<()> {
        match source {
            Some(bytes) => {
                copy_row(out, bytes);
                Ok(())
            }
            None => {
                let slot = p.slot as usize;
                gather.unit(&self.opened(slot)[c], self.steps[slot], p.start, out, valid)
            }
        }
    }

    /// The fields of a picked episode ([`Sampler::open_picked`] ran for the batch).
    fn opened(&self, slot: usize) -> &[Field] {
        let index = self.opened[slot] as usize;
        assert!(index > 0, "opened by open_picked before every fill");
        &self.open[index - 1]
    }
}

/// The requested fields of episode `id`, in request order.
fn open_fields(snapshot: &Snapshot, spec: &SamplerSpec, id: u64) -> Result<Vec<Field>> {
    let episode = snapshot.episode(crate::ids::EpisodeId(id))?;
    spec.fields
        .iter()
        .map(|r| snapshot.field(&episode, &r.field))
        .collect()
}

fn same_shape(a: &[u32], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x as usize == y)
}

/// Number of units an episode of `t` steps holds.
fn units_in(unit: Unit, t: u32) -> u64 {
    match unit {
        Unit::Step | Unit::Window { pad: true, .. } => u64::from(t),
        Unit::Window { len, pad: false } => u64::from(t.saturating_sub(len - 1)),
    }
}

/// How to gather one unit of one column.
struct Gather<'a> {
    offsets: &'a [i64],
    edge: Edge,
    rows: usize,
    step_bytes: usize,
}

/// Makes `data` exactly `len` bytes long for a gather that writes every byte. A buffer of
/// enough capacity is only resized (zeros written past its old length alone); an empty one
/// (a batch's first, or one whose data was handed to a consumer) is allocated zeroed, which
/// for a large buffer is fresh pages from the kernel rather than a memset of bytes about
/// to be overwritten.
fn size_gathered(data: &mut Vec<u8>, len: usize) {
    if data.capacity() < len {
        *data = vec![0; len];
    } else {
        data.resize(len, 0);
    }
}

impl Gather<'_> {
    /// Fills `out` (`rows * offsets * step_bytes`) and `valid` (`rows * offsets`) for the
    /// unit starting at step `start` of an episode of `t` steps.
    fn unit(
        &self,
        field: &Field,
        t: u32,
        start: u32,
        out: &mut [u8],
        valid: &mut [u8],
    ) -> Result<()> {
        let (n, k) = (self.step_bytes, self.offsets.len());
        let len = field.len() as i64;
        let rows = start as i64..start as i64 + self.rows as i64;
        // Fast path: one offset, every row real and in range: one contiguous read.
        if let [off] = self.offsets
            && rows.end <= i64::from(t)
            && rows.start + off >= 0
            && rows.end + off <= len
        {
            valid.fill(1);
            return field.read_into(as_range(rows.start + off..rows.end + off), out);
        }
        for (j, row) in rows.enumerate() {
            for (i, off) in self.offsets.iter().enumerate() {
                let slot = j * k + i;
                let dst = &mut out[slot * n..(slot + 1) * n];
                let index = row + off;
                let real = row < i64::from(t);
                let recorded = real && (0..len).contains(&index);
                valid[slot] = u8::from(recorded);
                if recorded {
                    field.read_into(as_range(index..index + 1), dst)?;
                } else if real && self.edge == Edge::Clamp && len > 0 {
                    let c = index.clamp(0, len - 1);
                    field.read_into(as_range(c..c + 1), dst)?;
                } else {
                    dst.fill(0);
                }
            }
        }
        Ok(())
    }
}

/// A range already checked to be non-negative.
fn as_range(r: Range<i64>) -> Range<usize> {
    r.start as usize..r.end as usize
}
