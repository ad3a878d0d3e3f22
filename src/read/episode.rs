//! What the index says of episodes and users: no field data is touched to get it.

use std::sync::Arc;

use super::catalog::{Catalog, CatalogRow};
use super::selectable::Selectable;
use crate::error::{Error, Result};
use crate::ids::{EpisodeId, SchemaId};
use crate::index::records::{CatalogRecordV1, EpisodeRecordV1, Outcome, SplitSpecV1};
use crate::segment::format::ChunkRef;
use crate::value::Info;

/// A committed episode's metadata (no field data is touched to get it).
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub(super) id: EpisodeId,
    pub(super) record: EpisodeRecordV1,
}

impl Selectable for Episode {
    fn id(&self) -> EpisodeId {
        self.id
    }
    fn user(&self) -> &str {
        &self.record.user
    }
    fn env(&self) -> &str {
        &self.record.env
    }
    fn has_tag(&self, tag: &str) -> bool {
        self.record.tags.iter().any(|t| t == tag)
    }
    fn outcome(&self) -> Outcome {
        self.record.outcome
    }
    fn total_return(&self) -> f64 {
        self.record.total_return
    }
    fn steps(&self) -> u32 {
        self.record.steps
    }
}

impl Episode {
    pub(crate) fn from_record(id: EpisodeId, record: EpisodeRecordV1) -> Episode {
        Episode { id, record }
    }

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

    pub fn metadata(&self) -> &Info {
        &self.record.metadata
    }
    /// The index record, as stored.
    pub(crate) fn record(&self) -> &EpisodeRecordV1 {
        &self.record
    }

    pub(crate) fn chunks(&self) -> &[Vec<ChunkRef>] {
        &self.record.fields
    }
}

/// An episode's catalog row: its metadata without the metadata map and chunk lists, read
/// from the index's compact catalog ([`Snapshot::catalog`](crate::Snapshot::catalog)).
/// What listing, selecting and partitioning need; open the full [`Episode`] with
/// [`Snapshot::episode`](crate::Snapshot::episode) to read fields.
///
/// A row of a shared [`Catalog`]: making one copies nothing (a loader's share of 100k
/// episodes is 100k of these over one catalog).
#[derive(Clone)]
pub struct EpisodeSummary {
    catalog: Arc<Catalog>,
    i: usize,
}

impl EpisodeSummary {
    /// Row `i` of `catalog`.
    pub(crate) fn new(catalog: Arc<Catalog>, i: usize) -> Self {
        assert!(
            i < catalog.len(),
            "row {i} of a catalog of {}",
            catalog.len()
        );
        EpisodeSummary { catalog, i }
    }

    fn row(&self) -> CatalogRow<'_> {
        self.catalog.row(self.i)
    }

    /// Store-unique id; ids grow in commit order.
    pub fn id(&self) -> EpisodeId {
        self.row().id()
    }
    pub fn user(&self) -> &str {
        self.row().user()
    }
    pub fn env(&self) -> &str {
        self.row().env()
    }
    pub fn schema_id(&self) -> SchemaId {
        self.row().schema_id()
    }
    /// Transitions `T` (there are `T + 1` observations).
    pub fn steps(&self) -> u32 {
        self.row().steps()
    }
    /// Sum of rewards.
    pub fn total_return(&self) -> f64 {
        self.row().total_return()
    }
    pub fn outcome(&self) -> Outcome {
        self.row().outcome()
    }
    pub fn seed(&self) -> Option<u64> {
        self.row().seed()
    }
    pub fn tags(&self) -> Vec<&str> {
        self.row().tags().collect()
    }
    /// Microseconds since the Unix epoch.
    pub fn started_at_us(&self) -> i64 {
        self.row().started_at_us()
    }
    pub fn ended_at_us(&self) -> i64 {
        self.row().ended_at_us()
    }
    pub fn committed_at_us(&self) -> i64 {
        self.row().committed_at_us()
    }
    /// Field bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.row().raw_bytes()
    }
    /// Field bytes as stored.
    pub fn stored_bytes(&self) -> u64 {
        self.row().stored_bytes()
    }
}

impl PartialEq for EpisodeSummary {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id() && self.catalog.record(self.i) == other.catalog.record(other.i)
    }
}

impl std::fmt::Debug for EpisodeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeSummary")
            .field("id", &self.id())
            .field("record", &self.catalog.record(self.i))
            .finish()
    }
}

impl From<&Episode> for EpisodeSummary {
    fn from(e: &Episode) -> Self {
        let mut catalog = Catalog::new();
        catalog.push(e.id.get(), &CatalogRecordV1::of(&e.record));
        EpisodeSummary::new(Arc::new(catalog), 0)
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
    /// Any of these splits (`trajstore split`; an error when the store has no split or no
    /// split of that name).
    pub splits: Vec<String>,
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

    /// Only episodes of this split.
    pub fn split(mut self, name: impl Into<String>) -> Self {
        self.splits.push(name.into());
        self
    }

    /// Whether the query selects anything narrower than "every episode" (a cutoff alone
    /// does not count): curation refuses to run without one.
    pub fn has_filter(&self) -> bool {
        !(self.users.is_empty()
            && self.envs.is_empty()
            && self.tags.is_empty()
            && self.outcomes.is_empty()
            && self.splits.is_empty()
            && self.min_return.is_none()
            && self.max_return.is_none()
            && self.min_steps.is_none())
    }

    /// The split spec a split filter needs, checked: every named split exists.
    pub(crate) fn check_splits<'s>(
        &self,
        spec: Option<&'s SplitSpecV1>,
    ) -> Result<Option<&'s SplitSpecV1>> {
        if self.splits.is_empty() {
            return Ok(None);
        }
        let Some(spec) = spec else {
            return Err(Error::invalid_request(
                "split",
                "the store has no split: set one with `trajstore split DIR --fractions train=0.9,val=0.1 --seed S`".to_owned(),
            ));
        };
        for name in &self.splits {
            if !spec.names().any(|n| n == name) {
                return Err(Error::invalid_request(
                    "split",
                    format!(
                        "no split named {name:?} (the store's splits: {})",
                        spec.names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(Some(spec))
    }

    /// Whether `e` matches; `split` is the store's split spec when the query names splits
    /// (from [`Query::check_splits`]).
    pub(crate) fn matches(&self, e: &impl Selectable, split: Option<&SplitSpecV1>) -> bool {
        let splits_match = match split {
            Some(spec) if !self.splits.is_empty() => {
                let label = spec.label(e.id().get(), e.user());
                self.splits.iter().any(|s| s == label)
            }
            _ => self.splits.is_empty(),
        };
        splits_match
            && (self.users.is_empty() || self.users.iter().any(|u| u == e.user()))
            && (self.envs.is_empty() || self.envs.iter().any(|v| v == e.env()))
            && self.tags.iter().all(|t| e.has_tag(t))
            && (self.outcomes.is_empty() || self.outcomes.contains(&e.outcome()))
            && self.min_return.is_none_or(|m| e.total_return() >= m)
            && self.max_return.is_none_or(|m| e.total_return() <= m)
            && self.min_steps.is_none_or(|m| e.steps() >= m)
            && self.before_id.is_none_or(|c| e.id() < c)
    }
}

/// A deleted episode awaiting compaction: `restore` puts it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Tombstone {
    /// The episode as it was when deleted.
    pub episode: Episode,
    /// Microseconds since the Unix epoch.
    pub deleted_at_us: i64,
    pub deleted_by: String,
    /// Queries cut off below this id ([`Query::before_id`]) were taken before the delete and
    /// still see the episode.
    pub hidden_from: EpisodeId,
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
