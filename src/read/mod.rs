//! Reading: a consistent snapshot of the index, and field data straight from segment maps.

mod catalog;
mod episode;
mod field;
mod gather;
mod selectable;
mod stats;
mod verify;

pub use crate::index::metadata::{MetadataMaps, MetadataRef, ValueRef};
pub use catalog::{Catalog, CatalogRow};
pub use episode::{Episode, EpisodeSummary, Query, Tombstone, UserSummary};
pub use field::{Extent, Field};
pub use verify::{Problem, VerifyReport};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, ReadError, Result};
use crate::ids::{EpisodeId, SchemaId, SegmentId};
use crate::index::catalog::Want;
use crate::index::records::{CatalogRecordV1, HistoryRecordV1, SplitSpecV1};
use crate::index::{By, IndexSnapshot, guarded};
use crate::open::{OpenStore, StoreHandle};
use crate::partition::EpisodeLen;
use crate::process::ProcessBound;
use crate::schema::{Codec, FieldKind, FieldSpec, Schema};
use crate::segment::MappedBytes;
use crate::segment::checked::ChunkCheck;
use crate::segment::format::ChunkRef;
use crate::segment::format::{HEADER_BYTES, check_record_header};
use crate::value::Info;
use field::Chunk;

/// A consistent read-only view of the store as of one commit. `Send + Sync`: share it across
/// threads, or take one per thread.
///
/// In a child after `fork()` a snapshot keeps working: its first use there begins a read of
/// the index for the child, limited to the episodes the parent's snapshot had ([`cutoff`]:
/// committed episodes never change, so the child sees the same episodes; per-user
/// statistics are the child's newer ones).
///
/// [`cutoff`]: Snapshot::cutoff
pub struct Snapshot {
    handle: StoreHandle,
    home: ReadView,
    cutoff: EpisodeId,
    forked: Mutex<Option<ProcessBound<Arc<ReadView>>>>,
    schemas: Mutex<HashMap<SchemaId, Arc<Schema>>>,
    split: OnceLock<Option<SplitSpecV1>>,
    /// Fields opened by [`Snapshot::gather`], kept for the next gathers.
    gathered: Mutex<gather::FieldCache>,
}

/// An index read and the segment maps to read field data with, of one process.
struct ReadView {
    open: Arc<OpenStore>,
    index: IndexSnapshot,
}

/// The read view of the calling process.
enum View<'a> {
    Home(&'a ReadView),
    Forked(Arc<ReadView>),
}

impl std::ops::Deref for View<'_> {
    type Target = ReadView;
    fn deref(&self) -> &ReadView {
        match self {
            View::Home(view) => view,
            View::Forked(view) => view,
        }
    }
}

impl Snapshot {
    pub(crate) fn new(handle: StoreHandle) -> Result<Self> {
        let open = handle.here()?;
        let index = begin_read(&open)?;
        let cutoff = EpisodeId(guarded(open.index().path(), || index.next_episode_id())?);
        Ok(Snapshot {
            handle,
            home: ReadView { open, index },
            cutoff,
            forked: Mutex::new(None),
            schemas: Mutex::new(HashMap::new()),
            split: OnceLock::new(),
            gathered: Mutex::default(),
        })
    }

