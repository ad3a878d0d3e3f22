//! How costs grow with the store: one store of small control-like episodes (`synth --frame
//! 1x17x4`, 50 steps by default, about 90 raw bytes a step) grown through a list of sizes,
//! measuring at each size what a user pays to record, open, list, select, load, sample and
//! verify it, each next to its floor measured in the same run.
//!
//! The loader's setup and memory are measured in a fresh process ([`probe_loader`]): the
//! executable running the benchmark must call
//! [`run_if_loader_probe`](super::loader_probe::run_if_loader_probe) first thing in `main`.
//!
//! Growing is done by several recorder threads (group commit) so that 100k episodes take
//! minutes; the recording figure is a separate sample of single-writer episodes with a
//! durable commit each, against a plain append + fdatasync per episode of the same bytes.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use trajstore::loader::{Assignment, Loader, Selection, select};
use trajstore::{Query, Store};

use super::{
    BenchError, Gathered, LoaderProbe, Measurement, Result, best_passes, probe_loader, sample_rows,
};
use crate::synth::{SynthConfig, record, record_one, synth_schema};

/// What to grow and measure.
#[derive(Clone, Debug)]
pub struct ScaleSpec {
    /// Store sizes (episodes) to measure at, increasing.
    pub sizes: Vec<u64>,
    /// Transitions per episode.
    pub steps: u32,
    /// Recorder threads growing the store between sizes.
    pub writers: usize,
    /// Single-writer episodes timed at each size for the recording figure.
    pub record_sample: u64,
    /// Rows of random 256-step batches gathered at each size for the sampling figure.
    pub sample_rows: u64,
}

impl ScaleSpec {
    /// 1k, 10k, 100k, ... up to `max_episodes`, 50-step episodes.
    pub fn up_to(max_episodes: u64) -> ScaleSpec {
        let mut sizes = Vec::new();
        let mut n = 1_000;
        while n <= max_episodes {
            sizes.push(n);
            n *= 10;
        }
        if sizes.last() != Some(&max_episodes) && max_episodes > 0 {
            sizes.push(max_episodes);
        }
        ScaleSpec {
            sizes,
            steps: 50,
            writers: 8,
            record_sample: 200,
            sample_rows: 256 * 400,
        }
    }

    /// The same sizes with episodes of `steps` transitions (1000: 10^8 steps at 100k
    /// episodes).
    pub fn steps(self, steps: u32) -> ScaleSpec {
        ScaleSpec { steps, ..self }
    }
}

/// Everything measured at one store size. Times in seconds.
#[derive(Clone, Debug)]
pub struct ScalePoint {
    pub episodes: u64,
    pub steps: u64,
    /// `record_sample` single-writer episodes, durable commit each, against a plain append
    /// + fdatasync per episode of the same bytes.
    pub record: Measurement,
    /// Open the store, take a snapshot, read the user statistics (what `info` needs).
    pub info: f64,
    /// Every episode's metadata, in commit order (what `ls` and `Store.episodes()` need).
    pub list: f64,
    /// `Loader::new`, one rank of one (every episode).
    pub loader: f64,
    /// The selection and the assignment to 8 ranks (what `trajstore partition` computes).
    pub partition: f64,
    /// In a fresh process: `Loader::new`, `Sampler::new` and the first shuffled batch of 256
    /// steps of `obs/frame`, their times and the anonymous memory resident after them.
    pub probe: LoaderProbe,
    /// Random shuffled batches of 256 steps of `obs/frame` (68-byte rows), `sample_rows` of
    /// them, against the plain gather of the same rows from plain maps of the segment files
    /// (see [`Gathered`]: its threads, and the major faults of the timed passes).
    pub sample: Gathered,
    /// Bytes of the store's segment files, and `MemAvailable` (/proc/meminfo) just before the
    /// sampling figure: a store larger than the memory available cannot stay in the page
    /// cache, and its figures measure the disk.
    pub store_bytes: u64,
    pub mem_available: u64,
    /// `Snapshot::verify` against reading every segment file (`cat`), page cache warm.
    pub verify: Measurement,
}

