//! `trajstore compact`: reclaiming the bytes of aborted or crashed recordings (and of
//! segments nothing references) while readers and recorders keep running.
//!
//! Protocol (schema/format.md, "Compaction"):
//! 1. delete what earlier compactions retired, if no store handle is open anywhere;
//! 2. survey every segment against the index; take the lock of each segment worth rewriting
//!    or dropping without waiting (one a live recorder holds is skipped and reported); then
//!    survey again under the locks: no episode referencing a locked segment can be in flight;
//! 3. copy each live episode of the rewritten segments into new segments (every chunk checked
//!    as it is copied), with a fresh manifest and a marker under its own id; sync;
//! 4. switch the index in one transaction (each moved episode's chunk list);
//! 5. move the replaced files to `segments/retired/` (a reader with an older snapshot still
//!    finds them there), release the locks;
//! 6. delete `retired/` if no store handle is open (segment/readers.rs), else leave it for the
//!    next compaction or the last handle to close.
//!
//! Never truncates or rewrites a file: a mapped reader keeps valid bytes throughout.

mod copy;
mod survey;

use std::collections::{HashMap, HashSet};
use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids::SegmentId;
use crate::index::board::Board;
use crate::index::records::EpisodeRecordV1;
use crate::index::{ChunkMove, INDEX_FILE, Index, IndexSnapshot, guarded};
use crate::io::{FileView, OsIo, StoreIo};
use crate::open::check_store_dir;
use crate::segment::link::{RETIRED_DIR, link_path};
use crate::segment::readers::{delete_retired, try_exclusive};
use crate::segment::{SEGMENTS_DIR, SegmentPool, list_segment_ids, segment_path, sync_dir};
use survey::{SegmentUse, Verdict};

/// Called with (bytes copied so far, bytes to copy) as compaction goes.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How [`compact`] runs.
#[derive(Clone, Default)]
pub struct CompactOptions {
    /// Only survey and report what would be reclaimed; change nothing.
    pub dry_run: bool,
    /// Told the progress of the copy (a progress bar).
    pub progress: Option<Progress>,
    /// Size at which a new segment is started (default: 1 GiB, as recorders).
    pub segment_target_bytes: Option<u64>,
    /// Purge the tombstones of episodes deleted at least this long ago first
    /// ([`Store::purge_tombstones`](crate::Store::purge_tombstones)), so their bytes are
    /// reclaimed; `None` purges none (a deleted episode's segment is kept while it is
    /// restorable).
    pub retention: Option<std::time::Duration>,
}

impl std::fmt::Debug for CompactOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactOptions")
            .field("dry_run", &self.dry_run)
            .field("progress", &self.progress.is_some())
            .field("segment_target_bytes", &self.segment_target_bytes)
            .field("retention", &self.retention)
            .finish()
    }
}

/// What [`compact`] found and did.
#[derive(Clone, Debug, Default)]
pub struct CompactReport {
    pub dry_run: bool,
    /// Deleted episodes whose tombstones were purged (past the retention; a dry run lists
    /// those it would purge): their bytes are reclaimed with the rest.
    pub purged: Vec<crate::ids::EpisodeId>,
    /// Segment files found.
    pub segments: u64,
    /// Their total size.
    pub segment_bytes: u64,
    /// Segments whose live episodes were copied out (then retired).
    pub rewritten: Vec<SegmentId>,
    /// Segments nothing live uses, retired as they were.
    pub dropped: Vec<SegmentId>,
    /// Segments worth compacting that a live recorder holds: left alone.
    pub skipped_locked: Vec<SegmentId>,
    /// Segments compaction wrote.
    pub new_segments: Vec<SegmentId>,
    /// Episodes moved to new segments.
    pub episodes_moved: u64,
    /// Size of the new segments (chunks, manifests, markers, file headers).
    pub bytes_written: u64,
    /// Size of the files retired (rewritten and dropped).
    pub bytes_retired: u64,
    /// `bytes_retired - bytes_written`: what the store shrinks by once retired files are
    /// deleted (estimated before a dry run's copy).
    pub bytes_reclaimed: u64,
    /// Files deleted from `segments/retired/` now (this run's or earlier runs'), and their
    /// size.
    pub deleted_files: u64,
    pub deleted_bytes: u64,
    /// Files left in `segments/retired/` because a store handle is open somewhere (deleted by
    /// the next compaction or the last handle to close).
    pub pending_files: u64,
}

