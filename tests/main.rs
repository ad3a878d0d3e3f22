//! The library's tests, one binary (one link instead of one per file): a module per area.
//! Tests that run the `trajstore` binary live with it, in cli/tests (so do the soaks).

mod checked_reads;
mod compact;
mod compat;
mod curation;
mod failures;
mod fork;
mod fork_gather;
mod gather;
mod loader;
mod merge;
mod power_loss;
mod repair;
mod roundtrip;
mod schema_metadata;
mod segment_sync;
mod segments;
mod shards;
mod stats;
mod util;
