//! `trajstore merge`: combining stores without decoding or re-encoding a frame.
//!
//! Order (the crash-safety argument; schema/format.md, "Merge"):
//! 1. every source is opened read-only, refused if it is the output store, of a newer format
//!    or damaged (`verify` finds a problem), before anything is linked;
//! 2. each segment a source's episodes reference is hard-linked (or copied) into the output's
//!    `segments/` under a fresh id, with a link sidecar naming its origin; the directory is
//!    synced;
//! 3. schemas are registered (an identical field list gets the existing id);
//! 4. a manifest per merged episode (chunk references in the output's segment ids) is appended
//!    to a segment of the output's own and synced;
//! 5. one index transaction inserts every episode under new ids;
//! 6. commit markers (new ids) are appended and synced.
//!
//! A crash before 5 leaves the output's index as it was: linked files nothing references
//! (garbage `verify` counts and compaction removes) and unmarked manifests.

mod files;

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ids::{EpisodeId, SegmentId};
use crate::index::PendingEpisode;
use crate::index::records::EpisodeRecordV1;
use crate::read::{Episode, Query};
use crate::schema::Schema;
use crate::segment::format::{MANIFEST_MAGIC, MARKER_MAGIC};
use crate::segment::manifest::{ABORTED, ManifestV1, MarkerV1};
use crate::segment::{SEGMENTS_DIR, sync_dir};
use crate::stats::EpisodeStatsV1;
use crate::store::Store;
use crate::value::{Info, Value};

/// Episode metadata key: the directory of the store a merged episode came from.
pub const MERGED_FROM_STORE: &str = "merged_from/store";
/// Episode metadata key: the episode's id in that store.
pub const MERGED_FROM_EPISODE: &str = "merged_from/episode";

/// What [`Store::merge_from`] did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// Per source, in the order given.
    pub sources: Vec<MergedSource>,
    /// Schemas the output store did not have (the others were found by their field list).
    pub schemas_added: u64,
    /// The output segment holding the merged episodes' manifests and commit markers.
    pub manifest_segment: Option<SegmentId>,
}

/// One source store's part of a merge.
#[derive(Clone, Debug, Default)]
pub struct MergedSource {
    pub path: PathBuf,
    /// Old id (in the source) -> new id (in the output), in the source's commit order.
    pub episodes: Vec<(EpisodeId, EpisodeId)>,
    /// The source's segments, as brought into the output.
    pub segments: Vec<MergedSegment>,
    /// The source's deleted episodes (tombstones): not merged.
    pub deleted_not_merged: u64,
}

/// A source segment in the output store.
#[derive(Clone, Copy, Debug)]
pub struct MergedSegment {
    /// Its id in the source store.
    pub origin: SegmentId,
    /// Its id in the output store.
    pub id: SegmentId,
    pub bytes: u64,
    /// Copied (another file system, or a live recorder of the source holds it), not linked.
    pub copied: bool,
}

/// One episode of a source: its record, its infos and its field statistics (format 2; an
/// episode recorded before them has none).
struct SourceEpisode {
    episode: Episode,
    infos: Vec<(u32, Info)>,
    stats: Option<EpisodeStatsV1>,
}

/// A source, read and checked, ready to be merged.
struct Source {
    path: PathBuf,
    episodes: Vec<SourceEpisode>,
    schemas: HashMap<u64, Schema>,
    /// Key/values of each source schema (`schema_metadata`), by source schema id.
    schema_metadata: HashMap<u64, Info>,
    segments: BTreeSet<u64>,
    deleted: u64,
}

impl Store {
    /// Merges the stores at `sources` into this one, whole: every episode of each source's
    /// current snapshot gets a new id here (the mapping is returned, and recorded in each
    /// merged episode's metadata under [`MERGED_FROM_STORE`] and [`MERGED_FROM_EPISODE`]).
    /// Segment files are hard-linked (copied across file systems); no frame is decoded.
    ///
    /// Refused before anything is linked: a source that is this store, given twice, of a
    /// newer format, or damaged (any problem `verify` reports).
    pub fn merge_from<P: AsRef<Path>>(&self, sources: &[P]) -> Result<MergeReport> {
        self.here()?.recording()?;
        let read = check_sources(Some(&canonical(self.path())?), sources)?;
        self.merge_checked(&read)
    }

