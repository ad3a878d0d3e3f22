use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use trajstore::{ElementSummary, FieldSummary, QUANTILES, RELATIVE_ACCURACY, StoreStats};

use super::filters::EpisodeFilters;
use super::{open_read, out};

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    pub dir: PathBuf,
    #[command(flatten)]
    filters: EpisodeFilters,
    /// Only this field (repeat for several); default: every field with statistics.
    #[arg(long)]
    field: Vec<String>,
    /// Compute the statistics of episodes recorded without them (older stores, repaired
    /// indexes) from their frames, instead of listing them as missing.
    #[arg(long)]
    compute_missing: bool,
    /// First compute the statistics of every live episode recorded without them and store
    /// them in the index (opens the store for writing), so later calls need no frames.
    #[arg(long)]
    save_missing: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let query = args.filters.query()?;
    let store = if args.save_missing {
        let store = trajstore::Store::open(&args.dir)?;
        let saved = store.save_missing_stats()?;
        eprintln!(
            "saved the statistics of {} episode(s) recorded without them",
            saved.saved.len()
        );
        for (id, problem) in &saved.failed {
            eprintln!("episode {id}: statistics not computed: {problem}");
        }
        store
    } else {
        open_read(&args.dir)?
    };
    let fields: Vec<&str> = args.field.iter().map(String::as_str).collect();
    let stats = store
        .snapshot()?
        .stats(&query, &fields, args.compute_missing)?;
    if args.json {
        out(stats_json(&stats))?;
    } else {
        print_text(&stats)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `{count, mean, std, min, max, quantiles: {q01: .., ..}}` (NaN, for an element without
/// finite values, is null).
fn element_json(e: &ElementSummary) -> serde_json::Value {
    let quantiles: serde_json::Map<String, serde_json::Value> = QUANTILES
        .iter()
        .zip(e.quantiles)
        .map(|((name, _), v)| ((*name).to_owned(), v.into()))
        .collect();
    json!({
        "count": e.count,
        "mean": e.mean,
        "std": e.std,
        "min": e.min,
        "max": e.max,
        "quantiles": quantiles,
    })
}

fn field_json(f: &FieldSummary) -> serde_json::Value {
    json!({
        "field": f.name,
        "dtype": f.dtype.name(),
        "shape": f.shape,
        "episodes": f.episodes,
        "non_finite": f.elements.iter().map(|e| e.non_finite).collect::<Vec<_>>(),
        "elements": f.elements.iter().map(element_json).collect::<Vec<_>>(),
    })
}

pub fn stats_json(s: &StoreStats) -> serde_json::Value {
    json!({
        "episodes": s.episodes,
        "missing": s.missing.iter().map(|id| id.get()).collect::<Vec<_>>(),
        "computed": s.computed.iter().map(|id| id.get()).collect::<Vec<_>>(),
        "quantile_relative_error": RELATIVE_ACCURACY,
        "fields": s.fields.iter().map(field_json).collect::<Vec<_>>(),
    })
}

/// A figure in 10 columns: fixed point for ordinary magnitudes, scientific otherwise.
fn num(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        format!("{:>10}", "-")
    } else if a == 0.0 || (1e-3..1e6).contains(&a) {
        format!("{v:>10.4}")
    } else {
        format!("{v:>10.3e}")
    }
}

fn print_text(s: &StoreStats) -> Result<()> {
    out(format!(
        "{} episodes selected; quantiles within {}% (relative) of the exact order statistic",
        s.episodes,
        RELATIVE_ACCURACY * 100.0
    ))?;
    for f in &s.fields {
        let shape: Vec<String> = f.shape.iter().map(ToString::to_string).collect();
        out(format!(
            "\n{} {}[{}]  ({} episodes)",
            f.name,
            f.dtype,
            shape.join(", "),
            f.episodes
        ))?;
        out(format!(
            "{:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "elem", "count", "mean", "std", "min", "q01", "q25", "q50", "q75", "q99", "max"
        ))?;
        for (i, e) in f.elements.iter().enumerate() {
            let q = |name: &str| {
                let at = QUANTILES
                    .iter()
                    .position(|(n, _)| *n == name)
                    .expect("known");
                num(e.quantiles[at])
            };
            let mut line = format!(
                "{i:>5} {:>10} {} {} {} {} {} {} {} {} {}",
                e.count,
                num(e.mean),
                num(e.std),
                num(e.min),
                q("q01"),
                q("q25"),
                q("q50"),
                q("q75"),
                q("q99"),
                num(e.max)
            );
            if e.non_finite > 0 {
                line.push_str(&format!("  ({} non-finite)", e.non_finite));
            }
            out(line)?;
        }
    }
    if !s.missing.is_empty() {
        let ids: Vec<String> = s.missing.iter().map(ToString::to_string).collect();
        out(format!(
            "\n{} episodes have no stored statistics (recorded before store format 2, or \
             restored by repair) and are not included: {}\n(--compute-missing computes them \
             from their frames)",
            s.missing.len(),
            ids.join(" ")
        ))?;
    }
    if !s.computed.is_empty() {
        out(format!(
            "\n{} episodes had no stored statistics: computed from their frames",
            s.computed.len()
        ))?;
    }
    Ok(())
}
