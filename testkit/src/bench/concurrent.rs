//! Concurrent recording: recorders as threads sharing one handle or as processes, timed
//! together, against one plain writer of the same bytes.

use std::path::Path;
use std::time::Instant;

use trajstore::{Codec, CommitStats, Store};

use super::record::{Commit, episode_raw_bytes, plain_write, pregenerated_frames, recorder};
use super::{BenchError, Measurement, RecordSpec, Result, recorder_process};

/// How concurrent recorders run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorders {
    /// Threads of one process sharing one [`Store`] handle (group commit batches them).
    Threads,
    /// Separate OS processes, each with its own handle (redb's cross-process writer lock
    /// serializes their commits): the current executable run again, whose `main` must call
    /// [`recorder_process::run_if_recorder_process`] first.
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

/// A concurrent recording benchmark: `writers` recorders, each recording `per_writer` and
/// committing as `commit` says.
#[derive(Clone, Debug)]
pub struct ConcurrentSpec {
    pub writers: usize,
    pub recorders: Recorders,
    pub per_writer: RecordSpec,
    pub commit: Commit,
}

impl ConcurrentSpec {
    /// `episodes` episodes of `steps` raw `frame`s shared out evenly among `writers`
    /// recorders (each records `episodes / writers`; a remainder is not recorded), each
    /// waiting for its commits.
    pub fn sharing(
        episodes: u32,
        writers: usize,
        recorders: Recorders,
        steps: u32,
        frame: [u32; 3],
    ) -> ConcurrentSpec {
        ConcurrentSpec {
            writers,
            recorders,
            per_writer: RecordSpec {
                episodes: episodes / writers as u32,
                steps,
                frame,
                codec: Codec::Raw,
            },
            commit: Commit::Wait,
        }
    }

    /// The same, each recorder committing as `commit` says.
    pub fn committing(self, commit: Commit) -> ConcurrentSpec {
        ConcurrentSpec { commit, ..self }
    }
}

/// What one recorder (thread or process) measured.
#[derive(Clone, Debug, Default)]
pub struct RecorderRun {
    /// Duration of each `commit()` call, microseconds.
    pub commit_us: Vec<u64>,
    /// The commit counters of the recorder's store handle (a process's handle; for threads,
    /// the shared handle's, reported once).
    pub stats: CommitStats,
}

impl RecorderRun {
    /// The text a recorder process prints: `commit_us A B C ...` and `stats T E`.
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
    pub stats: CommitStats,
    /// Commit latencies the recorders reported (one per episode).
    pub commits: usize,
    /// The same plain writes from `writers` threads at once, each to its own file with one
    /// fdatasync per episode: how far the disk itself scales with that many writers.
    pub plain_writers_seconds: f64,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub commit_max_ms: f64,
}

impl ConcurrentReport {
    /// Throughput of the plain writers together against the one plain writer (the floor's
    /// own scaling, to set beside the recorders').
    pub fn plain_scaling(&self) -> f64 {
        self.measurement.baseline_seconds / self.plain_writers_seconds
    }

    /// Episodes per durable index transaction.
    pub fn episodes_per_commit(&self) -> f64 {
        self.stats.episodes as f64 / self.stats.transactions.max(1) as f64
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{} {:<9} {:>8.1} MB/s  plain {:>8.1} MB/s  ratio {:.2}  plain x{} writers {:.2}  episodes/index-commit {:>5.2}  commit p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
            self.writers,
            self.recorders.name(),
            self.measurement.mb_per_s(),
            self.measurement.baseline_mb_per_s(),
            self.measurement.ratio(),
            self.writers,
            self.plain_scaling(),
            self.episodes_per_commit(),
            self.commit_p50_ms,
            self.commit_p99_ms,
            self.commit_max_ms,
        )
    }
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
                            let commit_us = recorder(store, per, &user, spec.commit, || {
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
            drop(Store::create(&store_dir)?);
            recorder_process::record_in_processes(&store_dir, spec)?
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
        .fold(CommitStats::default(), |a, r| CommitStats {
            transactions: a.transactions + r.stats.transactions,
            episodes: a.episodes + r.stats.episodes,
        });

    let total = RecordSpec {
        episodes: per.episodes * spec.writers as u32,
        ..per.clone()
    };
    let frames = pregenerated_frames(per.frame, 32);
    let bytes = u64::from(total.episodes) * episode_raw_bytes(frames[0].len(), per.steps) as u64;
    let plain = dir.join("plain.bin");
    let baseline_seconds = plain_write(&plain, &frames, &total)?;
    std::fs::remove_file(&plain).map_err(|e| BenchError::io(&plain, e))?;
    let plain_writers_seconds = plain_writers(dir, &frames, per, spec.writers)?;
    std::fs::remove_dir_all(&store_dir).map_err(|e| BenchError::io(&store_dir, e))?;
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
        commits: commit_us.len(),
        plain_writers_seconds,
        commit_p50_ms: pct(0.50),
        commit_p99_ms: pct(0.99),
        commit_max_ms: pct(1.0),
    })
}

/// `writers` threads each writing `per` to its own plain file (one fdatasync per episode),
/// started together; seconds until the last one finished.
fn plain_writers(dir: &Path, frames: &[Vec<u8>], per: &RecordSpec, writers: usize) -> Result<f64> {
    let paths: Vec<_> = (0..writers)
        .map(|w| dir.join(format!("plain-{w}.bin")))
        .collect();
    let start = std::sync::Barrier::new(writers + 1);
    let seconds = std::thread::scope(|s| -> Result<f64> {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    plain_write(path, frames, per)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for h in handles {
            h.join().expect("plain writer thread panicked")?;
        }
        Ok(began.elapsed().as_secs_f64())
    })?;
    for path in &paths {
        std::fs::remove_file(path).map_err(|e| BenchError::io(path, e))?;
    }
    Ok(seconds)
}
