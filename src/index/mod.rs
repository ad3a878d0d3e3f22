//! The redb index: the only module that talks to redb.
//!
//! Tables (see `schema/index.md` for encodings):
//!
//! | table           | key               | value                           |
//! |-----------------|-------------------|---------------------------------|
//! | `meta`          | `&str`            | `u64` (format version, counters) |
//! | `schemas`       | schema id `u64`   | `SchemaRecord`                  |
//! | `episodes`      | episode id `u64`  | `EpisodeRecord`                 |
//! | `steps`         | `(episode, step)` | `StepRecord` (non-empty info)   |
//! | `users`         | user `&str`       | `UserRecord`                    |
//! | `user_episodes` | `(user, episode)` | `()`                            |
//! | `env_episodes`  | `(env, episode)`  | `()`                            |
//! | `deleted`       | episode id `u64`  | `DeletedRecord` (format 2)      |
//! | `history`       | `(episode, seq)`  | `HistoryRecord` (format 2)      |
//! | `splits`        | `&str` ("current")| `SplitSpec` (format 2)          |
//! | `episode_stats` | episode id `u64`  | `EpisodeStats` (format 2; may be absent) |
//!
//! Format-2 tables may be absent (a format-1 store, until its first curation write upgrades
//! it): every read treats a missing table as empty.
//!
//! Physical key order: episode ids come from a counter incremented inside the commit
//! transaction, so every insert into `episodes` and `steps` lands at the right edge of its
//! B-tree however many recorders interleave (user-major keys doubled the file and cost 30% of
//! insert speed with 8 recorders, FIELD.md). The user / episode / step view is served by the
//! small `user_episodes` table, whose range scan lists a user's episodes in commit order.

pub(crate) mod board;
pub(crate) mod carried;
pub(crate) mod catalog;
pub(crate) mod catalog_columns;
#[cfg(test)]
mod catalog_tests;
mod chunk_decode;
pub(crate) mod commit;
pub(crate) mod curation;
mod guard;
pub(crate) mod metadata;
pub(crate) mod presync;
pub mod records;
pub(crate) mod schema_meta;
mod wake;

pub(crate) use guard::guarded;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    ConcurrencyMode, Database, Key, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableTable, Table, TableDefinition, Value as RedbValue, WriteTransaction,
};

use crate::error::{Error, OpenError, ReadError, Result};
use crate::io::{IndexBackend, StoreIo};
use crate::process::ProcessBound;
use crate::schema::{FieldSpec, Schema};
use crate::segment::format::ChunkRef;
use crate::stats::EpisodeStatsV1;
use crate::value::Info;
use metadata::MetadataMaps;
use presync::{PreSyncBackend, SyncSignal};
use records::{
    DeletedRecordV1, EpisodeRecordV1, HistoryRecordV1, Record, SchemaRecordV1, SplitSpecV1,
    StepRecordV1, UserRecordV1,
};

/// Name of the index file inside a store directory.
pub const INDEX_FILE: &str = "index.redb";

/// Version of the store layout (directory, index tables, record envelopes) written by this build.
pub const STORE_FORMAT_VERSION: u32 = 2;

/// The first store format with the curation tables (`deleted`, `history`, `splits`).
pub(crate) const CURATION_FORMAT_VERSION: u32 = 2;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SCHEMAS: TableDefinition<u64, &[u8]> = TableDefinition::new("schemas");
pub(crate) const EPISODES: TableDefinition<u64, &[u8]> = TableDefinition::new("episodes");
pub(crate) const STEPS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("steps");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(crate) const USER_EPISODES: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("user_episodes");
pub(crate) const ENV_EPISODES: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("env_episodes");
/// Format 2: per-element statistics of each episode's small numeric fields. Created by the
/// first commit that writes a row; absent from format-1 stores (read as empty).
pub(crate) const EPISODE_STATS: TableDefinition<u64, &[u8]> = TableDefinition::new("episode_stats");

pub(crate) const DELETED: TableDefinition<u64, &[u8]> = TableDefinition::new("deleted");
pub(crate) const HISTORY: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("history");
pub(crate) const SPLITS: TableDefinition<&str, &[u8]> = TableDefinition::new("splits");
/// The one key of `splits` (a table rather than a `meta` entry: `meta` values are `u64`).
pub(crate) const SPLIT_CURRENT: &str = "current";

const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_NEXT_EPISODE: &str = "next_episode_id";
const META_NEXT_SCHEMA: &str = "next_schema_id";
/// End offset in `curation.log` of the last entry whose transaction committed (format 2).
pub(crate) const META_CURATION_LOG_END: &str = "curation_log_end";

/// Bytes of redb page cache of an index opened without a choice (`StoreOptions` has the
/// store handles' own).
pub(crate) const CACHE_BYTES: usize = 64 << 20;

enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

