//! `trajstore rm`: delete episodes (tombstones: one index transaction; bytes stay until
//! compaction, `trajstore restore` brings them back).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::{EpisodeId, Store, Target};

use super::curate::{CurateFlags, report};
use super::filters::EpisodeFilters;

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    pub dir: PathBuf,
    /// Episode ids (with filters too: only those of them that match).
    episodes: Vec<u64>,
    #[command(flatten)]
    filters: EpisodeFilters,
    #[command(flatten)]
    flags: CurateFlags,
}

pub fn run(args: RmArgs) -> Result<ExitCode> {
    let RmArgs {
        dir,
        episodes,
        filters,
        flags,
    } = args;
    let target = Target {
        ids: episodes.into_iter().map(EpisodeId).collect(),
        query: filters.query()?,
    };
    let store = Store::open(&dir)?;
    let snapshot = store.snapshot()?;
    let done = store.delete(&target, &flags.options())?;
    let note = format!(
        "their bytes stay in the segments until compaction; `trajstore restore {} ID...` brings them back",
        dir.display()
    );
    report(&flags, "delete", &done, Some(&snapshot), &note)
}
