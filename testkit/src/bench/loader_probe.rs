//! What a trainer pays before its first batch, measured in a fresh process: the time of
//! `Loader::new`, `Sampler::new` and the first shuffled batch, and the anonymous memory
//! (`RssAnon`) they leave resident.
//!
//! A fresh process because an allocator keeps and reuses what a long-running benchmark freed
//! before: measured in the benchmark's own process, the loader's memory would hide in pages
//! an earlier measurement left behind. The parent runs `std::env::current_exe()` with
//! [`LOADER_PROBE_ENV`] set to `DIR FIELD`; an executable that offers
//! [`probe_loader`] calls [`run_if_loader_probe`] first thing in `main`, which in such a
//! child measures, prints one line and exits, and in any other process returns at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use trajstore::loader::{Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
use trajstore::{Query, Store};

use super::{BenchError, Result, major_faults, rss_anon};

/// Set in a probe process: `FIELD` (the rest of the value) and [`LOADER_PROBE_DIR_ENV`].
pub const LOADER_PROBE_ENV: &str = "TRAJSTORE_TESTKIT_LOADER_PROBE";
/// Set in a probe process: the store directory.
pub const LOADER_PROBE_DIR_ENV: &str = "TRAJSTORE_TESTKIT_LOADER_PROBE_DIR";

/// Batch size of the probe's first batch.
const BATCH: usize = 256;

/// What one probe measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoaderProbe {
    /// `RssAnon` once the store is open and a snapshot taken, before the loader: bytes.
    pub open_anon: u64,
    /// `RssAnon` after `Loader::new`, `Sampler::new` and the first shuffled batch: bytes.
    pub anon: u64,
    /// `Loader::new` (one rank of one, every episode), seconds.
    pub loader: f64,
    /// `Sampler::new` (256 single steps of the field, shuffled), seconds.
    pub sampler: f64,
    /// The first batch, seconds.
    pub first_batch: f64,
    /// Major page faults (reads from disk) from `Loader::new` to the first batch in hand: 0
    /// when the setup ran from the page cache.
    pub major_faults: u64,
}

impl LoaderProbe {
    /// What the loader and its first batch added to the open store's anonymous memory.
    pub fn added_anon(&self) -> u64 {
        self.anon.saturating_sub(self.open_anon)
    }

    /// From `Loader::new` to the first batch in hand, seconds.
    pub fn setup(&self) -> f64 {
        self.loader + self.sampler + self.first_batch
    }

    fn to_line(self) -> String {
        format!(
            "probe {} {} {} {} {} {}",
            self.open_anon,
            self.anon,
            self.loader,
            self.sampler,
            self.first_batch,
            self.major_faults
        )
    }

    fn parse(line: &str) -> Option<LoaderProbe> {
        let words: Vec<&str> = line.strip_prefix("probe ")?.split(' ').collect();
        let [open_anon, anon, loader, sampler, first_batch, major_faults] = words[..] else {
            return None;
        };
        Some(LoaderProbe {
            open_anon: open_anon.parse().ok()?,
            anon: anon.parse().ok()?,
            loader: loader.parse().ok()?,
            sampler: sampler.parse().ok()?,
            first_batch: first_batch.parse().ok()?,
            major_faults: major_faults.parse().ok()?,
        })
    }
}

/// In a probe process started by [`probe_loader`]: measures, prints the line and exits
/// (status 0, or 1 with the error on stderr). Anywhere else: returns.
pub fn run_if_loader_probe() {
    let Some(field) = std::env::var_os(LOADER_PROBE_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(LOADER_PROBE_DIR_ENV).unwrap_or_default());
    let code = match measure(&dir, &field.to_string_lossy()) {
        Ok(probe) => {
            println!("{}", probe.to_line());
            0
        }
        Err(e) => {
            eprintln!("loader probe: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The body of a probe process.
fn measure(dir: &Path, field: &str) -> Result<LoaderProbe> {
    let store = Store::open_read_only(dir)?;
    drop(store.snapshot()?);
    let open_anon = rss_anon();
    let faults = major_faults();
    let start = Instant::now();
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 0))?;
    let loader_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], BATCH, Order::Shuffle);
    let mut sampler = Sampler::new(&loader, spec)?;
    let sampler_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut batch = Batch::new();
    if !sampler.next_into(&mut batch)? {
        return Err(BenchError::Mismatch("the store has no step to sample"));
    }
    let first_batch = start.elapsed().as_secs_f64();
    let anon = rss_anon();
    let major_faults = major_faults().saturating_sub(faults);
    std::hint::black_box((&sampler, &batch, &loader));
    Ok(LoaderProbe {
        open_anon,
        anon,
        loader: loader_seconds,
        sampler: sampler_seconds,
        first_batch,
        major_faults,
    })
}

/// Runs a probe of the store at `dir` in a fresh process of the current executable (which
/// must call [`run_if_loader_probe`] first thing in `main`).
pub fn probe_loader(dir: &Path, field: &str) -> Result<LoaderProbe> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("(current executable)", e))?;
    let output = Command::new(&exe)
        .env(LOADER_PROBE_ENV, field)
        .env(LOADER_PROBE_DIR_ENV, dir)
        .output()
        .map_err(|e| BenchError::io(&exe, e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    match LoaderProbe::parse(line) {
        Some(probe) if output.status.success() => Ok(probe),
        _ => Err(BenchError::Probe(format!(
            "the process ({}) did not report: status {}, stdout {:?}, stderr {:?} \
             (does its main call run_if_loader_probe?)",
            exe.display(),
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}
