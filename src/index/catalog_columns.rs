//! [`Catalog`]: catalog rows held as columns in memory, the shape every read of the catalog
//! fills (catalog.rs from the index, chunk_decode.rs from a sealed chunk's bytes).

use std::collections::HashMap;

use super::records::{CatalogChunkV1, CatalogRecordV1, Outcome};

/// Catalog rows as columns, in id order: what a listing, a selection or a partition reads
/// (catalog.rs, `read`). Strings (users, envs, tags) are stored once each and named by position.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub(crate) ids: Vec<u64>,
    pub(crate) steps: Vec<u32>,
    pub(crate) users: Vec<u32>,
    pub(crate) envs: Vec<u32>,
    pub(crate) schema_ids: Vec<u64>,
    pub(crate) started_at_us: Vec<i64>,
    pub(crate) ended_at_us: Vec<i64>,
    pub(crate) committed_at_us: Vec<i64>,
    pub(crate) total_returns: Vec<f64>,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) seeds: Vec<Option<u64>>,
    /// Row `i`'s tags are `tag_values[tag_starts[i]..tag_starts[i + 1]]`.
    pub(crate) tag_starts: Vec<u32>,
    pub(crate) tag_values: Vec<u32>,
    pub(crate) raw_bytes: Vec<u64>,
    pub(crate) stored_bytes: Vec<u64>,
    pub(crate) strings: Vec<String>,
    lookup: HashMap<String, u32>,
}

impl Catalog {
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Room for `rows` rows (reserved, not touched: an overestimate costs address space only).
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut tag_starts = Vec::with_capacity(rows + 1);
        tag_starts.push(0);
        Catalog {
            ids: Vec::with_capacity(rows),
            steps: Vec::with_capacity(rows),
            users: Vec::with_capacity(rows),
            envs: Vec::with_capacity(rows),
            schema_ids: Vec::with_capacity(rows),
            started_at_us: Vec::with_capacity(rows),
            ended_at_us: Vec::with_capacity(rows),
            committed_at_us: Vec::with_capacity(rows),
            total_returns: Vec::with_capacity(rows),
            outcomes: Vec::with_capacity(rows),
            seeds: Vec::with_capacity(rows),
            tag_starts,
            tag_values: Vec::new(),
            raw_bytes: Vec::with_capacity(rows),
            stored_bytes: Vec::with_capacity(rows),
            strings: Vec::new(),
            lookup: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.lookup.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.lookup.insert(s.to_owned(), i);
        i
    }

    /// Appends one row (ids increasing).
    pub(crate) fn push(&mut self, id: u64, r: &CatalogRecordV1) {
        let user = self.intern(&r.user);
        let env = self.intern(&r.env);
        for tag in &r.tags {
            let tag = self.intern(tag);
            self.tag_values.push(tag);
        }
        self.tag_starts.push(self.tag_values.len() as u32);
        self.ids.push(id);
        self.steps.push(r.steps);
        self.users.push(user);
        self.envs.push(env);
        self.schema_ids.push(r.schema_id);
        self.started_at_us.push(r.started_at_us);
        self.ended_at_us.push(r.ended_at_us);
        self.committed_at_us.push(r.committed_at_us);
        self.total_returns.push(r.total_return);
        self.outcomes.push(r.outcome);
        self.seeds.push(r.seed);
        self.raw_bytes.push(r.raw_bytes);
        self.stored_bytes.push(r.stored_bytes);
    }

    /// These rows (ids from `first` on, all in one chunk) as a stored chunk.
    pub(crate) fn to_chunk(&self, first: u64) -> CatalogChunkV1 {
        let mut last = first;
        CatalogChunkV1 {
            id_deltas: self
                .ids
                .iter()
                .map(|&id| {
                    let delta = id - last;
                    last = id;
                    delta
                })
                .collect(),
            steps: self.steps.clone(),
            strings: self.strings.clone(),
            users: self.users.clone(),
            envs: self.envs.clone(),
            schema_ids: self.schema_ids.clone(),
            started_at_us: self.started_at_us.clone(),
            ended_at_us: self.ended_at_us.clone(),
            committed_at_us: self.committed_at_us.clone(),
            total_returns: self.total_returns.clone(),
            outcomes: self.outcomes.clone(),
            seeds: self.seeds.clone(),
            tags: (0..self.len()).map(|i| self.tags_of(i).to_vec()).collect(),
            raw_bytes: self.raw_bytes.clone(),
            stored_bytes: self.stored_bytes.clone(),
        }
    }

    /// Only the rows `keep` selects, in order.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Self, usize) -> bool) {
        let picked: Vec<usize> = (0..self.len()).filter(|&i| keep(self, i)).collect();
        if picked.len() == self.len() {
            return;
        }
        fn gather<T: Copy>(v: &mut Vec<T>, picked: &[usize]) {
            *v = picked.iter().map(|&i| v[i]).collect();
        }
        let mut tag_starts = Vec::with_capacity(picked.len() + 1);
        let mut tag_values = Vec::new();
        tag_starts.push(0);
        for &i in &picked {
            tag_values.extend_from_slice(self.tags_of(i));
            tag_starts.push(tag_values.len() as u32);
        }
        self.tag_starts = tag_starts;
        self.tag_values = tag_values;
        gather(&mut self.ids, &picked);
        gather(&mut self.steps, &picked);
        gather(&mut self.users, &picked);
        gather(&mut self.envs, &picked);
        gather(&mut self.schema_ids, &picked);
        gather(&mut self.started_at_us, &picked);
        gather(&mut self.ended_at_us, &picked);
        gather(&mut self.committed_at_us, &picked);
        gather(&mut self.total_returns, &picked);
        gather(&mut self.outcomes, &picked);
        gather(&mut self.seeds, &picked);
        gather(&mut self.raw_bytes, &picked);
        gather(&mut self.stored_bytes, &picked);
    }

    /// The tag string numbers of row `i`.
    pub(crate) fn tags_of(&self, i: usize) -> &[u32] {
        &self.tag_values[self.tag_starts[i] as usize..self.tag_starts[i + 1] as usize]
    }

    /// String number `i` (a user, env or tag).
    pub(crate) fn string(&self, i: u32) -> &str {
        &self.strings[i as usize]
    }

    /// Row `i` as a catalog record (strings copied).
    pub(crate) fn record(&self, i: usize) -> CatalogRecordV1 {
        CatalogRecordV1 {
            user: self.string(self.users[i]).to_owned(),
            env: self.string(self.envs[i]).to_owned(),
            schema_id: self.schema_ids[i],
            started_at_us: self.started_at_us[i],
            ended_at_us: self.ended_at_us[i],
            committed_at_us: self.committed_at_us[i],
            steps: self.steps[i],
            total_return: self.total_returns[i],
            outcome: self.outcomes[i],
            seed: self.seeds[i],
            tags: self
                .tags_of(i)
                .iter()
                .map(|&t| self.string(t).to_owned())
                .collect(),
            raw_bytes: self.raw_bytes[i],
            stored_bytes: self.stored_bytes[i],
        }
    }

    /// Where id `id` is, if it is a row.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }
}
