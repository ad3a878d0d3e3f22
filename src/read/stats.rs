//! Field statistics of any set of episodes, combined from the index (`episode_stats`) without
//! reading a frame; episodes recorded without statistics are listed, or computed from their
//! frames on request.

use std::collections::{BTreeSet, HashMap};

use super::{Episode, Query, Snapshot};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::stats::{
    ElementStats, EpisodeStatsBuilder, EpisodeStatsV1, FieldSummary, MAX_STATS_ELEMENTS,
    StoreStats, has_stats,
};

/// Fields are combined when name, dtype and shape agree.
type FieldKey = (String, DType, Vec<usize>);

/// The running combination of one field over episodes.
struct Combined {
    key: FieldKey,
    episodes: u64,
    elements: Vec<ElementStats>,
}

#[derive(Default)]
struct Combiner {
    fields: Vec<Combined>,
    by_key: HashMap<FieldKey, usize>,
}

impl Combiner {
    fn slot(&mut self, schema: &Schema, position: usize) -> Option<&mut Combined> {
        let spec = schema.fields().get(position)?;
        let key = (spec.name.clone(), spec.dtype, spec.shape_usize());
        let i = match self.by_key.get(&key) {
            Some(i) => *i,
            None => {
                let elements = key.2.iter().product();
                self.fields.push(Combined {
                    key: key.clone(),
                    episodes: 0,
                    elements: vec![ElementStats::default(); elements],
                });
                self.by_key.insert(key, self.fields.len() - 1);
                self.fields.len() - 1
            }
        };
        Some(&mut self.fields[i])
    }

    fn add_stored(
        &mut self,
        schema: &Schema,
        wanted: &Wanted,
        stored: &EpisodeStatsV1,
    ) -> Result<()> {
        for field in &stored.fields {
            let position = field.field as usize;
            if !wanted.includes(schema, position) {
                continue;
            }
            let Some(slot) = self.slot(schema, position) else {
                return Err(corrupt(format!(
                    "statistics name field {position}, beyond its schema's {} fields",
                    schema.fields().len()
                )));
            };
            if slot.elements.len() != field.elements.len() {
                return Err(corrupt(format!(
                    "statistics of field {:?} have {} elements, its shape {}",
                    slot.key.0,
                    field.elements.len(),
                    slot.elements.len()
                )));
            }
            slot.episodes += 1;
            for (total, element) in slot.elements.iter_mut().zip(&field.elements) {
                element.merge_into(total);
            }
        }
        Ok(())
    }

    fn add_computed(&mut self, schema: &Schema, computed: Vec<(u32, Vec<ElementStats>)>) {
        for (position, elements) in computed {
            if let Some(slot) = self.slot(schema, position as usize) {
                slot.episodes += 1;
                for (total, element) in slot.elements.iter_mut().zip(&elements) {
                    total.merge(element);
                }
            }
        }
    }
}

fn corrupt(reason: String) -> Error {
    Error::Read(crate::error::ReadError::CorruptRecord {
        table: "episode_stats",
        reason,
    })
}

/// The fields asked for (all with statistics when empty).
struct Wanted {
    names: BTreeSet<String>,
}

impl Wanted {
    fn includes(&self, schema: &Schema, position: usize) -> bool {
        self.names.is_empty()
            || schema
                .fields()
                .get(position)
                .is_some_and(|f| self.names.contains(&f.name))
    }
}

impl Snapshot {
    /// Per-element statistics of the small numeric fields (at most
    /// [`MAX_STATS_ELEMENTS`] elements per value) over the episodes `query` selects, combined
    /// from the statistics stored at commit: no frame is read.
    ///
    /// `fields` narrows to these field names (every field with statistics when empty); a name
    /// no selected episode has, or a field too large to have statistics, is an error naming
    /// it. Episodes without stored statistics (recorded before store format 2, or restored by
    /// `repair`) are listed in [`StoreStats::missing`] and left out, unless `compute_missing`:
    /// then their statistics are computed from their frames ([`StoreStats::computed`]). An
    /// empty selection gives no fields.
    pub fn stats(
        &self,
        query: &Query,
        fields: &[&str],
        compute_missing: bool,
    ) -> Result<StoreStats> {
        let episodes = self.episodes(query)?;
        let wanted = Wanted {
            names: fields.iter().map(|f| (*f).to_owned()).collect(),
        };
        self.check_wanted(&episodes, &wanted)?;
        // Schemas first: the scan below holds the index read.
        let mut schemas = HashMap::new();
        for e in &episodes {
            if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(e.schema_id()) {
                slot.insert(self.schema(e.schema_id())?);
            }
        }
        let mut combiner = Combiner::default();
        let stored = self.stored_stats(&episodes, |at, record| {
            combiner.add_stored(&schemas[&episodes[at].schema_id()], &wanted, &record)
        })?;
        let mut missing = Vec::new();
        let mut computed = Vec::new();
        for (episode, _) in episodes.iter().zip(&stored).filter(|(_, s)| !**s) {
            if compute_missing {
                let schema = &schemas[&episode.schema_id()];
                combiner.add_computed(schema, self.compute_stats(episode, schema, &wanted)?);
                computed.push(episode.id());
            } else {
                missing.push(episode.id());
            }
        }
        Ok(StoreStats {
            episodes: episodes.len() as u64,
            fields: combiner
                .fields
                .into_iter()
                .map(|c| FieldSummary {
                    name: c.key.0,
                    dtype: c.key.1,
                    shape: c.key.2,
                    episodes: c.episodes,
                    elements: c.elements.iter().map(|e| e.summary(c.key.1)).collect(),
                })
                .collect(),
            missing,
            computed,
        })
    }

