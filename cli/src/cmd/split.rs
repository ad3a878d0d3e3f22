//! `trajstore split`: set the store's train/validation/... split. Only the specification is
//! stored; an episode's split is a pure function of it and the episode's id (or user), so
//! episodes recorded later never move the old ones.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use trajstore::{SplitKey, SplitRequest, Store};

use super::out;

#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    pub dir: PathBuf,
    /// NAME=FRACTION,... summing to 1, e.g. train=0.9,val=0.1.
    #[arg(long)]
    fractions: String,
    #[arg(long)]
    seed: u64,
    /// What is hashed: each episode on its own, or each user (all of a user's episodes in
    /// one split).
    #[arg(long, value_enum, default_value_t = By::Episode)]
    by: By,
    /// Check the split and show it; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum By {
    Episode,
    User,
}

pub fn run(args: SplitArgs) -> Result<ExitCode> {
    let fractions = parse_fractions(&args.fractions)?;
    let request = SplitRequest {
        fractions,
        seed: args.seed,
        by: match args.by {
            By::Episode => SplitKey::Episode,
            By::User => SplitKey::User,
        },
    };
    let store = Store::open(&args.dir)?;
    let options = trajstore::CurateOptions {
        dry_run: args.dry_run,
        by: None,
    };
    let spec = store.set_split(&request, &options)?;
    // What the split means now, counted from the index.
    let snapshot = store.snapshot()?;
    let mut counts: Vec<(String, u64)> = spec.names().map(|n| (n.to_owned(), 0)).collect();
    if !args.dry_run {
        for e in snapshot.episodes(&trajstore::Query::default())? {
            let label = spec.label(e.id().get(), e.user());
            if let Some(c) = counts.iter_mut().find(|(n, _)| n == label) {
                c.1 += 1;
            }
        }
    }
    if args.json {
        out(serde_json::json!({
            "dry_run": args.dry_run,
            "fractions": spec.fractions,
            "seed": spec.seed,
            "by": format!("{:?}", args.by).to_lowercase(),
            "episodes": counts.iter().map(|(n, c)| (n.clone(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        out("dry run: the split is valid; nothing changed")?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "split set (seed {}, by {}): {}",
        spec.seed,
        format!("{:?}", args.by).to_lowercase(),
        counts
            .iter()
            .map(|(n, c)| format!("{n} {c} episodes"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn parse_fractions(text: &str) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, fraction)) = part.split_once('=') else {
            bail!("--fractions {text:?}: expected NAME=FRACTION,... (e.g. train=0.9,val=0.1)");
        };
        let fraction: f64 = fraction
            .trim()
            .parse()
            .with_context(|| format!("--fractions: {part:?} is not NAME=NUMBER"))?;
        out.push((name.trim().to_owned(), fraction));
    }
    Ok(out)
}
