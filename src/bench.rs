//! Benchmarks shared by `benches/` and `trajstore bench`. Every figure is a ratio against a
//! baseline measured in the same run on the same bytes, because shared machines are noisy.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::loader::{Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
use crate::read::{Field, Query};
use crate::schema::Codec;
use crate::store::Store;
use crate::synth::{FrameGen, synth_schema};
use crate::value::{ArrayRef, Info};
use crate::write::EpisodeMeta;

/// A measurement and its baseline. `ratio` > 1 means trajstore was faster than the baseline.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub name: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    pub baseline: &'static str,
    pub baseline_seconds: f64,
}

impl Measurement {
    /// Baseline time over trajstore time: the fraction of the baseline's throughput reached.
    pub fn ratio(&self) -> f64 {
        self.baseline_seconds / self.seconds
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }

    pub fn baseline_mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.baseline_seconds / 1e6
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{:<28} {:>9.1} MB/s   {:<34} {:>9.1} MB/s   ratio {:.2}",
            self.name,
            self.mb_per_s(),
            self.baseline,
            self.baseline_mb_per_s(),
            self.ratio()
        )
    }
}

/// Shape of a recording benchmark.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub episodes: u32,
    pub steps: u32,
    pub frame: [u32; 3],
    pub codec: Codec,
}

/// Records `spec` into a fresh store at `dir` (durable commit per episode) and writes the same
/// frame bytes to a plain file with one fsync per episode. Returns the store measurement.
pub fn record(dir: &Path, spec: &RecordSpec) -> Result<Measurement> {
    let schema = synth_schema(spec.frame, spec.codec)?;
    let frames = pregenerated_frames(spec.frame, 32);
    let frame_bytes = frames[0].len();
    let bytes = u64::from(spec.episodes) * u64::from(spec.steps + 1) * frame_bytes as u64;

    let store = Store::create(dir.join("store"))?;
    let start = Instant::now();
    for e in 0..spec.episodes {
        record_episode(&store, &schema, &frames, spec, "bench", e)?;
    }
    let seconds = start.elapsed().as_secs_f64();

    let plain = dir.join("plain.bin");
    let baseline_seconds = plain_write(&plain, &frames, spec)?;
    std::fs::remove_file(&plain).map_err(|e| Error::io(&plain, e))?;
    Ok(Measurement {
        name: match spec.codec {
            Codec::Raw => "record raw (commit/episode)",
            Codec::Lz4 => "record lz4 (commit/episode)",
        },
        bytes,
        seconds,
        baseline: "plain write + fsync/episode",
        baseline_seconds,
    })
}

