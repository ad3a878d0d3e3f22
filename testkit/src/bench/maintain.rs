//! Store maintenance: `merge` of two stores against `cp` + fsync of the same segment files,
//! and `compact` against reading, writing and fsyncing the same live bytes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use trajstore::{Codec, CompactOptions, EpisodeMeta, Store, StoreOptions};

use super::record::{pregenerated_frames, write_synth_steps};
use super::{BenchError, Measurement, Result};
use crate::synth::{SYNTH_ENV, synth_schema};

/// Shape of a maintenance benchmark: stores of about `store_bytes` of 128x128x3 raw frames in
/// episodes of `steps` steps.
#[derive(Clone, Debug)]
pub struct MaintainSpec {
    pub store_bytes: u64,
    pub steps: u32,
}

const FRAME: [u32; 3] = [128, 128, 3];

/// Merges two fresh stores of `spec.store_bytes` each into a new one (every source checked:
/// every checksum read; segments linked), against copying their segment files with `cp`'s
/// system call (`copy_file_range`) and an fsync per file. The best of `rounds` of each.
pub fn merge(dir: &Path, spec: &MaintainSpec, rounds: usize) -> Result<Measurement> {
    let sources = [dir.join("a"), dir.join("b")];
    for (i, s) in sources.iter().enumerate() {
        populate(s, spec, false, i as u32)?;
    }
    let files: Vec<PathBuf> = sources
        .iter()
        .map(|s| segment_files(s))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let bytes = files.iter().map(|f| len(f)).sum::<Result<u64>>()?;
    let (mut best, mut best_baseline) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        let out = dir.join(format!("out-{round}"));
        let start = Instant::now();
        trajstore::merge(&out, &sources)?;
        best = best.min(start.elapsed().as_secs_f64());
        remove(&out)?;
        let copy = dir.join(format!("copy-{round}"));
        best_baseline = best_baseline.min(cp_and_fsync(&files, &copy)?);
        remove(&copy)?;
    }
    Ok(Measurement {
        name: "merge 2 stores (checked, linked)",
        bytes,
        seconds: best,
        baseline: "cp + fsync of their segments",
        baseline_seconds: best_baseline,
    })
}

/// Compacts a fresh store of `spec.store_bytes` where every other recording was abandoned
/// after writing its frames (half the bytes dead), against reading the live bytes from its
/// segments, writing them to a new file and fsyncing it. `bytes` is the live bytes copied.
pub fn compact(dir: &Path, spec: &MaintainSpec, rounds: usize) -> Result<Measurement> {
    let (mut best, mut best_baseline, mut bytes) = (f64::MAX, f64::MAX, 0);
    for round in 0..rounds {
        let store = dir.join(format!("store-{round}"));
        populate(&store, spec, true, round as u32)?;
        // Abandoned recordings are never synced: flush them now, or the first timed side
        // would pay for their writeback.
        for f in segment_files(&store)? {
            File::open(&f)
                .and_then(|f| f.sync_all())
                .map_err(|e| BenchError::io(&f, e))?;
        }
        // The baseline first: compaction deletes the files it replaces.
        let dry = CompactOptions {
            dry_run: true,
            ..Default::default()
        };
        let live = trajstore::compact(&store, &dry)?.bytes_written;
        let copy = dir.join(format!("copy-{round}"));
        best_baseline = best_baseline.min(read_write_fsync(&segment_files(&store)?, live, &copy)?);
        std::fs::remove_file(&copy).map_err(|e| BenchError::io(&copy, e))?;
        let start = Instant::now();
        let report = trajstore::compact(&store, &CompactOptions::default())?;
        best = best.min(start.elapsed().as_secs_f64());
        if report.episodes_moved == 0 {
            return Err(BenchError::Mismatch("compaction moved nothing"));
        }
        bytes = report.bytes_written;
        // And after, from the compacted segments (the same live bytes), so both sides see
        // the machine before and after: the best of the two counts.
        best_baseline = best_baseline.min(read_write_fsync(&segment_files(&store)?, bytes, &copy)?);
        std::fs::remove_file(&copy).map_err(|e| BenchError::io(&copy, e))?;
        remove(&store)?;
    }
    Ok(Measurement {
        name: "compact (checked copy of live)",
        bytes,
        seconds: best,
        baseline: "read + write + fsync, same bytes",
        baseline_seconds: best_baseline,
    })
}

/// Records episodes of `spec.steps` steps until the store holds about `spec.store_bytes`;
/// with `abandon`, every other episode is written out (spilled) and dropped uncommitted.
fn populate(dir: &Path, spec: &MaintainSpec, abandon: bool, seed: u32) -> Result<()> {
    let options = StoreOptions {
        spill_bytes: 8 << 20,
        ..Default::default()
    };
    let store = Store::create_with(dir, options)?;
    let schema = synth_schema(FRAME, Codec::Raw)?;
    let frames = pregenerated_frames(FRAME, 32);
    let episode_bytes = u64::from(spec.steps + 1) * frames[0].len() as u64;
    let episodes = spec.store_bytes.div_ceil(episode_bytes).max(2);
    for e in 0..episodes {
        let mut w = store.begin_episode(EpisodeMeta::new("bench", SYNTH_ENV), &schema)?;
        write_synth_steps(&mut w, &frames, e as usize + seed as usize, spec.steps)?;
        if abandon && e % 2 == 1 {
            drop(w); // what a killed recorder leaves: spilled chunks nothing references
        } else {
            w.commit()?;
        }
    }
    Ok(())
}

fn segment_files(store: &Path) -> Result<Vec<PathBuf>> {
    let dir = store.join("segments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| BenchError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    Ok(files)
}

fn len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| BenchError::io(path, e))?
        .len())
}

fn remove(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| BenchError::io(dir, e))
}

/// What `cp -r` then `sync` of the files costs: `std::fs::copy` uses the same
/// `copy_file_range` as coreutils' `cp`; then every file is fsynced.
fn cp_and_fsync(files: &[PathBuf], to: &Path) -> Result<f64> {
    std::fs::create_dir_all(to).map_err(|e| BenchError::io(to, e))?;
    let start = Instant::now();
    for f in files {
        let dest = to.join(f.file_name().expect("a file name"));
        std::fs::copy(f, &dest).map_err(|e| BenchError::io(&dest, e))?;
        File::open(&dest)
            .and_then(|d| d.sync_all())
            .map_err(|e| BenchError::io(&dest, e))?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Reads `bytes` bytes from the files in order, writes them to `to` and fsyncs it.
fn read_write_fsync(files: &[PathBuf], bytes: u64, to: &Path) -> Result<f64> {
    let start = Instant::now();
    let mut out = File::create(to).map_err(|e| BenchError::io(to, e))?;
    let mut buf = vec![0u8; 8 << 20];
    let mut left = bytes;
    for f in files {
        let mut file = File::open(f).map_err(|e| BenchError::io(f, e))?;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file
                .read(&mut buf[..want])
                .map_err(|e| BenchError::io(f, e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| BenchError::io(to, e))?;
            left -= n as u64;
        }
    }
    out.sync_all().map_err(|e| BenchError::io(to, e))?;
    if left > 0 {
        return Err(BenchError::Mismatch(
            "the segments hold fewer bytes than compaction wrote",
        ));
    }
    Ok(start.elapsed().as_secs_f64())
}
