//! Two-player episodes: the convention that declares them in episode metadata, and the P2
//! view it implies. Normative description: `schema/replay.md`.
//!
//! An episode recorded from both players' seats (DIAMBRA's P1 vs P2) also teaches P2's
//! policy: seen from P2, the reward is negated and every per-agent field swaps with its
//! counterpart. The store has no schema-level notion of agents, so the recorder declares it
//! in episode metadata ([`EpisodeMeta::meta`](crate::EpisodeMeta::meta)):
//!
//! | key | value | meaning |
//! |-----|-------|---------|
//! | `agents` | `Str("P1,P2")` | two agents: the episode has a P2 view |
//! | `p2_swap` | `Str("a=b,c=d")` | in the P2 view, field `a` reads `b`'s data and `b` reads `a`'s |
//! | `ignore_p2` | `Bool(true)` | recorded with `ignore_p2`: no P2 view |

use crate::error::{Error, Result};
use crate::read::Episode;
use crate::schema::{REWARD, Schema};
use crate::value::{Info, Value};

/// Metadata key naming the agents, comma-separated.
pub const AGENTS_KEY: &str = "agents";
/// Metadata key of the P2 field mapping.
pub const P2_SWAP_KEY: &str = "p2_swap";
/// Metadata key that suppresses the P2 view.
pub const IGNORE_P2_KEY: &str = "ignore_p2";

/// How to present an episode from P2's seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2View {
    /// `source[i]`: the schema field whose data field `i` shows in the P2 view.
    pub source: Vec<usize>,
    /// Whether the reward is negated: yes, unless the mapping swaps `reward` with a recorded
    /// P2 reward, which is then served as is.
    pub negate_reward: bool,
}

/// The P2 view of `episode` (recorded with `schema`), or `None` when it has none: no
/// `agents`, a single agent, or `ignore_p2` set. A malformed declaration is an error naming
/// the episode, never silently ignored.
pub fn p2_view(episode: &Episode, schema: &Schema) -> Result<Option<P2View>> {
    player_layout(
        episode.metadata(),
        schema,
        &format!("episode {}", episode.id()),
    )
}

/// The P2 view declared by episode metadata `meta` for `schema`, or `None`; `what` names the
/// episode in errors. The recorder checks it when an episode begins, so a bad declaration is
/// refused before anything is recorded rather than at replay, after the commits.
pub(crate) fn player_layout(meta: &Info, schema: &Schema, what: &str) -> Result<Option<P2View>> {
    let bad = |m: String| Error::invalid_request("player layout", format!("{what}: {m}"));
    let agents = match meta.get(AGENTS_KEY) {
        None => return Ok(None),
        Some(Value::Str(s)) => s.split(',').map(str::trim).collect::<Vec<_>>(),
        Some(v) => {
            return Err(bad(format!(
                "{AGENTS_KEY:?} must be a string like \"P1,P2\", not {}",
                v.render()
            )));
        }
    };
    if agents.iter().any(|a| a.is_empty()) || agents.len() > 2 {
        return Err(bad(format!(
            "{AGENTS_KEY:?} must name one or two agents, got {:?}",
            agents.join(",")
        )));
    }
    match meta.get(IGNORE_P2_KEY) {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(None),
        Some(v) => {
            return Err(bad(format!(
                "{IGNORE_P2_KEY:?} must be a bool, not {}",
                v.render()
            )));
        }
    }
    if agents.len() < 2 {
        return Ok(None);
    }
    let mapping = match meta.get(P2_SWAP_KEY) {
        None => "",
        Some(Value::Str(s)) => s.as_str(),
        Some(v) => {
            return Err(bad(format!(
                "{P2_SWAP_KEY:?} must be a string like \"a=b,c=d\", not {}",
                v.render()
            )));
        }
    };
    let mut source: Vec<usize> = (0..schema.fields().len()).collect();
    let mut negate_reward = true;
    for pair in mapping.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((a, b)) = pair.split_once('=').map(|(a, b)| (a.trim(), b.trim())) else {
            return Err(bad(format!("{P2_SWAP_KEY:?}: {pair:?} is not \"a=b\"")));
        };
        for (a, b) in swapped_fields(schema, a, b).map_err(&bad)? {
            swap_pair(&mut source, &mut negate_reward, schema, &a, &b, pair).map_err(&bad)?;
        }
    }
    Ok(Some(P2View {
        source,
        negate_reward,
    }))
}

/// The field pairs `a=b` swaps: the two fields, or, for two subtrees (`obs/P1=obs/P2`), every
/// field below `a/` with the field of the same path below `b/`, which must match one to one.
fn swapped_fields(
    schema: &Schema,
    a: &str,
    b: &str,
) -> std::result::Result<Vec<(String, String)>, String> {
    if schema.index_of(a).is_some() || schema.index_of(b).is_some() {
        return Ok(vec![(a.to_owned(), b.to_owned())]);
    }
    let below = |root: &str| -> Vec<String> {
        let prefix = format!("{root}/");
        schema
            .fields()
            .iter()
            .filter_map(|f| f.name.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let (under_a, under_b) = (below(a), below(b));
    if under_a.is_empty() || under_b.is_empty() {
        let missing = if under_a.is_empty() { a } else { b };
        return Err(format!(
            "{P2_SWAP_KEY:?} names {missing:?}, which is neither a field nor a subtree of the schema ({})",
            schema.field_names()
        ));
    }
    let mut sorted_a = under_a.clone();
    let mut sorted_b = under_b;
    sorted_a.sort();
    sorted_b.sort();
    if sorted_a != sorted_b {
        return Err(format!(
            "{P2_SWAP_KEY:?}: subtrees {a:?} ({}) and {b:?} ({}) do not hold the same fields",
            sorted_a.join(", "),
            sorted_b.join(", ")
        ));
    }
    Ok(under_a
        .into_iter()
        .map(|rest| (format!("{a}/{rest}"), format!("{b}/{rest}")))
        .collect())
}

/// Applies one field swap to the P2 view being built.
fn swap_pair(
    source: &mut [usize],
    negate_reward: &mut bool,
    schema: &Schema,
    a: &str,
    b: &str,
    pair: &str,
) -> std::result::Result<(), String> {
    let fields = schema.fields();
    {
        let index = |name: &str| {
            schema.index_of(name).ok_or_else(|| {
                format!(
                    "{P2_SWAP_KEY:?} names {name:?}, which the schema does not have ({})",
                    schema.field_names()
                )
            })
        };
        let (i, j) = (index(a)?, index(b)?);
        let (fa, fb) = (&fields[i], &fields[j]);
        if i == j || source[i] != i || source[j] != j {
            return Err(format!(
                "{P2_SWAP_KEY:?}: {pair:?} swaps a field with itself or one already swapped"
            ));
        }
        if fa.dtype != fb.dtype || fa.shape != fb.shape || fa.kind != fb.kind {
            return Err(format!(
                "{P2_SWAP_KEY:?}: {a:?} and {b:?} differ in dtype, shape or kind"
            ));
        }
        source.swap(i, j);
        if a == REWARD || b == REWARD {
            *negate_reward = false;
        }
    }
    Ok(())
}