/// Records episode `e` of `spec` from pregenerated frames; returns how long `commit` took.
fn record_episode(
    store: &Store,
    schema: &crate::schema::Schema,
    frames: &[Vec<u8>],
    spec: &RecordSpec,
    user: &str,
    e: u32,
) -> Result<Duration> {
    let health = [100i32, 100];
    let mut w = store.begin_episode(EpisodeMeta::new(user, "Synth-v0"), schema)?;
    let frame = |t: u32| ArrayRef::new(&frames[(t as usize + e as usize) % frames.len()]);
    w.reset(
        &[
            ("obs/frame", frame(0)),
            ("obs/ram/health", ArrayRef::new(&health)),
        ],
        &Info::new(),
    )?;
    for t in 1..=spec.steps {
        let last = t == spec.steps;
        w.step(
            &[
                ("obs/frame", frame(t)),
                ("obs/ram/health", ArrayRef::new(&health)),
                ("action", ArrayRef::scalar(&0i64)),
                ("reward", ArrayRef::scalar(&0.0f32)),
                ("terminated", ArrayRef::scalar(&last)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )?;
    }
    let start = Instant::now();
    w.commit()?;
    Ok(start.elapsed())
}

fn plain_write(path: &Path, frames: &[Vec<u8>], spec: &RecordSpec) -> Result<f64> {
    let io = |e| Error::io(path, e);
    let mut file = File::create(path).map_err(io)?;
    let start = Instant::now();
    for e in 0..spec.episodes {
        // The same bytes, buffered per episode as a recorder must, then one sequential write.
        let mut episode = Vec::with_capacity(frames[0].len() * (spec.steps as usize + 1));
        for t in 0..=spec.steps {
            episode.extend_from_slice(&frames[(t as usize + e as usize) % frames.len()]);
        }
        file.write_all(&episode).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Frames rendered once, so benchmarks measure storage, not rendering.
pub fn pregenerated_frames(frame: [u32; 3], n: usize) -> Vec<Vec<u8>> {
    let mut renderer = FrameGen::new(frame, 7);
    (0..n)
        .map(|t| {
            let mut f = vec![0u8; renderer.frame_bytes()];
            renderer.render(t as u32, &mut f);
            f
        })
        .collect()
}

/// Touches every byte (sums 8-byte words): a read that runs at memory bandwidth.
pub fn touch(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail: u64 = words.remainder().iter().map(|&b| u64::from(b)).sum();
    words.fold(tail, |acc, w| {
        acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")))
    })
}

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
        let sum = fields.iter().fold(0u64, |sum, (id, f)| {
            let (map, first) = floor.base[id];
            sum.wrapping_add(touch(
                &floor.maps[map][first..first + f.len() * f.step_bytes()],
            ))
        });
        (start.elapsed().as_secs_f64(), sum)
    };
    let (_, expected, bytes) = store_pass()?;
    if plain_pass().1 != expected {
        return Err(Error::invalid_request(
            "benchmark",
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

// ---------------------------------------------------------------------------------------------
// Concurrent recording

/// How concurrent recorders run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorders {
    /// Threads of one process sharing one [`Store`] handle (group commit batches them).
    Threads,
    /// Separate OS processes, each with its own handle (redb's cross-process writer lock
    /// serializes their commits).
    Processes,
}

impl Recorders {
    pub fn name(self) -> &'static str {
        match self {
            Recorders::Threads => "threads",
            Recorders::Processes => "processes",
        }
    }
}

/// A concurrent recording benchmark: `writers` recorders, each recording `per_writer`.
#[derive(Clone, Debug)]
pub struct ConcurrentSpec {
    pub writers: usize,
    pub recorders: Recorders,
    pub per_writer: RecordSpec,
    /// The `trajstore` binary, needed for [`Recorders::Processes`] (its `bench-writer` command).
    pub exe: Option<std::path::PathBuf>,
}

/// What one recorder (thread or process) measured.
#[derive(Clone, Debug, Default)]
pub struct RecorderRun {
    /// Duration of each `commit()` call, microseconds.
    pub commit_us: Vec<u64>,
    /// The commit counters of the recorder's store handle (a process's handle; for threads,
    /// the shared handle's, reported once).
    pub stats: crate::index::commit::CommitStats,
}

impl RecorderRun {
    /// The text a `bench-writer` process prints: `commit_us A B C ...` and `stats T E`.
    pub fn to_lines(&self) -> String {
        let us: Vec<String> = self.commit_us.iter().map(u64::to_string).collect();
        format!(
            "commit_us {}\nstats {} {}\n",
            us.join(" "),
            self.stats.transactions,
            self.stats.episodes
        )
    }

    /// Parses [`RecorderRun::to_lines`] (other lines are ignored).
    pub fn parse(text: &str) -> Option<RecorderRun> {
        let mut run = RecorderRun::default();
        let mut seen = (false, false);
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("commit_us") {
                run.commit_us = rest
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()
                    .ok()?;
                seen.0 = true;
            } else if let Some(rest) = line.strip_prefix("stats ") {
                let mut it = rest.split_whitespace().map(str::parse::<u64>);
                run.stats.transactions = it.next()?.ok()?;
                run.stats.episodes = it.next()?.ok()?;
                seen.1 = true;
            }
        }
        (seen == (true, true)).then_some(run)
    }
}

/// Result of [`record_concurrently`].
#[derive(Clone, Debug)]
pub struct ConcurrentReport {
    pub writers: usize,
    pub recorders: Recorders,
    /// Aggregate throughput of all recorders against one plain writer doing the same bytes.
    pub measurement: Measurement,
    /// Summed over every store handle.
    pub stats: crate::index::commit::CommitStats,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub commit_max_ms: f64,
}

impl ConcurrentReport {
    /// Episodes per durable index transaction.
    pub fn episodes_per_commit(&self) -> f64 {
        self.stats.episodes as f64 / self.stats.transactions.max(1) as f64
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{} {:<9} {:>8.1} MB/s  plain {:>8.1} MB/s  ratio {:.2}  episodes/index-commit {:>5.2}  commit p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
            self.writers,
            self.recorders.name(),
            self.measurement.mb_per_s(),
            self.measurement.baseline_mb_per_s(),
            self.measurement.ratio(),
            self.episodes_per_commit(),
            self.commit_p50_ms,
            self.commit_p99_ms,
            self.commit_max_ms,
        )
    }
}

/// The body of one recorder: `spec.episodes` episodes as `user`. `ready` is called once the
/// schema is registered and frames are rendered; recording starts when it returns.
pub fn recorder(
    store: &Store,
    spec: &RecordSpec,
    user: &str,
    ready: impl FnOnce() -> std::io::Result<()>,
) -> Result<Vec<u64>> {
    let schema = synth_schema(spec.frame, spec.codec)?;
    let frames = pregenerated_frames(spec.frame, 32);
    // Registers the schema (one index transaction) outside the timed part.
    drop(store.begin_episode(EpisodeMeta::new(user, "Synth-v0"), &schema)?);
    ready().map_err(|e| Error::io("(start signal)", e))?;
    (0..spec.episodes)
        .map(|e| {
            record_episode(store, &schema, &frames, spec, user, e).map(|d| d.as_micros() as u64)
        })
        .collect()
}

/// Records with `spec.writers` concurrent recorders into a fresh store under `dir`, timed from
/// the moment all are ready until the last one finishes; then writes the same number of frame
/// bytes to a plain file from one thread, with one fsync per episode (what a single recorder
/// writing its own file does), as the baseline.
pub fn record_concurrently(dir: &Path, spec: &ConcurrentSpec) -> Result<ConcurrentReport> {
    let store_dir = dir.join(format!("store-{}-{}", spec.recorders.name(), spec.writers));
    let per = &spec.per_writer;
    let (seconds, runs) = match spec.recorders {
        Recorders::Threads => {
            let store = Store::create(&store_dir)?;
            let barrier = std::sync::Barrier::new(spec.writers + 1);
            let (seconds, runs) = std::thread::scope(|s| -> Result<(f64, Vec<RecorderRun>)> {
                let handles: Vec<_> = (0..spec.writers)
                    .map(|w| {
                        let (store, barrier) = (&store, &barrier);
                        s.spawn(move || {
                            let user = format!("w{w}");
                            let passed = std::cell::Cell::new(false);
                            let commit_us = recorder(store, per, &user, || {
                                passed.set(true);
                                barrier.wait();
                                Ok(())
                            });
                            if !passed.get() {
                                barrier.wait(); // failed while getting ready: release the rest
                            }
                            commit_us
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                let mut runs = Vec::new();
                for h in handles {
                    let commit_us = h.join().expect("recorder thread panicked")?;
                    runs.push(RecorderRun {
                        commit_us,
                        stats: Default::default(),
                    });
                }
                Ok((start.elapsed().as_secs_f64(), runs))
            })?;
            let mut runs = runs;
            runs[0].stats = store.commit_stats();
            (seconds, runs)
        }
        Recorders::Processes => {
            let exe = spec.exe.as_deref().ok_or_else(|| {
                Error::io(
                    dir,
                    std::io::Error::other("process recorders need the trajstore binary"),
                )
            })?;
            drop(Store::create(&store_dir)?);
            record_in_processes(exe, &store_dir, spec)?
        }
    };
    let mut commit_us: Vec<u64> = runs.iter().flat_map(|r| r.commit_us.clone()).collect();
    commit_us.sort_unstable();
    let pct = |p: f64| {
        let i = ((commit_us.len() as f64 * p).ceil() as usize).clamp(1, commit_us.len()) - 1;
        commit_us[i] as f64 / 1e3
    };
    let stats = runs
        .iter()
        .fold(crate::index::commit::CommitStats::default(), |a, r| {
            crate::index::commit::CommitStats {
                transactions: a.transactions + r.stats.transactions,
                episodes: a.episodes + r.stats.episodes,
            }
        });

    let total = RecordSpec {
        episodes: per.episodes * spec.writers as u32,
        ..per.clone()
    };
    let frames = pregenerated_frames(per.frame, 32);
    let bytes = u64::from(total.episodes) * u64::from(per.steps + 1) * frames[0].len() as u64;
    let plain = dir.join("plain.bin");
    let baseline_seconds = plain_write(&plain, &frames, &total)?;
    std::fs::remove_file(&plain).map_err(|e| Error::io(&plain, e))?;
    std::fs::remove_dir_all(&store_dir).map_err(|e| Error::io(&store_dir, e))?;
    Ok(ConcurrentReport {
        writers: spec.writers,
        recorders: spec.recorders,
        measurement: Measurement {
            name: match spec.recorders {
                Recorders::Threads => "record, concurrent threads",
                Recorders::Processes => "record, concurrent processes",
            },
            bytes,
            seconds,
            baseline: "plain write + fsync/episode",
            baseline_seconds,
        },
        stats,
        commit_p50_ms: pct(0.50),
        commit_p99_ms: pct(0.99),
        commit_max_ms: pct(1.0),
    })
}

/// Spawns `trajstore bench-writer` processes, waits until each printed `ready`, releases them
/// together (a line on stdin) and collects what they measured.
fn record_in_processes(
    exe: &Path,
    store_dir: &Path,
    spec: &ConcurrentSpec,
) -> Result<(f64, Vec<RecorderRun>)> {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let per = &spec.per_writer;
    let io = |e| Error::io(exe, e);
    let mut children = Vec::new();
    for w in 0..spec.writers {
        let mut child = Command::new(exe)
            .arg("bench-writer")
            .arg(store_dir)
            .args(["--user", &format!("w{w}")])
            .args(["--episodes", &per.episodes.to_string()])
            .args(["--steps", &per.steps.to_string()])
            .args([
                "--frame",
                &format!("{}x{}x{}", per.frame[0], per.frame[1], per.frame[2]),
            ])
            .args(["--codec", per.codec.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io)?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(io)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(io(std::io::Error::other(format!(
                "bench-writer did not get ready: {line:?}"
            ))));
        }
        children.push((child, stdout));
    }
    let start = Instant::now();
    for (child, _) in &mut children {
        // Closing stdin is the start signal.
        drop(child.stdin.take());
    }
    let mut runs = Vec::new();
    for (mut child, mut stdout) in children {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map_err(io)?;
        let status = child.wait().map_err(io)?;
        let run = RecorderRun::parse(&text).filter(|_| status.success());
        runs.push(run.ok_or_else(|| {
            io(std::io::Error::other(format!(
                "bench-writer failed ({status}): {text}"
            )))
        })?);
    }
    // The last process to finish ends the measurement; reading their output is negligible.
    Ok((start.elapsed().as_secs_f64(), runs))
}

// ---------------------------------------------------------------------------------------------
// Loader reads

/// Random batches of `batch_size` single steps of `field` (the loader's sampler, with
/// replacement, one epoch's worth of draws), against a plain gather of the same rows from a
/// plain memory map of the same bytes. Both gathers run in parallel on the rayon pool.
pub fn sample(dir: &Path, field: &str, batch_size: usize) -> Result<Measurement> {
    let spec = SamplerSpec::steps(
        vec![FieldRequest::new(field)],
        batch_size,
        Order::Replacement,
    );
    gather(dir, spec, "sample 256 steps (gather)")
}

/// Random strict windows of `len` consecutive steps of `field`, `windows` per batch, until as
/// many rows as the store has steps were served; against a plain gather of the same windows
/// from a plain memory map.
pub fn window(dir: &Path, field: &str, len: u32, windows: usize) -> Result<Measurement> {
    let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], windows, Order::Shuffle)
        .windows(len, false);
    gather(dir, spec, "windows of 16 steps (gather)")
}

/// Timed rounds of each side, alternated so both see the same machine noise; the best of
/// each counts.
const ROUNDS: usize = 3;

/// Times a sampler over the whole store (rank 0 of 1) against the same rows gathered from a
/// plain map. Serves at most as many rows as the store has steps.
fn gather(dir: &Path, spec: SamplerSpec, name: &'static str) -> Result<Measurement> {
    let store = Store::open_read_only(dir)?;
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 0))?;
    let field = spec.fields[0].field.clone();
    let mut sampler = Sampler::new(&loader, spec)?;
    let max_rows = loader.steps();

    // Warm-up pass: fills the page cache and records which rows each batch holds.
    let mut batch = Batch::new();
    let mut units: Vec<Vec<(u64, u32)>> = Vec::new();
    let mut expected = 0u64;
    let mut rows = 0u64;
    let mut per_unit = 1;
    while rows < max_rows && sampler.next_into(&mut batch)? {
        per_unit = batch.rows_per_unit;
        units.push(
            (0..batch.units)
                .map(|u| (batch.episode[u * per_unit], batch.step[u * per_unit]))
                .collect(),
        );
        expected = expected.wrapping_add(touch(&batch.columns[0].data));
        rows += batch.rows() as u64;
    }
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

    let fields = loader
        .episodes()
        .iter()
        .map(|e| Ok((e.id(), loader.snapshot().field(e, &field)?)))
        .collect::<Result<Vec<_>>>()?;
    let floor = floor_source(dir, &fields)?;
    let (maps, base, step_bytes) = (&floor.maps, &floor.base, floor.step_bytes);
    let unit_bytes = per_unit * step_bytes;
    let mut out = Vec::new();
    let mut plain_pass = |check: bool| -> Result<(f64, u64)> {
        let mut total = 0u64;
        let start = Instant::now();
        for picks in &units {
            out.resize(picks.len() * unit_bytes, 0);
            // The same pool as the loader's gather (`pool.rs`).
            crate::pool::install(|| {
                out.par_chunks_mut(unit_bytes)
                    .zip(picks.par_iter())
                    .for_each(|(dst, (episode, step))| {
                        let (map, first) = base[&crate::EpisodeId(*episode)];
                        let at = first + *step as usize * step_bytes;
                        dst.copy_from_slice(&maps[map][at..at + unit_bytes]);
                    })
            })?;
            if check {
                total = total.wrapping_add(touch(&out));
            }
            black_box(out.len());
        }
        Ok((start.elapsed().as_secs_f64(), total))
    };
    if plain_pass(true)?.1 != expected {
        return Err(Error::invalid_request(
            "benchmark",
            "the plain gather read different bytes than the loader",
        ));
    }
    let (mut seconds, mut baseline_seconds) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        seconds = seconds.min(loader_pass()?);
        baseline_seconds = baseline_seconds.min(plain_pass(false)?.0);
    }
    Ok(Measurement {
        name,
        bytes: rows * step_bytes as u64,
        seconds,
        baseline: floor.name,
        baseline_seconds,
    })
}

/// Where the floor of [`gather`] reads.
struct FloorSource {
    maps: Vec<memmap2::Mmap>,
    /// Per episode id: the map, and the byte offset of the field's step 0 in it.
    base: std::collections::HashMap<crate::EpisodeId, (usize, usize)>,
    step_bytes: usize,
    name: &'static str,
    /// Keeps the plain file (when one was written) alive while mapped.
    _plain: Option<tempfile::NamedTempFile>,
}

/// The floor's bytes. A raw field stored in one chunk per episode is read from the segment
/// files themselves, mapped again with a plain `mmap`: the very same page-cache pages
/// trajstore reads, so only the loader's own work differs (on shared VMs, freshly written
/// pages can be much faster than old ones, which would skew a copy). Otherwise (lz4), the
/// decoded bytes are written to a plain file.
fn floor_source(dir: &Path, fields: &[(crate::EpisodeId, Field)]) -> Result<FloorSource> {
    use crate::segment::format::HEADER_BYTES;
    use crate::segment::{SEGMENTS_DIR, segment_path};
    let step_bytes = fields.first().map_or(0, |(_, f)| f.step_bytes());
    let mut maps = Vec::new();
    let mut base = std::collections::HashMap::new();
    if fields.iter().all(|(_, f)| f.is_contiguous()) {
        let mut map_of = std::collections::HashMap::new();
        for (id, f) in fields {
            let chunk = f.chunk_refs().next().expect("contiguous: one chunk");
            let index = match map_of.get(&chunk.segment) {
                Some(&i) => i,
                None => {
                    let path = segment_path(&dir.join(SEGMENTS_DIR), chunk.segment);
                    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
                    // SAFETY: committed segment bytes are never modified (schema/format.md).
                    let map =
                        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
                    maps.push(map);
                    map_of.insert(chunk.segment, maps.len() - 1);
                    maps.len() - 1
                }
            };
            base.insert(*id, (index, chunk.offset as usize + HEADER_BYTES));
        }
        return Ok(FloorSource {
            maps,
            base,
            step_bytes,
            name: "plain mmaps of the segment files",
            _plain: None,
        });
    }
    let plain = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    {
        let mut w = std::io::BufWriter::new(plain.as_file());
        let mut offset = 0usize;
        for (id, f) in fields {
            let bytes = f.to_vec()?;
            base.insert(*id, (0, offset));
            offset += bytes.len();
            w.write_all(&bytes)
                .map_err(|e| Error::io(plain.path(), e))?;
        }
        w.flush().map_err(|e| Error::io(plain.path(), e))?;
    }
    // SAFETY: a private temporary file nobody else writes or truncates while mapped.
    let map =
        unsafe { memmap2::Mmap::map(plain.as_file()) }.map_err(|e| Error::io(plain.path(), e))?;
    maps.push(map);
    Ok(FloorSource {
        maps,
        base,
        step_bytes,
        name: "plain mmap of the decoded bytes",
        _plain: Some(plain),
    })
}

// ---------------------------------------------------------------------------------------------
// Checked reads

/// Rounds of [`checked`]: more than [`ROUNDS`], its passes are short.
const CHECKED_ROUNDS: usize = 5;

/// Checked reads against unchecked ones (`verify_reads: false`), on the same bytes with a
/// warm page cache, in four measurements:
///
/// - a full scan of `field` (as [`scan`]) on a fresh store handle, so every chunk's checksum
///   is verified on its first read ("first scan");
/// - the same scan again on new fields of that handle, the checks already remembered
///   ("later epochs");
/// - one epoch of the loader's shuffled batches of 256 steps on a fresh handle, and a second
///   epoch on a new loader of the same handle.
///
/// Each is timed in alternating rounds against the same read with `verify_reads: false`; the
/// best round of each counts.
pub fn checked(dir: &Path, field: &str) -> Result<Vec<Measurement>> {
    use crate::options::StoreOptions;
    let open = |verify_reads: bool| {
        Store::open_read_only_with(
            dir,
            StoreOptions {
                verify_reads,
                ..StoreOptions::default()
            },
        )
    };
    let fields_of = |store: &Store| -> Result<Vec<Field>> {
        let snapshot = store.snapshot()?;
        snapshot
            .episodes(&Query::default())?
            .iter()
            .map(|e| snapshot.field(e, field))
            .collect()
    };
    let mut buffer = Vec::new();
    let mut scan_pass =
        |fields: &[Field]| -> Result<(f64, u64, u64)> { scan_fields(fields.iter(), &mut buffer) };
    let mut batch = Batch::new();
    let mut epoch_pass = |store: &Store| -> Result<(f64, u64, u64)> {
        let loader = Loader::new(store, &Selection::new(Query::default(), 1, 0, 0))?;
        let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], 256, Order::Shuffle);
        let mut sampler = Sampler::new(&loader, spec)?;
        let (mut sum, mut bytes) = (0u64, 0u64);
        let start = Instant::now();
        while sampler.next_into(&mut batch)? {
            bytes += batch.columns[0].data.len() as u64;
            sum = sum.wrapping_add(black_box(batch.columns[0].data[0]) as u64);
        }
        Ok((start.elapsed().as_secs_f64(), sum, bytes))
    };

    // Warm the page cache (and learn the expected bytes) without checks.
    let (_, expected, bytes) = scan_pass(&fields_of(&open(false)?)?)?;
    let (_, epoch_sum, epoch_bytes) = epoch_pass(&open(false)?)?;
    let mismatch = || {
        Error::invalid_request(
            "benchmark",
            "checked and unchecked reads saw different bytes",
        )
    };
    // best[verify_reads][first scan, later scan, first epoch, later epoch]. Each round opens
    // fresh handles on both sides, so both map the segments anew (same page-table work) and
    // the checked side starts with no chunk verified.
    let mut best = [[f64::MAX; 4]; 2];
    for _ in 0..CHECKED_ROUNDS {
        for verify_reads in [false, true] {
            let b = &mut best[usize::from(verify_reads)];
            let store = open(verify_reads)?;
            for slot in &mut b[0..2] {
                let (t, sum, _) = scan_pass(&fields_of(&store)?)?;
                if sum != expected {
                    return Err(mismatch());
                }
                *slot = slot.min(t);
            }
            let store = open(verify_reads)?;
            for slot in &mut b[2..4] {
                let (t, sum, _) = epoch_pass(&store)?;
                if sum != epoch_sum {
                    return Err(mismatch());
                }
                *slot = slot.min(t);
            }
        }
    }
    let [plain, best] = best;
    let m = |name, bytes, seconds, baseline, baseline_seconds| Measurement {
        name,
        bytes,
        seconds,
        baseline,
        baseline_seconds,
    };
    Ok(vec![
        m(
            "1st scan, checked",
            bytes,
            best[0],
            "1st scan, unchecked",
            plain[0],
        ),
        m(
            "2nd scan, checks remembered",
            bytes,
            best[1],
            "2nd scan, unchecked",
            plain[1],
        ),
        m(
            "1st epoch (batches of 256), checked",
            epoch_bytes,
            best[2],
            "1st epoch, unchecked",
            plain[2],
        ),
        m(
            "2nd epoch, checks remembered",
            epoch_bytes,
            best[3],
            "2nd epoch, unchecked",
            plain[3],
        ),
    ])
}

/// Reads every value of `fields` once (a map slice, or decoded into `buffer`); returns the
/// seconds taken, a checksum that keeps the reads from being optimised away, and the bytes.
fn scan_fields<'a>(
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
