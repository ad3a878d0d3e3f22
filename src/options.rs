//! Tuning knobs of a store handle.

use std::sync::Arc;

use crate::io::{OsIo, StoreIo};

/// Tuning knobs of a store handle (not stored: each process may choose its own).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A segment file at or past this size is sealed and a new one started.
    pub segment_target_bytes: u64,
    /// An episode writer keeps up to this many bytes of field data in memory before writing
    /// chunks out; episodes smaller than this have each field in one contiguous chunk.
    pub spill_bytes: usize,
    /// Once a raw field has this many bytes buffered, an episode writer writes them to its
    /// segment and keeps doing so each time that much more is buffered, instead of holding
    /// the field until commit (one field of an episode at a time: the first to get there;
    /// the chunks and the on-disk bytes are the same). Large observations are then copied
    /// once, from a buffer still in cache, while the episode records; `usize::MAX` turns
    /// this off.
    pub stream_bytes: usize,
    /// The file system under the store: the real one ([`OsIo`]) unless a test injects power
    /// cuts or I/O faults (io.rs).
    pub io: Arc<dyn StoreIo>,
    /// Checked reads (default `true`): the first read of each chunk in this process verifies
    /// its xxh3 checksum (and lz4 framing) and a damaged chunk fails the read with
    /// [`ReadError::CorruptRead`](crate::ReadError::CorruptRead); the result is remembered, so later
    /// reads cost nothing measurable. `false` skips the check, for trusted media.
    pub verify_reads: bool,
    /// Field statistics (default `true`): while an episode is recorded, per-element
    /// statistics of its small numeric fields are gathered and committed with it
    /// (`episode_stats`, for [`Snapshot::stats`](crate::Snapshot::stats)). `false` records
    /// episodes without them (`stats` then lists them as missing); for benchmarks, and for
    /// recorders that must spend nothing beyond storing the bytes.
    pub field_stats: bool,
    /// Bytes of index pages (redb's page cache) this handle keeps in memory, default 64 MiB.
    /// A reader that revisits pages (a loader, the viewer) gains from a big one. A reader that
    /// reads each page once (a listing, a partition: the command line) only pays for it: each
    /// 4 KiB it fills is a fresh page the kernel faults in, which was a third of `trajstore
    /// partition` at 100k episodes; there a cache of about a megabyte is best.
    pub index_cache_bytes: usize,
    /// Most commits in flight at once through
    /// [`EpisodeWriter::commit_in_background`](crate::EpisodeWriter::commit_in_background) in
    /// this process (default 8): beyond that, starting one waits for one to finish. More let
    /// the group commit put more episodes in one index transaction; each holds its episode's
    /// buffered field data in memory until its commit returns (little for raw frames, which
    /// stream to the segment as they are recorded: see `stream_bytes`). 8 gave one recorder
    /// of small episodes 1.4-1.7x the episodes per second of 4 (`trajstore bench --mode
    /// record`).
    pub background_commits: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_target_bytes: 1 << 30,
            spill_bytes: 256 << 20,
            // Within a core's L2 cache on current x86 and ARM servers: the write path copies
            // from memory the step copies just touched.
            stream_bytes: 1 << 20,
            io: Arc::new(OsIo),
            verify_reads: true,
            field_stats: true,
            index_cache_bytes: crate::index::CACHE_BYTES,
            background_commits: 8,
        }
    }
}
