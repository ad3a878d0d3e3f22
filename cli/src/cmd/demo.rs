use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use trajstore::{Query, Store};
use trajstore_testkit::synth::{SynthConfig, record};

use super::{human_bytes, out};

/// The README's main job: record demonstrations for a few users, query one user's episodes
/// from the index, read every frame back zero-copy, verify the store, and report speeds.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where to record (a temporary directory, removed afterwards, by default).
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    users: u32,
    #[arg(long, default_value_t = 8)]
    episodes: u64,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let DemoArgs {
        dir,
        users,
        episodes,
    } = args;
    let dir = dir.as_deref();
    let temp;
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().join("demo-store")
        }
    };
    out(format!("trajstore demo: recording into {}", dir.display()))?;
    let store = Store::create(&dir)
        .with_context(|| format!("cannot create a store at {}", dir.display()))?;

    let start = Instant::now();
    let mut recorded_steps = 0u64;
    for u in 0..users {
        let config = SynthConfig {
            user: format!("player{u}"),
            episodes,
            seed: u64::from(u),
            writers: 2,
            ..SynthConfig::default()
        };
        let done = record(&store, &config, |_| {})?;
        recorded_steps += done.iter().map(|r| u64::from(r.steps)).sum::<u64>();
        out(format!(
            "  recorded {} episodes for {:?} ({} steps)",
            done.len(),
            config.user,
            done.iter().map(|r| r.steps).sum::<u32>()
        ))?;
    }
    let record_s = start.elapsed().as_secs_f64();
    let stats = store.commit_stats();

    let snapshot = store.snapshot()?;
    let query_start = Instant::now();
    let mine = snapshot.episodes(&Query::default().user("player0"))?;
    let query_us = query_start.elapsed().as_secs_f64() * 1e6;
    ensure!(
        mine.len() as u64 == episodes,
        "expected {episodes} episodes of player0, found {}",
        mine.len()
    );
    out(format!(
        "  queried player0: {} episodes, {} steps, returns {:.1}..{:.1}, in {:.0} us (index only)",
        mine.len(),
        mine.iter().map(|e| u64::from(e.steps())).sum::<u64>(),
        mine.iter()
            .map(|e| e.total_return())
            .fold(f64::INFINITY, f64::min),
        mine.iter()
            .map(|e| e.total_return())
            .fold(f64::NEG_INFINITY, f64::max),
        query_us
    ))?;

    let all = snapshot.episodes(&Query::default())?;
    let read_start = Instant::now();
    let (mut frames, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    for e in &all {
        let field = snapshot.field(e, "obs/frame")?;
        let data = field
            .contiguous()?
            .context("synthetic raw frames are one contiguous chunk")?;
        sum = sum.wrapping_add(trajstore_testkit::bench::touch(&data));
        frames += field.len() as u64;
        bytes += data.len() as u64;
    }
    let read_s = read_start.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let report = snapshot.verify()?;
    ensure!(
        report.problems.is_empty(),
        "verify found problems: {:?}",
        report.problems
    );

    out(format!(
        "  record: {} episodes, {} steps, {} of frames in {:.2} s = {:.0} MB/s ({:.1} episodes per durable index commit)",
        all.len(),
        recorded_steps,
        human_bytes(bytes),
        record_s,
        bytes as f64 / record_s / 1e6,
        stats.episodes as f64 / stats.transactions.max(1) as f64
    ))?;
    out(format!(
        "  read:   {frames} frames ({}) as zero-copy map slices in {:.3} s = {:.0} MB/s",
        human_bytes(bytes),
        read_s,
        bytes as f64 / read_s / 1e6
    ))?;
    out(format!(
        "  verify: {} episodes, {} chunks, every checksum ok",
        report.episodes, report.chunks
    ))?;
    out("done: try `trajstore ls DIR --user player0`, `trajstore show DIR 1`, `trajstore bench`")?;
    Ok(ExitCode::SUCCESS)
}
