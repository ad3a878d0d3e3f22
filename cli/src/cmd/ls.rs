use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::{Outcome, Query};

use super::open_shards;
use crate::json::{episode_json, timestamp};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// One store, or several shards of one dataset (listed in this order, with a shard column).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    #[arg(long)]
    user: Vec<String>,
    #[arg(long)]
    env: Vec<String>,
    #[arg(long)]
    tag: Vec<String>,
    /// terminated, truncated or interrupted.
    #[arg(long)]
    outcome: Vec<String>,
    #[arg(long)]
    min_return: Option<f64>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: LsArgs) -> Result<ExitCode> {
    let LsArgs {
        dirs,
        user: users,
        env: envs,
        tag: tags,
        outcome: outcomes,
        min_return,
        json,
    } = args;
    let outcomes = outcomes
        .iter()
        .map(|o| o.parse::<Outcome>())
        .collect::<Result<_, _>>()?;
    let stores = open_shards(&dirs)?;
    let sharded = stores.len() > 1;
    let query = Query {
        users,
        envs,
        tags,
        outcomes,
        min_return,
        ..Default::default()
    };
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json {
        let shard = if sharded { "shard  " } else { "" };
        writeln!(
            lines,
            "{shard}{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} started",
            "episode", "user", "env", "steps", "return", "outcome"
        )?;
    }
    for (shard, store) in stores.iter().enumerate() {
        for e in &store.snapshot()?.episodes(&query)? {
            if json {
                let mut line = episode_json(e);
                if sharded {
                    line["shard"] = shard.into();
                    line["store"] = dirs[shard].display().to_string().into();
                }
                writeln!(lines, "{line}")?;
            } else {
                let shard = if sharded {
                    format!("{shard:>5}  ")
                } else {
                    String::new()
                };
                writeln!(
                    lines,
                    "{shard}{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
                    e.id(),
                    e.user(),
                    e.env(),
                    e.steps(),
                    e.total_return(),
                    e.outcome().name(),
                    timestamp(e.started_at_us())
                )?;
            }
        }
    }
    lines.flush()?;
    Ok(ExitCode::SUCCESS)
}
