use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{human_bytes, open_read, out};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let VerifyArgs { dir, json } = args;
    let dir = dir.as_path();
    let store = open_read(dir)?;
    let report = store.snapshot()?.verify()?;
    if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({"episode": p.episode, "user": p.user, "field": p.field,
                    "steps": p.steps.as_ref().map(|s| [s.start, s.end]), "error": p.error})
            })
            .collect();
        out(
            serde_json::json!({"ok": report.problems.is_empty(), "episodes": report.episodes, "chunks": report.chunks,
            "payload_bytes": report.payload_bytes, "unreferenced_bytes": report.unreferenced_bytes,
            "unreferenced_segments": report.unreferenced_segments.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "problems": problems}),
        )?;
    } else {
        for p in &report.problems {
            out(format!("PROBLEM {p}"))?;
        }
        out(format!(
            "{}: {} episodes, {} chunks, {} checked; {} unreferenced in segments (manifests, commit markers, aborted or crashed recordings); {} problem{}",
            if report.problems.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            report.episodes,
            report.chunks,
            human_bytes(report.payload_bytes),
            human_bytes(report.unreferenced_bytes),
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        ))?;
        if !report.unreferenced_segments.is_empty() {
            out(format!(
                "segment files holding no chunk of any episode (uncommitted recordings, a stopped merge, or a merge's manifests; `trajstore compact` removes the garbage): {}",
                report
                    .unreferenced_segments
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))?;
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
