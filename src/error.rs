//! The library's error type.
//!
//! One enum, grouped by what went wrong (see [`ErrorKind`]) so callers (the CLI, the Python
//! bindings) can map families without matching every variant. Messages name the thing that was
//! wrong and, where the fix is known, say what to do.

use std::path::PathBuf;

use crate::dtype::DType;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything trajstore can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- opening a store ----
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

    // ---- bad input from the caller ----
    /// A step schema that cannot be used.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A user name that cannot be used.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUser { name: String, reason: &'static str },
    /// Episode metadata that cannot be stored (env id, tag, key too long, ...).
    #[error("invalid episode metadata: {0}")]
    InvalidMetadata(String),
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
    /// A call made in the wrong state of an episode (step before reset, step after the end, ...).
    #[error("{0}")]
    EpisodeState(String),
    /// `commit` of an episode with no transition.
    #[error("cannot commit an empty episode: record reset() and at least one step() first")]
    EmptyEpisode,
    /// A loader or replay request that cannot be served (zero batch size, window longer than
    /// allowed, a field missing from some selected episodes, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The partition refused a request (world size 0, rank out of range, a resume cursor taken
    /// on a different episode set, ...).
    #[error("partition: {0}")]
    Partition(#[from] crate::partition::PartitionError),
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
    /// A value too large for the format.
    #[error("{what} is too large: {got} (at most {max})")]
    TooLarge {
        what: &'static str,
        got: u64,
        max: u64,
    },

    // ---- reading ----
    /// No episode with this id in the snapshot.
    #[error("episode {0} not found")]
    EpisodeNotFound(u64),
    /// A replay env has served every episode of its share and does not cycle: the end of the
    /// data is explicit, never a stale replay or a blank observation.
    #[error(
        "end of data: rank {rank} worker {worker} has replayed every episode of epoch {epoch}; build a new env for the next epoch or enable cycling"
    )]
    EndOfData { epoch: u64, rank: u32, worker: u32 },
    /// The bytes on disk are not what the index says (checksum, framing, bounds).
    #[error("corrupt data in segment {segment:016x} at offset {offset}: {reason}")]
    Corrupted {
        segment: u64,
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

    // ---- the machine ----
    /// An operating-system I/O failure (disk full, permissions, ...), with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The redb index failed.
    #[error("index: {0}")]
    Index(#[from] redb::Error),
    /// The library's worker threads could not be started.
    #[error("cannot start trajstore's worker threads: {0}")]
    Threads(String),
    /// A panic (a bug in trajstore) was caught and turned into an error, so other threads
    /// waiting on the same work are told instead of waiting forever.
    #[error("internal error while {during}: {message} (a bug in trajstore; please report it)")]
    Panicked {
        during: &'static str,
        message: String,
    },
    /// An error shared by every episode of a failed group commit.
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),
}

/// What [`Error::CorruptRead`] names: where the damaged chunk is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRead {
    pub user: String,
    pub episode: u64,
    pub field: String,
    /// The steps of the damaged chunk (value indices: `0..=T` for observations).
    pub steps: std::ops::Range<usize>,
    pub segment: u64,
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
            "user {:?} episode {} field {:?} steps {}..{}: corrupt data in {} (segment {:016x}, record at offset {}): {}; run `trajstore verify` on the store",
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

/// Families of [`Error`], for callers that map errors onto their own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store cannot be opened as asked (missing, a file, newer format, read-only).
    Open,
    /// The caller passed something invalid; nothing was written.
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
    /// The family this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            NotADirectory { .. }
            | NotAStore { .. }
            | UnsupportedFormat { .. }
            | NeedsRecovery { .. }
            | IndexDamaged { .. }
            | ReadOnly => ErrorKind::Open,
            InvalidSchema(_)
            | InvalidUser { .. }
            | InvalidMetadata(_)
            | UnknownField { .. }
            | MissingField { .. }
            | DuplicateField { .. }
            | MisplacedField { .. }
            | DTypeMismatch { .. }
            | ShapeMismatch { .. }
            | InvalidValue { .. }
            | EpisodeState(_)
            | EmptyEpisode
            | InvalidRequest(_)
            | Partition(_)
            | ForkedHandle { .. }
            | TooLarge { .. } => ErrorKind::Input,
            EpisodeNotFound(_) => ErrorKind::NotFound,
            EndOfData { .. } => ErrorKind::EndOfData,
            Corrupted { .. } | CorruptRead(_) | CorruptRecord { .. } => ErrorKind::Corruption,
            Io { .. } | Index(_) | Threads(_) | Panicked { .. } => ErrorKind::Io,
            Shared(inner) => inner.kind(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupted(segment: u64, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            segment,
            offset,
            reason: reason.into(),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Index(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
