use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use trajstore::MergeReport;

use super::{human_bytes, out};

/// OUT is created when missing. Every source is checked (format, every checksum) before
/// anything is linked; a refused merge changes nothing.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The store to merge into (created when missing).
    pub dir: PathBuf,
    /// Stores to merge from, whole; each is only read.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// One JSON object, with every source's old -> new episode ids.
    #[arg(long)]
    json: bool,
}

pub fn run(args: MergeArgs) -> Result<ExitCode> {
    let MergeArgs { dir, sources, json } = args;
    let report = trajstore::merge(&dir, &sources)?;
    if json {
        out(report_json(&report))?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &report.sources {
        let (linked, copied): (Vec<&trajstore::MergedSegment>, Vec<_>) =
            s.segments.iter().partition(|g| !g.copied);
        out(format!(
            "{}: {} episodes (ids {}){}, {} segments linked ({}), {} copied ({})",
            s.path.display(),
            s.episodes.len(),
            id_ranges(&s.episodes),
            match s.deleted_not_merged {
                0 => String::new(),
                n => format!(" ({n} deleted episodes not merged)"),
            },
            linked.len(),
            human_bytes(linked.iter().map(|g| g.bytes).sum()),
            copied.len(),
            human_bytes(copied.iter().map(|g| g.bytes).sum()),
        ))?;
    }
    out(format!(
        "{}: merged {} episodes from {} stores; {} new schema{}; no frame was decoded",
        dir.display(),
        report
            .sources
            .iter()
            .map(|s| s.episodes.len())
            .sum::<usize>(),
        report.sources.len(),
        report.schemas_added,
        if report.schemas_added == 1 { "" } else { "s" }
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `old -> new` for a run of consecutive ids, `a..b -> c..d` for runs.
fn id_ranges(pairs: &[(trajstore::EpisodeId, trajstore::EpisodeId)]) -> String {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new(); // (old start, new start, len)
    for (old, new) in pairs {
        match runs.last_mut() {
            Some((o, n, len)) if *o + *len == old.get() && *n + *len == new.get() => *len += 1,
            _ => runs.push((old.get(), new.get(), 1)),
        }
    }
    let shown: Vec<String> = runs
        .iter()
        .map(|&(o, n, len)| match len {
            1 => format!("{o} -> {n}"),
            _ => format!("{o}..={} -> {n}..={}", o + len - 1, n + len - 1),
        })
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

fn report_json(r: &MergeReport) -> serde_json::Value {
    serde_json::json!({
        "schemas_added": r.schemas_added,
        "manifest_segment": r.manifest_segment,
        "sources": r.sources.iter().map(|s| serde_json::json!({
            "path": s.path.display().to_string(),
            "deleted_not_merged": s.deleted_not_merged,
            "episodes": s.episodes.iter().map(|(old, new)| serde_json::json!({"old": old, "new": new})).collect::<Vec<_>>(),
            "segments": s.segments.iter().map(|g| serde_json::json!({
                "origin": g.origin.to_string(), "id": g.id.to_string(), "bytes": g.bytes, "copied": g.copied,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
