//! `trajstore partition`: what each rank serves in one epoch, computed exactly as the
//! loader computes it (same selection, same cutoff, same partition contract).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use trajstore::loader::{Assignment, select};

use super::filters::EpisodeFilters;
use super::{open_read, out};

#[derive(clap::Args, Debug)]
pub struct PartitionArgs {
    pub dir: PathBuf,
    #[arg(long)]
    world_size: u32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    #[command(flatten)]
    filters: EpisodeFilters,
    #[arg(long)]
    json: bool,
}

pub fn run(args: PartitionArgs) -> Result<ExitCode> {
    let PartitionArgs {
        dir,
        world_size,
        seed,
        epoch,
        filters,
        json,
    } = args;
    let dir = dir.as_path();
    if world_size == 0 {
        bail!("--world-size must be at least 1");
    }
    let store = open_read(dir)?;
    let snapshot = store.snapshot()?;
    let selected = select(&snapshot, &filters.query()?)?;
    let assignment = Assignment::new(&selected.set, world_size, seed, epoch)?;
    let imbalance = assignment.imbalance();
    if json {
        let ranks: Vec<_> = assignment
            .ranks()
            .iter()
            .enumerate()
            .map(|(rank, share)| {
                serde_json::json!({
                    "rank": rank,
                    "episodes": share.ids().collect::<Vec<_>>(),
                    "steps": share.steps,
                })
            })
            .collect();
        // serde_json cannot print infinity (a rank with no steps): print null then.
        let imbalance = serde_json::Number::from_f64(imbalance).map(serde_json::Value::Number);
        out(serde_json::json!({"ranks": ranks, "imbalance": imbalance}))?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "{} episodes, {} steps below cutoff {}; world size {world_size}, seed {seed}, epoch {epoch}",
        selected.set.len(),
        selected.set.total_steps(),
        selected.cutoff
    ))?;
    for (rank, share) in assignment.ranks().iter().enumerate() {
        let ids: Vec<String> = share.ids().map(|id| id.to_string()).collect();
        out(format!(
            "rank {rank:>3}: {:>6} episodes {:>10} steps   {}",
            share.len(),
            share.steps,
            ids.join(" ")
        ))?;
    }
    out(format!(
        "imbalance (max/min steps): {imbalance:.6}   (max-min)/mean: {:.6}",
        assignment.relative_imbalance()
    ))?;
    Ok(ExitCode::SUCCESS)
}
