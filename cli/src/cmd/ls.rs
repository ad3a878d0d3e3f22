use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::{Outcome, Query};

use super::open_read;
use crate::json::{episode_json, timestamp};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    pub dir: PathBuf,
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
        dir,
        user: users,
        env: envs,
        tag: tags,
        outcome: outcomes,
        min_return,
        json,
    } = args;
    let dir = dir.as_path();
    let outcomes = outcomes
        .iter()
        .map(|o| o.parse::<Outcome>())
        .collect::<Result<_, _>>()?;
    let store = open_read(dir)?;
    let snapshot = store.snapshot()?;
    let query = Query {
        users,
        envs,
        tags,
        outcomes,
        min_return,
        ..Default::default()
    };
    let episodes = snapshot.episodes(&query)?;
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json {
        writeln!(
            lines,
            "{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} started",
            "episode", "user", "env", "steps", "return", "outcome"
        )?;
    }
    for e in &episodes {
        if json {
            writeln!(lines, "{}", episode_json(e))?;
        } else {
            writeln!(
                lines,
                "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
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
    lines.flush()?;
    Ok(ExitCode::SUCCESS)
}