/// Grows a store at `dir/store` through `spec.sizes`, calling `report` after each size.
pub fn scale(dir: &Path, spec: &ScaleSpec, mut report: impl FnMut(&ScalePoint)) -> Result<()> {
    let store_dir = dir.join("store");
    let store = Store::create(&store_dir)?;
    let config = SynthConfig {
        user: "scale".into(),
        min_steps: spec.steps,
        max_steps: spec.steps,
        frame: [1, 17, 4],
        writers: spec.writers,
        ..SynthConfig::default()
    };
    let mut have = 0u64;
    let mut round = 0u64;
    for &size in &spec.sizes {
        let sample = spec.record_sample.min(size.saturating_sub(have));
        let fill = size.saturating_sub(have + sample);
        if fill > 0 {
            round += 1;
            let grow = SynthConfig {
                episodes: fill,
                seed: round,
                ..config.clone()
            };
            record(&store, &grow, |_| {})?;
        }
        let record = record_sample(dir, &store, &config, sample, round)?;
        have = size;
        let point = measure(&store_dir, size, record, spec.sample_rows)?;
        report(&point);
    }
    Ok(())
}

/// Times `n` single-writer episodes against a plain append + fdatasync of their bytes.
fn record_sample(
    dir: &Path,
    store: &Store,
    config: &SynthConfig,
    n: u64,
    round: u64,
) -> Result<Measurement> {
    let schema = synth_schema(config.frame, config.codec)?;
    let sample = SynthConfig {
        writers: 1,
        seed: round.wrapping_add(1 << 32),
        ..config.clone()
    };
    let start = Instant::now();
    let mut raw = 0u64;
    for i in 0..n {
        record_one(store, &sample, &schema, i)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    // Raw bytes of one episode: T + 1 frames and health, T actions, rewards and flags.
    let frame = config.frame.iter().product::<u32>() as u64;
    let t = u64::from(config.max_steps);
    let episode_bytes = (t + 1) * (frame + 8) + t * (8 + 4 + 1 + 1);
    raw += n * episode_bytes;
    let plain = dir.join("plain-record.bin");
    let io = |e| BenchError::io(&plain, e);
    let mut file = File::create(&plain).map_err(io)?;
    let bytes = vec![7u8; episode_bytes as usize];
    let start = Instant::now();
    for _ in 0..n {
        file.write_all(&bytes).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    let baseline_seconds = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&plain).map_err(io)?;
    Ok(Measurement {
        name: "record, 1 writer, commit/episode",
        bytes: raw,
        seconds,
        baseline: "append + fdatasync/episode",
        baseline_seconds,
    })
}

impl ScalePoint {
    /// Nanoseconds per sampled row: the loader's, and the plain gather's.
    pub fn sample_ns_per_row(&self) -> (f64, f64) {
        let rows = self.sample.rows.max(1) as f64;
        let m = &self.sample.measurement;
        (m.seconds * 1e9 / rows, m.baseline_seconds * 1e9 / rows)
    }

    /// Whether the sampling figure was measured from the page cache: the store fitted in the
    /// memory available, and no timed pass read the disk. (The setup's own major faults,
    /// [`LoaderProbe::major_faults`], are reported beside it: a fresh process may fault in a
    /// few pages of its own executable.)
    pub fn in_page_cache(&self) -> bool {
        self.store_bytes < self.mem_available && self.sample.major_faults == 0
    }
}

/// Times `f`, best of three runs.
fn best_of_3<T>(mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        let value = black_box(f()?);
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(value);
    }
    Ok((best, last.expect("three runs")))
}

