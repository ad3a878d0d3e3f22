//! Feeding training: which episodes each rank and DataLoader worker serves, in
//! what order, and how to resume mid-epoch.
//!
//! Pure and dependency-free within trajstore: the caller hands in `(id, steps)`
//! pairs (already filtered and cut off at a snapshot) and gets ids back. See
//! [`partition`] for the contract and `schema/partition.md` for the normative
//! specification.

pub mod partition;
pub mod rng;

pub use partition::{
    Assignment, Cursor, EpisodeLen, EpisodeSet, EpochShare, Epochs, PartitionError, RankShare,
    assign, epochs, remaining, worker_share, worker_split,
};
