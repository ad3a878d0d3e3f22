//! trajstore: an embedded, transactional dataset store for reinforcement-learning trajectories.
//!
//! Recorders stream the steps of an episode; [`EpisodeWriter::commit`] makes the episode
//! durable and visible, whole, or not at all (even across `kill -9` and power loss). Episode
//! metadata lives in a redb index and can be queried without touching observation data; field
//! data lives in append-only segment files read through memory maps, so a raw field comes
//! back as a slice of the map, never copied.
//!
//! ```no_run
//! use trajstore::{ArrayRef, Codec, DType, EpisodeMeta, Info, Query, Schema, Store};
//!
//! # fn main() -> trajstore::Result<()> {
//! let store = Store::create("demos")?;
//! let schema = Schema::builder()
//!     .observation("obs/frame", DType::U8, &[64, 64, 3], Codec::Raw)
//!     .transition("action", DType::I64, &[])
//!     .build()?;
//! let mut episode = store.begin_episode(EpisodeMeta::new("alice", "Pong-v5"), &schema)?;
//! let frame = vec![0u8; 64 * 64 * 3];
//! episode.reset(&[("obs/frame", ArrayRef::new(&frame))], &Info::new())?;
//! episode.step(
//!     &[
//!         ("obs/frame", ArrayRef::new(&frame)),
//!         ("action", ArrayRef::scalar(&3i64)),
//!         ("reward", ArrayRef::scalar(&1.0f32)),
//!         ("terminated", ArrayRef::scalar(&true)),
//!         ("truncated", ArrayRef::scalar(&false)),
//!     ],
//!     &Info::new(),
//! )?;
//! let id = episode.commit()?;
//!
//! let snapshot = store.snapshot()?;
//! for e in snapshot.episodes(&Query::default().user("alice"))? {
//!     let frames = snapshot.field(&e, "obs/frame")?;
//!     let bytes = frames.contiguous()?.expect("raw, one chunk"); // a slice of the map
//!     assert_eq!(bytes.len(), 2 * 64 * 64 * 3);
//! }
//! # let _ = id;
//! # Ok(())
//! # }
//! ```

// Layers, bottom up (a module imports only from layers below it):
// 1. error, dtype, value, schema, names, options, partition (pure), stats (pure), process,
//    io, pool, postcard_cursor (bytes of stored values, for the decoders in index and read)
// 2. segment (field data files), index (the redb index, group commit)
// 3. open (what a process has open of a store), repair
//    (curate's log, relabel and apply parts sit here too: repair replays the curation log)
// 4. read (snapshots, fields, checked reads, verify), write (episode writers) and curate
//    (delete, restore, relabel, split)
// 5. store (the public handle), loader, preview, merge, compact
mod compact;
mod curate;
mod dtype;
mod error;
mod ids;
mod index;
pub mod io;
mod merge;
mod names;
mod open;
mod options;
pub mod partition;
mod pool;
mod postcard_cursor;
mod process;
mod read;
mod repair;
mod schema;
mod segment;
mod stats;
mod store;
mod value;
mod workers;
mod write;

pub mod loader;
#[cfg(feature = "preview")]
pub mod preview;

pub use compact::{CompactOptions, CompactReport, Progress, compact};
pub use curate::{CurateOptions, Curated, Relabel, Restore, SavedStats, SplitRequest, Target};
pub use dtype::{DType, Element, PlainElement};
pub use error::{
    DamagedRead, Error, ErrorKind, IndexFailure, OpenError, ReadError, RecordError, Result,
    StorageError,
};
pub use ids::{EpisodeId, SchemaId, SegmentId};
pub use index::commit::CommitStats;
pub use index::records::{
    HistoryRecordV1 as HistoryEntry, LabelChange, Outcome, SplitKey, SplitSpecV1 as SplitSpec,
};
pub use index::{INDEX_FILE, STORE_FORMAT_VERSION};
pub use merge::{
    MERGED_FROM_EPISODE, MERGED_FROM_STORE, MergeReport, MergedSegment, MergedSource, merge,
};
pub use names::validate_user;
pub use options::StoreOptions;
pub use read::{
    Catalog, CatalogRow, Episode, EpisodeSummary, Extent, Field, MetadataMaps, MetadataRef,
    Problem, Query, Snapshot, Tombstone, UserSummary, ValueRef, VerifyReport,
};
pub use repair::{RepairAction, RepairReport, UnmarkedEpisode, Unrestorable, repair};
pub use schema::{
    Codec, FieldKind, FieldSpec, REWARD, Schema, SchemaBuilder, TERMINATED, TRUNCATED,
};
pub use segment::MappedBytes;
pub use segment::format::SEGMENT_FORMAT_VERSION;
pub use stats::{
    ElementStats, ElementSummary, FieldSummary, MAX_STATS_ELEMENTS, MIN_INDEXED, QUANTILES,
    RELATIVE_ACCURACY, Sketch, StoreStats,
};
pub use store::Store;
pub use value::{ArrayRef, Info, Value};
pub use write::{EpisodeMeta, EpisodeWriter, PendingCommit};
