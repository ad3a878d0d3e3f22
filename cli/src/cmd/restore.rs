//! `trajstore restore`: bring deleted episodes back (until compaction purged them), or list
//! what is deleted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use trajstore::{EpisodeId, Restore, Store};

use super::curate::{CurateFlags, report};
use super::out;
use crate::json::{episode_json, timestamp};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    pub dir: PathBuf,
    /// Deleted episode ids to restore.
    episodes: Vec<u64>,
    /// Restore every deleted episode.
    #[arg(long, conflicts_with = "episodes")]
    all: bool,
    /// List the deleted episodes (who deleted them, when); change nothing.
    #[arg(long, conflicts_with_all = ["episodes", "all"])]
    list: bool,
    #[command(flatten)]
    flags: CurateFlags,
}

pub fn run(args: RestoreArgs) -> Result<ExitCode> {
    let RestoreArgs {
        dir,
        episodes,
        all,
        list,
        flags,
    } = args;
    if list {
        return list_deleted(&dir, flags.json);
    }
    let which = if all {
        Restore::All
    } else if episodes.is_empty() {
        bail!("name the deleted episodes to restore, or --all (--list shows them)");
    } else {
        Restore::Ids(episodes.into_iter().map(EpisodeId).collect())
    };
    let store = Store::open(&dir)?;
    let done = store.restore(&which, &flags.options())?;
    report(&flags, "restore", &done, None, "")
}

fn list_deleted(dir: &std::path::Path, json: bool) -> Result<ExitCode> {
    let store = super::open_read(dir)?;
    let tombstones = store.snapshot()?.tombstones()?;
    if !json {
        out(format!(
            "{:>8}  {:<16} {:<16} {:>7}  {:<20}  {}",
            "episode", "user", "env", "steps", "deleted at", "by"
        ))?;
    }
    for t in &tombstones {
        let e = &t.episode;
        if json {
            let mut v = episode_json(e);
            v["deleted_at"] = timestamp(t.deleted_at_us).into();
            v["deleted_by"] = t.deleted_by.clone().into();
            out(v)?;
        } else {
            out(format!(
                "{:>8}  {:<16} {:<16} {:>7}  {:<20}  {}",
                e.id().get(),
                e.user(),
                e.env(),
                e.steps(),
                timestamp(t.deleted_at_us),
                t.deleted_by
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