    /// The view to read through in the calling process (see the type's docs on fork).
    fn view(&self) -> Result<View<'_>> {
        if self.home.open.index().is_home() {
            return Ok(View::Home(&self.home));
        }
        let mut slot = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(view) = slot.as_ref().and_then(|bound| bound.get()) {
            return Ok(View::Forked(view.clone()));
        }
        let open = self.handle.here()?;
        let index = begin_read(&open)?;
        let view = Arc::new(ReadView { open, index });
        *slot = Some(ProcessBound::new(view.clone()));
        Ok(View::Forked(view))
    }

    /// Whether the calling process is a child forked after the snapshot was taken.
    fn is_forked(&self) -> bool {
        !self.home.open.index().is_home()
    }

    /// Runs one read of the index in the calling process's view; a damaged index file is an
    /// error naming it, never a panic (index/guard.rs).
    fn read_index<T>(&self, read: impl FnOnce(&IndexSnapshot) -> Result<T>) -> Result<T> {
        guarded(self.home.open.index().path(), || read(&self.view()?.index))
    }

    /// Size of a segment file on disk (0 when missing).
    pub(crate) fn segment_file_len(&self, id: SegmentId) -> u64 {
        self.view()
            .map_or(0, |view| view.open.maps().file_len(id.get()))
    }

    /// Ids of the segment files in `segments/` now.
    pub(crate) fn segment_ids(&self) -> Result<Vec<u64>> {
        let dir = self.handle.home().root().join(crate::segment::SEGMENTS_DIR);
        let io = &self.handle.home().options().io;
        let names = io.list(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(names
            .iter()
            .filter_map(|n| n.to_str().and_then(crate::segment::parse_segment_name))
            .collect())
    }

    /// Path of a segment file of this store.
    pub fn segment_path(&self, id: SegmentId) -> std::path::PathBuf {
        crate::segment::segment_path(
            &self.handle.home().root().join(crate::segment::SEGMENTS_DIR),
            id.get(),
        )
    }

    /// Format version recorded in the store.
    pub fn format_version(&self) -> Result<u32> {
        self.read_index(IndexSnapshot::format_version)
    }

    /// Every committed episode id is below this; hand it to other ranks as a cutoff
    /// ([`Query::before_id`]) so all see the same episode set while recording goes on.
    pub fn cutoff(&self) -> Result<EpisodeId> {
        Ok(self.cutoff)
    }

    /// All users with their statistics, by name.
    pub fn users(&self) -> Result<Vec<UserSummary>> {
        Ok(self
            .read_index(IndexSnapshot::users)?
            .into_iter()
            .map(|(name, u)| UserSummary {
                name,
                episodes: u.episodes,
                steps: u.steps,
                raw_bytes: u.raw_bytes,
                stored_bytes: u.stored_bytes,
                first_committed_us: u.first_committed_us,
                last_committed_us: u.last_committed_us,
            })
            .collect())
    }

    /// Episodes matching `query`, in commit order. Reads the index only.
    pub fn episodes(&self, query: &Query) -> Result<Vec<Episode>> {
        let mut query = query.clone();
        if self.is_forked() {
            // The child's read may be newer: keep to the episodes of this snapshot.
            query.before_id = Some(query.before_id.map_or(self.cutoff, |c| c.min(self.cutoff)));
        }
        let split = self.split_spec_cached()?;
        let split = query.check_splits(split.as_ref())?;
        let mut episodes: Vec<Episode> = if query.users.is_empty() && query.envs.is_empty() {
            self.read_index(|index| index.episodes(query.before_id.map(EpisodeId::get)))?
                .into_iter()
                .map(|(id, record)| Episode {
                    id: EpisodeId(id),
                    record,
                })
                .collect()
        } else {
            // Narrow through the secondary index of the smaller side.
            let (by, keys) = if query.users.is_empty() {
                (By::Env, &query.envs)
            } else {
                (By::User, &query.users)
            };
            let mut ids = Vec::new();
            for key in keys {
                ids.extend(self.read_index(|index| index.ids_by(by, key))?);
            }
            ids.sort_unstable();
            ids.retain(|id| query.before_id.is_none_or(|c| *id < c.get()));
            ids.into_iter()
                .map(|id| self.episode(EpisodeId(id)))
                .collect::<Result<_>>()?
        };
        let deleted = self.deleted_as_of(query.before_id)?;
        if !deleted.is_empty() {
            episodes.extend(deleted);
            episodes.sort_by_key(Episode::id);
        }
        Ok(episodes
            .into_iter()
            .filter(|e| query.matches(e, split))
            .collect())
    }

    /// Catalog rows of the episodes matching `query`, in commit order: what listing and
    /// selecting need, read from the index's compact catalog without decoding chunk lists or
    /// metadata maps. [`Snapshot::catalog_columns`] reads the same rows without a copy of
    /// their strings.
    pub fn catalog(&self, query: &Query) -> Result<Vec<EpisodeSummary>> {
        let catalog = Arc::new(self.catalog_columns(query)?);
        Ok((0..catalog.len())
            .map(|i| EpisodeSummary::new(catalog.clone(), i))
            .collect())
    }

    /// The catalog rows of the episodes matching `query`, in commit order, as columns: sealed
    /// chunks of 1024 episodes are one index read each (schema/index.md, "`catalog`"). A
    /// store without a complete catalog (format 1 opened read-only) is answered from the
    /// full records.
    pub fn catalog_columns(&self, query: &Query) -> Result<Catalog> {
        let (query, split) = self.bounded(query)?;
        let cutoff = query.before_id.map(EpisodeId::get);
        let Some(Want::All(mut catalog)) =
            self.read_index(|index| index.catalog(cutoff, Want::All(Catalog::new())))?
        else {
            let mut catalog = Catalog::new();
            for e in self.episodes(&query)? {
                catalog.push(e.id().get(), &CatalogRecordV1::of(e.record()));
            }
            return Ok(catalog);
        };
        let deleted = self.deleted_as_of(query.before_id)?;
        if !deleted.is_empty() {
            let mut rows: Vec<(u64, CatalogRecordV1)> = (0..catalog.len())
                .map(|i| (catalog.ids()[i], catalog.record(i)))
                .chain(
                    deleted
                        .iter()
                        .map(|e| (e.id().get(), CatalogRecordV1::of(e.record()))),
                )
                .collect();
            rows.sort_by_key(|(id, _)| *id);
            catalog = Catalog::new();
            for (id, record) in &rows {
                catalog.push(*id, record);
            }
        }
        if query.has_filter() {
            catalog.retain(|c, i| query.matches(&c.row(i), split.as_ref()));
        }
        Ok(catalog)
    }

    /// `(id, steps)` of every episode `query` selects, in id order, decoding nothing else of
    /// the catalog when the query filters on nothing but a cutoff (what a partition needs).
    pub(crate) fn catalog_lens(&self, query: &Query) -> Result<Vec<EpisodeLen>> {
        let lens_of = |catalog: &Catalog| -> Vec<EpisodeLen> {
            catalog
                .ids()
                .iter()
                .zip(catalog.steps())
                .map(|(&id, &steps)| EpisodeLen {
                    id,
                    steps: u64::from(steps),
                })
                .collect()
        };
        if query.has_filter() {
            return Ok(lens_of(&self.catalog_columns(query)?));
        }
        let (query, _) = self.bounded(query)?;
        let cutoff = query.before_id.map(EpisodeId::get);
        let Some(Want::Lens(mut lens)) =
            self.read_index(|index| index.catalog(cutoff, Want::Lens(Vec::new())))?
        else {
            return Ok(lens_of(&self.catalog_columns(&query)?));
        };
        let deleted = self.deleted_as_of(query.before_id)?;
        if !deleted.is_empty() {
            lens.extend(deleted.iter().map(|e| EpisodeLen {
                id: e.id().get(),
                steps: u64::from(e.steps()),
            }));
            lens.sort_unstable_by_key(|e| e.id);
        }
        Ok(lens)
    }

    /// The catalog rows of episodes `ids` (increasing) in this snapshot, deleted ones (seen
    /// by an older cutoff) from their tombstones; an id that is neither is left out.
    pub fn catalog_of(&self, ids: &[u64]) -> Result<Catalog> {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let cutoff = self.is_forked().then_some(self.cutoff.get());
        let found =
            self.read_index(|index| index.catalog(cutoff, Want::Ids(ids, Catalog::new())))?;
        let catalog = match found {
            Some(Want::Ids(_, catalog)) => catalog,
            _ => Catalog::new(),
        };
        if catalog.len() == ids.len() {
            return Ok(catalog);
        }
        let mut rows: Vec<(u64, CatalogRecordV1)> = Vec::new();
        for &id in ids {
            if catalog.position(id).is_some() {
                continue;
            }
            let record = match self.read_index(|index| index.episode(id))? {
                Some(r) if cutoff.is_none_or(|c| id < c) => Some(r),
                _ => self
                    .read_index(|index| index.tombstone(id))?
                    .map(|t| t.record),
            };
            if let Some(r) = record {
                rows.push((id, CatalogRecordV1::of(&r)));
            }
        }
        if rows.is_empty() {
            return Ok(catalog);
        }
        rows.extend((0..catalog.len()).map(|i| (catalog.ids()[i], catalog.record(i))));
        rows.sort_by_key(|(id, _)| *id);
        let mut merged = Catalog::new();
        for (id, record) in &rows {
            merged.push(*id, record);
        }
        Ok(merged)
    }

    /// The metadata map of each episode of `ids` (increasing), in order (deleted ones seen by
    /// an older cutoff from their tombstones): what a listing of catalog rows adds to them,
    /// read without decoding any chunk list.
    pub fn metadata(&self, ids: &[u64]) -> Result<Vec<Info>> {
        let maps = self.metadata_maps(ids)?;
        Ok((0..maps.len()).map(|i| maps.get(i).to_info()).collect())
    }

    /// [`Snapshot::metadata`] as one flat batch, borrowed from map by map: no `String` or
    /// tree node per entry (a listing of 100k episodes spent a third of its time on them).
    pub fn metadata_maps(&self, ids: &[u64]) -> Result<MetadataMaps> {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        self.read_index(|index| index.metadata(ids))
    }

    /// `query` kept to this snapshot's episodes (a forked child reads a newer view), and the
    /// split spec its split filter needs, checked.
    fn bounded(&self, query: &Query) -> Result<(Query, Option<SplitSpecV1>)> {
        let mut query = query.clone();
        if self.is_forked() {
            query.before_id = Some(query.before_id.map_or(self.cutoff, |c| c.min(self.cutoff)));
        }
        let split = self.split_spec_cached()?;
        let split = query.check_splits(split.as_ref())?.cloned();
        Ok((query, split))
    }

    /// The episodes deleted after `cutoff` was taken, below it: a query cut off there still
    /// sees them (schema/index.md, "Deletes and cutoffs"), so a job's ranks agree on their
    /// episodes while curation goes on.
    fn deleted_as_of(&self, cutoff: Option<EpisodeId>) -> Result<Vec<Episode>> {
        let Some(cutoff) = cutoff else {
            return Ok(Vec::new());
        };
        // Tombstones in this snapshot's own view all predate it: only an older cutoff (or a
        // forked child's newer view) can find one.
        if cutoff >= self.cutoff && !self.is_forked() {
            return Ok(Vec::new());
        }
        Ok(self
            .read_index(IndexSnapshot::tombstones)?
            .into_iter()
            .filter(|(id, t)| *id < cutoff.get() && cutoff.get() < t.hidden_from)
            .map(|(id, t)| Episode::from_record(EpisodeId(id), t.record))
            .collect())
    }

    /// One episode's metadata.
    pub fn episode(&self, id: EpisodeId) -> Result<Episode> {
        if self.is_forked() && id >= self.cutoff {
            return Err(ReadError::EpisodeNotFound { id }.into());
        }
        if let Some(record) = self.read_index(|index| index.episode(id.get()))? {
            return Ok(Episode::from_record(id, record));
        }
        // Deleted after this snapshot was taken (seen from a forked child's newer read).
        match self.read_index(|index| index.tombstone(id.get()))? {
            Some(t) if self.cutoff.get() < t.hidden_from => Ok(Episode::from_record(id, t.record)),
            _ => Err(ReadError::EpisodeNotFound { id }.into()),
        }
    }

    /// Deleted episodes awaiting compaction (restorable), in id order.
    pub fn tombstones(&self) -> Result<Vec<Tombstone>> {
        Ok(self
            .read_index(IndexSnapshot::tombstones)?
            .into_iter()
            .map(|(id, t)| Tombstone {
                episode: Episode::from_record(EpisodeId(id), t.record),
                deleted_at_us: t.deleted_at_us,
                deleted_by: t.deleted_by,
                hidden_from: EpisodeId(t.hidden_from),
            })
            .collect())
    }

    /// The tombstone of one deleted episode, if it is deleted.
    pub fn tombstone(&self, id: EpisodeId) -> Result<Option<Tombstone>> {
        Ok(self
            .read_index(|index| index.tombstone(id.get()))?
            .map(|t| Tombstone {
                episode: Episode::from_record(id, t.record),
                deleted_at_us: t.deleted_at_us,
                deleted_by: t.deleted_by,
                hidden_from: EpisodeId(t.hidden_from),
            }))
    }

    /// The curation history of an episode (relabels, deletes, restores), oldest first.
    pub fn history(&self, id: EpisodeId) -> Result<Vec<HistoryRecordV1>> {
        self.read_index(|index| index.history(id.get()))
    }

    /// The store's split specification (`trajstore split`), if one was set.
    pub fn split_spec(&self) -> Result<Option<SplitSpecV1>> {
        self.split_spec_cached()
    }

    /// The split an episode falls in, when the store has a split.
    pub fn split_of(&self, episode: &Episode) -> Result<Option<String>> {
        Ok(self
            .split_spec_cached()?
            .map(|spec| spec.label(episode.id().get(), episode.user()).to_owned()))
    }

    fn split_spec_cached(&self) -> Result<Option<SplitSpecV1>> {
        if let Some(spec) = self.split.get() {
            return Ok(spec.clone());
        }
        let spec = self.read_index(IndexSnapshot::split_spec)?;
        Ok(self.split.get_or_init(|| spec).clone())
    }

    /// A schema by id.
    pub fn schema(&self, id: SchemaId) -> Result<Arc<Schema>> {
        let mut cache = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&id) {
            return Ok(s.clone());
        }
        let schema = self
            .read_index(|index| index.schema(id.get()))?
            .ok_or_else(|| {
                Error::Read(ReadError::CorruptRecord {
                    table: "schemas",
                    reason: format!("schema {id} referenced by an episode is missing"),
                })
            })?;
        let schema = Arc::new(schema);
        cache.insert(id, schema.clone());
        Ok(schema)
    }

    /// Every schema in the store, by id.
    /// The key/values stored once for schema `id` (`EpisodeMeta::schema_metadata`, such as
    /// the Gymnasium spaces of its fields); empty when none were. An episode's own
    /// `metadata` overrides them key by key.
    pub fn schema_metadata(&self, id: SchemaId) -> Result<Info> {
        self.read_index(|index| index.schema_metadata(id.get()))
    }

    pub fn schemas(&self) -> Result<Vec<(SchemaId, Schema)>> {
        Ok(self
            .read_index(IndexSnapshot::schemas)?
            .into_iter()
            .map(|(id, schema)| (SchemaId(id), schema))
            .collect())
    }

    /// The `info` map of every observation step (`T + 1`; empty where none was recorded).
    pub fn infos(&self, episode: &Episode) -> Result<Vec<Info>> {
        let mut out = vec![Info::new(); episode.steps() as usize + 1];
        for (step, info) in self.read_index(|index| index.infos(episode.id().get()))? {
            if let Some(slot) = out.get_mut(step as usize) {
                *slot = info;
            }
        }
        Ok(out)
    }

    /// The non-empty `info` maps of an episode, by observation step (as stored).
    pub(crate) fn infos_rows(&self, episode: &Episode) -> Result<Vec<(u32, Info)>> {
        self.read_index(|index| index.infos(episode.id().get()))
    }

    /// The stored field statistics of these episodes (ids increasing) that have them.
    pub(crate) fn episode_stats_rows(
        &self,
        ids: &[u64],
    ) -> Result<Vec<(u64, crate::stats::EpisodeStatsV1)>> {
        let mut rows = Vec::new();
        self.read_index(|index| {
            index.episode_stats(ids, |id, record| {
                rows.push((id, record));
                Ok(())
            })
        })?;
        Ok(rows)
    }

    /// One field of an episode, ready to read. Checks each chunk's record header here; with
    /// checked reads ([`StoreOptions::verify_reads`](crate::StoreOptions), the default) the
    /// first read of each chunk in the process verifies its checksum (see [`Field`]).
    pub fn field(&self, episode: &Episode, name: &str) -> Result<Field> {
        let schema = self.schema(episode.schema_id())?;
        let Some(i) = schema.index_of(name) else {
            return Err(ReadError::UnknownField {
                episode: episode.id(),
                field: name.to_owned(),
                known: schema.field_names(),
            }
            .into());
        };
        self.field_at(episode, &schema, i)
    }

    /// Every field of an episode, in schema order.
    pub fn fields(&self, episode: &Episode) -> Result<Vec<Field>> {
        let schema = self.schema(episode.schema_id())?;
        (0..schema.fields().len())
            .map(|i| self.field_at(episode, &schema, i))
            .collect()
    }

    fn field_at(&self, episode: &Episode, schema: &Schema, i: usize) -> Result<Field> {
        let spec = &schema.fields()[i];
        let view = self.view()?;
        let mut located = Vec::new();
        let len = locate_chunks(&view, episode, spec, i, &mut located)?;
        let chunks = located
            .into_iter()
            .map(|(first, re, payload)| Chunk {
                first,
                check: ChunkCheck::new(view.open.verified().known_good(&re)),
                re,
                payload,
            })
            .collect();
        Ok(Field {
            spec: spec.clone(),
            len,
            chunks,
            episode: episode.id(),
            user: episode.user().to_owned(),
            verified: view.open.verified().clone(),
        })
    }
}

