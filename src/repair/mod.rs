//! `trajstore repair`: rebuilding the index from the segments alone.
//!
//! Segment format v2 puts a manifest (everything needed to restore an episode) after each
//! episode's chunks, durable before the index commit, and a commit marker (the episode id)
//! after it. Repair scans every segment (scan.rs), keeps the manifests whose chunks all check
//! out, compares them with the index (plan.rs) and, only when the index is missing, damaged or
//! incomplete, builds a new one under a temporary name and renames it into place, keeping the
//! old file aside. The rules (which id an episode gets, what happens to an in-flight commit,
//! what v1 segments allow) are in schema/format.md, "Repair".
//!
//! Invariants:
//! - Repair never writes, truncates or deletes a segment file.
//! - The existing index is never deleted: it is hard-linked to `index.redb.damaged-<unix
//!   time>` before the new index is renamed over `index.redb` (one atomic rename: a reader
//!   sees the old or the new index, never none).
//! - A healthy, complete index is left untouched.

mod old_index;
mod plan;
mod scan;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

pub use plan::UnmarkedEpisode;
pub use scan::Unrestorable;

use crate::error::{Error, OpenError, Result};
use crate::index::INDEX_FILE;
use crate::index::Index;
use crate::io::{OsIo, StoreIo};
use crate::segment::format::FIRST_MANIFEST_VERSION;
use crate::segment::{SEGMENTS_DIR, list_segment_ids, sync_dir};
use old_index::IndexState;

/// What `repair` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// The index was healthy and held every committed episode the segments describe: nothing
    /// was changed.
    NothingToDo,
    /// A new index was built from the segments (and the readable part of the old index).
    Rebuilt,
}

/// What [`repair`] found and did.
#[derive(Clone, Debug)]
pub struct RepairReport {
    pub action: RepairAction,
    /// Why the index was rebuilt; empty when it was healthy and complete.
    pub index_problems: Vec<String>,
    /// Where the old index file was moved (kept, never deleted); `None` when it was missing or
    /// nothing was done.
    pub damaged_index: Option<PathBuf>,
    /// Segment files scanned.
    pub segments: u64,
    /// Version 1 segments: they hold no manifests, so nothing in them is restorable from the
    /// segments alone (their episodes survive only in a readable index).
    pub v1_segments: Vec<u64>,
    /// Size of those files.
    pub v1_bytes: u64,
    /// Manifests whose every chunk checked out.
    pub whole_manifests: u64,
    /// Episodes in the index after repair.
    pub episodes: u64,
    /// Episodes restored under the id their commit marker (or the readable old index) gave.
    pub restored_with_id: u64,
    /// Episodes restored from manifests without a durable commit marker, with fresh ids.
    pub restored_unmarked: Vec<UnmarkedEpisode>,
    /// Episodes of a readable old index that no manifest describes (v1 episodes), kept as
    /// they were.
    pub carried_over: u64,
    /// Healthy index only: whole manifests with no marker that the index does not hold (a
    /// commit in flight at a crash); left as garbage, as any uncommitted recording.
    pub uncommitted: u64,
    /// Manifests whose index commit failed (the recorder got an error): never restored.
    pub aborted: u64,
    /// Manifests and markers of episodes that compaction copied into a newer segment (the
    /// copy is used; format.md, "Compaction").
    pub superseded: u64,
    /// Records and files that could not be used, by segment and offset.
    pub unrestorable: Vec<Unrestorable>,
    /// Bytes at record positions of v2 segments that hold no valid record (torn tails).
    pub garbage_bytes: u64,
    /// Curation operations (`curation.log`) replayed onto the rebuilt index: deletes,
    /// restores, relabels, the split.
    pub curation_replayed: u64,
    /// Why the curation log was not read to its end (a torn or damaged entry), if it was not.
    pub curation_log_problem: Option<String>,
    /// Episodes whose field statistics were recomputed from their frames after the rebuild
    /// (manifests carry none), so `trajstore stats` covers them again.
    pub stats_saved: u64,
    /// Why some statistics could not be recomputed (those episodes stay without them;
    /// `trajstore stats --compute-missing` still reads them).
    pub stats_problems: Vec<String>,
}

