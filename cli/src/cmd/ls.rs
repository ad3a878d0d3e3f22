use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::filters::EpisodeFilters;
use super::open_shards;
use crate::json::{EpisodeFields, EpisodeLine, timestamp};

/// Episodes whose metadata maps `ls --json` reads at once.
const METADATA_BATCH: usize = 4096;

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
                writeln!(lines, "{}", Line(EpisodeFields::from(&e)))?;
            }
            continue;
        }
        let split = snapshot.split_spec()?;
        let store_path = dirs[shard].display().to_string();
        // Catalog rows and, apart, the metadata maps: no chunk list is decoded. Maps are read
        // a batch at a time, so a million episodes never hold a million maps.
        let catalog = snapshot.catalog_columns(&query)?;
        let mut metadata = Vec::new();
        for e in catalog.rows() {
            let at = e.index() % METADATA_BATCH;
            if at == 0 {
                let ids = catalog.ids();
                let batch = &ids[e.index()..ids.len().min(e.index() + METADATA_BATCH)];
                metadata = snapshot.metadata(batch)?;
            }
            let metadata = &metadata[at];
            let line = EpisodeLine {
                split: split
                    .as_ref()
                    .map(|spec| spec.label(e.id().get(), e.user())),
                shard: sharded.then_some(shard),
                store: sharded.then_some(store_path.as_str()),
                ..EpisodeLine::of_row(EpisodeFields::from(&e), metadata)
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
pub(crate) struct Line<'a>(pub EpisodeFields<'a>);

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        write!(
            f,
            "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
            e.id,
            e.user,
            e.env,
            e.steps,
            e.total_return,
            e.outcome,
            timestamp(e.started_at_us)
        )
    }
}
