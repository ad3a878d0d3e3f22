//! Benchmark routines shared by `testkit/benches/` and `trajstore bench`. Every figure is a
//! ratio against a baseline measured in the same run on the same bytes, because shared
//! machines are noisy.

mod checked;
mod concurrent;
mod curate;
mod error;
pub mod loader_probe;
mod maintain;
mod read;
mod record;
pub mod recorder_process;
mod scale;
mod stats;

pub use checked::checked;
pub use concurrent::{
    ConcurrentReport, ConcurrentSpec, RecorderRun, Recorders, record_concurrently,
};
pub use curate::{CurateCost, curate};
pub use error::{BenchError, Result};
pub use loader_probe::{LoaderProbe, probe_loader};
pub use maintain::{MaintainSpec, compact, merge};
pub use read::{Gathered, sample, sample_rows, scan, window};
pub use record::{Commit, RecordSpec, episode_raw_bytes, pregenerated_frames, record, recorder};
pub use scale::{
    ScalePoint, ScaleSpec, cat_segments, major_faults, mem_available, rss_anon, scale,
};
pub use stats::{
    CombineCost, RecordingCost, StatsSchema, combine_cost, record_stats_store, recording_cost,
};

/// Timed rounds of each side, alternated so both see the same machine noise; the best of
/// each counts.
const ROUNDS: usize = 3;

/// Seconds each side of [`best_passes`] runs for at least: a pass of a small store takes
/// about 2 ms, where one timer interrupt, page fault or preemption by another process moves
/// a best of three by half; a hundred passes and more make the best one a stable figure.
const MIN_TIMED_SECONDS: f64 = 0.2;

/// The seconds of the fastest pass of each of `N` sides: `pass(side)` runs one timed pass of
/// `side` and returns its seconds. The sides take turns until every side has run for
/// [`MIN_TIMED_SECONDS`] and at least [`ROUNDS`] passes, so that all of them see the same
/// drift of the machine's speed and get as many passes; each round starts one side further
/// on, so that no side always runs just after the same other one (a pass on a thread pool
/// leaves its threads spinning for a moment on the cores the next pass runs on).
///
/// The best pass rather than the median: on a machine shared with other work, the median of
/// 2 ms passes still moved by a third from run to run (a busy neighbour slows some passes of
/// either side, and not always the same share), the best by a few percent.
fn best_passes<const N: usize>(mut pass: impl FnMut(usize) -> Result<f64>) -> Result<[f64; N]> {
    let mut best = [f64::MAX; N];
    let mut timed = [0.0; N];
    let mut round = 0;
    while round < ROUNDS || timed.iter().any(|&t| t < MIN_TIMED_SECONDS) {
        for k in 0..N {
            let side = (round + k) % N;
            let seconds = std::hint::black_box(pass(side)?);
            best[side] = best[side].min(seconds);
            timed[side] += seconds;
        }
        round += 1;
    }
    Ok(best)
}

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
            "{:<46} {:>9.1} MB/s   {:<34} {:>9.1} MB/s   ratio {:.2}",
            self.name,
            self.mb_per_s(),
            self.baseline,
            self.baseline_mb_per_s(),
            self.ratio()
        )
    }
}

/// Touches every byte (sums 8-byte words): a read that runs at memory bandwidth.
pub fn touch(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail: u64 = words.remainder().iter().map(|&b| u64::from(b)).sum();
    words.fold(tail, |acc, w| {
        acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")))
    })
}
