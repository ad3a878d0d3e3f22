//! Values stored in the index: postcard inside a versioned envelope.
//!
//! postcard has no field names: adding, removing or reordering a field changes the meaning of
//! old bytes. So every stored value is an enum whose variant is the record version; a shipped
//! variant is never edited, a change adds a new variant (and a decoder from the old one).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, ReadError, Result};
use crate::schema::FieldSpec;
use crate::segment::format::ChunkRef;
use crate::stats::EpisodeStatsV1;
use crate::value::Info;

/// How an episode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The last step had `terminated` set (the MDP reached a terminal state).
    Terminated,
    /// The last step had `truncated` set (time limit or other cut-off).
    Truncated,
    /// Committed before the env ended it (neither flag on the last step).
    Interrupted,
}

impl Outcome {
    /// Every outcome, by its variant index in postcard's encoding (declaration order, never
    /// reordered): what the hand decoders map a stored index to.
    pub(crate) const VARIANTS: [Outcome; 3] = [
        Outcome::Terminated,
        Outcome::Truncated,
        Outcome::Interrupted,
    ];

    /// `"terminated"`, `"truncated"` or `"interrupted"`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Terminated => "terminated",
            Outcome::Truncated => "truncated",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Parses a name as printed by [`Outcome::name`].
    pub fn parse(name: &str) -> Option<Outcome> {
        [
            Outcome::Terminated,
            Outcome::Truncated,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.name() == name)
    }
}

impl std::str::FromStr for Outcome {
    type Err = Error;

    /// Like [`Outcome::parse`], with an error that lists the valid names.
    fn from_str(name: &str) -> Result<Outcome> {
        Outcome::parse(name).ok_or_else(|| {
            Error::invalid_request(
                "outcome",
                format!("{name:?}: expected terminated, truncated or interrupted"),
            )
        })
    }
}

/// An episode's metadata and where its data is, version 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecordV1 {
    pub user: String,
    pub env: String,
    pub schema_id: u64,
    /// Microseconds since the Unix epoch.
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub committed_at_us: i64,
    /// Transitions (`T`); there are `T + 1` observations.
    pub steps: u32,
    pub total_return: f64,
    pub outcome: Outcome,
    pub seed: Option<u64>,
    pub tags: Vec<String>,
    pub metadata: Info,
    /// Bytes of field data before compression.
    pub raw_bytes: u64,
    /// Bytes of field data as stored (payloads, without framing).
    pub stored_bytes: u64,
    /// Per schema field (schema order): its chunks, in step order.
    pub fields: Vec<Vec<ChunkRef>>,
}

/// Key/values of a schema (format 2, table `schema_metadata`), version 1: what every episode
/// of the schema shares, such as the spaces its fields were flattened from (`index::schema_meta`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaMetadataV1 {
    pub metadata: Info,
}

/// The catalog row of an episode (format 2, table `catalog`), version 1: what listing,
/// selecting and partitioning read, without the episode's chunk lists and metadata map. Kept
/// by `index::catalog` alongside every `episodes` row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogRecordV1 {
    pub user: String,
    pub env: String,
    pub schema_id: u64,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub committed_at_us: i64,
    pub steps: u32,
    pub total_return: f64,
    pub outcome: Outcome,
    pub seed: Option<u64>,
    pub tags: Vec<String>,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl CatalogRecordV1 {
    /// The catalog row of an episode record.
    pub fn of(r: &EpisodeRecordV1) -> Self {
        CatalogRecordV1 {
            user: r.user.clone(),
            env: r.env.clone(),
            schema_id: r.schema_id,
            started_at_us: r.started_at_us,
            ended_at_us: r.ended_at_us,
            committed_at_us: r.committed_at_us,
            steps: r.steps,
            total_return: r.total_return,
            outcome: r.outcome,
            seed: r.seed,
            tags: r.tags.clone(),
            raw_bytes: r.raw_bytes,
            stored_bytes: r.stored_bytes,
        }
    }
}

/// The catalog rows of one chunk of ids (format 2, table `catalog_chunks`), version 1, as
/// columns: chunk `k` holds every catalog row with an id in `k * 1024 .. (k + 1) * 1024`, in
/// id order, so that listing a store reads one value per 1024 episodes instead of one per
/// episode (`index::catalog`). Every column has one entry per row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogChunkV1 {
    /// Ids as deltas: the first from the chunk's first id, each next from the previous one.
    pub id_deltas: Vec<u64>,
    pub steps: Vec<u32>,
    /// Every user, env and tag the rows name, each once; the columns below index it.
    pub strings: Vec<String>,
    pub users: Vec<u32>,
    pub envs: Vec<u32>,
    pub schema_ids: Vec<u64>,
    pub started_at_us: Vec<i64>,
    pub ended_at_us: Vec<i64>,
    pub committed_at_us: Vec<i64>,
    pub total_returns: Vec<f64>,
    pub outcomes: Vec<Outcome>,
    pub seeds: Vec<Option<u64>>,
    pub tags: Vec<Vec<u32>>,
    pub raw_bytes: Vec<u64>,
    pub stored_bytes: Vec<u64>,
}

/// Per-user statistics, maintained at commit, version 1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRecordV1 {
    pub episodes: u64,
    pub steps: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub first_committed_us: i64,
    pub last_committed_us: i64,
}

/// One step's `info` map, version 1. A step with an empty info has no row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecordV1 {
    pub info: Info,
}

/// A step schema, version 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemaRecordV1 {
    pub fields: Vec<FieldSpec>,
}

