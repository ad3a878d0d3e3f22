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
pub use scale::{ScalePoint, ScaleSpec, major_faults, mem_available, rss_anon, scale};
pub use stats::{
    CombineCost, RecordingCost, StatsSchema, combine_cost, record_stats_store, recording_cost,
};

/// Timed rounds of each side, alternated so both see the same machine noise; the best of
/// each counts.
const ROUNDS: usize = 3;

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
