//! What the index says of episodes and users: no field data is touched to get it.

use crate::ids::{EpisodeId, SchemaId};
use crate::index::records::{EpisodeRecordV1, Outcome};
use crate::segment::format::ChunkRef;
use crate::value::Info;

/// A committed episode's metadata (no field data is touched to get it).
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub(super) id: EpisodeId,
    pub(super) record: EpisodeRecordV1,
}

impl Episode {
    /// Store-unique id; ids grow in commit order.
    pub fn id(&self) -> EpisodeId {
        self.id
    }
    pub fn user(&self) -> &str {
        &self.record.user
    }
    pub fn env(&self) -> &str {
        &self.record.env
    }
    pub fn schema_id(&self) -> SchemaId {
        SchemaId(self.record.schema_id)
    }
    /// Transitions `T` (there are `T + 1` observations).
    pub fn steps(&self) -> u32 {
        self.record.steps
    }
    /// Sum of rewards.
    pub fn total_return(&self) -> f64 {
        self.record.total_return
    }
    pub fn outcome(&self) -> Outcome {
        self.record.outcome
    }
    pub fn seed(&self) -> Option<u64> {
        self.record.seed
    }
    pub fn tags(&self) -> &[String] {
        &self.record.tags
    }
    pub fn metadata(&self) -> &Info {
        &self.record.metadata
    }
    /// Microseconds since the Unix epoch.
    pub fn started_at_us(&self) -> i64 {
        self.record.started_at_us
    }
    pub fn ended_at_us(&self) -> i64 {
        self.record.ended_at_us
    }
    pub fn committed_at_us(&self) -> i64 {
        self.record.committed_at_us
    }
    /// Field bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.record.raw_bytes
    }
    /// Field bytes as stored.
    pub fn stored_bytes(&self) -> u64 {
        self.record.stored_bytes
    }
    /// The index record, as stored.
    pub(crate) fn record(&self) -> &EpisodeRecordV1 {
        &self.record
    }

    pub(crate) fn chunks(&self) -> &[Vec<ChunkRef>] {
        &self.record.fields
    }
}

/// Which episodes to list. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Any of these users.
    pub users: Vec<String>,
    /// Any of these envs.
    pub envs: Vec<String>,
    /// All of these tags.
    pub tags: Vec<String>,
    /// Any of these outcomes.
    pub outcomes: Vec<Outcome>,
    pub min_return: Option<f64>,
    pub max_return: Option<f64>,
    pub min_steps: Option<u32>,
    /// Only episodes with id below this (a snapshot cutoff shared by distributed ranks).
    pub before_id: Option<EpisodeId>,
}

impl Query {
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.users.push(user.into());
        self
    }
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.envs.push(env.into());
        self
    }
    /// Only episodes committed before `cutoff` (a snapshot's [`cutoff`](crate::Snapshot::cutoff)).
    pub fn before(mut self, cutoff: EpisodeId) -> Self {
        self.before_id = Some(cutoff);
        self
    }

    pub(super) fn matches(&self, e: &Episode) -> bool {
        (self.users.is_empty() || self.users.iter().any(|u| u == e.user()))
            && (self.envs.is_empty() || self.envs.iter().any(|v| v == e.env()))
            && self.tags.iter().all(|t| e.tags().contains(t))
            && (self.outcomes.is_empty() || self.outcomes.contains(&e.outcome()))
            && self.min_return.is_none_or(|m| e.total_return() >= m)
            && self.max_return.is_none_or(|m| e.total_return() <= m)
            && self.min_steps.is_none_or(|m| e.steps() >= m)
            && self.before_id.is_none_or(|c| e.id() < c)
    }
}

/// A user's statistics, maintained at commit.
#[derive(Clone, Debug, PartialEq)]
pub struct UserSummary {
    pub name: String,
    pub episodes: u64,
    pub steps: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub first_committed_us: i64,
    pub last_committed_us: i64,
}
