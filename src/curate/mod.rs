//! Curation: delete and restore (tombstones), relabel, split, in the index alone and while
//! recorders and loaders run. Field bytes are never touched: a deleted episode's bytes stay in
//! their segment until compaction purges its tombstone ([`purge`]).
//!
//! Every operation is one index transaction (index/curation.rs) that first resolves its
//! selection inside the transaction (so it acts on exactly what the index holds when it
//! commits), then logs the resolved operation to `curation.log` (log.rs, synced before the
//! commit; `repair` replays it), then applies it (apply.rs). A dry run resolves and applies
//! in a transaction that is then aborted: it reports exactly what would change, and changes
//! nothing (not even the format version).
//!
//! Layering: `log`, `relabel` and `apply` sit below `repair` (which replays the log); this
//! module's API sits with read/ and write/.

pub(crate) mod apply;
pub(crate) mod log;
mod relabel;

use std::time::Duration;

pub use relabel::Relabel;

use crate::error::{Error, ReadError, Result};
use crate::ids::EpisodeId;
use crate::index::curation::CurationTxn;
use crate::index::guarded;
use crate::index::records::{EpisodeRecordV1, SplitKey, SplitSpecV1};
use crate::open::OpenStore;
use crate::read::{Episode, Query, Snapshot};
use log::{LogOp, LogWriter};

/// Which episodes an operation applies to: the listed ids (when any) that also match the
/// query. At least one selector is required: an id, or a query filter (a cutoff alone is not
/// one), so that nothing ever acts on "every episode" by omission.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub ids: Vec<EpisodeId>,
    pub query: Query,
}

impl Target {
    pub fn ids(ids: impl IntoIterator<Item = EpisodeId>) -> Self {
        Target {
            ids: ids.into_iter().collect(),
            query: Query::default(),
        }
    }

    pub fn query(query: Query) -> Self {
        Target {
            ids: Vec::new(),
            query,
        }
    }
}

/// Which deleted episodes to restore.
#[derive(Clone, Debug)]
pub enum Restore {
    Ids(Vec<EpisodeId>),
    All,
}

/// How a curation operation runs.
#[derive(Clone, Debug, Default)]
pub struct CurateOptions {
    /// Report what would change; change nothing.
    pub dry_run: bool,
    /// Who, for the history (default: the OS user, `$USER` or `$LOGNAME`).
    pub by: Option<String>,
}

/// What a curation operation did (or, dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Curated {
    /// Episodes the selection matched, in id order.
    pub selected: Vec<EpisodeId>,
    /// Those it changed (a relabel that changes nothing on an episode leaves it out).
    pub changed: Vec<EpisodeId>,
    pub dry_run: bool,
    /// `Some(1)` when this operation upgraded a format-1 store to format 2.
    pub upgraded_from: Option<u32>,
}

/// A split to set: names and fractions (summing to 1), a seed, and what is hashed.
#[derive(Clone, Debug)]
pub struct SplitRequest {
    pub fractions: Vec<(String, f64)>,
    pub seed: u64,
    pub by: SplitKey,
}

/// The test hook of the crash tests (cli/tests): with this variable set to a path, a curation
/// operation creates that file once its log entry is durable and its index transaction is
/// staged but not committed, then waits to be killed.
const PAUSE_VAR: &str = "TRAJSTORE_TEST_CURATE_PAUSE";