/// Rebuilds the index of the store at `path` from its segments when the index is missing,
/// damaged or incomplete; does nothing to a healthy, complete index. Never modifies a segment.
///
/// Run it with no other process using the store: it refuses to rebuild while a segment is
/// locked by a live recorder.
pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport> {
    let path = path.as_ref();
    let segments_dir = path.join(SEGMENTS_DIR);
    let index_path = path.join(INDEX_FILE);
    if !segments_dir.is_dir() {
        return Err(OpenError::NotAStore {
            path: path.to_owned(),
        }
        .into());
    }
    let scan = scan::scan(&segments_dir)?;
    let state = old_index::read(&index_path)?;
    if matches!(state, IndexState::Missing) && scan.segments.is_empty() {
        return Err(OpenError::NotAStore {
            path: path.to_owned(),
        }
        .into());
    }
    let findings = plan::examine(&scan, &state);
    if findings.index_problems.is_empty() {
        let episodes = match &state {
            IndexState::Readable(old) => old.episodes.len() as u64,
            _ => 0,
        };
        let whole = findings.whole.len() as u64;
        let mut r = report(
            &scan,
            RepairAction::NothingToDo,
            findings.index_problems,
            findings.unrestorable,
            (whole, episodes, findings.uncommitted),
        );
        r.aborted = findings.aborted;
        r.superseded = findings.superseded;
        return Ok(r);
    }
    // Rebuilding: hold every segment's lock so no recorder appends meanwhile, and scan again
    // under the locks so the new index describes the segments as they are now.
    let locks = lock_segments(&segments_dir)?;
    let scan = scan::scan(&segments_dir)?;
    let findings = plan::examine(&scan, &state);
    let plan = plan::plan(&findings, &state);
    // A readable old index knows which log entries committed (none, without the key).
    let log_end = match &state {
        IndexState::Readable(old) => Some(
            old.curation_log_end
                .unwrap_or(crate::curate::log::HEADER_BYTES),
        ),
        _ => None,
    };
    let (damaged_index, replayed) = rebuild(path, &plan, log_end)?;
    let whole = findings.whole.len() as u64;
    let mut r = report(
        &scan,
        RepairAction::Rebuilt,
        findings.index_problems,
        plan.unrestorable,
        (whole, plan.episodes.len() as u64, 0),
    );
    r.damaged_index = damaged_index;
    r.curation_replayed = replayed.ops;
    r.curation_log_problem = replayed.problem;
    r.restored_with_id = plan.marked;
    r.restored_unmarked = plan.unmarked;
    r.carried_over = plan.carried_over;
    r.aborted = findings.aborted;
    r.superseded = findings.superseded;
    drop(locks);
    save_stats(path, &mut r);
    Ok(r)
}

/// Recomputes the statistics the rebuilt index lacks. The index is already repaired and in
/// place: a failure here is reported, never undoes it.
fn save_stats(path: &Path, report: &mut RepairReport) {
    let saved = crate::Store::open(path).and_then(|store| store.save_missing_stats());
    match saved {
        Ok(saved) => {
            report.stats_saved = saved.saved.len() as u64;
            report.stats_problems = saved
                .failed
                .into_iter()
                .map(|(id, e)| format!("episode {id}: {e}"))
                .collect();
        }
        Err(e) => report.stats_problems.push(e.to_string()),
    }
}

