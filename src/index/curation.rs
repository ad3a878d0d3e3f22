//! Curation writes (store format 2): tombstones, relabels with their history, the split
//! specification. Each curation operation is one write transaction ([`Index::curate`]); what
//! to change is decided by the caller (crate::curate) through [`CurationTxn`], which keeps
//! every query path consistent: `episodes`, `user_episodes`, `env_episodes` and the `users`
//! statistics move together.
//!
//! The first curation write upgrades a format-1 store to format 2 inside the same
//! transaction (schema/format.md, "Upgrading a format-1 store"): the store is upgraded and
//! curated, or neither.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::catalog::CatalogWriter;
use super::records::{
    DeletedRecordV1, EpisodeRecordV1, HistoryRecordV1, Record, SplitSpecV1, UserRecordV1,
};
use super::{
    CURATION_FORMAT_VERSION, DELETED, ENV_EPISODES, EPISODE_STATS, EPISODES, HISTORY, Index, META,
    META_CURATION_LOG_END, META_FORMAT_VERSION, META_NEXT_EPISODE, SPLIT_CURRENT, SPLITS, STEPS,
    USER_EPISODES, USERS,
};
use crate::error::Result;
use crate::stats::EpisodeStatsV1;

/// Creates the format-2 tables (empty) in `txn`.
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(DELETED)?;
    txn.open_table(HISTORY)?;
    txn.open_table(SPLITS)?;
    Ok(())
}

/// Per-user changes of one transaction, applied to `users` at its end.
#[derive(Default)]
struct UserDelta {
    episodes: i64,
    steps: i64,
    raw_bytes: i64,
    stored_bytes: i64,
}

/// The tables of one curation transaction.
pub(crate) struct CurationTxn<'t> {
    meta: Table<'t, &'static str, u64>,
    episodes: Table<'t, u64, &'static [u8]>,
    steps: Table<'t, (u64, u32), &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    user_episodes: Table<'t, (&'static str, u64), ()>,
    env_episodes: Table<'t, (&'static str, u64), ()>,
    deleted: Table<'t, u64, &'static [u8]>,
    history: Table<'t, (u64, u32), &'static [u8]>,
    splits: Table<'t, &'static str, &'static [u8]>,
    episode_stats: Table<'t, u64, &'static [u8]>,
    catalog: CatalogWriter<'t>,
    deltas: BTreeMap<String, UserDelta>,
    /// The format the store had when the transaction began (1: this transaction upgrades it).
    pub upgraded_from: Option<u32>,
}

