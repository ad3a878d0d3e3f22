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

mod checked;
mod commit;
mod dtype;
mod error;
mod index;
pub mod io;
pub mod partition;
mod pool;
mod process;
mod repair;
mod schema;
mod segment;
mod snapshot;
mod store;
mod value;
mod verify;
mod writer;

pub mod bench;
pub mod loader;
#[cfg(feature = "preview")]
pub mod preview;
pub mod synth;

pub use commit::CommitStats;
pub use dtype::{DType, Element, PlainElement};
pub use error::{DamagedRead, Error, ErrorKind, Result};
pub use index::STORE_FORMAT_VERSION;
pub use index::records::Outcome;
pub use repair::{RepairAction, RepairReport, UnmarkedEpisode, Unrestorable, repair};
pub use schema::{
    Codec, FieldKind, FieldSpec, REWARD, Schema, SchemaBuilder, TERMINATED, TRUNCATED,
};
pub use segment::MappedBytes;
pub use segment::format::SEGMENT_FORMAT_VERSION;
pub use snapshot::{Episode, Field, Query, Snapshot, UserSummary};
pub use store::{INDEX_FILE, Store, StoreOptions};
pub use value::{ArrayRef, Info, Value};
pub use verify::{Problem, VerifyReport};
pub use writer::{EpisodeMeta, EpisodeWriter, validate_user};
