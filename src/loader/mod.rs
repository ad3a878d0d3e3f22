//! Feeding training: which episodes each rank and DataLoader worker serves, in
//! what order, how to read them, and how to resume mid-epoch.
//!
//! * [`partition`] (with [`rng`]): the pure, cross-version contract on `(id, steps)`
//!   pairs, re-exported from `crate::partition`; normative in `schema/partition.md`.
//! * [`Loader`]: a store snapshot + a [`Selection`] -> this rank's and
//!   worker's episodes in serving order, zero-copy episode reads, resume from a [`Cursor`].
//! * [`Sampler`] and [`Batch`]: random or sequential batches of steps, windows
//!   and stacked frames, gathered in parallel into reusable buffers; [`Prefetcher`] keeps
//!   the next batches coming on a background thread.
//! * [`ReplayEnv`]: DIAMBRA-style imitation-learning replay with
//!   explicit end of data and two-player P2 views; see `schema/replay.md`.
//!
//! ```no_run
//! use trajstore::loader::{FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
//! use trajstore::{Query, Store};
//!
//! # fn main() -> trajstore::Result<()> {
//! let store = Store::open_read_only("demos")?;
//! let loader = Loader::new(&store, &Selection::new(Query::default(), 4, 0, 42))?;
//! println!("imbalance {:.4}", loader.imbalance());
//! let fields = vec![
//!     FieldRequest::new("obs/frame").offsets(&[-3, -2, -1, 0]),
//!     FieldRequest::new("action"),
//! ];
//! let mut sampler = Sampler::new(&loader, SamplerSpec::steps(fields, 256, Order::Shuffle))?;
//! let mut batch = trajstore::loader::Batch::new();
//! while sampler.next_into(&mut batch)? {
//!     let frames = batch.column("obs/frame").expect("requested"); // [256, 4, 128, 128, 3]
//!     # let _ = frames;
//! }
//! # Ok(())
//! # }
//! ```

mod batch;
mod dataset;
pub(crate) mod players;
mod prefetch;
mod replay;
mod rowcopy;
mod rows;
mod sampler;
mod unit_buckets;

pub use batch::{Batch, Column, Edge, FieldRequest};
pub use dataset::{
    EpisodeData, Loader, Selected, SelectedShards, Selection, Shard, ShardedCursor, select,
    select_shards,
};
pub use players::{AGENTS_KEY, P2_SWAP_KEY};
pub use prefetch::Prefetcher;
pub use replay::{Array, Observation, ReplayEnv, ReplayOptions, Reset, Seat, Transition};
pub use sampler::{Order, PURPOSE_SAMPLER, Sampler, SamplerSpec, Unit};

// The pure partition contract lives below the store (crate::partition); the loader serves it.
pub use crate::partition::{
    self as partition, Assignment, Cursor, EpisodeLen, EpisodeSet, EpochShare, Epochs,
    PartitionError, RankShare, ShardStamp, Share, assign, epochs, remaining, rng, shard_key,
    split_key, worker_share, worker_split,
};
