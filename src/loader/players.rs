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
use crate::value::Value;

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
    let meta = episode.metadata();
    let bad = |m: String| {
        Error::invalid_request("player layout", format!("episode {}: {m}", episode.id()))
    };
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
    let fields = schema.fields();
    let mut source: Vec<usize> = (0..fields.len()).collect();
    let mut negate_reward = true;
    for pair in mapping.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((a, b)) = pair.split_once('=').map(|(a, b)| (a.trim(), b.trim())) else {
            return Err(bad(format!("{P2_SWAP_KEY:?}: {pair:?} is not \"a=b\"")));
        };
        let index = |name: &str| {
            schema.index_of(name).ok_or_else(|| {
                bad(format!(
                    "{P2_SWAP_KEY:?} names {name:?}, which the schema does not have ({})",
                    schema.field_names()
                ))
            })
        };
        let (i, j) = (index(a)?, index(b)?);
        let (fa, fb) = (&fields[i], &fields[j]);
        if i == j || source[i] != i || source[j] != j {
            return Err(bad(format!(
                "{P2_SWAP_KEY:?}: {pair:?} swaps a field with itself or one already swapped"
            )));
        }
        if fa.dtype != fb.dtype || fa.shape != fb.shape || fa.kind != fb.kind {
            return Err(bad(format!(
                "{P2_SWAP_KEY:?}: {a:?} and {b:?} differ in dtype, shape or kind"
            )));
        }
        source.swap(i, j);
        if a == REWARD || b == REWARD {
            negate_reward = false;
        }
    }
    Ok(Some(P2View {
        source,
        negate_reward,
    }))
}
