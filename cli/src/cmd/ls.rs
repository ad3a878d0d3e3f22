use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::filters::EpisodeFilters;
use super::open_read;
use crate::json::{episode_json, timestamp};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    pub dir: PathBuf,
    #[command(flatten)]
    filters: EpisodeFilters,
    #[arg(long)]
    json: bool,
}

pub fn run(args: LsArgs) -> Result<ExitCode> {
    let LsArgs { dir, filters, json } = args;
    let query = filters.query()?;
    let store = open_read(&dir)?;
    let snapshot = store.snapshot()?;
    let episodes = snapshot.episodes(&query)?;
    let split = snapshot.split_spec()?;
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json {
        writeln!(lines, "{}", header())?;
    }
    for e in &episodes {
        if json {
            let mut v = episode_json(e);
            if let Some(spec) = &split {
                v["split"] = spec.label(e.id().get(), e.user()).into();
            }
            writeln!(lines, "{v}")?;
        } else {
            writeln!(lines, "{}", line(e))?;
        }
    }
    lines.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The header of the episode table `ls` prints.
pub(crate) fn header() -> String {
    format!(
        "{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} started",
        "episode", "user", "env", "steps", "return", "outcome"
    )
}

/// One episode as a row of the table `ls` prints.
pub(crate) fn line(e: &trajstore::Episode) -> String {
    format!(
        "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
        e.id().get(),
        e.user(),
        e.env(),
        e.steps(),
        e.total_return(),
        e.outcome().name(),
        timestamp(e.started_at_us())
    )
}
