//! Reads against a plain memory map of the same bytes: a full scan of one field, and the
//! loader's random batches and windows against a plain gather of the same rows.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rayon::prelude::*;
use trajstore::io::{FileView, OsIo, StoreIo};
use trajstore::loader::{Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
use trajstore::{Codec, EpisodeId, Field, Query, Store};

use super::{BenchError, Measurement, ROUNDS, Result, best_passes, major_faults, touch};

/// Reads every value of `field` of every episode of the store at `dir` through trajstore (raw
/// fields as map slices, lz4 decoded into one reused buffer), against a plain memory-mapped
/// read of the same bytes (see [`floor_source`]). Both are read once to warm the page cache,
/// then timed in alternating rounds; the best round of each counts.
pub fn scan(dir: &Path, field: &str) -> Result<Measurement> {
    let store = Store::open_read_only(dir)?;
    let snapshot = store.snapshot()?;
    let fields = snapshot
        .episodes(&Query::default())?
        .iter()
        .map(|e| Ok((e.id(), snapshot.field(e, field)?)))
        .collect::<Result<Vec<_>>>()?;
    let codec = fields.first().map_or(Codec::Raw, |(_, f)| f.spec().codec);

    let mut buffer = Vec::new();
    let mut store_pass =
        || -> Result<(f64, u64, u64)> { scan_fields(fields.iter().map(|(_, f)| f), &mut buffer) };
    let floor = floor_source(dir, &fields)?;
    let plain_pass = || -> (f64, u64) {
        let start = Instant::now();
        let sum = fields
            .iter()
            .zip(&floor.base)
            .fold(0u64, |sum, ((_, f), &(map, first))| {
                sum.wrapping_add(touch(
                    &floor.maps[map as usize][first..first + f.len() * f.step_bytes()],
                ))
            });
        (start.elapsed().as_secs_f64(), sum)
    };
    let (_, expected, bytes) = store_pass()?;
    if plain_pass().1 != expected {
        return Err(BenchError::Mismatch(
            "the plain read saw different bytes than trajstore",
        ));
    }
    let (mut seconds, mut baseline_seconds) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        seconds = seconds.min(black_box(store_pass()?).0);
        baseline_seconds = baseline_seconds.min(black_box(plain_pass()).0);
    }
    Ok(Measurement {
        name: match codec {
            Codec::Raw => "scan raw (map slices)",
            Codec::Lz4 => "scan lz4 (decode to buffer)",
        },
        bytes,
        seconds,
        baseline: floor.name,
        baseline_seconds,
    })
}

/// Random batches of `batch_size` single steps of `field` (the loader's sampler, with
/// replacement, one epoch's worth of draws), against a plain gather of the same rows from a
/// plain memory map of the same bytes (see [`Gathered`]).
pub fn sample(dir: &Path, field: &str, batch_size: usize) -> Result<Measurement> {
    let spec = SamplerSpec::steps(
        vec![FieldRequest::new(field)],
        batch_size,
        Order::Replacement,
    );
    Ok(gather(dir, spec, "sample 256 steps (gather)", u64::MAX)?.measurement)
}

/// [`sample`] with at most `max_rows` rows served (a store of 10^8 steps is not sampled for
/// a whole epoch's worth), shuffled order: what the scale benchmark measures at each size.
pub fn sample_rows(dir: &Path, field: &str, batch_size: usize, max_rows: u64) -> Result<Gathered> {
    let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], batch_size, Order::Shuffle);
    gather(dir, spec, "sample 256 steps (gather)", max_rows)
}

/// Random strict windows of `len` consecutive steps of `field`, `windows` per batch, until as
/// many rows as the store has steps were served; against a plain gather of the same windows
/// from a plain memory map.
pub fn window(dir: &Path, field: &str, len: u32, windows: usize) -> Result<Measurement> {
    let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], windows, Order::Shuffle)
        .windows(len, false);
    Ok(gather(dir, spec, "windows of 16 steps (gather)", u64::MAX)?.measurement)
}

/// The loader's batches against the plain gather of the same rows.
///
/// The floor is what a user with the same bytes in plain maps does best: for each batch, copy
/// every row from its map at a precomputed offset (a dense table by episode, no hashing),
/// either on the calling thread or split over a rayon pool as wide as the library's; the
/// faster of the two counts, since the loader too picks per batch whether to hand off. Both
/// sides read the same rows of the same page-cache pages (the segment files themselves), in
/// the same order, into buffers already written, after one warm-up pass each; then their
/// passes take turns and each side's best pass counts ([`best_passes`]).
#[derive(Clone, Debug)]
pub struct Gathered {
    /// `baseline` names the plain gather that was faster.
    pub measurement: Measurement,
    /// Rows gathered by one timed pass of either side.
    pub rows: u64,
    /// Threads of the faster plain gather: 1, or the pool's.
    pub floor_threads: usize,
    /// Page faults that read the disk (this process's `majflt`) during the timed passes of
    /// both sides: 0 when every row was in the page cache.
    pub major_faults: u64,
}

