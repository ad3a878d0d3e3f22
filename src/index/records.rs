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
record!(StepRecordV1, StepEnvelope, "steps");
record!(SchemaRecordV1, SchemaEnvelope, "schemas");
record!(EpisodeStatsV1, EpisodeStatsEnvelope, "episode_stats");

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
