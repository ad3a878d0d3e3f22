//! The library's errors: one family per operation, under one [`Error`].
//!
//! | family            | raised by                                    | examples                         |
//! |-------------------|----------------------------------------------|----------------------------------|
//! | [`OpenError`]     | opening a store; using a handle as it cannot | missing store, newer format, read-only handle, handle used after `fork()` |
//! | [`RecordError`]   | recording: schema, metadata, values, calls   | wrong dtype or shape, unknown field, step after the end |
//! | [`ReadError`]     | queries, field reads, loaders, replay        | unknown episode, bad request, end of data, damaged bytes |
//! | [`StorageError`]  | the machine under any operation              | I/O failure (disk full), index failure, a caught panic |
//!
//! Every family is `#[non_exhaustive]` and names what was wrong (path, field, episode); none
//! exposes a dependency's types (redb stays private: [`IndexFailure`] is opaque). Errors are
//! `Clone`, so an error shared by the episodes of a failed group commit reaches each recorder
//! as itself: `matches!(e, Error::Storage(StorageError::Io { .. }))` holds after a commit as
//! anywhere else. [`ErrorKind`] sorts them for callers that map families onto their own types
//! (the CLI's exit codes, the Python exceptions).

use std::path::PathBuf;
use std::sync::Arc;

use crate::dtype::DType;
use crate::ids::{EpisodeId, SegmentId};
use crate::partition::PartitionError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything trajstore can fail with, by family.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The store cannot be opened, or a handle cannot do what was asked of it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store path exists but is not a directory.
    #[error("{path}: is a file, not a store directory")]
    NotADirectory { path: PathBuf },
    /// The directory holds no trajstore store.
    #[error(
        "{path}: not a trajstore store (no index.redb); create one with `trajstore init {path}`"
    )]
    NotAStore { path: PathBuf },
    /// The store (or one of its segments) was written by a newer trajstore.
    #[error(
        "{path}: format version {found} is newer than this trajstore supports ({supported}); upgrade trajstore to read it"
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The index was left marked by a writer that was killed, and this process could not
    /// recover it (a read-only open recovers it when it may write the file).
    #[error(
        "{path}: a writer was killed while it had the store open and the index must be recovered, but {reason}; run any writer command with write access on the store (e.g. `trajstore init DIR`) to recover it"
    )]
    NeedsRecovery { path: PathBuf, reason: String },
    /// The index is missing, truncated or corrupt while the segments hold data: rebuild it
    /// with `trajstore repair` (which keeps the damaged file aside and never touches segments).
    #[error(
        "{path}: the index (index.redb) is damaged: {reason}; rebuild it from the segments with `trajstore repair {path}`"
    )]
    IndexDamaged { path: PathBuf, reason: String },
    /// A write was attempted through a read-only handle.
    #[error("the store was opened read-only; open it with Store::open to record")]
    ReadOnly,
    /// An object was used in another process than the one that made it (a child after
    /// `fork()`) where that cannot work: an episode being recorded belongs to the process that
    /// began it. Store handles, snapshots and loaders do work after a fork (they reopen what
    /// they need); see schema/concurrency.md.
    #[error(
        "{what} was made in process {opened_in} and used in process {used_in} after a fork; it belongs to the process that made it: begin a new episode (or open the store) in this process"
    )]
    ForkedHandle {
        what: &'static str,
        opened_in: u32,
        used_in: u32,
    },
}