/// Times a sampler over the whole store (rank 0 of 1) against the same rows gathered from a
/// plain map (see [`Gathered`]). Serves at most as many rows as the store has steps, and at
/// most `max_rows`.
fn gather(dir: &Path, spec: SamplerSpec, name: &'static str, max_rows: u64) -> Result<Gathered> {
    let store = Store::open_read_only(dir)?;
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 0))?;
    let field = spec.fields[0].field.clone();
    let mut sampler = Sampler::new(&loader, spec)?;
    let max_rows = loader.steps().min(max_rows);
    let slot_of: HashMap<u64, u32> = (0..loader.len())
        .map(|i| (loader.key_of(i), i as u32))
        .collect();

    // Warm-up pass: fills the page cache and records which rows each batch holds, as
    // (episode slot, first step): what the floor's dense table is indexed by.
    let mut batch = Batch::new();
    let mut units: Vec<Vec<(u32, u32)>> = Vec::new();
    let mut expected = 0u64;
    let mut rows = 0u64;
    let mut per_unit = 1;
    while rows < max_rows && sampler.next_into(&mut batch)? {
        per_unit = batch.rows_per_unit;
        units.push(
            (0..batch.units)
                .map(|u| {
                    let at = u * per_unit;
                    (slot_of[&batch.episode[at]], batch.step[at])
                })
                .collect(),
        );
        expected = expected.wrapping_add(touch(&batch.columns[0].data));
        rows += batch.rows() as u64;
    }
    drop(slot_of);
    let batches = units.len();
    let mut loader_pass = || -> Result<f64> {
        sampler.seek(0)?;
        let start = Instant::now();
        for _ in 0..batches {
            sampler.next_into(&mut batch)?;
            black_box(batch.columns[0].data.len());
        }
        Ok(start.elapsed().as_secs_f64())
    };

    let fields = (0..loader.len())
        .map(|i| {
            let episode = loader.snapshot().episode(loader.id_of(i))?;
            Ok((loader.id_of(i), loader.snapshot().field(&episode, &field)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let floor = floor_source(dir, &fields)?;
    drop(fields);
    let (maps, base, step_bytes) = (&floor.maps, &floor.base, floor.step_bytes);
    let unit_bytes = per_unit * step_bytes;
    let row = |(slot, step): (u32, u32)| -> &[u8] {
        let (map, first) = base[slot as usize];
        let at = first + step as usize * step_bytes;
        &maps[map as usize][at..at + unit_bytes]
    };
    let mut out = Vec::new();
    let mut plain_pass = |pooled: bool, check: bool| -> Result<(f64, u64)> {
        let mut total = 0u64;
        let start = Instant::now();
        for picks in &units {
            out.resize(picks.len() * unit_bytes, 0);
            if pooled {
                // A pool as large as the one the loader gathers on (the library's own is
                // private).
                baseline_pool()?.install(|| {
                    out.par_chunks_mut(unit_bytes)
                        .zip(picks.par_iter())
                        .for_each(|(dst, &pick)| dst.copy_from_slice(row(pick)))
                });
            } else {
                for (dst, &pick) in out.chunks_mut(unit_bytes).zip(picks) {
                    dst.copy_from_slice(row(pick));
                }
            }
            if check {
                total = total.wrapping_add(touch(&out));
            }
            black_box(out.len());
        }
        Ok((start.elapsed().as_secs_f64(), total))
    };
    if plain_pass(false, true)?.1 != expected || plain_pass(true, true)?.1 != expected {
        return Err(BenchError::Mismatch(
            "the plain gather read different bytes than the loader",
        ));
    }
    let faults = major_faults();
    let [seconds, here, pooled] = best_passes(|side| match side {
        0 => loader_pass(),
        1 => Ok(plain_pass(false, false)?.0),
        _ => Ok(plain_pass(true, false)?.0),
    })?;
    let major_faults = major_faults().saturating_sub(faults);
    let (baseline, baseline_seconds, floor_threads) = if here <= pooled {
        (floor.name_here, here, 1)
    } else {
        (
            floor.name_pooled,
            pooled,
            baseline_pool()?.current_num_threads(),
        )
    };
    Ok(Gathered {
        measurement: Measurement {
            name,
            bytes: rows * step_bytes as u64,
            seconds,
            baseline,
            baseline_seconds,
        },
        rows,
        floor_threads,
        major_faults,
    })
}

/// Where the floors of [`scan`] and [`gather`] read.
struct FloorSource {
    maps: Vec<Arc<dyn FileView>>,
    /// Per episode, in the order of the fields given: the map, and the byte offset of the
    /// field's step 0 in it.
    base: Vec<(u32, usize)>,
    step_bytes: usize,
    name: &'static str,
    /// [`gather`]'s names of its two plain gathers: on the calling thread, on a pool.
    name_here: &'static str,
    name_pooled: &'static str,
    /// Keeps the plain file (when one was written) alive while mapped.
    _plain: Option<tempfile::NamedTempFile>,
}

/// The floor's bytes. A raw field stored in one chunk per episode is read from the segment
/// files themselves, mapped again with a plain `mmap`: the very same page-cache pages
/// trajstore reads, so only the loader's own work differs (on shared VMs, freshly written
/// pages can be much faster than old ones, which would skew a copy). Otherwise (lz4), the
/// decoded bytes are written to a plain file.
fn floor_source(dir: &Path, fields: &[(EpisodeId, Field)]) -> Result<FloorSource> {
    let step_bytes = fields.first().map_or(0, |(_, f)| f.step_bytes());
    let mut maps = Vec::new();
    let mut base = Vec::with_capacity(fields.len());
    if fields.iter().all(|(_, f)| f.is_contiguous()) {
        let mut map_of = HashMap::new();
        for (_, f) in fields {
            let extent = f.extents().remove(0);
            let index = match map_of.get(&extent.segment) {
                Some(&i) => i,
                None => {
                    let map = OsIo
                        .map(&extent.path)
                        .map_err(|e| BenchError::io(&extent.path, e))?;
                    maps.push(map);
                    map_of.insert(extent.segment, maps.len() - 1);
                    maps.len() - 1
                }
            };
            base.push((index as u32, extent.payload_offset as usize));
        }
        return Ok(FloorSource {
            maps,
            base,
            step_bytes,
            name: "plain mmaps of the segment files",
            name_here: "plain gather, segment mmaps, 1 thread",
            name_pooled: "plain gather, segment mmaps, pool",
            _plain: None,
        });
    }
    let plain = tempfile::NamedTempFile::new_in(dir).map_err(|e| BenchError::io(dir, e))?;
    {
        let mut w = std::io::BufWriter::new(plain.as_file());
        let mut offset = 0usize;
        for (_, f) in fields {
            let bytes = f.to_vec()?;
            base.push((0, offset));
            offset += bytes.len();
            w.write_all(&bytes)
                .map_err(|e| BenchError::io(plain.path(), e))?;
        }
        w.flush().map_err(|e| BenchError::io(plain.path(), e))?;
    }
    let map = OsIo
        .map(plain.path())
        .map_err(|e| BenchError::io(plain.path(), e))?;
    maps.push(map);
    Ok(FloorSource {
        maps,
        base,
        step_bytes,
        name: "plain mmap of the decoded bytes",
        name_here: "plain gather, decoded mmap, 1 thread",
        name_pooled: "plain gather, decoded mmap, pool",
        _plain: Some(plain),
    })
}

/// The plain gather's thread pool: as many threads as the library's own pool (rayon's
/// default), built once, so both sides of the comparison have the same parallelism.
fn baseline_pool() -> Result<&'static rayon::ThreadPool> {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("bench-baseline-{i}"))
        .build()
        .map_err(|e| BenchError::io("(the baseline's thread pool)", std::io::Error::other(e)))?;
    Ok(POOL.get_or_init(|| pool))
}

/// Reads every value of `fields` once (a map slice, or decoded into `buffer`); returns the
/// seconds taken, a checksum that keeps the reads from being optimised away, and the bytes.
pub(super) fn scan_fields<'a>(
    fields: impl Iterator<Item = &'a Field>,
    buffer: &mut Vec<u8>,
) -> Result<(f64, u64, u64)> {
    let (mut sum, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    for f in fields {
        match f.contiguous()? {
            Some(b) => {
                sum = sum.wrapping_add(touch(&b));
                bytes += b.len() as u64;
            }
            None => {
                buffer.resize(f.len() * f.step_bytes(), 0);
                f.read_into(0..f.len(), buffer)?;
                sum = sum.wrapping_add(touch(buffer));
                bytes += buffer.len() as u64;
            }
        }
    }
    Ok((start.elapsed().as_secs_f64(), sum, bytes))
}
