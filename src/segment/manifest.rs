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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::format::ChunkRef;
use crate::error::{Error, Result};
use crate::index::records::{EpisodeRecordV1, Outcome};
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
    /// The manifest of an episode about to be indexed as `record`, with the key/values of its
    /// schema (`schema_metadata`): the manifest's metadata is the effective one (the schema's
    /// keys overlaid by the episode's own), so a repaired index restores it in full.
    pub fn of(
        record: &EpisodeRecordV1,
        fields: &[FieldSpec],
        infos: &[(u32, Info)],
        schema_metadata: &Info,
    ) -> ManifestV1 {
        ManifestV1 {
            user: record.user.clone(),
            env: record.env.clone(),
            schema_id: record.schema_id,
            fields: fields.to_vec(),
            started_at_us: record.started_at_us,
            ended_at_us: record.ended_at_us,
            committed_at_us: record.committed_at_us,
            steps: record.steps,
            total_return: record.total_return,
            outcome: record.outcome,
            seed: record.seed,
            tags: record.tags.clone(),
            metadata: crate::index::schema_meta::effective(&record.metadata, schema_metadata),
            raw_bytes: record.raw_bytes,
            stored_bytes: record.stored_bytes,
            chunks: record.fields.clone(),
            infos: infos.to_vec(),
        }
    }

    /// The episode record this manifest restores, under schema `schema_id` (the manifest's
    /// own `schema_id` is only a hint: repair assigns ids by field list).
    pub fn record(&self, schema_id: u64) -> EpisodeRecordV1 {
        EpisodeRecordV1 {
            user: self.user.clone(),
            env: self.env.clone(),
            schema_id,
            started_at_us: self.started_at_us,
            ended_at_us: self.ended_at_us,
            committed_at_us: self.committed_at_us,
            steps: self.steps,
            total_return: self.total_return,
            outcome: self.outcome,
            seed: self.seed,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            raw_bytes: self.raw_bytes,
            stored_bytes: self.stored_bytes,
            fields: self.chunks.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A borrowed envelope would save a clone, but a commit clones far larger buffers.
        encode_envelope(&ManifestEnvelope::V1(self.clone()))
    }

    /// Decodes a manifest payload; `segment` and `offset` name it in the error.
    pub fn decode(bytes: &[u8], segment: u64, offset: u64) -> Result<ManifestV1> {
        let ManifestEnvelope::V1(m) = decode_envelope(bytes, segment, offset, "manifest")?;
        Ok(m)
    }
}

impl MarkerV1 {
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(&MarkerEnvelope::V1(*self))
    }

    /// Decodes a marker payload; `segment` and `offset` name it in the error.
    pub fn decode(bytes: &[u8], segment: u64, offset: u64) -> Result<MarkerV1> {
        let MarkerEnvelope::V1(m) = decode_envelope(bytes, segment, offset, "commit marker")?;
        Ok(m)
    }
}

fn encode_envelope(envelope: &impl Serialize) -> Vec<u8> {
    postcard::to_allocvec(envelope).expect("postcard encodes to a Vec infallibly")
}

/// Decodes the envelope of a `what` payload at `offset` of `segment`: a variant this build
/// does not know is refused, never guessed.
fn decode_envelope<E: DeserializeOwned>(
    bytes: &[u8],
    segment: u64,
    offset: u64,
    what: &str,
) -> Result<E> {
    postcard::from_bytes(bytes).map_err(|e| {
        Error::corrupted(
            segment,
            offset,
            format!("{what} does not decode: {e} (an unknown version is refused)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
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
        let manifest = ManifestV1::of(&record, &fields, &infos, &schema_metadata);
        let bytes = manifest.encode();
        assert_eq!(bytes, KNOWN_MANIFEST);
    }

    #[test]
    fn a_manifest_restores_the_record_it_was_made_of_with_its_effective_metadata() {
        let (record, fields, infos, schema_metadata) = known_episode();
        let manifest = ManifestV1::of(&record, &fields, &infos, &schema_metadata);
        assert_eq!(ManifestV1::decode(KNOWN_MANIFEST, 1, 0).unwrap(), manifest);
        let restored = manifest.record(5);
        let want = EpisodeRecordV1 {
            schema_id: 5,
            metadata: Info::from([
                ("difficulty".into(), Value::Int(3)),
                ("space".into(), Value::Str("Box".into())),
            ]),
            ..record
        };
        assert_eq!(restored, want);
    }

    #[test]
    fn marker_round_trips_and_unknown_versions_are_refused() {
        let m = MarkerV1 {
            episode: 7,
            manifest_offset: 640,
        };
        let mut bytes = m.encode();
        // Envelope variant 0, then the varints 7 and 640: on disk after every commit.
        assert_eq!(bytes, [0, 7, 0x80, 5]);
        assert_eq!(MarkerV1::decode(&bytes, 1, 0).unwrap(), m);
        bytes[0] = 1;
        assert!(MarkerV1::decode(&bytes, 1, 0).is_err());
        assert!(ManifestV1::decode(&[9, 9, 9], 1, 0).is_err());
    }
}