/// Compacts the store at `path` (module docs). Safe while other processes record and read;
/// segments their recorders hold are skipped.
pub fn compact(path: impl AsRef<Path>, options: &CompactOptions) -> Result<CompactReport> {
    let root = path.as_ref();
    check_store_dir(root, &OsIo)?;
    let segments_dir = root.join(SEGMENTS_DIR);
    let index_path = root.join(INDEX_FILE);
    let index = guarded(&index_path, || Index::open_write(&index_path, &OsIo))?;
    let mut report = CompactReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    if let Some(retention) = options.retention {
        // A store handle of its own, closed before compaction looks at retired files.
        let store = crate::store::Store::open(root)?;
        let expired: Vec<crate::ids::EpisodeId> = store
            .expired_tombstones(retention)?
            .iter()
            .map(|t| t.episode.id())
            .collect();
        if !options.dry_run && !expired.is_empty() {
            store.purge_tombstones(&expired)?;
        }
        report.purged = expired;
    }
    if !options.dry_run {
        clean_retired(root, &mut report)?;
    }

    // A first look, without locks, to know which locks to take.
    let (_, uses) = look(&index, &segments_dir)?;
    report.segments = uses.len() as u64;
    report.segment_bytes = uses.iter().map(|u| u.len).sum();
    let mut locks: HashMap<u64, File> = HashMap::new();
    for u in uses.iter().filter(|u| u.verdict() != Verdict::Keep) {
        let path = segment_path(&segments_dir, u.id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(_) => continue, // gone meanwhile
        };
        match file.try_lock() {
            Ok(()) => {
                locks.insert(u.id, file);
            }
            Err(TryLockError::WouldBlock) => report.skipped_locked.push(SegmentId(u.id)),
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    // Again under the locks: every episode referencing a locked segment is committed now.
    let (live, uses) = look(&index, &segments_dir)?;
    let mut rewrite: Vec<&SegmentUse> = Vec::new();
    let mut dropping: Vec<&SegmentUse> = Vec::new();
    for u in uses.iter().filter(|u| locks.contains_key(&u.id)) {
        match u.verdict() {
            Verdict::Rewrite => rewrite.push(u),
            Verdict::Drop => dropping.push(u),
            Verdict::Keep => {}
        }
    }
    report.rewritten = rewrite.iter().map(|u| SegmentId(u.id)).collect();
    report.dropped = dropping.iter().map(|u| SegmentId(u.id)).collect();
    report.bytes_retired = rewrite.iter().chain(&dropping).map(|u| u.len).sum();
    if options.dry_run {
        let live_bytes: u64 = rewrite.iter().map(|u| u.live_bytes()).sum();
        report.bytes_written = live_bytes;
        report.bytes_reclaimed = report.bytes_retired.saturating_sub(live_bytes);
        return Ok(report);
    }

    // Copy.
    let moving: HashSet<u64> = rewrite.iter().map(|u| u.id).collect();
    let mut episodes: Vec<u64> = rewrite
        .iter()
        .flat_map(|u| u.episodes.iter().chain(&u.manifests).copied())
        .collect();
    episodes.sort_unstable();
    episodes.dedup();
    let mut maps: HashMap<u64, Arc<dyn FileView>> = HashMap::new();
    for &id in &moving {
        let path = segment_path(&segments_dir, id);
        maps.insert(id, OsIo.map(&path).map_err(|e| Error::io(&path, e))?);
    }
    let target = options.segment_target_bytes.unwrap_or(1 << 30);
    let pool = SegmentPool::new(segments_dir.clone(), target, Arc::new(OsIo));
    let mut output = copy::Output::new(pool, target);
    let snapshot = IndexSnapshot::new(guarded(&index_path, || index.begin_read())?);
    let total: u64 = rewrite.iter().map(|u| u.live_chunk_bytes).sum();
    let mut moves: Vec<ChunkMove<'_>> = Vec::with_capacity(episodes.len());
    let mut schemas = HashMap::new();
    for &id in &episodes {
        let record = &live[&id];
        let (fields, schema_metadata) = match schemas.get(&record.schema_id) {
            Some(f) => f,
            None => {
                let schema = guarded(&index_path, || snapshot.schema(record.schema_id))?
                    .ok_or_else(|| {
                        Error::invalid_request(
                            "compaction",
                            format!(
                                "episode {id} names schema {} that the index does not hold",
                                record.schema_id
                            ),
                        )
                    })?;
                let metadata = guarded(&index_path, || snapshot.schema_metadata(record.schema_id))?;
                schemas
                    .entry(record.schema_id)
                    .or_insert((schema.fields().to_vec(), metadata))
            }
        };
        let infos = guarded(&index_path, || snapshot.infos(id))?;
        let new =
            output.copy_episode(id, record, fields, schema_metadata, &infos, &moving, &maps)?;
        moves.push((id, record.fields.as_slice(), new));
        if let Some(progress) = &options.progress {
            progress(output.written.min(total), total);
        }
    }
    let all_ids = list_segment_ids(&segments_dir)?;
    let retiring: HashSet<u64> = moving
        .iter()
        .chain(dropping.iter().map(|u| &u.id))
        .copied()
        .collect();
    if output.segments().is_empty() && all_ids.last().is_some_and(|max| retiring.contains(max)) {
        output.placeholder()?;
    }
    output.sync()?;

    // Switch.
    if !moves.is_empty() {
        guarded(&index_path, || index.replace_chunks(&moves))?;
    }
    report.episodes_moved = moves.len() as u64;
    report.bytes_written = output
        .segments()
        .iter()
        .map(|&id| OsIo.len(&segment_path(&segments_dir, id)).unwrap_or(0))
        .sum();

    // Retire what no episode's chunks reference now (checked on a fresh read: never a file in
    // use; the manifests in these files were all written again above).
    // Under the commit lock: no leader indexes a dead recorder's queued episode, which may name
    // a file retired here, between this look and the renames (index/board.rs).
    let board = Board::open(root).map_err(|e| Error::io(root, e))?;
    let leading = board.lead().map_err(|e| Error::io(root, e))?;
    let (_, after) = look(&index, &segments_dir)?;
    let still_used: HashSet<u64> = after
        .iter()
        .filter(|u| !u.episodes.is_empty())
        .map(|u| u.id)
        .collect();
    let retired_dir = segments_dir.join(RETIRED_DIR);
    std::fs::create_dir_all(&retired_dir).map_err(|e| Error::io(&retired_dir, e))?;
    let mut retired_any = false;
    for &id in &retiring {
        if still_used.contains(&id) {
            report.rewritten.retain(|s| s.get() != id);
            report.dropped.retain(|s| s.get() != id);
            continue;
        }
        retire(&segments_dir, &retired_dir, id)?;
        retired_any = true;
    }
    if retired_any {
        sync_dir(&retired_dir)?;
        sync_dir(&segments_dir)?;
    }
    drop(leading);
    report.bytes_retired = uses
        .iter()
        .filter(|u| {
            report.rewritten.contains(&SegmentId(u.id)) || report.dropped.contains(&SegmentId(u.id))
        })
        .map(|u| u.len)
        .sum();
    report.new_segments = output.finish().into_iter().map(SegmentId).collect();
    drop(locks);
    report.bytes_reclaimed = report.bytes_retired.saturating_sub(report.bytes_written);
    drop(index);
    clean_retired(root, &mut report)?;
    Ok(report)
}

/// Live episodes (id -> record) and the survey of every segment file.
fn look(
    index: &Index,
    segments_dir: &Path,
) -> Result<(HashMap<u64, EpisodeRecordV1>, Vec<SegmentUse>)> {
    let snapshot = IndexSnapshot::new(guarded(index.path(), || index.begin_read())?);
    let live: HashMap<u64, EpisodeRecordV1> = guarded(index.path(), || snapshot.episodes(None))?
        .into_iter()
        .collect();
    let ids = list_segment_ids(segments_dir)?;
    let mut uses = survey::survey(segments_dir, &ids, &live)?;
    // Deleted episodes stay restorable until their tombstones are purged: their segments are
    // neither rewritten nor dropped.
    let pinned: HashSet<u64> = guarded(index.path(), || snapshot.tombstones())?
        .iter()
        .flat_map(|(_, t)| t.record.fields.iter().flatten().map(|c| c.segment))
        .collect();
    for u in &mut uses {
        u.pinned = pinned.contains(&u.id);
    }
    Ok((live, uses))
}

/// Moves a segment file (and its link sidecar) to `retired/`: a rename, so a reader's map of
/// it, and a reader with an older snapshot, keep working.
fn retire(segments_dir: &Path, retired_dir: &Path, id: u64) -> Result<()> {
    let from = segment_path(segments_dir, id);
    let to = segment_path(retired_dir, id);
    std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
    let link = link_path(segments_dir, id);
    if link.exists() {
        let to = link_path(retired_dir, id);
        std::fs::rename(&link, &to).map_err(|e| Error::io(&link, e))?;
    }
    Ok(())
}

/// Deletes `segments/retired/` when no store handle is open anywhere.
fn clean_retired(root: &Path, report: &mut CompactReport) -> Result<()> {
    let retired = root.join(SEGMENTS_DIR).join(RETIRED_DIR);
    if let Some(_exclusive) = try_exclusive(root).map_err(|e| Error::io(root, e))? {
        let (files, bytes) = delete_retired(root).map_err(|e| Error::io(&retired, e))?;
        report.deleted_files += files;
        report.deleted_bytes += bytes;
    }
    report.pending_files = std::fs::read_dir(&retired).map_or(0, |d| d.count() as u64);
    Ok(())
}