fn actor(opts: &CurateOptions) -> String {
    opts.by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs one curation transaction: `resolve` picks the episodes and builds the logged
/// operation; it is logged (unless a dry run), applied and committed (or aborted).
fn run(
    open: &OpenStore,
    opts: &CurateOptions,
    resolve: impl FnOnce(&mut CurationTxn<'_>, i64, String) -> Result<(Vec<u64>, Option<LogOp>)>,
) -> Result<Curated> {
    let index = open.index();
    // Taken before the transaction begins and held past its end: the log's order is the
    // commit order.
    let mut log = if opts.dry_run {
        None
    } else {
        Some(LogWriter::open(open.root())?)
    };
    let mut logged = None;
    let by = actor(opts);
    let result = guarded(index.path(), || {
        index.curate(|c| {
            let (selected, op) = resolve(c, crate::write::now_us(), by)?;
            let Some(op) = op else {
                // Nothing to do: commit nothing (not even the format upgrade).
                return Ok(((selected, Vec::new(), None), false));
            };
            if let Some(log) = log.as_mut() {
                // No end recorded: this index committed no entry.
                log.discard_after(c.log_end()?.unwrap_or(log::HEADER_BYTES))?;
                logged = Some(log.append(&op)?);
                c.set_log_end(log.end())?;
            }
            let changed = apply::apply(c, &op)?;
            if log.is_some()
                && let Some(path) = std::env::var_os(PAUSE_VAR)
            {
                let _ = std::fs::write(path, b"staged");
                std::thread::sleep(Duration::from_secs(120));
            }
            Ok(((selected, changed, c.upgraded_from), !opts.dry_run))
        })
    });
    if result.is_err()
        && let (Some(log), Some(offset)) = (log.as_mut(), logged)
    {
        // Best effort, as the commit markers' aborted marker: the failure may be the disk's.
        let _ = log.append(&LogOp::Aborted { offset });
    }
    let (selected, changed, upgraded_from) = result?;
    let ids = |v: Vec<u64>| v.into_iter().map(EpisodeId).collect();
    Ok(Curated {
        selected: ids(selected),
        changed: ids(changed),
        dry_run: opts.dry_run,
        upgraded_from: if opts.dry_run { None } else { upgraded_from },
    })
}

/// The live episodes `target` selects, in id order; named ids that are not live are an error
/// naming them, before anything changes.
fn select(c: &CurationTxn<'_>, target: &Target) -> Result<Vec<u64>> {
    if target.ids.is_empty() && !target.query.has_filter() {
        return Err(Error::invalid_request(
            "selection",
            "no episodes named and no filter given: name episodes or filter them (--user, --env, --tag, --outcome, --split, --min-return, --max-return); nothing is ever applied to every episode by default",
        ));
    }
    let spec = c.split()?;
    let split = target.query.check_splits(spec.as_ref())?;
    let matches = |id: u64, r: EpisodeRecordV1| {
        target
            .query
            .matches(&Episode::from_record(EpisodeId(id), r), split)
    };
    let mut out = Vec::new();
    if !target.ids.is_empty() {
        let mut ids: Vec<u64> = target.ids.iter().map(|i| i.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut unknown = Vec::new();
        let mut deleted = Vec::new();
        let mut found = Vec::new();
        for id in ids {
            match c.episode(id)? {
                Some(r) => found.push((id, r)),
                None if c.tombstone(id)?.is_some() => deleted.push(EpisodeId(id)),
                None => unknown.push(EpisodeId(id)),
            }
        }
        if !unknown.is_empty() || !deleted.is_empty() {
            let mut parts = Vec::new();
            if !unknown.is_empty() {
                parts.push(format!("no episode {} in the store", list(&unknown)));
            }
            if !deleted.is_empty() {
                parts.push(format!(
                    "episode {} already deleted (`trajstore restore` brings it back)",
                    list(&deleted)
                ));
            }
            return Err(ReadError::NoSuchEpisodes {
                ids: unknown.into_iter().chain(deleted).collect(),
                reason: parts.join("; "),
            }
            .into());
        }
        for (id, r) in found {
            if matches(id, r) {
                out.push(id);
            }
        }
        return Ok(out);
    }
    let q = &target.query;
    let candidates: Vec<u64> = if !q.users.is_empty() {
        let mut ids = Vec::new();
        for u in &q.users {
            ids.extend(c.user_ids(u)?);
        }
        ids
    } else if !q.envs.is_empty() {
        let mut ids = Vec::new();
        for e in &q.envs {
            ids.extend(c.env_ids(e)?);
        }
        ids
    } else {
        for (id, r) in c.all_episodes()? {
            if matches(id, r) {
                out.push(id);
            }
        }
        return Ok(out);
    };
    for id in candidates {
        if let Some(r) = c.episode(id)?
            && matches(id, r)
        {
            out.push(id);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn list(ids: &[EpisodeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deletes the selected episodes: one transaction moves them out of every query path into
/// tombstones.
pub(crate) fn delete(open: &OpenStore, target: &Target, opts: &CurateOptions) -> Result<Curated> {
    run(open, opts, |c, at_us, by| {
        let ids = select(c, target)?;
        let op = (!ids.is_empty()).then(|| LogOp::Delete {
            ids: ids.clone(),
            at_us,
            by,
        });
        Ok((ids, op))
    })
}

/// Restores deleted episodes (named ones must be deleted: an error names any that are not).
pub(crate) fn restore(open: &OpenStore, which: &Restore, opts: &CurateOptions) -> Result<Curated> {
    run(open, opts, |c, at_us, by| {
        let ids: Vec<u64> = match which {
            Restore::All => c.tombstones()?.into_iter().map(|(id, _)| id).collect(),
            Restore::Ids(ids) => {
                let mut ids: Vec<u64> = ids.iter().map(|i| i.get()).collect();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    return Err(Error::invalid_request(
                        "restore",
                        "no episodes named (name deleted episodes, or restore all of them)",
                    ));
                }
                let mut live = Vec::new();
                let mut unknown = Vec::new();
                for &id in &ids {
                    if c.tombstone(id)?.is_some() {
                        continue;
                    }
                    if c.episode(id)?.is_some() {
                        live.push(EpisodeId(id));
                    } else {
                        unknown.push(EpisodeId(id));
                    }
                }
                if !live.is_empty() || !unknown.is_empty() {
                    let mut parts = Vec::new();
                    if !unknown.is_empty() {
                        parts.push(format!(
                            "no deleted episode {} (never committed, or purged by compaction)",
                            list(&unknown)
                        ));
                    }
                    if !live.is_empty() {
                        parts.push(format!("episode {} is not deleted", list(&live)));
                    }
                    return Err(ReadError::NoSuchEpisodes {
                        ids: unknown.into_iter().chain(live).collect(),
                        reason: parts.join("; "),
                    }
                    .into());
                }
                ids
            }
        };
        let op = (!ids.is_empty()).then(|| LogOp::Restore {
            ids: ids.clone(),
            at_us,
            by,
        });
        Ok((ids, op))
    })
}

/// Relabels the selected episodes; each change is kept in the episode's history.
pub(crate) fn relabel(
    open: &OpenStore,
    target: &Target,
    relabel: &Relabel,
    opts: &CurateOptions,
) -> Result<Curated> {
    relabel.check()?;
    run(open, opts, |c, at_us, by| {
        let ids = select(c, target)?;
        let op = (!ids.is_empty()).then(|| LogOp::Relabel {
            ids: ids.clone(),
            relabel: relabel.clone(),
            at_us,
            by,
        });
        Ok((ids, op))
    })
}

/// Sets the store's split specification (replacing any earlier one).
pub(crate) fn set_split(
    open: &OpenStore,
    request: &SplitRequest,
    opts: &CurateOptions,
) -> Result<SplitSpecV1> {
    let spec = check_split(request, opts)?;
    let logged = spec.clone();
    run(open, opts, move |_, _, _| {
        Ok((Vec::new(), Some(LogOp::Split { spec: logged })))
    })?;
    Ok(spec)
}

fn check_split(request: &SplitRequest, opts: &CurateOptions) -> Result<SplitSpecV1> {
    let bad = |reason: String| Error::invalid_request("split fractions", reason);
    if request.fractions.is_empty() {
        return Err(bad("no splits given (e.g. train=0.9,val=0.1)".into()));
    }
    for (i, (name, fraction)) in request.fractions.iter().enumerate() {
        crate::names::check_name("split name", name)?;
        if request.fractions[..i].iter().any(|(n, _)| n == name) {
            return Err(bad(format!("split {name:?} given twice")));
        }
        if !(fraction.is_finite() && *fraction > 0.0) {
            return Err(bad(format!(
                "split {name:?} has fraction {fraction}; each must be above 0"
            )));
        }
    }
    let sum: f64 = request.fractions.iter().map(|(_, f)| f).sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(bad(format!("the fractions sum to {sum}, not 1")));
    }
    Ok(SplitSpecV1 {
        fractions: request
            .fractions
            .iter()
            .map(|(n, f)| (n.clone(), f / sum))
            .collect(),
        seed: request.seed,
        by: request.by,
        set_at_us: crate::write::now_us(),
        set_by: actor(opts),
    })
}

/// Removes tombstones for good (compaction, after it reclaimed or stopped referencing their
/// bytes), in one transaction. Every id must be a tombstone.
/// What [`Store::save_missing_stats`](crate::Store::save_missing_stats) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedStats {
    /// Episodes whose statistics were computed from their frames and stored, in id order.
    pub saved: Vec<EpisodeId>,
    /// Episodes whose frames could not be read (a corrupt chunk, a missing segment), with the
    /// error: they stay without statistics.
    pub failed: Vec<(EpisodeId, String)>,
}

/// Episodes per index transaction of [`save_missing_stats`]: statistics are computed outside
/// the transaction, so recorders wait at most for one batch's inserts.
const STATS_BATCH: usize = 512;

/// Computes the statistics of every live episode of `snapshot` that has none and stores them.
/// Statistics are derived data, so nothing is logged; an episode deleted meanwhile, or given
/// statistics by someone else, is skipped at insert time.
pub(crate) fn save_missing_stats(open: &OpenStore, snapshot: &Snapshot) -> Result<SavedStats> {
    let mut report = SavedStats::default();
    for batch in snapshot.episodes_without_stats()?.chunks(STATS_BATCH) {
        let mut records = Vec::with_capacity(batch.len());
        for episode in batch {
            match snapshot.stats_record(episode) {
                Ok(record) => records.push((episode.id(), record)),
                Err(e) => report.failed.push((episode.id(), e.to_string())),
            }
        }
        let index = open.index();
        let saved = guarded(index.path(), || {
            index.curate(|c| {
                let mut saved = Vec::new();
                for (id, record) in &records {
                    if c.put_missing_stats(id.get(), record)? {
                        saved.push(*id);
                    }
                }
                let any = !saved.is_empty();
                Ok((saved, any))
            })
        })?;
        report.saved.extend(saved);
    }
    Ok(report)
}

pub(crate) fn purge(open: &OpenStore, ids: &[EpisodeId], opts: &CurateOptions) -> Result<Curated> {
    run(open, opts, |c, _, _| {
        let mut wanted: Vec<u64> = ids.iter().map(|i| i.get()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut missing = Vec::new();
        for &id in &wanted {
            if c.tombstone(id)?.is_none() {
                missing.push(EpisodeId(id));
            }
        }
        if !missing.is_empty() {
            return Err(ReadError::NoSuchEpisodes {
                reason: format!("no tombstone for episode {}", list(&missing)),
                ids: missing,
            }
            .into());
        }
        let op = (!wanted.is_empty()).then(|| LogOp::Purge {
            ids: wanted.clone(),
        });
        Ok((wanted, op))
    })
}