/// The index of one store, usable in the process that opened it (see process.rs: a forked
/// child reopens the index rather than touch its parent's redb handle and locks).
pub struct Index {
    db: ProcessBound<Db>,
    path: PathBuf,
}

/// Compaction's change to one episode: its id, the chunk lists it had when copied, the new.
pub type ChunkMove<'a> = (u64, &'a [Vec<ChunkRef>], Vec<Vec<ChunkRef>>);

/// An episode ready to be indexed: its data is durable in segments, or will be before the
/// index commit's first sync returns (`presync.rs`).
pub struct PendingEpisode {
    pub record: EpisodeRecordV1,
    /// Non-empty `info` maps by observation step.
    pub infos: Vec<(u32, Info)>,
    /// Statistics gathered while recording; `None` for episodes restored without them.
    pub stats: Option<EpisodeStatsV1>,
    /// Key/values of the episode's schema (`EpisodeMeta::schema_metadata`), filed once per
    /// schema at commit (`schema_meta::put`); empty for most episodes.
    pub schema_metadata: Info,
}

fn builder() -> redb::Builder {
    builder_caching(CACHE_BYTES)
}

fn builder_caching(cache_bytes: usize) -> redb::Builder {
    let mut b = Database::builder();
    // Any number of processes may record into one store and follow each other's commits.
    b.set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(cache_bytes);
    b
}

impl Index {
    /// Creates the index file if missing and opens it for writing.
    ///
    /// A new index appears under its name only once its tables exist: it is built under a
    /// private temporary name and hard-linked into place (`link` fails if the name exists, so
    /// of two processes creating one store at once, exactly one index wins and both open it).
    /// A reader opening the store meanwhile finds either no index or a complete empty one.
    ///
    /// With an `io` that serves the index itself (tests of power cuts and I/O faults), the
    /// file is opened or created through it, in this process only.
    pub fn open_write(path: &Path, io: &dyn StoreIo) -> Result<Index> {
        Self::open_write_caching(path, io, CACHE_BYTES)
    }

    /// [`Index::open_write`] with a page cache of `cache_bytes`.
    pub fn open_write_caching(path: &Path, io: &dyn StoreIo, cache_bytes: usize) -> Result<Index> {
        let builder = || builder_caching(cache_bytes);
        let db = match io.index_file(path).map_err(|e| Error::io(path, e))? {
            Some(file) => {
                let db = builder().create_with_backend(PreSyncBackend(IndexBackend(file)))?;
                // The file may be new: its name must be durable like its content.
                let dir = path.parent().unwrap_or(Path::new("."));
                io.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
                db
            }
            None => {
                if !path.exists() {
                    create_atomically(path)?;
                }
                check_not_empty(path)?;
                // redb's own file backend (its cross-process locks included), with the index
                // syncs waiting for the segment syncs of the batch they commit (presync.rs).
                // The file exists and is not empty: this opens it, never initialises it.
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                let backend = redb::backends::FileBackend::new(file)
                    .map_err(|e| damaged_or(path, e.into()))?;
                builder()
                    .create_with_backend(PreSyncBackend(backend))
                    .map_err(|e| damaged_or(path, e.into()))?
            }
        };
        let index = Index {
            db: ProcessBound::new(Db::Write(db)),
            path: path.to_owned(),
        };
        index.initialise().map_err(|e| damaged_or(path, e))?;
        Ok(index)
    }

    /// Opens an existing index for reading only.
    ///
    /// A writer that was killed leaves the index marked for recovery, and redb refuses a
    /// read-only open of such a file while no live writer holds it (a live writer's file is
    /// consistent; a dead one's is a writer's to repair). Then this opens the index briefly
    /// for writing, which recovers it (quick repair: the allocator state recorded by the last
    /// multi-writer commit), closes it and opens it read-only again. A process that may not
    /// write the file gets [`OpenError::NeedsRecovery`].
    pub fn open_read(path: &Path, io: &dyn StoreIo) -> Result<Index> {
        Self::open_read_caching(path, io, CACHE_BYTES)
    }

    /// [`Index::open_read`] with a page cache of `cache_bytes`.
    pub fn open_read_caching(path: &Path, io: &dyn StoreIo, cache_bytes: usize) -> Result<Index> {
        check_not_empty(path)?;
        Self::open_read_unchecked(path, io, cache_bytes).map_err(|e| damaged_or(path, e))
    }