/// A recording call was refused; nothing of it was written, and the episode is unchanged.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A step schema that cannot be used.
    #[error("invalid schema: {reason}")]
    InvalidSchema { reason: String },
    /// A user name that cannot be used.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUser { name: String, reason: &'static str },
    /// Episode metadata (env id, tag, key/values) or an `info` that cannot be stored.
    #[error("invalid {what}: {reason}")]
    InvalidMetadata { what: &'static str, reason: String },
    /// A value was given for a field the schema does not declare.
    #[error("unknown field {field:?} (schema fields: {known})")]
    UnknownField { field: String, known: String },
    /// A field the schema requires was not given.
    #[error("missing field {field:?} in {during}")]
    MissingField { field: String, during: &'static str },
    /// The same field was given twice in one call.
    #[error("field {field:?} given twice in one {during}")]
    DuplicateField { field: String, during: &'static str },
    /// A field was given for the wrong call (an observation in place of a transition, ...).
    #[error("field {field:?} is {kind} data and does not belong in {during}")]
    MisplacedField {
        field: String,
        kind: &'static str,
        during: &'static str,
    },
    /// A value of the wrong dtype.
    #[error("field {field:?}: expected dtype {expected}, got {got}")]
    DTypeMismatch {
        field: String,
        expected: DType,
        got: DType,
    },
    /// A value of the wrong shape.
    #[error("field {field:?}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        field: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A value whose bytes are not valid for its dtype.
    #[error("field {field:?}: {reason}")]
    InvalidValue { field: String, reason: String },
    /// A call made in the wrong state of an episode (step before reset, step after the end,
    /// ...); `call` names it.
    #[error("{call}: {reason}")]
    EpisodeState { call: &'static str, reason: String },
    /// `commit` of an episode with no transition.
    #[error("cannot commit an empty episode: record reset() and at least one step() first")]
    EmptyEpisode,
    /// A value too large for the format.
    #[error("{what} is too large: {got} (at most {max})")]
    TooLarge {
        what: &'static str,
        got: u64,
        max: u64,
    },
}

/// A read was refused or failed: what was asked for does not exist, the request cannot be
/// served, or the bytes read are damaged.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No episode with this id in the snapshot.
    #[error("episode {id} not found")]
    EpisodeNotFound { id: EpisodeId },
    /// Episodes named to a curation operation that it cannot apply to (unknown ids, or
    /// already deleted, or not deleted for a restore); nothing was changed.
    #[error("{reason}; nothing was changed")]
    NoSuchEpisodes { ids: Vec<EpisodeId>, reason: String },
    /// A field name the episode's schema does not declare.
    #[error("episode {episode} has no field {field:?} (its fields: {known})")]
    UnknownField {
        episode: EpisodeId,
        field: String,
        known: String,
    },
    /// A step past the end of a field.
    #[error(
        "field {field:?} of episode {episode}: steps {start}..{end} out of range (it has {len})"
    )]
    StepOutOfRange {
        episode: EpisodeId,
        field: String,
        start: usize,
        end: usize,
        len: usize,
    },
    /// A loader, replay or preview request that cannot be served (zero batch size, a window
    /// longer than allowed, a field missing from some selected episodes, ...); `what` names the
    /// part of the request.
    #[error("invalid {what}: {reason}")]
    InvalidRequest { what: &'static str, reason: String },
    /// The partition refused a request (world size 0, rank out of range, a resume cursor taken
    /// on a different episode set, ...).
    #[error("partition: {0}")]
    Partition(#[from] PartitionError),
    /// A replay env has served every episode of its share and does not cycle: the end of the
    /// data is explicit, never a stale replay or a blank observation.
    #[error(
        "end of data: rank {rank} worker {worker} has replayed every episode of epoch {epoch}; build a new env for the next epoch or enable cycling"
    )]
    EndOfData { epoch: u64, rank: u32, worker: u32 },
    /// The bytes on disk are not what the index says (checksum, framing, bounds).
    #[error("corrupt data in segment {segment} at offset {offset}: {reason}")]
    Corrupted {
        segment: SegmentId,
        offset: u64,
        reason: String,
    },
    /// A read of field data failed its check (checked reads, [`StoreOptions::verify_reads`]):
    /// the chunk holding `steps` of `field` of the episode is damaged. Nothing of it was
    /// returned; other chunks and episodes still read.
    ///
    /// [`StoreOptions::verify_reads`]: crate::StoreOptions::verify_reads
    #[error("{0}")]
    CorruptRead(Box<DamagedRead>),
    /// An index record that cannot be decoded.
    #[error("corrupt index record in table {table}: {reason}")]
    CorruptRecord { table: &'static str, reason: String },
}

/// The machine failed under an operation: the file system, the index, or trajstore itself.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O failure (disk full, permissions, ...), with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The index (`path`) failed.
    #[error("{path}: index: {source}")]
    Index {
        path: PathBuf,
        #[source]
        source: IndexFailure,
    },
    /// The library's worker threads could not be started.
    #[error("cannot start trajstore's worker threads: {reason}")]
    Threads { reason: String },
    /// A panic (a bug in trajstore) was caught and turned into an error, so other threads
    /// waiting on the same work are told instead of waiting forever.
    #[error("internal error while {during}: {message} (a bug in trajstore; please report it)")]
    Panicked {
        during: &'static str,
        message: String,
    },
}

