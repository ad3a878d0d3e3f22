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
    /// Purge the tombstones of episodes deleted at least this long ago (`trajstore rm`) and
    /// reclaim their bytes: 7d, 12h, 30m, 45s, 0 (every tombstone); deleted episodes within
    /// it stay restorable and their segments are kept.
    #[arg(long, default_value = "7d", value_parser = parse_retention)]
    retention: std::time::Duration,
    /// Report what would be reclaimed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: CompactArgs) -> Result<ExitCode> {
    let CompactArgs {
        dir,
        retention,
        dry_run,
        json,
    } = args;
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
        retention: Some(retention),
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
    if !report.purged.is_empty() {
        out(format!(
            "{} {} tombstone(s) past the retention: episodes {}",
            if dry_run { "would purge" } else { "purged" },
            report.purged.len(),
            report
                .purged
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" ")
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
        "purged": r.purged,
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

/// `7d`, `12h`, `30m`, `45s` or `0`.
fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "{text:?}: expected a number and d, h, m or s (7d, 12h, 30m, 45s) or 0"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number before {unit:?}"))?;
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
}