impl Index {
    /// Runs one curation transaction: `apply` decides and makes the changes and says whether
    /// to commit them; then the transaction commits durably (a crash leaves the old or the new
    /// state) or is aborted (a dry run; nothing to do). Upgrades a format-1 store to format 2
    /// in the same transaction.
    pub(crate) fn curate<T>(
        &self,
        apply: impl FnOnce(&mut CurationTxn<'_>) -> Result<(T, bool)>,
    ) -> Result<T> {
        let txn = self.writable()?.begin_write()?;
        let value = {
            let mut meta = txn.open_table(META)?;
            let format = meta.get(META_FORMAT_VERSION)?.map_or(1, |v| v.value()) as u32;
            let upgraded_from = if format < CURATION_FORMAT_VERSION {
                meta.insert(META_FORMAT_VERSION, u64::from(CURATION_FORMAT_VERSION))?;
                Some(format)
            } else {
                None
            };
            let catalog = CatalogWriter::open(&txn, &meta)?;
            let mut c = CurationTxn {
                meta,
                episodes: txn.open_table(EPISODES)?,
                steps: txn.open_table(STEPS)?,
                users: txn.open_table(USERS)?,
                user_episodes: txn.open_table(USER_EPISODES)?,
                env_episodes: txn.open_table(ENV_EPISODES)?,
                deleted: txn.open_table(DELETED)?,
                history: txn.open_table(HISTORY)?,
                splits: txn.open_table(SPLITS)?,
                episode_stats: txn.open_table(EPISODE_STATS)?,
                catalog,
                deltas: BTreeMap::new(),
                upgraded_from,
            };
            let (value, commit) = apply(&mut c)?;
            if !commit {
                drop(c);
                txn.abort()?;
                return Ok(value);
            }
            c.apply_user_deltas()?;
            let next = c.next_episode_id()?;
            c.catalog.finish(&mut c.meta, next)?;
            value
        };
        txn.commit()?;
        Ok(value)
    }
}

impl CurationTxn<'_> {
    pub fn next_episode_id(&self) -> Result<u64> {
        Ok(self.meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value()))
    }

    /// Advances `next_episode_id` past an id no episode will have, and returns the new value:
    /// cutoffs taken before this transaction are below it, cutoffs taken after are not. This
    /// is what lets a query cut off before a delete still see the deleted episodes.
    pub fn advance_clock(&mut self) -> Result<u64> {
        let next = self.next_episode_id()? + 1;
        self.meta.insert(META_NEXT_EPISODE, next)?;
        Ok(next)
    }

    /// Where the last committed entry of the curation log ends, as this index knows it.
    pub fn log_end(&self) -> Result<Option<u64>> {
        Ok(self.meta.get(META_CURATION_LOG_END)?.map(|v| v.value()))
    }

    /// Records that the curation log's entries up to `end` are committed (with this
    /// transaction).
    pub fn set_log_end(&mut self, end: u64) -> Result<()> {
        self.meta.insert(META_CURATION_LOG_END, end)?;
        Ok(())
    }

    /// A live (not deleted) episode.
    pub fn episode(&self, id: u64) -> Result<Option<EpisodeRecordV1>> {
        self.episodes
            .get(id)?
            .map(|v| EpisodeRecordV1::decode(v.value()))
            .transpose()
    }

    /// Every live episode, in id order.
    pub fn all_episodes(&self) -> Result<Vec<(u64, EpisodeRecordV1)>> {
        let mut out = Vec::new();
        for entry in self.episodes.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value(), EpisodeRecordV1::decode(bytes.value())?));
        }
        Ok(out)
    }

    /// Live episode ids of one user, in id order.
    pub fn user_ids(&self, user: &str) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in self.user_episodes.range((user, 0)..=(user, u64::MAX))? {
            ids.push(entry?.0.value().1);
        }
        Ok(ids)
    }

    /// Live episode ids of one env, in id order.
    pub fn env_ids(&self, env: &str) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in self.env_episodes.range((env, 0)..=(env, u64::MAX))? {
            ids.push(entry?.0.value().1);
        }
        Ok(ids)
    }

    pub fn tombstone(&self, id: u64) -> Result<Option<DeletedRecordV1>> {
        self.deleted
            .get(id)?
            .map(|v| DeletedRecordV1::decode(v.value()))
            .transpose()
    }

    /// Every tombstone, in id order.
    pub fn tombstones(&self) -> Result<Vec<(u64, DeletedRecordV1)>> {
        let mut out = Vec::new();
        for entry in self.deleted.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value(), DeletedRecordV1::decode(bytes.value())?));
        }
        Ok(out)
    }

    /// Moves a live episode out of every query path into `deleted`.
    pub fn delete(&mut self, id: u64, tombstone: &DeletedRecordV1) -> Result<()> {
        let r = &tombstone.record;
        self.episodes.remove(id)?;
        self.catalog.remove(id)?;
        self.user_episodes.remove((r.user.as_str(), id))?;
        self.env_episodes.remove((r.env.as_str(), id))?;
        self.count(r, -1);
        self.deleted.insert(id, tombstone.encode().as_slice())?;
        Ok(())
    }

    /// Puts a tombstone's episode back on every query path.
    pub fn restore(&mut self, id: u64, r: &EpisodeRecordV1) -> Result<()> {
        self.deleted.remove(id)?;
        self.episodes.insert(id, r.encode().as_slice())?;
        self.catalog.put(id, r)?;
        self.user_episodes.insert((r.user.as_str(), id), ())?;
        self.env_episodes.insert((r.env.as_str(), id), ())?;
        self.count(r, 1);
        Ok(())
    }

    /// Removes a tombstone for good, with the episode's step infos, history and field
    /// statistics (compaction reclaims its bytes). A deleted episode's statistics row stays
    /// until then: a restore brings it back with the episode.
    pub fn purge(&mut self, id: u64) -> Result<()> {
        self.deleted.remove(id)?;
        self.episode_stats.remove(id)?;
        self.steps
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        self.history
            .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        Ok(())
    }

    /// Stores the statistics of live episode `id` if it has none; `false` (nothing written)
    /// when it already has some or is no longer live. Statistics are derived data (computed
    /// from the episode's frames), so this is never logged to `curation.log`.
    pub fn put_missing_stats(&mut self, id: u64, stats: &EpisodeStatsV1) -> Result<bool> {
        if self.episodes.get(id)?.is_none() || self.episode_stats.get(id)?.is_some() {
            return Ok(false);
        }
        self.episode_stats.insert(id, stats.encode().as_slice())?;
        Ok(true)
    }

    /// Replaces a live episode's record by a relabelled one (same id, chunks, env).
    pub fn replace(&mut self, id: u64, old: &EpisodeRecordV1, new: &EpisodeRecordV1) -> Result<()> {
        debug_assert_eq!(old.env, new.env);
        if old.user != new.user {
            self.user_episodes.remove((old.user.as_str(), id))?;
            self.user_episodes.insert((new.user.as_str(), id), ())?;
            self.count(old, -1);
            self.count(new, 1);
        }
        self.episodes.insert(id, new.encode().as_slice())?;
        self.catalog.put(id, new)?;
        Ok(())
    }

    /// Appends one entry to an episode's history.
    pub fn push_history(&mut self, id: u64, entry: &HistoryRecordV1) -> Result<()> {
        let seq = match self.history.range((id, 0)..=(id, u32::MAX))?.next_back() {
            Some(last) => last?.0.value().1 + 1,
            None => 0,
        };
        self.history.insert((id, seq), entry.encode().as_slice())?;
        Ok(())
    }

    pub fn set_split(&mut self, spec: &SplitSpecV1) -> Result<()> {
        self.splits
            .insert(SPLIT_CURRENT, spec.encode().as_slice())?;
        Ok(())
    }

    pub fn split(&self) -> Result<Option<SplitSpecV1>> {
        self.splits
            .get(SPLIT_CURRENT)?
            .map(|v| SplitSpecV1::decode(v.value()))
            .transpose()
    }

    fn count(&mut self, r: &EpisodeRecordV1, sign: i64) {
        let d = self.deltas.entry(r.user.clone()).or_default();
        d.episodes += sign;
        d.steps += sign * i64::from(r.steps);
        d.raw_bytes += sign * r.raw_bytes as i64;
        d.stored_bytes += sign * r.stored_bytes as i64;
    }

    /// Brings `users` up to date with this transaction's moves: counts by the deltas, first
    /// and last commit times from the user's first and last live episode (ids grow in commit
    /// order); a user left without episodes loses its row, as if never recorded.
    fn apply_user_deltas(&mut self) -> Result<()> {
        for (name, d) in std::mem::take(&mut self.deltas) {
            if d.episodes == 0 && d.steps == 0 && d.raw_bytes == 0 && d.stored_bytes == 0 {
                continue;
            }
            let mut user = match self.users.get(name.as_str())? {
                Some(v) => UserRecordV1::decode(v.value())?,
                None => UserRecordV1::default(),
            };
            let add = |v: u64, by: i64| v.saturating_add_signed(by);
            user.episodes = add(user.episodes, d.episodes);
            user.steps = add(user.steps, d.steps);
            user.raw_bytes = add(user.raw_bytes, d.raw_bytes);
            user.stored_bytes = add(user.stored_bytes, d.stored_bytes);
            let ids = {
                let mut range = self
                    .user_episodes
                    .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))?;
                let first = range.next().transpose()?.map(|(k, _)| k.value().1);
                let last = range.next_back().transpose()?.map(|(k, _)| k.value().1);
                first.map(|f| (f, last.unwrap_or(f)))
            };
            match ids {
                None => {
                    self.users.remove(name.as_str())?;
                }
                Some((first, last)) => {
                    let time = |id| -> Result<i64> {
                        Ok(self.episode(id)?.map_or(0, |r| r.committed_at_us))
                    };
                    user.first_committed_us = time(first)?;
                    user.last_committed_us = time(last)?;
                    self.users.insert(name.as_str(), user.encode().as_slice())?;
                }
            }
        }
        Ok(())
    }
}