/// What the index engine reported. Opaque: the engine (redb, pinned) is not part of the API;
/// its message is in `Display`, and `source()` leads to the engine's own error.
#[derive(Clone, Debug)]
pub struct IndexFailure(Arc<redb::Error>);

impl IndexFailure {
    /// The engine's error, for the index module's own decisions (damaged or not).
    pub(crate) fn engine(&self) -> &redb::Error {
        &self.0
    }
}

impl std::fmt::Display for IndexFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IndexFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What [`ReadError::CorruptRead`] names: where the damaged chunk is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRead {
    pub user: String,
    pub episode: EpisodeId,
    pub field: String,
    /// The steps of the damaged chunk (value indices: `0..=T` for observations).
    pub steps: std::ops::Range<usize>,
    pub segment: SegmentId,
    /// The segment file.
    pub path: PathBuf,
    /// Offset of the chunk's record header in the segment file.
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for DamagedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:?} episode {} field {:?} steps {}..{}: corrupt data in {} (segment {}, record at offset {}): {}; run `trajstore verify` on the store",
            self.user,
            self.episode,
            self.field,
            self.steps.start,
            self.steps.end,
            self.path.display(),
            self.segment,
            self.offset,
            self.reason
        )
    }
}

/// What went wrong, across families, for callers that map errors onto their own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store cannot be opened as asked (missing, a file, newer format, read-only).
    Open,
    /// The caller passed something invalid or called at the wrong time; nothing was written.
    Input,
    /// Something asked for does not exist.
    NotFound,
    /// A loader or replay env has served everything it holds: the end of an epoch, not a
    /// failure; meant for the Python binding's `EndOfData` exception.
    EndOfData,
    /// Stored bytes are damaged.
    Corruption,
    /// The operating system or the index failed.
    Io,
}

impl Error {
    /// What went wrong, across families.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Open(OpenError::ForkedHandle { .. }) => ErrorKind::Input,
            Error::Open(_) => ErrorKind::Open,
            Error::Record(_) => ErrorKind::Input,
            Error::Read(e) => match e {
                ReadError::EpisodeNotFound { .. } | ReadError::NoSuchEpisodes { .. } => {
                    ErrorKind::NotFound
                }
                ReadError::EndOfData { .. } => ErrorKind::EndOfData,
                ReadError::Corrupted { .. }
                | ReadError::CorruptRead(_)
                | ReadError::CorruptRecord { .. } => ErrorKind::Corruption,
                ReadError::UnknownField { .. }
                | ReadError::StepOutOfRange { .. }
                | ReadError::InvalidRequest { .. }
                | ReadError::Partition(_) => ErrorKind::Input,
            },
            Error::Storage(_) => ErrorKind::Io,
        }
    }

    /// The operating system's error under this one, if it is an I/O failure (to tell a full
    /// disk from a permission problem, say).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            Error::Storage(StorageError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
        .into()
    }

    pub(crate) fn corrupted(segment: u64, offset: u64, reason: impl Into<String>) -> Self {
        ReadError::Corrupted {
            segment: SegmentId(segment),
            offset,
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn invalid_request(what: &'static str, reason: impl Into<String>) -> Self {
        ReadError::InvalidRequest {
            what,
            reason: reason.into(),
        }
        .into()
    }

    /// A failure of the index engine on the index file at `path`.
    pub(crate) fn index(path: impl Into<PathBuf>, source: impl Into<redb::Error>) -> Self {
        StorageError::Index {
            path: path.into(),
            source: IndexFailure(Arc::new(source.into())),
        }
        .into()
    }

    /// The engine's error, when this is an index failure.
    pub(crate) fn index_engine(&self) -> Option<&redb::Error> {
        match self {
            Error::Storage(StorageError::Index { source, .. }) => Some(source.engine()),
            _ => None,
        }
    }
}

impl From<PartitionError> for Error {
    fn from(e: PartitionError) -> Self {
        Error::Read(ReadError::Partition(e))
    }
}

// redb's errors convert with `?` inside the index module; the index file's path is filled in
// by `index::guarded`, which every call into redb goes through.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::index(PathBuf::new(), e)
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