/// The chunks of field `i` (`spec`) of `episode`, each as (first step, chunk, payload) with
/// its record header checked, into `out` (cleared first); returns the field's value count.
/// What opening a field and `verify` share.
fn locate_chunks(
    view: &ReadView,
    episode: &Episode,
    spec: &FieldSpec,
    i: usize,
    out: &mut Vec<(usize, ChunkRef, MappedBytes)>,
) -> Result<usize> {
    out.clear();
    let refs = chunk_list(
        episode.id(),
        episode.chunks().get(i).map(Vec::as_slice),
        spec,
    )?;
    let mut first = 0usize;
    for r in refs {
        let bytes =
            view.open
                .maps()
                .bytes(r.segment, r.offset, HEADER_BYTES as u64 + r.payload_len)?;
        check_framing(&bytes, r, spec.step_bytes())?;
        let payload = bytes
            .slice(HEADER_BYTES, r.payload_len as usize)
            .expect("within the record");
        out.push((first, *r, payload));
        first += r.steps as usize;
    }
    check_field_steps(episode.id(), episode.steps(), spec, first)
}

/// The chunk list of one field of an episode's record (`lists.get(i)`), or why it has none.
fn chunk_list<'a>(
    episode: EpisodeId,
    list: Option<&'a [ChunkRef]>,
    spec: &FieldSpec,
) -> Result<&'a [ChunkRef]> {
    list.ok_or_else(|| {
        Error::Read(ReadError::CorruptRecord {
            table: "episodes",
            reason: format!(
                "episode {episode} has no chunk list for field {:?}",
                spec.name
            ),
        })
    })
}