/// A tombstone (store format 2, table `deleted`): a deleted episode's record, kept until
/// compaction purges it so that `restore` can put every row back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletedRecordV1 {
    /// The episode's record as it was when deleted.
    pub record: EpisodeRecordV1,
    /// Microseconds since the Unix epoch.
    pub deleted_at_us: i64,
    /// Who deleted it (the OS user, or what the caller named).
    pub deleted_by: String,
    /// The `next_episode_id` the delete transaction left: a query cut off below it
    /// (`before_id` < `hidden_from`) was taken before the delete and still sees the episode.
    pub hidden_from: u64,
}

/// One change to an episode's labels (history table, store format 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LabelChange {
    User {
        from: String,
        to: String,
    },
    Outcome {
        from: Outcome,
        to: Outcome,
    },
    AddTag(String),
    RemoveTag(String),
    /// A metadata key set to `to` (`from`: its value before, if any).
    SetMeta {
        key: String,
        from: Option<crate::value::Value>,
        to: crate::value::Value,
    },
    /// A metadata key removed (`from`: its value before).
    UnsetMeta {
        key: String,
        from: crate::value::Value,
    },
    Deleted,
    Restored,
}

/// One curation operation on one episode, as kept in its history (store format 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecordV1 {
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    pub by: String,
    /// What changed (only what actually changed: adding a tag the episode has is no change).
    pub changes: Vec<LabelChange>,
}

/// What an episode's split label is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitKey {
    /// The episode id: episodes are split independently.
    Episode,
    /// The user name: all of a user's episodes fall in one split.
    User,
}

/// A split specification (store format 2, table `splits`): names with fractions, a seed and
/// what is hashed. The label of an episode is a pure function of this and its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitSpecV1 {
    /// Split names and their fractions, in order; the fractions sum to 1.
    pub fractions: Vec<(String, f64)>,
    pub seed: u64,
    pub by: SplitKey,
    /// Microseconds since the Unix epoch.
    pub set_at_us: i64,
    pub set_by: String,
}

impl SplitSpecV1 {
    /// The split of an episode: a pure function of this spec and the episode's key (its id,
    /// or its user name), so adding episodes never moves old ones (schema/index.md, "Split
    /// labels"). `u = (xxh3_64(key, seed) >> 11) / 2^53` falls into the first split whose
    /// cumulative fraction exceeds it (the last split when rounding leaves it past the end).
    pub fn label(&self, id: u64, user: &str) -> &str {
        let hash = match self.by {
            SplitKey::Episode => xxhash_rust::xxh3::xxh3_64_with_seed(&id.to_le_bytes(), self.seed),
            SplitKey::User => xxhash_rust::xxh3::xxh3_64_with_seed(user.as_bytes(), self.seed),
        };
        let u = (hash >> 11) as f64 / (1u64 << 53) as f64;
        let mut cumulative = 0.0;
        for (name, fraction) in &self.fractions {
            cumulative += fraction;
            if u < cumulative {
                return name;
            }
        }
        self.fractions.last().map_or("", |(name, _)| name.as_str())
    }

    /// The split names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fractions.iter().map(|(n, _)| n.as_str())
    }
}

/// A stored record type and its envelope.
pub trait Record: Sized {
    /// Table name, for error messages.
    const TABLE: &'static str;
    /// The envelope enum this record is stored in.
    type Envelope: Serialize + DeserializeOwned;
    fn wrap(&self) -> Self::Envelope;
    fn unwrap(envelope: Self::Envelope) -> Self;

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.wrap()).expect("postcard encodes to a Vec infallibly")
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        match postcard::from_bytes::<Self::Envelope>(bytes) {
            Ok(envelope) => Ok(Self::unwrap(envelope)),
            Err(e) => Err(ReadError::CorruptRecord {
                table: Self::TABLE,
                reason: format!(
                    "{e} (a record version this build does not know is refused, never guessed)"
                ),
            }
            .into()),
        }
    }
}

macro_rules! record {
    ($record:ident, $envelope:ident, $table:literal) => {
        #[derive(Serialize, Deserialize)]
        pub enum $envelope {
            V1($record),
        }
        impl Record for $record {
            const TABLE: &'static str = $table;
            type Envelope = $envelope;
            fn wrap(&self) -> $envelope {
                $envelope::V1(self.clone())
            }
            fn unwrap(envelope: $envelope) -> Self {
                match envelope {
                    $envelope::V1(r) => r,
                }
            }
        }
    };
}

record!(EpisodeRecordV1, EpisodeEnvelope, "episodes");
record!(UserRecordV1, UserEnvelope, "users");
record!(CatalogRecordV1, CatalogEnvelope, "catalog");
record!(CatalogChunkV1, CatalogChunkEnvelope, "catalog_chunks");
record!(StepRecordV1, StepEnvelope, "steps");
record!(SchemaRecordV1, SchemaEnvelope, "schemas");
record!(DeletedRecordV1, DeletedEnvelope, "deleted");
record!(HistoryRecordV1, HistoryEnvelope, "history");
record!(SplitSpecV1, SplitSpecEnvelope, "splits");
record!(EpisodeStatsV1, EpisodeStatsEnvelope, "episode_stats");
record!(SchemaMetadataV1, SchemaMetadataEnvelope, "schema_metadata");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_record_version_is_refused() {
        let r = UserRecordV1 {
            episodes: 3,
            ..Default::default()
        };
        let mut bytes = r.encode();
        assert_eq!(UserRecordV1::decode(&bytes).unwrap(), r);
        bytes[0] = 1; // variant index 1: a "V2" this build does not know
        assert!(matches!(
            UserRecordV1::decode(&bytes),
            Err(Error::Read(ReadError::CorruptRecord { table: "users", .. }))
        ));
    }
}
