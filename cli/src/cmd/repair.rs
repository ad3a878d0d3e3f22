use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::{RepairAction, RepairReport};

use super::{human_bytes, out};

/// Exit 0 when the index is healthy or was rebuilt (whatever could not be restored is listed).
#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    pub dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: RepairArgs) -> Result<ExitCode> {
    let RepairArgs { dir, json } = args;
    let dir = dir.as_path();
    let report = trajstore::repair(dir)?;
    if json {
        out(report_json(&report))?;
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.index_problems {
        out(format!("index problem: {p}"))?;
    }
    for s in &report.unrestorable {
        out(format!(
            "not restorable: segment {} offset {}: {}",
            s.segment, s.offset, s.reason
        ))?;
    }
    for u in &report.restored_unmarked {
        out(format!(
            "restored without commit marker: episode {} (user {:?}, manifest in segment {} at offset {})",
            u.id, u.user, u.segment, u.offset
        ))?;
    }
    if report.aborted > 0 {
        out(format!(
            "{} manifest(s) of commits that failed (their recorders got an error): not restored",
            report.aborted
        ))?;
    }
    if !report.v1_segments.is_empty() {
        out(format!(
            "{} version 1 segment{} ({}): no manifests, nothing in them is restorable from the segments alone{}",
            report.v1_segments.len(),
            if report.v1_segments.len() == 1 {
                ""
            } else {
                "s"
            },
            human_bytes(report.v1_bytes),
            match report.action {
                RepairAction::NothingToDo => "; their episodes are kept in the healthy index",
                RepairAction::Rebuilt =>
                    "; only episodes a readable old index still held were kept",
            }
        ))?;
    }
    if report.curation_replayed > 0 {
        out(format!(
            "replayed {} curation operation(s) from curation.log (deletes, restores, relabels, split)",
            report.curation_replayed
        ))?;
    }
    if let Some(problem) = &report.curation_log_problem {
        out(format!(
            "curation.log: read up to {problem} (an operation cut off by a crash never committed)"
        ))?;
    }
    if report.stats_saved > 0 {
        out(format!(
            "recomputed the field statistics of {} episode(s) from their frames",
            report.stats_saved
        ))?;
    }
    for problem in &report.stats_problems {
        out(format!(
            "statistics not recomputed: {problem} (`trajstore stats --compute-missing` reads those episodes' frames)"
        ))?;
    }
    match report.action {
        RepairAction::NothingToDo => out(format!(
            "{}: index healthy and complete, nothing to do ({} episodes, {} segments{})",
            dir.display(),
            report.episodes,
            report.segments,
            if report.uncommitted > 0 {
                format!(
                    "; {} manifest(s) of commits in flight at a crash left uncommitted",
                    report.uncommitted
                )
            } else {
                String::new()
            }
        ))?,
        RepairAction::Rebuilt => out(format!(
            "{}: rebuilt the index from {} segments: {} episodes ({} with their id, {} without commit marker given new ids, {} kept from the old index){}",
            dir.display(),
            report.segments,
            report.episodes,
            report.restored_with_id,
            report.restored_unmarked.len(),
            report.carried_over,
            match &report.damaged_index {
                Some(p) => format!("; the old index is kept as {}", p.display()),
                None => String::new(),
            }
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn report_json(r: &RepairReport) -> serde_json::Value {
    serde_json::json!({
        "action": match r.action {
            RepairAction::NothingToDo => "nothing_to_do",
            RepairAction::Rebuilt => "rebuilt",
        },
        "index_problems": r.index_problems,
        "damaged_index": r.damaged_index.as_ref().map(|p| p.display().to_string()),
        "segments": r.segments,
        "v1_segments": r.v1_segments,
        "v1_bytes_not_restorable": r.v1_bytes,
        "whole_manifests": r.whole_manifests,
        "episodes": r.episodes,
        "restored_with_id": r.restored_with_id,
        "restored_unmarked": r.restored_unmarked.iter().map(|u| serde_json::json!({
            "episode": u.id, "user": u.user, "segment": u.segment, "offset": u.offset,
        })).collect::<Vec<_>>(),
        "carried_over": r.carried_over,
        "uncommitted": r.uncommitted,
        "aborted": r.aborted,
        "superseded": r.superseded,
        "unrestorable": r.unrestorable.iter().map(|s| serde_json::json!({
            "segment": s.segment, "offset": s.offset, "reason": s.reason,
        })).collect::<Vec<_>>(),
        "garbage_bytes": r.garbage_bytes,
        "curation_replayed": r.curation_replayed,
        "curation_log_problem": r.curation_log_problem,
        "stats_saved": r.stats_saved,
        "stats_problems": r.stats_problems,
    })
}