    fn merge_checked(&self, read: &[Source]) -> Result<MergeReport> {
        let open = self.here()?;
        let recording = open.recording()?;
        let out_root = canonical(self.path())?;
        let segments_dir = out_root.join(SEGMENTS_DIR);
        let mut report = MergeReport::default();
        let mut brought = Vec::new(); // locks held until the index transaction is over
        for source in read {
            let src_segments = source.path.join(SEGMENTS_DIR);
            let mut merged = MergedSource {
                path: source.path.clone(),
                deleted_not_merged: source.deleted,
                ..Default::default()
            };
            for &origin in &source.segments {
                let file = files::source_file(&src_segments, origin);
                let b = files::bring(&segments_dir, &file, &source.path, origin)?;
                merged.segments.push(MergedSegment {
                    origin: SegmentId(origin),
                    id: SegmentId(b.id),
                    bytes: b.bytes,
                    copied: b.copied,
                });
                brought.push(b);
            }
            report.sources.push(merged);
        }
        // The new names (and sidecars) are durable before the index can name them.
        sync_dir(&segments_dir)?;

        let before: BTreeSet<u64> = open
            .index()
            .begin_read()
            .map(crate::index::IndexSnapshot::new)
            .and_then(|s| s.schemas())?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut batch = Vec::new();
        let mut schema_ids: HashMap<(usize, u64), (Schema, u64)> = HashMap::new();
        for (i, source) in read.iter().enumerate() {
            let seg_map: HashMap<u64, u64> = report.sources[i]
                .segments
                .iter()
                .map(|s| (s.origin.get(), s.id.get()))
                .collect();
            for SourceEpisode {
                episode,
                infos,
                stats,
            } in &source.episodes
            {
                let old_schema = episode.schema_id().get();
                if let Entry::Vacant(slot) = schema_ids.entry((i, old_schema)) {
                    let schema = source.schemas[&old_schema].clone();
                    let id = crate::index::guarded(open.index().path(), || {
                        open.index().schema_id(&schema)
                    })?;
                    slot.insert((schema, id));
                }
                let (schema, schema_id) = &schema_ids[&(i, old_schema)];
                let record = rewrite(episode, *schema_id, &seg_map, &source.path);
                let schema_metadata = source
                    .schema_metadata
                    .get(&old_schema)
                    .cloned()
                    .unwrap_or_default();
                let manifest = ManifestV1::of(&record, schema.fields(), infos, &schema_metadata);
                batch.push((
                    manifest,
                    PendingEpisode {
                        record,
                        infos: infos.clone(),
                        stats: stats.clone(),
                        schema_metadata,
                    },
                ));
            }
        }
        report.schemas_added = schema_ids
            .values()
            .map(|(_, id)| *id)
            .collect::<BTreeSet<u64>>()
            .difference(&before)
            .count() as u64;
        if batch.is_empty() {
            return Ok(report);
        }

        // A segment of its own: if the merge is stopped before its index transaction, the
        // segment holds only manifests nothing will ever commit, and compaction drops it.
        let mut appender = recording.pool()?.create()?;
        report.manifest_segment = Some(SegmentId(appender.id()));
        let mut offsets = Vec::with_capacity(batch.len());
        for (manifest, _) in &batch {
            offsets.push(appender.append_meta(MANIFEST_MAGIC, &manifest.encode())?);
        }
        appender.sync()?;
        let pending: Vec<PendingEpisode> = batch.into_iter().map(|(_, p)| p).collect();
        let pending: Vec<&PendingEpisode> = pending.iter().collect();
        // Synced above: nothing for the index commit to wait for.
        let ids = match crate::index::guarded(open.index().path(), || {
            open.index().commit(&pending, Vec::new())
        }) {
            Ok(ids) => ids,
            Err(e) => {
                // Never restored by repair: the merge reported failure.
                for &manifest_offset in &offsets {
                    let aborted = MarkerV1 {
                        episode: ABORTED,
                        manifest_offset,
                    };
                    let _ = appender.append_meta(MARKER_MAGIC, &aborted.encode());
                }
                let _ = appender.sync();
                return Err(e);
            }
        };
        drop(brought);
        for (&episode, &manifest_offset) in ids.iter().zip(&offsets) {
            let marker = MarkerV1 {
                episode,
                manifest_offset,
            };
            appender.append_meta(MARKER_MAGIC, &marker.encode())?;
        }
        appender.sync()?;
        recording.pool()?.checkin(appender);
        let mut ids = ids.into_iter();
        for (i, source) in read.iter().enumerate() {
            report.sources[i].episodes = source
                .episodes
                .iter()
                .map(|s| {
                    let new = ids.next().expect("one id per episode");
                    (s.episode.id(), EpisodeId(new))
                })
                .collect();
        }
        Ok(report)
    }
}

