//! `trajstore partition`: what each rank serves in one epoch, computed exactly as the
//! loader computes it (same selection, same cutoffs, same partition contract), over one
//! store or several shards of one dataset (`schema/partition.md` §7).

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use trajstore::EpisodeId;
use trajstore::loader::{Assignment, Shard, select_shards, split_key};

use super::filters::EpisodeFilters;
use super::{open_shards, out};

#[derive(clap::Args, Debug)]
pub struct PartitionArgs {
    /// One store, or several shards of one dataset: every rank must list them in one order.
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    #[arg(long)]
    world_size: u32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    #[command(flatten)]
    filters: EpisodeFilters,
    /// Each store's cutoff, in the order of the stores (default: each one's latest commit).
    #[arg(long, value_delimiter = ',')]
    cutoff: Vec<u64>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: PartitionArgs) -> Result<ExitCode> {
    let PartitionArgs {
        dirs,
        world_size,
        seed,
        epoch,
        filters,
        cutoff,
        json,
    } = args;
    if world_size == 0 {
        bail!("--world-size must be at least 1");
    }
    if !cutoff.is_empty() && cutoff.len() != dirs.len() {
        bail!(
            "--cutoff gives {} cutoff(s) for {} store(s): give one per store, in their order",
            cutoff.len(),
            dirs.len()
        );
    }
    let shards: Vec<Shard> = open_shards(&dirs)?
        .iter()
        .enumerate()
        .map(|(i, store)| match cutoff.get(i) {
            Some(&c) => Shard::new(store).cutoff(EpisodeId(c)),
            None => Shard::new(store),
        })
        .collect();
    let selected = select_shards(&shards, &filters.query()?)?;
    let count = shards.len();
    // One store: episodes by id, as ever. Several: by (shard, id).
    let episode_json = |key: u64| match split_key(count, key) {
        (_, id) if count == 1 => serde_json::json!(id),
        (shard, id) => serde_json::json!([shard, id]),
    };
    // A line lists a rank's every episode: digits by itoa, not the formatting machinery
    // (at 100k episodes that was a tenth of the command).
    let mut digits = itoa::Buffer::new();
    let mut episode_text = |line: &mut String, key: u64| match split_key(count, key) {
        (_, id) if count == 1 => line.push_str(digits.format(id)),
        (shard, id) => {
            line.push_str(digits.format(shard));
            line.push(':');
            line.push_str(digits.format(id));
        }
    };
    let assignment = Assignment::new(&selected.set, world_size, seed, epoch)?;
    let imbalance = assignment.imbalance();
    let cutoffs: Vec<u64> = selected.stamps.iter().map(|s| s.cutoff).collect();
    if json {
        let ranks: Vec<_> = assignment
            .ranks()
            .iter()
            .enumerate()
            .map(|(rank, share)| {
                serde_json::json!({
                    "rank": rank,
                    "episodes": share.ids().map(episode_json).collect::<Vec<_>>(),
                    "steps": share.steps,
                })
            })
            .collect();
        // serde_json cannot print infinity (a rank with no steps): print null then.
        let imbalance = serde_json::Number::from_f64(imbalance).map(serde_json::Value::Number);
        let mut doc = serde_json::json!({"ranks": ranks, "imbalance": imbalance});
        if count > 1 {
            doc["shards"] = serde_json::to_value(&selected.stamps)?;
        }
        out(doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let below = match cutoffs.as_slice() {
        [one] => format!("below cutoff {one}"),
        many => format!(
            "in {} shards below cutoffs {}",
            many.len(),
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    out(format!(
        "{} episodes, {} steps {below}; world size {world_size}, seed {seed}, epoch {epoch}",
        selected.set.len(),
        selected.set.total_steps(),
    ))?;
    for (rank, share) in assignment.ranks().iter().enumerate() {
        let mut line = String::with_capacity(40 + 8 * share.len());
        let _ = write!(
            line,
            "rank {rank:>3}: {:>6} episodes {:>10} steps  ",
            share.len(),
            share.steps,
        );
        for key in share.ids() {
            line.push(' ');
            episode_text(&mut line, key);
        }
        out(line)?;
    }
    out(format!(
        "imbalance (max/min steps): {imbalance:.6}   (max-min)/mean: {:.6}",
        assignment.relative_imbalance()
    ))?;
    Ok(ExitCode::SUCCESS)
}