    /// Refuses a field name no selected episode has, or one too large to have statistics.
    fn check_wanted(&self, episodes: &[Episode], wanted: &Wanted) -> Result<()> {
        if wanted.names.is_empty() || episodes.is_empty() {
            return Ok(());
        }
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut too_large: HashMap<String, usize> = HashMap::new();
        let schema_ids: BTreeSet<_> = episodes.iter().map(Episode::schema_id).collect();
        for id in schema_ids {
            for f in self.schema(id)?.fields() {
                let elements = f.shape.iter().map(|&d| d as usize).product();
                if has_stats(elements) {
                    known.insert(f.name.clone());
                } else {
                    too_large.insert(f.name.clone(), elements);
                }
            }
        }
        for name in &wanted.names {
            if known.contains(name) {
                continue;
            }
            let reason = match too_large.get(name) {
                Some(n) => format!(
                    "{name:?} has {n} elements per value: statistics are kept for fields of 1 to \
                     {MAX_STATS_ELEMENTS} elements"
                ),
                None => format!(
                    "no selected episode has a field {name:?} (fields with statistics: {})",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(Error::invalid_request("field", reason));
        }
        Ok(())
    }

    /// An episode's statistics computed from its frames, as recording would have gathered them.
    /// The statistics record an episode would have been committed with, computed from its
    /// frames (only the fields small enough to have statistics are read).
    pub(crate) fn stats_record(&self, episode: &Episode) -> Result<EpisodeStatsV1> {
        let schema = self.schema(episode.schema_id())?;
        let mut builder = EpisodeStatsBuilder::new(schema.fields());
        for position in builder.field_positions() {
            let field = self.field_at(episode, &schema, position)?;
            builder.push_field(position, &field.to_vec()?);
        }
        Ok(builder.finish_record())
    }

    /// The live episodes of this snapshot that have no stored statistics, in id order.
    pub(crate) fn episodes_without_stats(&self) -> Result<Vec<Episode>> {
        let episodes = self.episodes(&Query::default())?;
        let stored = self.stored_stats(&episodes, |_, _| Ok(()))?;
        Ok(episodes
            .into_iter()
            .zip(stored)
            .filter(|(_, s)| !s)
            .map(|(e, _)| e)
            .collect())
    }

    /// Calls `each(position in episodes, record)` for every episode of `episodes` (ids
    /// increasing) that has stored statistics; says which have them.
    fn stored_stats(
        &self,
        episodes: &[Episode],
        mut each: impl FnMut(usize, EpisodeStatsV1) -> Result<()>,
    ) -> Result<Vec<bool>> {
        let ids: Vec<u64> = episodes.iter().map(|e| e.id().get()).collect();
        let mut stored = vec![false; episodes.len()];
        let mut at = 0usize;
        self.read_index(|index| {
            index.episode_stats(&ids, |id, record| {
                while ids[at] < id {
                    at += 1;
                }
                stored[at] = true;
                each(at, record)
            })
        })?;
        Ok(stored)
    }

    fn compute_stats(
        &self,
        episode: &Episode,
        schema: &Schema,
        wanted: &Wanted,
    ) -> Result<Vec<(u32, Vec<ElementStats>)>> {
        let mut builder = EpisodeStatsBuilder::new(schema.fields());
        for position in builder.field_positions() {
            if !wanted.includes(schema, position) {
                continue;
            }
            let field = self.field_at(episode, schema, position)?;
            builder.push_field(position, &field.to_vec()?);
        }
        let wanted_positions: Vec<u32> = (0..schema.fields().len())
            .filter(|p| wanted.includes(schema, *p))
            .map(|p| p as u32)
            .collect();
        Ok(builder
            .finish()
            .into_iter()
            .filter(|(p, _)| wanted_positions.contains(p))
            .collect())
    }
}
