//! A [`Catalog`]: the catalog rows a query selects, as columns (`Snapshot::catalog_columns`),
//! with a borrowed row view. What listing, selecting and partitioning read without a string
//! copy per episode; an [`EpisodeSummary`](super::EpisodeSummary) is an owned row of a shared one.

pub use crate::index::catalog_columns::Catalog;

use super::selectable::Selectable;
use crate::ids::{EpisodeId, SchemaId};
use crate::index::records::Outcome;

impl Catalog {
    /// Episode ids, increasing.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }
    /// Transitions of every row.
    pub fn steps(&self) -> &[u32] {
        &self.steps
    }
    pub fn schema_ids(&self) -> &[u64] {
        &self.schema_ids
    }
    pub fn total_returns(&self) -> &[f64] {
        &self.total_returns
    }
    /// Microseconds since the Unix epoch.
    pub fn started_at_us(&self) -> &[i64] {
        &self.started_at_us
    }
    pub fn ended_at_us(&self) -> &[i64] {
        &self.ended_at_us
    }
    pub fn committed_at_us(&self) -> &[i64] {
        &self.committed_at_us
    }
    pub fn raw_bytes(&self) -> &[u64] {
        &self.raw_bytes
    }
    pub fn stored_bytes(&self) -> &[u64] {
        &self.stored_bytes
    }

    /// Row `i` (below [`Catalog::len`]).
    pub fn row(&self, i: usize) -> CatalogRow<'_> {
        assert!(i < self.len(), "row {i} of a catalog of {}", self.len());
        CatalogRow { catalog: self, i }
    }

    /// Every row, in id order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = CatalogRow<'_>> + '_ {
        (0..self.len()).map(move |i| CatalogRow { catalog: self, i })
    }

    /// The row of episode `id`, if the catalog has it.
    pub fn find(&self, id: EpisodeId) -> Option<CatalogRow<'_>> {
        self.position(id.get()).map(|i| self.row(i))
    }
}

/// One row of a [`Catalog`], borrowed: the accessors of
/// [`EpisodeSummary`](crate::read::EpisodeSummary) without a copy.
#[derive(Clone, Copy)]
pub struct CatalogRow<'a> {
    catalog: &'a Catalog,
    i: usize,
}

impl<'a> CatalogRow<'a> {
    /// Its position in the catalog.
    pub fn index(&self) -> usize {
        self.i
    }
    pub fn id(&self) -> EpisodeId {
        EpisodeId(self.catalog.ids[self.i])
    }
    pub fn user(&self) -> &'a str {
        self.catalog.string(self.catalog.users[self.i])
    }
    pub fn env(&self) -> &'a str {
        self.catalog.string(self.catalog.envs[self.i])
    }
    pub fn schema_id(&self) -> SchemaId {
        SchemaId(self.catalog.schema_ids[self.i])
    }
    /// Transitions `T` (there are `T + 1` observations).
    pub fn steps(&self) -> u32 {
        self.catalog.steps[self.i]
    }
    /// Sum of rewards.
    pub fn total_return(&self) -> f64 {
        self.catalog.total_returns[self.i]
    }
    pub fn outcome(&self) -> Outcome {
        self.catalog.outcomes[self.i]
    }
    pub fn seed(&self) -> Option<u64> {
        self.catalog.seeds[self.i]
    }
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let catalog = self.catalog;
        catalog.tags_of(self.i).iter().map(|&t| catalog.string(t))
    }
    /// Microseconds since the Unix epoch.
    pub fn started_at_us(&self) -> i64 {
        self.catalog.started_at_us[self.i]
    }
    pub fn ended_at_us(&self) -> i64 {
        self.catalog.ended_at_us[self.i]
    }
    pub fn committed_at_us(&self) -> i64 {
        self.catalog.committed_at_us[self.i]
    }
    /// Field bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.catalog.raw_bytes[self.i]
    }
    /// Field bytes as stored.
    pub fn stored_bytes(&self) -> u64 {
        self.catalog.stored_bytes[self.i]
    }
}

impl CatalogRow<'_> {
    /// Whether one of its tags is `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t == tag)
    }
}

impl Selectable for CatalogRow<'_> {
    fn id(&self) -> EpisodeId {
        CatalogRow::id(self)
    }
    fn user(&self) -> &str {
        CatalogRow::user(self)
    }
    fn env(&self) -> &str {
        CatalogRow::env(self)
    }
    fn has_tag(&self, tag: &str) -> bool {
        CatalogRow::has_tag(self, tag)
    }
    fn outcome(&self) -> Outcome {
        CatalogRow::outcome(self)
    }
    fn total_return(&self) -> f64 {
        CatalogRow::total_return(self)
    }
    fn steps(&self) -> u32 {
        CatalogRow::steps(self)
    }
}
