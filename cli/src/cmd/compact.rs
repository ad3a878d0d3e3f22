use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use trajstore::{CompactOptions, CompactReport};

use super::{human_bytes, out};

/// Safe while other processes record and read: segments a live recorder holds are skipped,
/// files a reader may still use are removed only when no store handle is open.
#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    pub dir: PathBuf,
    /// Report what would be reclaimed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: CompactArgs) -> Result<ExitCode> {
    let CompactArgs { dir, dry_run, json } = args;
    let bar = (!dry_run && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "compacting {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        bar
    });
    let progress = bar.clone().map(|bar| {
        Arc::new(move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }) as trajstore::Progress
    });
    let options = CompactOptions {
        dry_run,
        progress,
        ..Default::default()
    };
    let report = trajstore::compact(&dir, &options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        out(report_json(&report))?;
        return Ok(ExitCode::SUCCESS);
    }
    let ids = |v: &[trajstore::SegmentId]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !report.skipped_locked.is_empty() {
        out(format!(
            "skipped (held by a live recorder): {}",
            ids(&report.skipped_locked)
        ))?;
    }
    let verb = if dry_run {
        "would reclaim"
    } else {
        "reclaimed"
    };
    out(format!(
        "{}: {} segments ({}); rewrote {} and dropped {} ({} episodes moved, {} written); {verb} {}{}",
        dir.display(),
        report.segments,
        human_bytes(report.segment_bytes),
        report.rewritten.len(),
        report.dropped.len(),
        report.episodes_moved,
        human_bytes(report.bytes_written),
        human_bytes(report.bytes_reclaimed),
        if report.pending_files > 0 {
            format!(
                "; {} replaced file(s) wait in segments/retired/ until no process has the store open",
                report.pending_files
            )
        } else {
            String::new()
        }
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn report_json(r: &CompactReport) -> serde_json::Value {
    let ids = |v: &[trajstore::SegmentId]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "dry_run": r.dry_run,
        "segments": r.segments,
        "segment_bytes": r.segment_bytes,
        "rewritten": ids(&r.rewritten),
        "dropped": ids(&r.dropped),
        "skipped_locked": ids(&r.skipped_locked),
        "new_segments": ids(&r.new_segments),
        "episodes_moved": r.episodes_moved,
        "bytes_written": r.bytes_written,
        "bytes_retired": r.bytes_retired,
        "bytes_reclaimed": r.bytes_reclaimed,
        "deleted_files": r.deleted_files,
        "deleted_bytes": r.deleted_bytes,
        "pending_files": r.pending_files,
    })
}
