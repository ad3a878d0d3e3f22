use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::filters::EpisodeFilters;
use super::open_shards;
use crate::json::{EpisodeLine, timestamp};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// One store, or several shards of one dataset (listed in this order, with a shard column).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    filters: EpisodeFilters,
    #[arg(long)]
    json: bool,
}

pub fn run(args: LsArgs) -> Result<ExitCode> {
    let LsArgs {
        dirs,
        filters,
        json,
    } = args;
    let query = filters.query()?;
    let stores = open_shards(&dirs)?;
    let sharded = stores.len() > 1;
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json {
        let shard = if sharded { "shard  " } else { "" };
        writeln!(lines, "{shard}{}", header())?;
    }
    for (shard, store) in stores.iter().enumerate() {
        let snapshot = store.snapshot()?;
        if !json {
            // The table needs no metadata map: the compact catalog rows are enough.
            for e in snapshot.catalog_columns(&query)?.rows() {
                if sharded {
                    write!(lines, "{shard:>5}  ")?;
                }
                writeln!(lines, "{}", Line::from(&e))?;
            }
            continue;
        }
        let split = snapshot.split_spec()?;
        let store_path = dirs[shard].display().to_string();
        for e in &snapshot.episodes(&query)? {
            let line = EpisodeLine {
                split: split
                    .as_ref()
                    .map(|spec| spec.label(e.id().get(), e.user())),
                shard: sharded.then_some(shard),
                store: sharded.then_some(store_path.as_str()),
                ..EpisodeLine::of(e)
            };
            line.write(&mut lines)?;
            lines.write_all(b"\n")?;
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
pub(crate) struct Line<'a> {
    id: u64,
    user: &'a str,
    env: &'a str,
    steps: u32,
    total_return: f64,
    outcome: &'static str,
    started_at_us: i64,
}

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
            self.id,
            self.user,
            self.env,
            self.steps,
            self.total_return,
            self.outcome,
            timestamp(self.started_at_us)
        )
    }
}

impl<'a> From<&trajstore::CatalogRow<'a>> for Line<'a> {
    fn from(e: &trajstore::CatalogRow<'a>) -> Self {
        Line {
            id: e.id().get(),
            user: e.user(),
            env: e.env(),
            steps: e.steps(),
            total_return: e.total_return(),
            outcome: e.outcome().name(),
            started_at_us: e.started_at_us(),
        }
    }
}
