//! Reading: a consistent snapshot of the index, and field data straight from segment maps.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::checked::{ChunkCheck, VerifiedChunks};
use crate::dtype::PlainElement;
use crate::error::{DamagedRead, Error, Result};
use crate::index::records::{EpisodeRecordV1, Outcome};
use crate::index::{By, IndexSnapshot, guarded};
use crate::process::ProcessBound;
use crate::schema::{Codec, FieldKind, FieldSpec, Schema};
use crate::segment::MappedBytes;
use crate::segment::format::{
    ChunkRef, HEADER_BYTES, Lz4Table, check_record_header, checksum, decode_block,
};
use crate::store::{Inner, Store};
use crate::value::Info;

/// A committed episode's metadata (no field data is touched to get it).
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    id: u64,
    record: EpisodeRecordV1,
}

impl Episode {
    /// Store-unique id; ids grow in commit order.
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn user(&self) -> &str {
        &self.record.user
    }
    pub fn env(&self) -> &str {
        &self.record.env
    }
    pub fn schema_id(&self) -> u64 {
        self.record.schema_id
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
    pub fn metadata(&self) -> &Info {
        &self.record.metadata
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
    pub(crate) fn chunks(&self) -> &[Vec<ChunkRef>] {
        &self.record.fields
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
    /// Only episodes with id below this (a snapshot cutoff shared by distributed ranks).
    pub before_id: Option<u64>,
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

    fn matches(&self, e: &Episode) -> bool {
        (self.users.is_empty() || self.users.iter().any(|u| u == e.user()))
            && (self.envs.is_empty() || self.envs.iter().any(|v| v == e.env()))
            && self.tags.iter().all(|t| e.tags().contains(t))
            && (self.outcomes.is_empty() || self.outcomes.contains(&e.outcome()))
            && self.min_return.is_none_or(|m| e.total_return() >= m)
            && self.max_return.is_none_or(|m| e.total_return() <= m)
            && self.min_steps.is_none_or(|m| e.steps() >= m)
            && self.before_id.is_none_or(|c| e.id() < c)
    }
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
    store: Store,
    home: ReadView,
    cutoff: u64,
    forked: Mutex<Option<ProcessBound<Arc<ReadView>>>>,
    schemas: Mutex<HashMap<u64, Arc<Schema>>>,
}

/// An index read and the segment maps to read field data with, of one process.
struct ReadView {
    inner: Arc<Inner>,
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

impl View<'_> {}

impl Snapshot {
    pub(crate) fn new(store: Store, inner: Arc<Inner>, index: IndexSnapshot) -> Result<Self> {
        let cutoff = guarded(inner.index.path(), || index.next_episode_id())?;
        Ok(Snapshot {
            store,
            home: ReadView { inner, index },
            cutoff,
            forked: Mutex::new(None),
            schemas: Mutex::new(HashMap::new()),
        })
    }

    /// The view to read through in the calling process (see the type's docs on fork).
    fn view(&self) -> Result<View<'_>> {
        if self.home.inner.index.is_home() {
            return Ok(View::Home(&self.home));
        }
        let mut slot = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(view) = slot.as_ref().and_then(|bound| bound.get()) {
            return Ok(View::Forked(view.clone()));
        }
        let inner = self.store.here()?;
        let index = IndexSnapshot::new(guarded(inner.index.path(), || inner.index.begin_read())?);
        let view = Arc::new(ReadView { inner, index });
        *slot = Some(ProcessBound::new(view.clone()));
        Ok(View::Forked(view))
    }

    /// Whether the calling process is a child forked after the snapshot was taken.
    fn is_forked(&self) -> bool {
        !self.home.inner.index.is_home()
    }

    /// Runs one read of the index in the calling process's view; a damaged index file is an
    /// error naming it, never a panic (index/guard.rs).
    fn read_index<T>(&self, read: impl FnOnce(&IndexSnapshot) -> Result<T>) -> Result<T> {
        guarded(self.home.inner.index.path(), || read(&self.view()?.index))
    }

    /// Size of a segment file on disk (0 when missing).
    pub(crate) fn segment_file_len(&self, id: u64) -> u64 {
        self.view().map_or(0, |view| view.inner.maps.file_len(id))
    }

    /// Path of a segment file of this store.
    pub fn segment_path(&self, id: u64) -> std::path::PathBuf {
        crate::segment::segment_path(&self.store.path().join(crate::segment::SEGMENTS_DIR), id)
    }

    /// Format version recorded in the store.
    pub fn format_version(&self) -> Result<u32> {
        self.read_index(IndexSnapshot::format_version)
    }

    /// Every committed episode id is below this; hand it to other ranks as a cutoff
    /// ([`Query::before_id`]) so all see the same episode set while recording goes on.
    pub fn cutoff(&self) -> Result<u64> {
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
        let episodes: Vec<Episode> = if query.users.is_empty() && query.envs.is_empty() {
            self.read_index(|index| index.episodes(query.before_id))?
                .into_iter()
                .map(|(id, record)| Episode { id, record })
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
            ids.retain(|id| query.before_id.is_none_or(|c| *id < c));
            ids.into_iter()
                .map(|id| self.episode(id))
                .collect::<Result<_>>()?
        };
        Ok(episodes.into_iter().filter(|e| query.matches(e)).collect())
    }

    /// One episode's metadata.
    pub fn episode(&self, id: u64) -> Result<Episode> {
        if self.is_forked() && id >= self.cutoff {
            return Err(Error::EpisodeNotFound(id));
        }
        match self.read_index(|index| index.episode(id))? {
            Some(record) => Ok(Episode { id, record }),
            None => Err(Error::EpisodeNotFound(id)),
        }
    }

    /// A schema by id.
    pub fn schema(&self, id: u64) -> Result<Arc<Schema>> {
        let mut cache = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&id) {
            return Ok(s.clone());
        }
        let schema =
            self.read_index(|index| index.schema(id))?
                .ok_or_else(|| Error::CorruptRecord {
                    table: "schemas",
                    reason: format!("schema {id} referenced by an episode is missing"),
                })?;
        let schema = Arc::new(schema);
        cache.insert(id, schema.clone());
        Ok(schema)
    }

    /// Every schema in the store, by id.
    pub fn schemas(&self) -> Result<Vec<(u64, Schema)>> {
        self.read_index(IndexSnapshot::schemas)
    }

    /// The `info` map of every observation step (`T + 1`; empty where none was recorded).
    pub fn infos(&self, episode: &Episode) -> Result<Vec<Info>> {
        let mut out = vec![Info::new(); episode.steps() as usize + 1];
        for (step, info) in self.read_index(|index| index.infos(episode.id()))? {
            if let Some(slot) = out.get_mut(step as usize) {
                *slot = info;
            }
        }
        Ok(out)
    }

    /// One field of an episode, ready to read. Checks each chunk's record header here; with
    /// checked reads ([`StoreOptions::verify_reads`](crate::StoreOptions), the default) the
    /// first read of each chunk in the process verifies its checksum (see [`Field`]).
    pub fn field(&self, episode: &Episode, name: &str) -> Result<Field> {
        let schema = self.schema(episode.schema_id())?;
        let Some(i) = schema.index_of(name) else {
            return Err(Error::UnknownField {
                field: name.to_owned(),
                known: schema.field_names(),
            });
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
        let spec = schema.fields()[i].clone();
        let refs = episode
            .chunks()
            .get(i)
            .ok_or_else(|| Error::CorruptRecord {
                table: "episodes",
                reason: format!(
                    "episode {} has no chunk list for field {:?}",
                    episode.id(),
                    spec.name
                ),
            })?;
        let expected = match spec.kind {
            FieldKind::Observation => episode.steps() as usize + 1,
            FieldKind::Transition => episode.steps() as usize,
        };
        let view = self.view()?;
        let mut chunks = Vec::with_capacity(refs.len());
        let mut first = 0usize;
        for r in refs {
            let bytes =
                view.inner
                    .maps
                    .bytes(r.segment, r.offset, HEADER_BYTES as u64 + r.payload_len)?;
            check_record_header(&bytes[..HEADER_BYTES], r, spec.step_bytes())?;
            let payload = bytes
                .slice(HEADER_BYTES, r.payload_len as usize)
                .expect("within the record");
            if r.codec == Codec::Raw && payload.len() != r.steps as usize * spec.step_bytes() {
                return Err(Error::corrupted(
                    r.segment,
                    r.offset,
                    "raw chunk length is not steps x step bytes",
                ));
            }
            chunks.push(Chunk {
                first,
                re: *r,
                payload,
                check: ChunkCheck::new(view.inner.verified.known_good(r)),
            });
            first += r.steps as usize;
        }
        if first != expected {
            return Err(Error::CorruptRecord {
                table: "episodes",
                reason: format!(
                    "episode {} field {:?} holds {first} steps, expected {expected}",
                    episode.id(),
                    spec.name
                ),
            });
        }
        Ok(Field {
            spec,
            len: expected,
            chunks,
            episode: episode.id(),
            user: episode.user().to_owned(),
            verified: view.inner.verified.clone(),
        })
    }
}

struct Chunk {
    first: usize,
    re: ChunkRef,
    payload: MappedBytes,
    /// Whether the payload is known good (checked reads).
    check: ChunkCheck,
}

/// One field of one episode: `len()` values of the field's shape and dtype.
///
/// Raw fields are read straight from the segment's memory map (no copy); lz4 fields decode
/// each step into a caller's buffer.
///
/// Reads are checked (unless the store was opened with
/// [`StoreOptions::verify_reads`](crate::StoreOptions) `false`): every read verifies, before
/// returning anything of a chunk, the xxh3 checksum of the chunk's whole payload (and for lz4
/// the table framing), the first time this process reads that chunk; a damaged chunk fails
/// the read with [`Error::CorruptRead`] naming user, episode, field and steps. Reading one
/// step of a chunk checks the whole chunk once (episodes below the writer's spill size have
/// one chunk per field).
pub struct Field {
    spec: FieldSpec,
    len: usize,
    chunks: Vec<Chunk>,
    episode: u64,
    user: String,
    verified: Arc<VerifiedChunks>,
}

impl Field {
    pub fn spec(&self) -> &FieldSpec {
        &self.spec
    }

    /// Number of values: `T + 1` for observations, `T` for transition fields.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of one value.
    pub fn step_bytes(&self) -> usize {
        self.spec.step_bytes()
    }

    fn chunk_of(&self, step: usize) -> Result<&Chunk> {
        if step >= self.len {
            return Err(Error::InvalidValue {
                field: self.spec.name.clone(),
                reason: format!(
                    "step {step} out of range (the field has {} values)",
                    self.len
                ),
            });
        }
        let i = self.chunks.partition_point(|c| c.first <= step) - 1;
        Ok(&self.chunks[i])
    }

    /// Verifies `chunk` unless known good (checked reads).
    #[inline]
    fn checked(&self, chunk: &Chunk) -> Result<()> {
        chunk
            .check
            .ensure(&self.verified, &chunk.re, &chunk.payload, self.step_bytes())
            .map_err(|reason| {
                self.corrupt(
                    chunk,
                    chunk.first..chunk.first + chunk.re.steps as usize,
                    reason,
                )
            })
    }

    /// The error of a damaged chunk, naming what it holds.
    fn corrupt(&self, chunk: &Chunk, steps: Range<usize>, reason: String) -> Error {
        Error::CorruptRead(Box::new(DamagedRead {
            user: self.user.clone(),
            episode: self.episode,
            field: self.spec.name.clone(),
            steps,
            segment: chunk.re.segment,
            path: self.verified.segment_path(chunk.re.segment),
            offset: chunk.re.offset,
            reason,
        }))
    }

    /// A decoding error of `step` of `chunk`, with what the chunk holds.
    fn named(&self, chunk: &Chunk, step: usize, e: Error) -> Error {
        match e {
            Error::Corrupted { reason, .. } => self.corrupt(chunk, step..step + 1, reason),
            e => e,
        }
    }

    /// Whether the field is raw and stored in one chunk, so [`Field::contiguous`] is `Some`.
    /// Reads nothing.
    pub fn is_contiguous(&self) -> bool {
        matches!(self.chunks.as_slice(), [only] if only.re.codec == Codec::Raw)
    }

    /// All values as one zero-copy slice of the map, when the field is raw and was written in
    /// one chunk (episodes smaller than the writer's spill size always are); `Ok(None)`
    /// otherwise. Checked: fails with [`Error::CorruptRead`] when the chunk is damaged.
    pub fn contiguous(&self) -> Result<Option<MappedBytes>> {
        match self.chunks.as_slice() {
            [only] if only.re.codec == Codec::Raw => {
                self.checked(only)?;
                Ok(Some(only.payload.clone()))
            }
            _ => Ok(None),
        }
    }

    /// All values as a typed zero-copy slice; `Ok(None)` unless [`Field::contiguous`] and `T`
    /// matches the dtype. Checked like [`Field::contiguous`].
    pub fn as_slice<T: PlainElement>(&self) -> Result<Option<&[T]>> {
        if T::DTYPE != self.spec.dtype {
            return Ok(None);
        }
        match self.chunks.as_slice() {
            // Payloads start 64-byte aligned, so the cast cannot fail on alignment.
            [only] if only.re.codec == Codec::Raw => {
                self.checked(only)?;
                Ok(bytemuck::try_cast_slice(&only.payload).ok())
            }
            _ => Ok(None),
        }
    }

    /// One raw value, zero-copy. Fails for lz4 fields (use [`Field::read_into`]).
    pub fn raw_step(&self, step: usize) -> Result<MappedBytes> {
        let chunk = self.chunk_of(step)?;
        if chunk.re.codec != Codec::Raw {
            return Err(Error::InvalidValue {
                field: self.spec.name.clone(),
                reason: "is lz4-compressed: decode it with read_into".into(),
            });
        }
        self.checked(chunk)?;
        let n = self.step_bytes();
        Ok(chunk
            .payload
            .slice((step - chunk.first) * n, n)
            .expect("length checked at load"))
    }

    /// Copies (raw) or decodes (lz4) the values of `steps` into `out`, which must be exactly
    /// `steps.len() * step_bytes()` long. Allocates nothing.
    pub fn read_into(&self, steps: Range<usize>, out: &mut [u8]) -> Result<()> {
        let n = self.step_bytes();
        if out.len() != steps.len() * n || steps.end > self.len {
            return Err(Error::InvalidValue {
                field: self.spec.name.clone(),
                reason: format!(
                    "read_into({steps:?}) needs {} bytes and steps below {}; got a {}-byte buffer",
                    steps.len() * n,
                    self.len,
                    out.len()
                ),
            });
        }
        let mut step = steps.start;
        while step < steps.end {
            let chunk = self.chunk_of(step)?;
            let upto = steps.end.min(chunk.first + chunk.re.steps as usize);
            let dst = &mut out[(step - steps.start) * n..(upto - steps.start) * n];
            self.checked(chunk)?;
            match chunk.re.codec {
                Codec::Raw => dst.copy_from_slice(
                    &chunk.payload[(step - chunk.first) * n..(upto - chunk.first) * n],
                ),
                Codec::Lz4 => {
                    let table = Lz4Table::parse(&chunk.payload, chunk.re.steps as usize, &chunk.re)
                        .map_err(|e| self.named(chunk, step, e))?;
                    for (k, out) in
                        (step - chunk.first..upto - chunk.first).zip(dst.chunks_exact_mut(n))
                    {
                        let (kind, block) = table.block(k).ok_or_else(|| {
                            self.corrupt(
                                chunk,
                                chunk.first + k..chunk.first + k + 1,
                                format!("lz4 block {k} out of bounds"),
                            )
                        })?;
                        decode_block(kind, block, out, &chunk.re, k)
                            .map_err(|e| self.named(chunk, chunk.first + k, e))?;
                    }
                }
            }
            step = upto;
        }
        Ok(())
    }

    /// All values, copied or decoded into a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len * self.step_bytes()];
        self.read_into(0..self.len, &mut out)?;
        Ok(out)
    }

    /// Checks every chunk's payload checksum and, for lz4, that every block decodes. Returns
    /// the first problem with the step range it covers.
    pub fn verify(&self) -> std::result::Result<(), (Range<usize>, Error)> {
        let mut scratch = vec![0u8; self.step_bytes()];
        for c in &self.chunks {
            let steps = c.first..c.first + c.re.steps as usize;
            if checksum(&c.payload) != c.re.checksum {
                return Err((
                    steps,
                    Error::corrupted(c.re.segment, c.re.offset, "payload checksum mismatch"),
                ));
            }
            if c.re.codec == Codec::Lz4 {
                let table = Lz4Table::parse(&c.payload, c.re.steps as usize, &c.re)
                    .map_err(|e| (steps.clone(), e))?;
                for k in 0..c.re.steps as usize {
                    let step = c.first + k;
                    let (kind, block) = table.block(k).ok_or_else(|| {
                        (
                            step..step + 1,
                            Error::corrupted(c.re.segment, c.re.offset, "lz4 block out of bounds"),
                        )
                    })?;
                    decode_block(kind, block, &mut scratch, &c.re, k)
                        .map_err(|e| (step..step + 1, e))?;
                }
            }
        }
        Ok(())
    }

    /// Chunks (segment, offset, steps) for diagnostics.
    pub fn chunk_refs(&self) -> impl Iterator<Item = &ChunkRef> {
        self.chunks.iter().map(|c| &c.re)
    }
}
