//! Loader read benchmarks: `cargo bench --bench loader [-- STORE_DIR]`. Without a store, records
//! a small synthetic one (128x128x3 raw frames) into a temporary directory. Prints each
//! measurement as a ratio against the plain-mmap floor measured in the same run.

use std::time::Instant;

use trajstore::loader::{ReplayEnv, ReplayOptions, Selection};
use trajstore::{Error, Query, ReadError, Store};
use trajstore_testkit::bench::{BenchError, sample, scan, window};
use trajstore_testkit::synth::{SynthConfig, record};

fn main() -> Result<(), BenchError> {
    let temp = tempfile::tempdir().map_err(|e| BenchError::Io {
        path: std::env::temp_dir(),
        source: e,
    })?;
    let dir = match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(dir) => dir.into(),
        None => {
            let store = trajstore::Store::create(temp.path())?;
            let config = SynthConfig {
                episodes: 16,
                min_steps: 100,
                max_steps: 200,
                ..SynthConfig::default()
            };
            record(&store, &config, |_| {})?;
            temp.path().to_owned()
        }
    };
    for m in [
        scan(&dir, "obs/frame")?,
        sample(&dir, "obs/frame", 256)?,
        window(&dir, "obs/frame", 16, 16)?,
    ] {
        println!("{}", m.line());
    }
    // Replay env: every step of every episode, one thread (DIAMBRA's loader: ~1,500 steps/s).
    let store = Store::open_read_only(&dir)?;
    let selection = Selection::new(Query::default(), 1, 0, 0);
    let mut env = ReplayEnv::new(&store, &selection, ReplayOptions::default())?;
    let (start, mut steps) = (Instant::now(), 0u64);
    loop {
        match env.reset() {
            Ok(_) => {}
            Err(Error::Read(ReadError::EndOfData { .. })) => break,
            Err(e) => return Err(e.into()),
        }
        loop {
            let t = env.step(&())?;
            steps += 1;
            if t.terminated || t.truncated {
                break;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "replay env (1 thread)        {:>9.0} steps/s   ({steps} steps)",
        steps as f64 / seconds
    );
    Ok(())
}
