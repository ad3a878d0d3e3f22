use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use trajstore::bench::{
    ConcurrentSpec, Measurement, RecordSpec, RecorderRun, Recorders, checked, record,
    record_concurrently, recorder, sample, scan, window,
};
use trajstore::{Codec, Store};

use super::out;
use crate::args::BenchMode;

pub fn run(dir: Option<&Path>, mode: BenchMode, field: &str, json: bool) -> Result<ExitCode> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    if mode == BenchMode::Concurrent {
        return concurrent(temp.path(), json);
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
        BenchMode::Record | BenchMode::Concurrent => {}
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
    for (mode, m) in &results {
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

/// Environment variable naming the executable that runs this command line, when the process
/// is not that executable itself (the Python package's console script sets it).
pub(crate) const SELF_COMMAND_VAR: &str = "TRAJSTORE_SELF_COMMAND";

fn concurrent(temp: &Path, json: bool) -> Result<ExitCode> {
    // Recorder processes run this command line again. Inside the Python package the process
    // is the interpreter, so the `trajstore` console script names itself in this variable.
    let exe = match std::env::var_os(SELF_COMMAND_VAR) {
        Some(exe) => std::path::PathBuf::from(exe),
        None => std::env::current_exe().context("cannot find the trajstore binary")?,
    };
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
                exe: Some(exe.clone()),
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

/// `trajstore bench-writer`: one recorder process of the concurrent benchmark.
pub fn writer(
    dir: &Path,
    user: &str,
    episodes: u32,
    steps: u32,
    frame: &str,
    codec: Codec,
) -> Result<ExitCode> {
    let spec = RecordSpec {
        episodes,
        steps,
        frame: super::synth::parse_frame(frame)?,
        codec,
    };
    let store = Store::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let commit_us = recorder(&store, &spec, user, || {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
        // The start signal: the parent closes our stdin.
        std::io::stdin().read_to_end(&mut Vec::new())?;
        Ok(())
    })?;
    let run = RecorderRun {
        commit_us,
        stats: store.commit_stats(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(run.to_lines().as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
