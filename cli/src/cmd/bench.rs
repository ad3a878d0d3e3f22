use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::ValueEnum;
use trajstore::Codec;
use trajstore_testkit::bench::{
    ConcurrentSpec, MaintainSpec, Measurement, RecordSpec, Recorders, checked, compact, merge,
    record, record_concurrently, sample, scan, window,
};

use super::out;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Store to scan (a temporary store is recorded when absent).
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BenchMode::All)]
    mode: BenchMode,
    /// Field to scan.
    #[arg(long, default_value = "obs/frame")]
    field: String,
    #[arg(long)]
    json: bool,
    /// Size of each store `merge` and `compact` build (MB).
    #[arg(long, default_value_t = 1024)]
    store_mb: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchMode {
    /// Concurrent recording: 1, 2, 4 writers as threads and as processes.
    // The processes are this executable run again (see `main`).
    Concurrent,
    /// Recording (into a temporary store), then a scan.
    All,
    /// Recording throughput only.
    Record,
    /// Full scan of one field.
    Scan,
    /// Random batches of 256 steps of one field (the loader's sampler).
    Sample,
    /// Random windows of 16 consecutive steps of one field (16 windows per batch).
    Window,
    /// Checked reads against `verify_reads: false`: a first scan and a first loader epoch
    /// (every chunk's checksum verified on first read), then again with the checks remembered.
    Checked,
    /// `merge` of two fresh stores of --store-mb each against cp + fsync of their segments.
    Merge,
    /// `compact` of a fresh store of --store-mb, half of it abandoned recordings, against
    /// read + write + fsync of the live bytes.
    Compact,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let BenchArgs {
        dir,
        mode,
        field,
        json,
        store_mb,
    } = args;
    let (dir, field) = (dir.as_deref(), field.as_str());
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    if mode == BenchMode::Concurrent {
        return concurrent(temp.path(), json);
    }
    if matches!(mode, BenchMode::Merge | BenchMode::Compact) {
        let spec = MaintainSpec {
            store_bytes: store_mb << 20,
            steps: 250,
        };
        let (name, m) = if mode == BenchMode::Merge {
            ("merge", merge(temp.path(), &spec, 3)?)
        } else {
            ("compact", compact(temp.path(), &spec, 2)?)
        };
        return print(&[(name, m)], json);
    }
    let mut results: Vec<(&str, Measurement)> = Vec::new();
    let recorded = temp.path().join("store");
    if matches!(mode, BenchMode::All | BenchMode::Record) || dir.is_none() {
        let spec = RecordSpec {
            episodes: 40,
            steps: 250,
            frame: [128, 128, 3],
            codec: Codec::Raw,
        };
        results.push(("record", record(temp.path(), &spec)?));
    }
    let store = dir.unwrap_or(&recorded);
    let read = |what: &str| format!("cannot {what} {}", store.display());
    match mode {
        BenchMode::Record | BenchMode::Concurrent | BenchMode::Merge | BenchMode::Compact => {}
        BenchMode::All | BenchMode::Scan => {
            results.push(("scan", scan(store, field).with_context(|| read("scan"))?));
        }
        BenchMode::Sample => {
            results.push((
                "sample",
                sample(store, field, 256).with_context(|| read("sample"))?,
            ));
        }
        BenchMode::Window => {
            let m = window(store, field, 16, 16).with_context(|| read("window"))?;
            results.push(("window", m));
        }
        BenchMode::Checked => {
            for m in checked(store, field).with_context(|| read("bench checked reads of"))? {
                results.push(("checked", m));
            }
        }
    }
    print(&results, json)
}

fn print(results: &[(&str, Measurement)], json: bool) -> Result<ExitCode> {
    for (mode, m) in results {
        if json {
            out(
                serde_json::json!({"mode": mode, "name": m.name, "bytes": m.bytes, "seconds": m.seconds,
                "floor": m.baseline, "floor_seconds": m.baseline_seconds, "ratio": m.ratio()}),
            )?;
        } else {
            out(m.line())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn concurrent(temp: &Path, json: bool) -> Result<ExitCode> {
    for recorders in [Recorders::Threads, Recorders::Processes] {
        for writers in [1, 2, 4] {
            let spec = ConcurrentSpec {
                writers,
                recorders,
                per_writer: RecordSpec {
                    episodes: 128 / writers as u32,
                    steps: 100,
                    frame: [84, 84, 3],
                    codec: Codec::Raw,
                },
            };
            let r = record_concurrently(temp, &spec)?;
            if json {
                out(
                    serde_json::json!({"mode": "concurrent", "recorders": recorders.name(),
                    "writers": writers, "bytes": r.measurement.bytes, "seconds": r.measurement.seconds,
                    "floor_seconds": r.measurement.baseline_seconds, "ratio": r.measurement.ratio(),
                    "episodes": r.stats.episodes, "index_commits": r.stats.transactions,
                    "commit_p50_ms": r.commit_p50_ms, "commit_p99_ms": r.commit_p99_ms,
                    "commit_max_ms": r.commit_max_ms}),
                )?;
            } else {
                out(r.line())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
