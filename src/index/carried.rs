//! Episodes whose records travel with them to the leader that indexes them.
//!
//! Every segment sync is a device flush, and one `fdatasync` makes durable only the file it is
//! given. A round of `k` episodes recorded into `k` segments (one per recorder, thread or
//! process) so cost `k` flushes besides the index's two, and rounds of several recorder
//! processes cost about as much as their episodes one by one. A small episode is therefore not
//! written by its recorder: its chunk records are laid out in memory as a segment holds them
//! ([`Carried`]) and travel with it, in the process's commit queue and in its ticket
//! (board.rs), to the leader of the round that indexes it. The leader writes every carried
//! episode of its round, with a manifest for each, into one segment of its own
//! ([`Placer`], write/carry.rs), so the round costs one segment sync whatever its number of
//! episodes. Nothing else changes: the records, manifests and markers are those the recorder
//! would have written, and the transaction becomes live only after the sync returned
//! (schema/concurrency.md, "Carried episodes").

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::index::PendingEpisode;
use crate::index::presync::SyncSignal;
use crate::schema::FieldSpec;

/// Episodes whose records are at most this size are carried (a small episode's records are
/// gathered in memory anyway: segment/writer.rs, `GATHER_BYTES`). Larger ones are written by
/// their recorder, whose sync is then a small part of the episode's cost.
pub const CARRY_BYTES: u64 = 256 << 10;

/// The records of one carried episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    /// Its chunk records as a segment holds them, from offset 0, each 64-byte aligned
    /// (segment/writer.rs, `RecordBuf`). Until they are placed, the episode record's chunk
    /// places name segment 0 and offsets in here.
    pub records: Vec<u8>,
    /// The field list of the episode's schema, for its manifest.
    pub fields: Vec<FieldSpec>,
}

/// Writes carried episodes into a segment of the committing process.
pub trait Placer {
    /// Writes each episode's records, then its manifest, at the end of one segment, and moves
    /// the chunk places of its record there. Not durable yet: [`Placement::synced`].
    fn place<'a>(
        &'a self,
        episodes: &mut [(&mut PendingEpisode, &Carried)],
    ) -> Result<Box<dyn Placement + 'a>>;
}

/// Carried episodes written into a segment, until their index transaction ended.
pub trait Placement {
    /// The sync of the placed bytes, running: the transaction must wait for it before it
    /// becomes live. `None` when they are durable already.
    fn synced(&self) -> Option<Arc<SyncSignal>>;

    /// After the transaction: waits for the sync and marks the episodes (format.md, "Commit
    /// marker record"): `Some(ids)` committed, one entry per placed episode in order (`None`:
    /// leave it unmarked), `None` aborted. Then hands the segment back. Fails when the sync
    /// failed.
    fn finish(self: Box<Self>, ids: Option<&[Option<u64>]>) -> Result<()>;
}
