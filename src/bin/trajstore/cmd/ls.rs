use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::{Outcome, Query};

use super::{episode_json, open_read, out, timestamp};

pub fn run(
    dir: &Path,
    users: Vec<String>,
    envs: Vec<String>,
    tags: Vec<String>,
    outcomes: Vec<String>,
    min_return: Option<f64>,
    json: bool,
) -> Result<ExitCode> {
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
    if !json {
        out(format!(
            "{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} {}",
            "episode", "user", "env", "steps", "return", "outcome", "started"
        ))?;
    }
    for e in &episodes {
        if json {
            out(episode_json(e))?;
        } else {
            out(format!(
                "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
                e.id(),
                e.user(),
                e.env(),
                e.steps(),
                e.total_return(),
                e.outcome().name(),
                timestamp(e.started_at_us())
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