/// Merges `sources` into the store at `out`, creating it if needed ([`Store::merge_from`]).
/// The sources are checked before `out` is created: a refused merge creates nothing.
pub fn merge<P: AsRef<Path>>(out: impl AsRef<Path>, sources: &[P]) -> Result<MergeReport> {
    let out = out.as_ref();
    let existing = out.exists().then(|| canonical(out)).transpose()?;
    let read = check_sources(existing.as_deref(), sources)?;
    Store::create(out)?.merge_checked(&read)
}

/// Reads and checks every source, refusing the output store itself and duplicates.
fn check_sources<P: AsRef<Path>>(out_root: Option<&Path>, sources: &[P]) -> Result<Vec<Source>> {
    let mut seen: Vec<PathBuf> = out_root.iter().map(|p| p.to_path_buf()).collect();
    let mut read = Vec::with_capacity(sources.len());
    for source in sources {
        let path = canonical(source.as_ref())?;
        if out_root == Some(path.as_path()) {
            return Err(refused(&path, "it is the output store itself"));
        }
        if seen.contains(&path) {
            return Err(refused(&path, "given twice"));
        }
        seen.push(path.clone());
        read.push(read_source(&path)?);
    }
    Ok(read)
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| Error::io(path, e))
}

fn refused(path: &Path, why: &str) -> Error {
    Error::invalid_request(
        "merge source",
        format!("{}: {why}; nothing was merged", path.display()),
    )
}

/// Opens a source read-only (a newer format or a damaged index is refused there) and checks
/// every byte its episodes reference.
fn read_source(path: &Path) -> Result<Source> {
    let store = Store::open_read_only(path)?;
    let snap = store.snapshot()?;
    let report = snap.verify()?;
    if let Some(first) = report.problems.first() {
        return Err(refused(
            path,
            &format!(
                "it is damaged ({first}{}); run `trajstore verify` and `trajstore repair` on it",
                match report.problems.len() {
                    1 => String::new(),
                    n => format!(", and {} more problems", n - 1),
                }
            ),
        ));
    }
    let listed = snap.episodes(&Query::default())?;
    let ids: Vec<u64> = listed.iter().map(|e| e.id().get()).collect();
    let mut stats: HashMap<u64, EpisodeStatsV1> =
        snap.episode_stats_rows(&ids)?.into_iter().collect();
    let mut episodes = Vec::new();
    let mut segments = BTreeSet::new();
    for e in listed {
        segments.extend(e.chunks().iter().flatten().map(|c| c.segment));
        let infos = snap.infos_rows(&e)?;
        let stats = stats.remove(&e.id().get());
        episodes.push(SourceEpisode {
            episode: e,
            infos,
            stats,
        });
    }
    let schemas: HashMap<u64, Schema> = snap
        .schemas()?
        .into_iter()
        .map(|(id, s)| (id.get(), s))
        .collect();
    let mut schema_metadata = HashMap::new();
    for &id in schemas.keys() {
        let metadata = snap.schema_metadata(crate::ids::SchemaId(id))?;
        if !metadata.is_empty() {
            schema_metadata.insert(id, metadata);
        }
    }
    Ok(Source {
        path: path.to_owned(),
        episodes,
        schemas,
        schema_metadata,
        segments,
        deleted: snap.tombstones()?.len() as u64,
    })
}

/// The episode's record in the output: the output's schema id and segment ids, and where it
/// came from in its metadata.
fn rewrite(
    episode: &Episode,
    schema_id: u64,
    seg_map: &HashMap<u64, u64>,
    source: &Path,
) -> EpisodeRecordV1 {
    let mut record = episode.record().clone();
    record.schema_id = schema_id;
    for chunk in record.fields.iter_mut().flatten() {
        chunk.segment = seg_map[&chunk.segment];
    }
    let metadata = &mut record.metadata;
    metadata.insert(
        MERGED_FROM_STORE.into(),
        Value::Str(source.display().to_string()),
    );
    metadata.insert(
        MERGED_FROM_EPISODE.into(),
        Value::Int(i64::try_from(episode.id().get()).unwrap_or(i64::MAX)),
    );
    record
}