fn report(
    scan: &scan::Scan,
    action: RepairAction,
    index_problems: Vec<String>,
    unrestorable: Vec<Unrestorable>,
    (whole_manifests, episodes, uncommitted): (u64, u64, u64),
) -> RepairReport {
    let v1: Vec<&scan::SegmentInfo> = scan
        .segments
        .iter()
        .filter(|s| !s.linked && s.version.is_some_and(|v| v < FIRST_MANIFEST_VERSION))
        .collect();
    RepairReport {
        action,
        index_problems,
        damaged_index: None,
        segments: scan.segments.len() as u64,
        v1_segments: v1.iter().map(|s| s.id).collect(),
        v1_bytes: v1.iter().map(|s| s.len).sum(),
        whole_manifests,
        episodes,
        restored_with_id: 0,
        restored_unmarked: Vec::new(),
        carried_over: 0,
        uncommitted,
        aborted: 0,
        superseded: 0,
        unrestorable,
        garbage_bytes: scan.garbage_bytes,
        curation_replayed: 0,
        curation_log_problem: None,
        stats_saved: 0,
        stats_problems: Vec::new(),
    }
}

/// What replaying the curation log did.
struct Replayed {
    ops: u64,
    problem: Option<String>,
}

/// Replays the store's curation log onto the index at `index_path`, in one transaction:
/// every entry, or when the old index was readable, those it knew committed (up to
/// `log_end`).
fn replay_curation(store: &Path, index_path: &Path, log_end: Option<u64>) -> Result<Replayed> {
    let mut log = crate::curate::log::read(&store.join(crate::curate::log::LOG_FILE))?;
    if let Some(end) = log_end {
        log.ops.retain(|(offset, _)| *offset < end);
    }
    let end = log_end.map_or(log.valid_len, |e| e.min(log.valid_len));
    if log.ops.is_empty() {
        return Ok(Replayed {
            ops: 0,
            problem: log.problem,
        });
    }
    let index = Index::open_write(index_path, &OsIo)?;
    index.curate(|c| {
        for (_, op) in &log.ops {
            crate::curate::apply::apply(c, op)?;
        }
        c.set_log_end(end)?;
        Ok(((), true))
    })?;
    Ok(Replayed {
        ops: log.ops.len() as u64,
        problem: log.problem,
    })
}

/// Builds the new index beside the old one (with the curation log replayed onto it) and
/// renames it into place; returns where the old index was kept.
fn rebuild(
    store: &Path,
    plan: &plan::Plan,
    log_end: Option<u64>,
) -> Result<(Option<PathBuf>, Replayed)> {
    let index_path = store.join(INDEX_FILE);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{INDEX_FILE}.repairing-"))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(store)
        .map_err(|e| Error::io(store, e))?
        .into_temp_path();
    Index::build_restored(&tmp, &plan.schemas, &plan.episodes)?;
    let replayed = replay_curation(store, &tmp, log_end)?;
    OsIo.open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    // From here a failure leaves `.index.redb.repairing-*` behind (ignored, safe to delete).
    let tmp = tmp.keep().map_err(|e| Error::io(store, e.error))?;
    let aside = if index_path.exists() {
        let aside = aside_name(store);
        std::fs::hard_link(&index_path, &aside).map_err(|e| Error::io(&aside, e))?;
        Some(aside)
    } else {
        None
    };
    // rename replaces index.redb atomically; the old inode lives on under the aside name.
    std::fs::rename(&tmp, &index_path).map_err(|e| Error::io(&index_path, e))?;
    sync_dir(store)?;
    Ok((aside, replayed))
}

fn aside_name(store: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{INDEX_FILE}.damaged-{secs}");
    let mut candidate = store.join(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = store.join(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// Takes every segment's lock without waiting; a segment locked by a live recorder means the
/// store is in use, and a rebuilt index would miss that recorder's commits.
fn lock_segments(dir: &Path) -> Result<Vec<File>> {
    let mut locks = Vec::new();
    for id in list_segment_ids(dir)? {
        let path = crate::segment::segment_path(dir, id);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(TryLockError::WouldBlock) => {
                return Err(Error::io(
                    &path,
                    std::io::Error::other(
                        "locked by a live recorder: stop every process using the store, then run repair again",
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    Ok(locks)
}
