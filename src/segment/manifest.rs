//! Payloads of the records that make the index rebuildable (segment format version 2):
//! the episode *manifest* (`MANI`) and the *commit marker* (`DONE`). See schema/format.md.
//!
//! Both payloads are postcard inside a versioned envelope, like index values: a shipped variant
//! is never edited, a change adds a variant, and a reader refuses a variant it does not know.
//!
//! Invariants kept by the writer (write/mod.rs, `commit`):
//! - An episode's manifest follows all of its chunks in the same segment and is made durable by
//!   the same fdatasync, *before* the index transaction that commits the episode. So every
//!   committed v2 episode has a durable manifest, and a manifest names only chunks that were
//!   durable when it was.
//! - The marker is appended after the index transaction returned the episode's id, without a
//!   sync of its own: a durable marker proves the episode was committed with that id; a missing
//!   one proves nothing (lost to power loss, or the commit was in flight at a crash).
//! - When the index transaction fails, an [`ABORTED`] marker is appended and synced (best
//!   effort): the recorder was told the commit failed, so repair must not resurrect it.

use serde::{Deserialize, Serialize};

use super::format::ChunkRef;
use crate::error::{Error, Result};
use crate::index::records::Outcome;
use crate::schema::FieldSpec;
use crate::value::Info;

/// Everything needed to restore one episode in an index that lost it, version 1.
///
/// Stored by postcard field order: never reorder or change these fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestV1 {
    pub user: String,
    pub env: String,
    /// The schema's id in the index at commit: repair reuses it unless another field list
    /// claims the same id.
    pub schema_id: u64,
    /// The full field list of the episode's schema (the `schemas` table may be lost too).
    pub fields: Vec<FieldSpec>,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub committed_at_us: i64,
    pub steps: u32,
    pub total_return: f64,
    pub outcome: Outcome,
    pub seed: Option<u64>,
    pub tags: Vec<String>,
    pub metadata: Info,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// Per field (in `fields` order): its chunks, in step order.
    pub chunks: Vec<Vec<ChunkRef>>,
    /// Non-empty `info` maps by observation step.
    pub infos: Vec<(u32, Info)>,
}

/// Says that the manifest at `manifest_offset` of the same segment was committed to the index
/// as episode `episode`, version 1; or, with `episode` = [`ABORTED`], that its index commit
/// failed and the recorder was told so (repair never restores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerV1 {
    pub episode: u64,
    pub manifest_offset: u64,
}

/// The `episode` of a marker whose manifest's index commit failed (episode ids start at 1).
pub const ABORTED: u64 = 0;

#[derive(Serialize, Deserialize)]
enum ManifestEnvelope {
    V1(ManifestV1),
}

#[derive(Serialize, Deserialize)]
enum MarkerEnvelope {
    V1(MarkerV1),
}

impl ManifestV1 {
    pub fn encode(&self) -> Vec<u8> {
        // A borrowed envelope would save a clone, but a commit clones far larger buffers.
        postcard::to_allocvec(&ManifestEnvelope::V1(self.clone()))
            .expect("postcard encodes to a Vec infallibly")
    }

    /// Decodes a manifest payload; `segment` and `offset` name it in the error.
    pub fn decode(bytes: &[u8], segment: u64, offset: u64) -> Result<ManifestV1> {
        match postcard::from_bytes::<ManifestEnvelope>(bytes) {
            Ok(ManifestEnvelope::V1(m)) => Ok(m),
            Err(e) => Err(Error::corrupted(
                segment,
                offset,
                format!("manifest does not decode: {e} (an unknown version is refused)"),
            )),
        }
    }
}

