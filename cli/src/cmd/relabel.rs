//! `trajstore relabel`: change the user, outcome label, tags or metadata of selected
//! episodes, index-only, in one transaction; each change is kept in the episode's history
//! (`trajstore show`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use trajstore::{EpisodeId, Outcome, Relabel, Store, Target, Value};

use super::curate::{CurateFlags, report};
use super::filters::EpisodeFilters;

#[derive(clap::Args, Debug)]
pub struct RelabelArgs {
    pub dir: PathBuf,
    /// Episode ids (with filters too: only those of them that match).
    episodes: Vec<u64>,
    #[command(flatten)]
    filters: EpisodeFilters,
    /// New user of the episodes.
    #[arg(long)]
    set_user: Option<String>,
    /// New outcome label: terminated, truncated or interrupted.
    #[arg(long)]
    set_outcome: Option<String>,
    /// Add a tag (repeat).
    #[arg(long)]
    add_tag: Vec<String>,
    /// Remove a tag (repeat).
    #[arg(long)]
    remove_tag: Vec<String>,
    /// Set metadata KEY=VALUE (repeat); VALUE is read as JSON when it is JSON (2, 0.5, true,
    /// [1, 2], "quoted"), else as a string.
    #[arg(long, value_name = "KEY=VALUE")]
    set_meta: Vec<String>,
    /// Remove a metadata key (repeat).
    #[arg(long, value_name = "KEY")]
    unset_meta: Vec<String>,
    #[command(flatten)]
    flags: CurateFlags,
}

pub fn run(args: RelabelArgs) -> Result<ExitCode> {
    let relabel = Relabel {
        set_user: args.set_user.clone(),
        set_outcome: args
            .set_outcome
            .as_deref()
            .map(str::parse::<Outcome>)
            .transpose()?,
        add_tags: args.add_tag.clone(),
        remove_tags: args.remove_tag.clone(),
        set_meta: args
            .set_meta
            .iter()
            .map(|kv| parse_meta(kv))
            .collect::<Result<_>>()?,
        unset_meta: args.unset_meta.clone(),
    };
    let target = Target {
        ids: args.episodes.iter().copied().map(EpisodeId).collect(),
        query: args.filters.query()?,
    };
    let store = Store::open(&args.dir)?;
    let snapshot = store.snapshot()?;
    let done = store.relabel(&target, &relabel, &args.flags.options())?;
    report(&args.flags, "relabel", &done, Some(&snapshot), "")
}

/// `KEY=VALUE`, VALUE as JSON when it parses as a value trajstore stores, else a string.
fn parse_meta(kv: &str) -> Result<(String, Value)> {
    let Some((key, raw)) = kv.split_once('=') else {
        bail!("--set-meta {kv:?}: expected KEY=VALUE");
    };
    let value = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Bool(b)) => Value::Bool(b),
        Ok(serde_json::Value::String(s)) => Value::Str(s),
        Ok(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().context("a number")?),
        },
        Ok(serde_json::Value::Array(items)) if items.iter().all(|v| v.is_i64()) => {
            Value::Ints(items.iter().filter_map(serde_json::Value::as_i64).collect())
        }
        Ok(serde_json::Value::Array(items)) if items.iter().all(|v| v.is_number()) => {
            Value::Floats(items.iter().filter_map(serde_json::Value::as_f64).collect())
        }
        _ => Value::Str(raw.to_owned()),
    };
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_values_are_json_when_they_parse_else_strings() {
        assert_eq!(
            parse_meta("level=2").unwrap(),
            ("level".into(), Value::Int(2))
        );
        assert_eq!(parse_meta("w=0.5").unwrap().1, Value::Float(0.5));
        assert_eq!(parse_meta("ok=true").unwrap().1, Value::Bool(true));
        assert_eq!(parse_meta("n=\"2\"").unwrap().1, Value::Str("2".into()));
        assert_eq!(
            parse_meta("who=alice b").unwrap().1,
            Value::Str("alice b".into())
        );
        assert_eq!(parse_meta("xs=[1,2]").unwrap().1, Value::Ints(vec![1, 2]));
        assert!(parse_meta("novalue").is_err());
    }
}
