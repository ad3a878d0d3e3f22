use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use trajstore::Codec;
use trajstore::bench::{Measurement, RecordSpec, record, scan};

use super::out;
use crate::args::BenchMode;

pub fn run(dir: Option<&Path>, mode: BenchMode, field: &str, json: bool) -> Result<ExitCode> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut results: Vec<(&str, Measurement)> = Vec::new();
    let recorded = temp.path().join("store");
    if mode != BenchMode::Scan || dir.is_none() {
        let spec = RecordSpec {
            episodes: 40,
            steps: 250,
            frame: [128, 128, 3],
            codec: Codec::Raw,
        };
        results.push(("record", record(temp.path(), &spec)?));
    }
    if mode != BenchMode::Record {
        let store = dir.unwrap_or(&recorded);
        results.push((
            "scan",
            scan(store, field).with_context(|| format!("cannot scan {}", store.display()))?,
        ));
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
