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
    #[serde(with = "as_bytes")]
    pub records: Vec<u8>,
    /// The field list of the episode's schema, for its manifest.
    pub fields: Vec<FieldSpec>,
}

/// Writes carried episodes into a segment of the committing process.
pub trait Placer {
    /// An empty placement, which the round's carried episodes are written into one by one
    /// as the round collects them.
    fn open<'a>(&'a self) -> Box<dyn Placement + 'a>;
}

/// Carried episodes written into one segment, until their index transaction ended.
pub trait Placement {
    /// Writes the episode's records, then its manifest, at the end of the placement's segment
    /// (taken at the first episode), and moves the chunk places of its record there. Not
    /// durable yet: [`Placement::begin_sync`].
    fn place(&mut self, episode: &mut PendingEpisode, carried: &Carried) -> Result<()>;

    /// Once every episode is placed: starts the sync of the placed bytes, which the
    /// transaction must wait for before it becomes live. `None` when nothing was placed or
    /// the bytes are durable already (synced here when syncs do not overlap the index's).
    fn begin_sync(&mut self) -> Result<Option<Arc<SyncSignal>>>;

    /// After the transaction: waits for the sync and marks the episodes (format.md, "Commit
    /// marker record"): `Some(ids)`, one entry per placed episode in order: committed under
    /// that id, or (`None`) this copy was not committed (an aborted marker: the episode was
    /// indexed from another copy); `None`: the transaction failed, every one aborted. Then
    /// hands the segment back. Fails when the sync failed.
    fn finish(self: Box<Self>, ids: Option<&[Option<u64>]>) -> Result<()>;
}

/// A `Vec<u8>` as serde bytes. Postcard writes bytes exactly as a sequence of `u8` (a varint
/// length, then the bytes), but copies them at once instead of visiting them one by one: for
/// a carried episode's few kilobytes that was the leader's largest cost in reading a ticket.
mod as_bytes {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        /// Formats that write bytes as a sequence.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records are written as postcard writes any `Vec<u8>`, and read back equal.
    #[test]
    fn carried_records_are_encoded_as_a_plain_byte_vector() {
        #[derive(Serialize)]
        struct Plain {
            records: Vec<u8>,
            fields: Vec<FieldSpec>,
        }
        let records: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let carried = Carried {
            records: records.clone(),
            fields: Vec::new(),
        };
        let bytes = postcard::to_allocvec(&carried).unwrap();
        let plain = postcard::to_allocvec(&Plain {
            records,
            fields: Vec::new(),
        })
        .unwrap();
        assert_eq!(bytes, plain);
        assert_eq!(postcard::from_bytes::<Carried>(&bytes).unwrap(), carried);
    }
}