impl MarkerV1 {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&MarkerEnvelope::V1(*self))
            .expect("postcard encodes to a Vec infallibly")
    }

    /// Decodes a marker payload; `segment` and `offset` name it in the error.
    pub fn decode(bytes: &[u8], segment: u64, offset: u64) -> Result<MarkerV1> {
        match postcard::from_bytes::<MarkerEnvelope>(bytes) {
            Ok(MarkerEnvelope::V1(m)) => Ok(m),
            Err(e) => Err(Error::corrupted(
                segment,
                offset,
                format!("commit marker does not decode: {e} (an unknown version is refused)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::index::records::EpisodeRecordV1;
    use crate::schema::{Codec, FieldKind};
    use crate::value::Value;

    /// An episode record with every field set (and one chunk), its schema's fields, a step
    /// info and the schema's key/values: what a commit hands to [`ManifestV1::of`].
    fn known_episode() -> (EpisodeRecordV1, Vec<FieldSpec>, Vec<(u32, Info)>, Info) {
        let chunk = ChunkRef {
            segment: 3,
            offset: 128,
            payload_len: 96,
            steps: 4,
            codec: Codec::Lz4,
            checksum: 0x0123_4567_89ab_cdef,
        };
        let record = EpisodeRecordV1 {
            user: "ann".into(),
            env: "Fight-v1".into(),
            schema_id: 2,
            started_at_us: 1_700_000_000_000_000,
            ended_at_us: 1_700_000_000_500_000,
            committed_at_us: 1_700_000_000_600_000,
            steps: 4,
            total_return: -1.5,
            outcome: Outcome::Truncated,
            seed: Some(7),
            tags: vec!["expert".into()],
            metadata: Info::from([("difficulty".into(), Value::Int(3))]),
            raw_bytes: 192,
            stored_bytes: 96,
            fields: vec![vec![chunk]],
        };
        let fields = vec![FieldSpec {
            name: "obs/frame".into(),
            dtype: DType::U8,
            shape: vec![4, 4, 3],
            kind: FieldKind::Observation,
            codec: Codec::Lz4,
        }];
        let infos = vec![(2, Info::from([("combo".into(), Value::Ints(vec![2, 2]))]))];
        let schema_metadata = Info::from([
            ("difficulty".into(), Value::Int(9)),
            ("space".into(), Value::Str("Box".into())),
        ]);
        (record, fields, infos, schema_metadata)
    }

    /// The manifest of [`known_episode`] as segment format 2 stores it: these bytes are on
    /// disk in every store, so the encoding (and the mapping from the episode record) must
    /// never change.
    #[rustfmt::skip]
    const KNOWN_MANIFEST: &[u8] = &[
        0, 3, 97, 110, 110, 8, 70, 105, 103, 104, 116, 45, 118, 49, 2, 1, 9, 111, 98, 115, 47, 102, 114, 97, 109, 101, 1, 3, 4, 4, 3, 0, 1, 128, 128, 242, 129, 131, 137, 133, 6, 192, 132, 175, 130, 131, 137, 133, 6, 128, 159, 187, 130, 131, 137, 133, 6, 4, 0, 0, 0, 0, 0, 0, 248, 191, 1, 1, 7, 1, 6, 101, 120, 112, 101, 114, 116, 2, 10, 100, 105, 102, 102, 105, 99, 117, 108, 116, 121, 1, 6, 5, 115, 112, 97, 99, 101, 3, 3, 66, 111, 120, 192, 1, 96, 1, 1, 3, 128, 1, 96, 4, 1, 239, 155, 175, 205, 248, 172, 209, 145, 1, 1, 2, 1, 5, 99, 111, 109, 98, 111, 4, 2, 4, 4,
    ];

    #[test]
    fn a_known_manifest_encodes_to_the_same_bytes() {
        let (record, fields, infos, schema_metadata) = known_episode();
        let manifest = crate::write::manifest_of(&record, &fields, &infos, &schema_metadata);
        let bytes = manifest.encode();
        assert_eq!(bytes, KNOWN_MANIFEST);
    }

    #[test]
    fn marker_round_trips_and_unknown_versions_are_refused() {
        let m = MarkerV1 {
            episode: 7,
            manifest_offset: 640,
        };
        let mut bytes = m.encode();
        assert_eq!(MarkerV1::decode(&bytes, 1, 0).unwrap(), m);
        bytes[0] = 1;
        assert!(MarkerV1::decode(&bytes, 1, 0).is_err());
        assert!(ManifestV1::decode(&[9, 9, 9], 1, 0).is_err());
    }
}