    fn open_read_unchecked(path: &Path, io: &dyn StoreIo, cache_bytes: usize) -> Result<Index> {
        let builder = || builder_caching(cache_bytes);
        let mut attempts = 0;
        let db = loop {
            let opened = match io.index_file(path).map_err(|e| Error::io(path, e))? {
                Some(file) => builder().open_read_only_with_backend(IndexBackend(file)),
                None => builder().open_read_only(path),
            };
            match opened {
                Ok(db) => break db,
                // Bounded: another writer could die again between our repair and our open.
                Err(redb::DatabaseError::RepairAborted) if attempts < 3 => {
                    attempts += 1;
                    recover(path, io)?;
                }
                Err(redb::DatabaseError::RepairAborted) => {
                    return Err(OpenError::NeedsRecovery {
                        path: path.to_owned(),
                        reason: "it still needs recovery after 3 repairs".into(),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        };
        let index = Index {
            db: ProcessBound::new(Db::Read(db)),
            path: path.to_owned(),
        };
        index.check_format(&index.begin_read()?)?;
        Ok(index)
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the calling process opened this index (false in a forked child).
    pub fn is_home(&self) -> bool {
        self.db.is_home()
    }

    pub fn is_read_only(&self) -> bool {
        matches!(self.db.get(), Some(Db::Read(_)))
    }

    /// The redb handle, in the process that opened it.
    fn db(&self) -> Result<&Db> {
        self.db.get().ok_or_else(|| {
            Error::Open(OpenError::ForkedHandle {
                what: "the store's index handle",
                opened_in: self.db.owner(),
                used_in: crate::process::current(),
            })
        })
    }

    fn writable(&self) -> Result<&Database> {
        match self.db()? {
            Db::Write(db) => Ok(db),
            Db::Read(_) => Err(OpenError::ReadOnly.into()),
        }
    }

    /// Creates the tables and records the format version on first open; refuses newer formats.
    fn initialise(&self) -> Result<()> {
        self.check_format(&self.begin_read()?)?;
        let txn = self.writable()?.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(META_FORMAT_VERSION)?.is_none() {
                meta.insert(META_FORMAT_VERSION, u64::from(STORE_FORMAT_VERSION))?;
                meta.insert(META_NEXT_EPISODE, 1)?;
                meta.insert(META_NEXT_SCHEMA, 1)?;
                // A new store is created at this build's format, with its tables; an existing
                // format-1 store stays format 1 until its first curation write (curation.rs).
                curation::create_tables(&txn)?;
            }
            txn.open_table(SCHEMAS)?;
            txn.open_table(EPISODES)?;
            txn.open_table(STEPS)?;
            txn.open_table(USERS)?;
            txn.open_table(USER_EPISODES)?;
            txn.open_table(ENV_EPISODES)?;
        }
        // Format 2: a store without the catalog gets it here, once (index/catalog.rs).
        catalog::build_if_missing(&txn)?;
        txn.commit()?;
        Ok(())
    }

    fn check_format(&self, txn: &ReadTransaction) -> Result<()> {
        check_format_supported(txn, &self.path, STORE_FORMAT_VERSION, self.is_read_only())
    }

    /// A consistent snapshot of the index.
    pub fn begin_read(&self) -> Result<ReadTransaction> {
        Ok(match self.db()? {
            Db::Write(db) => db.begin_read()?,
            Db::Read(db) => db.begin_read()?,
        })
    }

    /// The id of a schema, registering it when new. Identical schemas share an id.
    pub fn schema_id(&self, schema: &Schema) -> Result<u64> {
        let fields = schema.fields().to_vec();
        if let Some(id) = find_schema(&self.begin_read()?.open_table(SCHEMAS)?, &fields)? {
            return Ok(id);
        }
        let txn = self.writable()?.begin_write()?;
        let id = {
            let mut schemas = txn.open_table(SCHEMAS)?;
            // Another writer may have registered it since our read.
            if let Some(id) = find_schema(&schemas, &fields)? {
                id
            } else {
                let mut meta = txn.open_table(META)?;
                let id = meta.get(META_NEXT_SCHEMA)?.map_or(1, |v| v.value());
                meta.insert(META_NEXT_SCHEMA, id + 1)?;
                schemas.insert(id, SchemaRecordV1 { fields }.encode().as_slice())?;
                id
            }
        };
        txn.commit()?;
        Ok(id)
    }

    /// Indexes a batch of episodes in one durable transaction; returns their ids in order.
    /// `synced` are the segment syncs the episodes' bytes wait for: the transaction's first
    /// index sync does not return before all of them finished, and fails if one failed, so
    /// nothing is committed that names bytes not durable (presync.rs).
    pub fn commit(
        &self,
        batch: &[&PendingEpisode],
        synced: Vec<Arc<SyncSignal>>,
    ) -> Result<Vec<u64>> {
        let mut ids = Vec::with_capacity(batch.len());
        self.commit_with(|txn| {
            for pending in batch {
                ids.push(txn.add(pending, None)?);
            }
            Ok(Some(synced))
        })?;
        Ok(ids)
    }

    /// Runs one write transaction whose episodes `build` adds one by one ([`Batch::add`]),
    /// while it may still wait for more (a round's leader indexes the episodes it has while
    /// it waits for the rest: board.rs, "Gathering"). `build` returns the segment syncs the
    /// episodes' bytes wait for: the transaction's first index sync does not return before
    /// all of them finished, and fails if one failed, so nothing is committed that names
    /// bytes not durable (presync.rs). `None`: nothing to commit, the transaction is dropped.
    /// Returns whether it committed.
    pub fn commit_with(
        &self,
        build: impl FnOnce(&mut Batch<'_>) -> Result<Option<Vec<Arc<SyncSignal>>>>,
    ) -> Result<bool> {
        let txn = self.writable()?.begin_write()?;
        let synced = {
            let mut meta = txn.open_table(META)?;
            let tables = EpisodeTables::open(&txn, &meta)?;
            let first = meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value());
            let mut batch = Batch {
                tables,
                first,
                next: first,
            };
            let Some(synced) = build(&mut batch)? else {
                return Ok(false);
            };
            meta.insert(META_NEXT_EPISODE, batch.next)?;
            batch.tables.catalog.finish(&mut meta, batch.next)?;
            synced
        };
        let waited = !synced.is_empty();
        let (committed, barrier_passed) = presync::with_barrier(synced, || txn.commit());
        committed?;
        if waited && !barrier_passed {
            // redb committed without a sync on this thread: it can no longer be ordered after
            // the segment syncs. Never seen (a durable commit always syncs); refuse loudly.
            return Err(crate::error::StorageError::Panicked {
                during: "committing a batch of episodes",
                message: "the index commit made no sync to order the segment syncs before".into(),
            }
            .into());
        }
        Ok(true)
    }

    /// The id the next committed episode would get now (ids only grow).
    #[cfg(test)]
    pub fn next_episode_id(&self) -> Result<u64> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value()))
    }

    /// Compaction's index switch: in one durable transaction, each episode whose chunk list
    /// is still `old` gets `new` (same payloads, other places). Returns how many were
    /// switched; an episode gone or changed meanwhile is left as it is.
    pub fn replace_chunks(&self, moves: &[ChunkMove<'_>]) -> Result<u64> {
        let txn = self.writable()?.begin_write()?;
        let mut switched = 0;
        {
            let mut episodes = txn.open_table(EPISODES)?;
            for (id, old, new) in moves {
                let current = match episodes.get(*id)? {
                    Some(v) => EpisodeRecordV1::decode(v.value())?,
                    None => continue,
                };
                if current.fields.as_slice() != *old {
                    continue;
                }
                let record = EpisodeRecordV1 {
                    fields: new.clone(),
                    ..current
                };
                episodes.insert(*id, record.encode().as_slice())?;
                switched += 1;
            }
        }
        txn.commit()?;
        Ok(switched)
    }

    /// Builds a complete new index at `path` (which must not exist) holding exactly these
    /// schemas and episodes, with their ids, in one transaction (`trajstore repair`). User
    /// statistics are recomputed from the episodes; the counters are set past the largest ids.
    pub fn build_restored(
        path: &Path,
        schemas: &[(u64, Vec<FieldSpec>)],
        episodes: &[(u64, PendingEpisode)],
    ) -> Result<()> {
        let db = builder().create(path)?;
        let index = Index {
            db: ProcessBound::new(Db::Write(db)),
            path: path.to_owned(),
        };
        index.initialise()?;
        let txn = index.writable()?.begin_write()?;
        {
            let mut schema_table = txn.open_table(SCHEMAS)?;
            for (id, fields) in schemas {
                let record = SchemaRecordV1 {
                    fields: fields.clone(),
                };
                schema_table.insert(*id, record.encode().as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            let mut tables = EpisodeTables::open(&txn, &meta)?;
            let mut sorted: Vec<&(u64, PendingEpisode)> = episodes.iter().collect();
            sorted.sort_by_key(|(id, _)| *id);
            for (id, pending) in &sorted {
                tables.insert(*id, pending)?;
            }
            let next_episode = sorted.last().map_or(1, |(id, _)| id + 1);
            let next_schema = schemas.iter().map(|(id, _)| id + 1).max().unwrap_or(1);
            meta.insert(META_NEXT_EPISODE, next_episode)?;
            meta.insert(META_NEXT_SCHEMA, next_schema)?;
            tables.catalog.finish(&mut meta, next_episode)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// The tables one committed episode writes rows into, open in one write transaction.
/// The id of an indexed episode at or above `from` whose record equals `record`, chunk places
/// aside (board.rs: a ticket a dead leader may have committed).
fn find_committed(
    episodes: &Table<'_, u64, &'static [u8]>,
    from: u64,
    record: &EpisodeRecordV1,
) -> Result<Option<u64>> {
    let want = EpisodeRecordV1 {
        fields: Vec::new(),
        ..record.clone()
    };
    for row in episodes.range(from..)? {
        let (id, value) = row?;
        let got = EpisodeRecordV1::decode(value.value())?;
        if (EpisodeRecordV1 {
            fields: Vec::new(),
            ..got
        }) == want
        {
            return Ok(Some(id.value()));
        }
    }
    Ok(None)
}

struct EpisodeTables<'t> {
    episodes: Table<'t, u64, &'static [u8]>,
    steps: Table<'t, (u64, u32), &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    user_episodes: Table<'t, (&'static str, u64), ()>,
    env_episodes: Table<'t, (&'static str, u64), ()>,
    catalog: catalog::CatalogWriter<'t>,
    /// Opened at the first episode that has statistics (so a batch without any creates no
    /// table).
    episode_stats: Option<Table<'t, u64, &'static [u8]>>,
    /// Opened at the first episode that has schema metadata (likewise).
    schema_metadata: Option<Table<'t, u64, &'static [u8]>>,
    txn: &'t WriteTransaction,
}

/// The episodes of one write transaction being built ([`Index::commit_with`]).
pub struct Batch<'t> {
    tables: EpisodeTables<'t>,
    /// The id the transaction's first new episode gets: the lowest id it can give.
    first: u64,
    next: u64,
}

impl Batch<'_> {
    /// The lowest id this transaction can give: an id below it was given before.
    pub fn first_id(&self) -> u64 {
        self.first
    }

    /// Indexes one episode under the next id and returns it. `taken`: the episode may already
    /// be indexed by a leader that died before answering its poster (board.rs), and this is
    /// the lowest id that leader could have given. An episode with the same record (chunk
    /// places aside: compaction may have moved them) indexed at or above it is the same
    /// episode: its id is returned and nothing is inserted again. Looked up inside this
    /// write transaction, which starts from the latest commit.
    pub fn add(&mut self, pending: &PendingEpisode, taken: Option<u64>) -> Result<u64> {
        if let Some(from) = taken
            && let Some(id) = find_committed(&self.tables.episodes, from, &pending.record)?
        {
            return Ok(id);
        }
        let id = self.next;
        self.tables.insert(id, pending)?;
        self.next += 1;
        Ok(id)
    }
}

impl<'t> EpisodeTables<'t> {
    fn open(txn: &'t WriteTransaction, meta: &Table<'_, &'static str, u64>) -> Result<Self> {
        Ok(EpisodeTables {
            episodes: txn.open_table(EPISODES)?,
            steps: txn.open_table(STEPS)?,
            users: txn.open_table(USERS)?,
            user_episodes: txn.open_table(USER_EPISODES)?,
            env_episodes: txn.open_table(ENV_EPISODES)?,
            catalog: catalog::CatalogWriter::open(txn, meta)?,
            episode_stats: None,
            schema_metadata: None,
            txn,
        })
    }

    /// The episode row, its step infos, its secondary index rows, its field statistics and its
    /// user's statistics.
    fn insert(&mut self, id: u64, pending: &PendingEpisode) -> Result<()> {
        let infos = &pending.infos;
        let r = if pending.schema_metadata.is_empty() {
            std::borrow::Cow::Borrowed(&pending.record)
        } else {
            if self.schema_metadata.is_none() {
                self.schema_metadata = Some(self.txn.open_table(schema_meta::SCHEMA_METADATA)?);
            }
            let table = self.schema_metadata.as_mut().expect("opened above");
            schema_meta::put(table, &pending.record, &pending.schema_metadata)?
        };
        let r = r.as_ref();
        self.episodes.insert(id, r.encode().as_slice())?;
        self.catalog.put(id, r)?;
        if let Some(stats) = &pending.stats {
            if self.episode_stats.is_none() {
                self.episode_stats = Some(self.txn.open_table(EPISODE_STATS)?);
            }
            let table = self.episode_stats.as_mut().expect("opened above");
            table.insert(id, stats.encode().as_slice())?;
        }
        for (step, info) in infos {
            self.steps.insert(
                (id, *step),
                StepRecordV1 { info: info.clone() }.encode().as_slice(),
            )?;
        }
        self.user_episodes.insert((r.user.as_str(), id), ())?;
        self.env_episodes.insert((r.env.as_str(), id), ())?;
        let mut user = match self.users.get(r.user.as_str())? {
            Some(v) => UserRecordV1::decode(v.value())?,
            None => UserRecordV1 {
                first_committed_us: r.committed_at_us,
                ..Default::default()
            },
        };
        user.episodes += 1;
        user.steps += u64::from(r.steps);
        user.raw_bytes += r.raw_bytes;
        user.stored_bytes += r.stored_bytes;
        user.last_committed_us = r.committed_at_us;
        self.users
            .insert(r.user.as_str(), user.encode().as_slice())?;
        Ok(())
    }
}

/// Refuses an index whose format is newer than `supported` (the format this build knows;
/// a parameter so that tests can play a build that knows only format 1).
pub(crate) fn check_format_supported(
    txn: &ReadTransaction,
    path: &Path,
    supported: u32,
    read_only: bool,
) -> Result<()> {
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) if !read_only => return Ok(()),
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(ReadError::CorruptRecord {
                table: "meta",
                reason: "missing".into(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let found = meta.get(META_FORMAT_VERSION)?.map(|v| v.value());
    match found {
        Some(v) if v > u64::from(supported) => Err(OpenError::UnsupportedFormat {
            path: path.to_owned(),
            found: u32::try_from(v).unwrap_or(u32::MAX),
            supported,
        }
        .into()),
        Some(0) => Err(ReadError::CorruptRecord {
            table: "meta",
            reason: "format version 0".into(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// A zero-length index file is what a crash or a full disk can leave of a truncated index;
/// redb would silently initialise it as an empty database, hiding every episode.
fn check_not_empty(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => Err(damaged(path, "the file is empty (0 bytes)".into())),
        _ => Ok(()),
    }
}

fn damaged(path: &Path, reason: String) -> Error {
    let store = path.parent().unwrap_or(Path::new(".")).to_owned();
    OpenError::IndexDamaged {
        path: store,
        reason,
    }
    .into()
}

/// Maps errors that mean the index file is corrupt (redb's own corruption errors, a file cut
/// short, our records not decoding) to [`OpenError::IndexDamaged`], which names `trajstore
/// repair`; every other error is returned as it is.
fn damaged_or(path: &Path, e: Error) -> Error {
    if is_corruption(&e) {
        let reason = e.to_string();
        damaged(path, reason)
    } else {
        e
    }
}

fn is_corruption(e: &Error) -> bool {
    // redb flattens its database, storage and table errors into redb::Error (our From impls).
    match e {
        Error::Read(ReadError::CorruptRecord { .. }) => true,
        _ => match e.index_engine() {
            Some(redb::Error::Corrupted(_) | redb::Error::TableTypeMismatch { .. }) => true,
            // Cut short, or not a redb file at all (redb reports a bad magic number as
            // InvalidData).
            Some(redb::Error::Io(io)) => matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ),
            _ => false,
        },
    }
}

impl Drop for Index {
    /// Closing a redb database writes its shutdown state, and redb may panic on a damaged
    /// file there too: close under the guard, so dropping a handle never panics.
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            let _ = guarded(&self.path, || {
                drop(db);
                Ok(())
            });
        }
    }
}

/// Builds an empty, initialised index under a temporary name and links it to `path` unless
/// another process got there first.
fn create_atomically(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("index");
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.creating-"))
        // As a plain create would (the umask applies), not tempfile's private 0600.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?
        .into_temp_path();
    {
        let db = builder().create(&tmp)?;
        let index = Index {
            db: ProcessBound::new(Db::Write(db)),
            path: tmp.to_path_buf(),
        };
        index.initialise()?;
    } // closed cleanly: a consistent file, flushed by redb's close
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    tmp.close().map_err(|e| Error::io(dir, e))?;
    crate::segment::sync_dir(dir)
}

/// Lets redb recover an index a killed writer left marked: open it for writing, then close.
fn recover(path: &Path, io: &dyn StoreIo) -> Result<()> {
    let opened = match io.index_file(path).map_err(|e| Error::io(path, e))? {
        Some(file) => builder().create_with_backend(IndexBackend(file)),
        None => builder().open(path),
    };
    match opened {
        Ok(db) => {
            drop(db);
            Ok(())
        }
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(OpenError::NeedsRecovery {
                path: path.to_owned(),
                reason: format!("this process may not write it ({e})"),
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

fn find_schema(
    schemas: &impl ReadableTable<u64, &'static [u8]>,
    fields: &[crate::schema::FieldSpec],
) -> Result<Option<u64>> {
    for entry in schemas.iter()? {
        let (id, bytes) = entry?;
        if SchemaRecordV1::decode(bytes.value())?.fields == fields {
            return Ok(Some(id.value()));
        }
    }
    Ok(None)
}

/// Read access to one index snapshot, in the process that began it (a redb read transaction
/// holds a byte-range lock on a file description a forked child would share).
pub struct IndexSnapshot {
    txn: ProcessBound<ReadTransaction>,
}

impl IndexSnapshot {
    pub fn new(txn: ReadTransaction) -> Self {
        IndexSnapshot {
            txn: ProcessBound::new(txn),
        }
    }

    fn txn(&self) -> Result<&ReadTransaction> {
        self.txn.get().ok_or_else(|| {
            Error::Open(OpenError::ForkedHandle {
                what: "an index snapshot",
                opened_in: self.txn.owner(),
                used_in: crate::process::current(),
            })
        })
    }

    pub fn format_version(&self) -> Result<u32> {
        let meta = self.txn()?.open_table(META)?;
        Ok(meta
            .get(META_FORMAT_VERSION)?
            .map_or(0, |v| v.value() as u32))
    }

    /// Where the last committed entry of `curation.log` ends (`None`: no curation recorded).
    pub fn curation_log_end(&self) -> Result<Option<u64>> {
        let meta = self.txn()?.open_table(META)?;
        Ok(meta.get(META_CURATION_LOG_END)?.map(|v| v.value()))
    }

    /// The id the next committed episode will get; every committed id is below it.
    pub fn next_episode_id(&self) -> Result<u64> {
        let meta = self.txn()?.open_table(META)?;
        Ok(meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value()))
    }

    pub fn episode(&self, id: u64) -> Result<Option<EpisodeRecordV1>> {
        let table = self.txn()?.open_table(EPISODES)?;
        table
            .get(id)?
            .map(|v| EpisodeRecordV1::decode(v.value()))
            .transpose()
    }

    /// Every episode with id below `cutoff` (all when `None`), in id (= commit) order.
    pub fn episodes(&self, cutoff: Option<u64>) -> Result<Vec<(u64, EpisodeRecordV1)>> {
        let table = self.txn()?.open_table(EPISODES)?;
        let mut out = Vec::new();
        for entry in table.range(..cutoff.unwrap_or(u64::MAX))? {
            let (id, bytes) = entry?;
            out.push((id.value(), EpisodeRecordV1::decode(bytes.value())?));
        }
        Ok(out)
    }

    /// The stored bytes of the `episodes` rows with ids in `from..below`, in id order, each
    /// handed to `visit` until it says to stop (`Ok(false)`): for a reader that decodes only
    /// part of each record a batch at a time (`Snapshot::verify`). Returns the id to continue
    /// from, `None` when no row is left in the range.
    pub fn episode_rows(
        &self,
        from: u64,
        below: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool>,
    ) -> Result<Option<u64>> {
        let table = self.txn()?.open_table(EPISODES)?;
        let mut more = true;
        for entry in table.range(from..below)? {
            let (id, bytes) = entry?;
            if !more {
                return Ok(Some(id.value()));
            }
            more = visit(id.value(), bytes.value())?;
        }
        Ok(None)
    }

    /// The catalog rows `want` asks for among the episodes with id below `cutoff` (all when
    /// `None`), in id order; `None` when the store has no complete catalog (format 1 opened
    /// read-only), so the caller decodes full records instead.
    pub(crate) fn catalog<'a>(
        &self,
        cutoff: Option<u64>,
        want: catalog::Want<'a>,
    ) -> Result<Option<catalog::Want<'a>>> {
        catalog::read(self.txn()?, cutoff, want)
    }

    /// The metadata map of each episode of `ids` (increasing), in order: from its `episodes`
    /// row, or its tombstone's record when deleted, empty when neither (decoding no chunk
    /// list). One range scan when `ids` are a fair share of their span, point lookups
    /// otherwise.
    pub fn metadata(&self, ids: &[u64]) -> Result<MetadataMaps> {
        let mut maps = MetadataMaps::with_capacity(ids.len());
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return Ok(maps);
        };
        let table = self.txn()?.open_table(EPISODES)?;
        let absent = |maps: &mut MetadataMaps, id: u64| -> Result<()> {
            match self.tombstone(id)? {
                Some(t) => maps.push_info(&t.record.metadata),
                None => maps.push_info(&Info::new()),
            }
            Ok(())
        };
        if (ids.len() as u64).saturating_mul(4) < last - first + 1 {
            for &id in ids {
                match table.get(id)? {
                    Some(bytes) => maps.push_record(id, bytes.value())?,
                    None => absent(&mut maps, id)?,
                }
            }
            return Ok(maps);
        }
        let mut rows = table.range(first..=last)?;
        let mut row = rows.next().transpose()?;
        for &id in ids {
            while let Some((at, _)) = &row
                && at.value() < id
            {
                row = rows.next().transpose()?;
            }
            match &row {
                Some((at, bytes)) if at.value() == id => maps.push_record(id, bytes.value())?,
                _ => absent(&mut maps, id)?,
            }
        }
        Ok(maps)
    }

    /// Episode ids of one user (or env), in commit order.
    pub fn ids_by(&self, by: By, key: &str) -> Result<Vec<u64>> {
        let def = match by {
            By::User => USER_EPISODES,
            By::Env => ENV_EPISODES,
        };
        let table = self.txn()?.open_table(def)?;
        let mut ids = Vec::new();
        for entry in table.range((key, 0)..=(key, u64::MAX))? {
            ids.push(entry?.0.value().1);
        }
        Ok(ids)
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecordV1)>> {
        let table = self.txn()?.open_table(USERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (name, bytes) = entry?;
            out.push((
                name.value().to_owned(),
                UserRecordV1::decode(bytes.value())?,
            ));
        }
        Ok(out)
    }

    pub fn schemas(&self) -> Result<Vec<(u64, Schema)>> {
        let table = self.txn()?.open_table(SCHEMAS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            out.push((
                id.value(),
                Schema::from_fields(SchemaRecordV1::decode(bytes.value())?.fields)?,
            ));
        }
        Ok(out)
    }

    /// The key/values stored for schema `id` (`schema_metadata`; empty without a row or
    /// without the table).
    pub fn schema_metadata(&self, id: u64) -> Result<Info> {
        match self.txn()?.open_table(schema_meta::SCHEMA_METADATA) {
            Ok(table) => schema_meta::get(&table, id),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Info::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn schema(&self, id: u64) -> Result<Option<Schema>> {
        let table = self.txn()?.open_table(SCHEMAS)?;
        match table.get(id)? {
            Some(v) => Ok(Some(Schema::from_fields(
                SchemaRecordV1::decode(v.value())?.fields,
            )?)),
            None => Ok(None),
        }
    }

    /// Calls `each` with the stored statistics of every episode in `ids` (increasing) that
    /// has them, in id order, decoding one row at a time: one range scan over the span of
    /// `ids` when they are a fair share of it, a point lookup per id otherwise. A store
    /// without the table (format 1, or no episode recorded with statistics
    /// yet) has none.
    pub fn episode_stats(
        &self,
        ids: &[u64],
        mut each: impl FnMut(u64, EpisodeStatsV1) -> Result<()>,
    ) -> Result<()> {
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return Ok(());
        };
        let table = match self.txn()?.open_table(EPISODE_STATS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // A sparse selection (one user's episodes among many) is cheaper by point lookups
        // than by scanning every row of its span.
        if (ids.len() as u64).saturating_mul(4) < last - first + 1 {
            for &id in ids {
                if let Some(bytes) = table.get(id)? {
                    each(id, EpisodeStatsV1::decode(bytes.value())?)?;
                }
            }
            return Ok(());
        }
        let mut wanted = ids.iter().peekable();
        for entry in table.range(first..=last)? {
            let (id, bytes) = entry?;
            let id = id.value();
            while wanted.next_if(|w| **w < id).is_some() {}
            if wanted.next_if_eq(&&id).is_some() {
                each(id, EpisodeStatsV1::decode(bytes.value())?)?;
            }
        }
        Ok(())
    }

    /// The non-empty `info` maps of an episode, by observation step.
    pub fn infos(&self, episode: u64) -> Result<Vec<(u32, Info)>> {
        let table = self.txn()?.open_table(STEPS)?;
        let mut out = Vec::new();
        for entry in table.range((episode, 0)..=(episode, u32::MAX))? {
            let (key, bytes) = entry?;
            out.push((key.value().1, StepRecordV1::decode(bytes.value())?.info));
        }
        Ok(out)
    }
}

impl IndexSnapshot {
    /// A table added by a later format than the store's (format 2 tables in a format-1
    /// store): `None` when absent, which every reader treats as empty.
    fn optional<K: Key + 'static, V: RedbValue + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>> {
        match self.txn()?.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The tombstone of a deleted episode (store format 2).
    pub fn tombstone(&self, id: u64) -> Result<Option<DeletedRecordV1>> {
        let Some(table) = self.optional(DELETED)? else {
            return Ok(None);
        };
        table
            .get(id)?
            .map(|v| DeletedRecordV1::decode(v.value()))
            .transpose()
    }

    /// Every tombstone, in episode id order.
    pub fn tombstones(&self) -> Result<Vec<(u64, DeletedRecordV1)>> {
        let Some(table) = self.optional(DELETED)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value(), DeletedRecordV1::decode(bytes.value())?));
        }
        Ok(out)
    }

    /// An episode's curation history, oldest first.
    pub fn history(&self, id: u64) -> Result<Vec<HistoryRecordV1>> {
        let Some(table) = self.optional(HISTORY)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.range((id, 0)..=(id, u32::MAX))? {
            out.push(HistoryRecordV1::decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// The split specification, when one was set.
    pub fn split_spec(&self) -> Result<Option<SplitSpecV1>> {
        let Some(table) = self.optional(SPLITS)? else {
            return Ok(None);
        };
        table
            .get(SPLIT_CURRENT)?
            .map(|v| SplitSpecV1::decode(v.value()))
            .transpose()
    }
}

/// Which secondary index to scan.
#[derive(Clone, Copy, Debug)]
pub enum By {
    User,
    Env,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_that_knows_only_format_1_refuses_a_format_2_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INDEX_FILE);
        let index = Index::open_write(&path, &crate::io::OsIo).unwrap();
        let txn = index.begin_read().unwrap();
        // This build: format 2 accepted, and a new store is created at format 2.
        check_format_supported(&txn, &path, STORE_FORMAT_VERSION, false).unwrap();
        assert_eq!(
            IndexSnapshot::new(index.begin_read().unwrap())
                .format_version()
                .unwrap(),
            2
        );
        // The check a format-1 build runs on it (the same code, told it knows format 1).
        match check_format_supported(&txn, &path, 1, true) {
            Err(Error::Open(OpenError::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            })) => {}
            other => panic!("a format-1 build accepted a format-2 store: {other:?}"),
        }
    }
}
