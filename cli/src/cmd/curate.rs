//! What the curation commands (rm, restore, relabel, split) share: their common flags, and
//! how a result is reported.

use std::process::ExitCode;

use anyhow::Result;
use trajstore::{CurateOptions, Curated, EpisodeId, Snapshot};

use super::{ls, out};

/// Flags every curation command takes.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct CurateFlags {
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who made the change, for the history (default: the OS user).
    #[arg(long)]
    pub by: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl CurateFlags {
    pub fn options(&self) -> CurateOptions {
        CurateOptions {
            dry_run: self.dry_run,
            by: self.by.clone(),
        }
    }
}

pub fn ids_text(ids: &[EpisodeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reports `done` (`verb`: "delete", "restore", "relabel"); lists the episodes of a dry run
/// from `snapshot` (taken before). An empty selection changed nothing and exits 1.
pub fn report(
    flags: &CurateFlags,
    verb: &str,
    done: &Curated,
    snapshot: Option<&Snapshot>,
    note: &str,
) -> Result<ExitCode> {
    let code = if done.selected.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if flags.json {
        out(serde_json::json!({
            "dry_run": done.dry_run,
            "selected": done.selected,
            "changed": done.changed,
            "upgraded_from_format": done.upgraded_from,
        }))?;
        return Ok(code);
    }
    if done.selected.is_empty() {
        out(format!(
            "no episode matches: nothing to {verb}, nothing changed"
        ))?;
        return Ok(code);
    }
    if let Some(from) = done.upgraded_from {
        out(format!(
            "upgraded the store from format {from} to {} (a format-{from} build can no longer open it)",
            trajstore::STORE_FORMAT_VERSION
        ))?;
    }
    let n = done.changed.len();
    let s = if n == 1 { "" } else { "s" };
    if done.dry_run {
        out(format!(
            "dry run: would {verb} {n} episode{s} (nothing changed):"
        ))?;
        if let Some(snapshot) = snapshot {
            out(ls::header())?;
            let mut ids: Vec<u64> = done.changed.iter().map(|id| id.get()).collect();
            ids.sort_unstable();
            ids.dedup();
            let rows = snapshot.catalog_of(&ids)?;
            for id in &done.changed {
                if let Some(e) = rows.find(*id) {
                    out(ls::Line((&e).into()).to_string())?;
                }
            }
        } else {
            out(ids_text(&done.changed))?;
        }
        return Ok(code);
    }
    let past = match verb {
        "delete" => "deleted",
        "restore" => "restored",
        "relabel" => "relabelled",
        other => other,
    };
    out(format!(
        "{past} {n} episode{s}: {}",
        ids_text(&done.changed)
    ))?;
    if n < done.selected.len() {
        out(format!(
            "{} selected episode(s) already had these labels",
            done.selected.len() - n
        ))?;
    }
    if !note.is_empty() {
        out(note)?;
    }
    Ok(code)
}