/// One chunk record as mapped (header and payload): its header matches the index, and a
/// raw payload holds exactly its steps.
fn check_framing(record: &[u8], r: &ChunkRef, step_bytes: usize) -> Result<()> {
    check_record_header(&record[..HEADER_BYTES], r, step_bytes)?;
    if r.codec == Codec::Raw
        && Some(r.payload_len) != u64::from(r.steps).checked_mul(step_bytes as u64)
    {
        return Err(Error::corrupted(
            r.segment,
            r.offset,
            "raw chunk length is not steps x step bytes",
        ));
    }
    Ok(())
}

/// That a field's chunks hold `found` values, one per observation or transition of an
/// episode of `steps` transitions; the value count.
fn check_field_steps(
    episode: EpisodeId,
    steps: u32,
    spec: &FieldSpec,
    found: usize,
) -> Result<usize> {
    let expected = match spec.kind {
        FieldKind::Observation => steps as usize + 1,
        FieldKind::Transition => steps as usize,
    };
    if found != expected {
        return Err(ReadError::CorruptRecord {
            table: "episodes",
            reason: format!(
                "episode {episode} field {:?} holds {found} steps, expected {expected}",
                spec.name
            ),
        }
        .into());
    }
    Ok(expected)
}

/// Begins a read of the index of `open` (a damaged index is an error, not a panic).
fn begin_read(open: &OpenStore) -> Result<IndexSnapshot> {
    let index = open.index();
    Ok(IndexSnapshot::new(guarded(index.path(), || {
        index.begin_read()
    })?))
}
