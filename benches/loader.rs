//! Loader read benchmarks: `cargo bench --bench loader [-- STORE_DIR]`. Without a store, records
//! a small synthetic one (128x128x3 raw frames) into a temporary directory. Prints each
//! measurement as a ratio against the plain-mmap floor measured in the same run.

use trajstore::bench::{sample, scan, window};
use trajstore::synth::{SynthConfig, record};

fn main() -> trajstore::Result<()> {
    let temp = tempfile::tempdir().map_err(|e| trajstore::Error::Io {
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
    Ok(())
}