fn measure(
    store_dir: &Path,
    episodes: u64,
    record: Measurement,
    rows_to_sample: u64,
) -> Result<ScalePoint> {
    let (info, steps) = best_of_3(|| {
        let store = Store::open_read_only(store_dir)?;
        let users = store.snapshot()?.users()?;
        Ok(users.iter().map(|u| u.steps).sum::<u64>())
    })?;
    let store = Store::open_read_only(store_dir)?;
    let (list, _) = best_of_3(|| Ok(store.snapshot()?.episodes(&Query::default())?.len()))?;
    let selection = Selection::new(Query::default(), 1, 0, 0);
    let (loader_seconds, _) = best_of_3(|| Ok(Loader::new(&store, &selection)?.len()))?;
    let (partition, _) = best_of_3(|| {
        let snapshot = store.snapshot()?;
        let selected = select(&snapshot, &Query::default())?;
        let assignment = Assignment::new(&selected.set, 8, 0, 0).map_err(trajstore::Error::from)?;
        Ok(assignment.imbalance())
    })?;

    let store_bytes = segment_bytes(store_dir)?;
    let probe = probe_loader(store_dir, "obs/frame")?;
    let mem_available = mem_available();
    let sample = sample_rows(store_dir, "obs/frame", 256, rows_to_sample)?;

    let verify = verify_against_cat(store_dir, &store)?;
    Ok(ScalePoint {
        episodes,
        steps,
        record,
        info,
        list,
        loader: loader_seconds,
        partition,
        probe,
        sample,
        store_bytes,
        mem_available,
        verify,
    })
}

/// `Snapshot::verify` against reading every segment file through a 1 MiB buffer; both warm,
/// each side's best pass ([`best_passes`]).
fn verify_against_cat(store_dir: &Path, store: &Store) -> Result<Measurement> {
    let segments = store_dir.join("segments");
    let cat = || cat_segments(&segments);
    let bytes = cat()?;
    let verify = || -> Result<()> {
        let report = store.snapshot()?.verify()?;
        if report.problems.is_empty() {
            Ok(())
        } else {
            Err(BenchError::Mismatch(
                "verify found problems in a fresh store",
            ))
        }
    };
    verify()?;
    // Passes of a small store take well under a millisecond: the sides take turns until
    // each has run long enough for its best pass to be a stable figure.
    let [seconds, baseline_seconds] = best_passes(|side| {
        let start = Instant::now();
        match side {
            0 => verify()?,
            _ => {
                black_box(cat()?);
            }
        }
        Ok(start.elapsed().as_secs_f64())
    })?;
    Ok(Measurement {
        name: "verify",
        bytes,
        seconds,
        baseline: "cat of the segment files",
        baseline_seconds,
    })
}

/// Reads every file of `segments` (a store's `segments/`) through a 1 MiB buffer of its own,
/// as `cat` would: the floor verify is measured against. Returns the bytes read.
///
/// A fresh buffer each call: one kept across passes made this read about 5x slower here
/// (2.2 ms instead of 0.4 for a store of 1000 50-step episodes).
pub fn cat_segments(segments: &Path) -> Result<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let entries = std::fs::read_dir(segments).map_err(|e| BenchError::io(segments, e))?;
    for entry in entries {
        let path = entry.map_err(|e| BenchError::io(segments, e))?.path();
        let mut file = File::open(&path).map_err(|e| BenchError::io(&path, e))?;
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| BenchError::io(&path, e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            black_box(&buffer[..n]);
        }
    }
    Ok(total)
}

/// This process's resident anonymous memory (`RssAnon` of /proc/self/status), bytes; 0 where
/// there is no such file.
pub fn rss_anon() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Total bytes of the files in `store_dir/segments`.
fn segment_bytes(store_dir: &Path) -> Result<u64> {
    let segments = store_dir.join("segments");
    let entries = std::fs::read_dir(&segments).map_err(|e| BenchError::io(&segments, e))?;
    let mut total = 0;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(&segments, e))?;
        total += entry
            .metadata()
            .map_err(|e| BenchError::io(entry.path(), e))?
            .len();
    }
    Ok(total)
}

/// `MemAvailable` of /proc/meminfo, bytes; 0 where there is no such file.
pub fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// This process's major page faults so far (`majflt` of /proc/self/stat): faults that read
/// the disk, such as a mapped page not in the page cache. 0 where there is no such file.
pub fn major_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses: `majflt`
            // is the 12th field of the line, the 10th after the name.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(0)
}
