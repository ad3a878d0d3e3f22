//! What is said of an episode when recording begins: user, env, seed, tags, metadata.

use crate::error::{RecordError, Result};
use crate::names::{check_name, validate_user};
use crate::value::{Info, Value};

/// Most tags on an episode.
pub const MAX_TAGS: usize = 64;
/// Largest encoded `info` of one step, or metadata of one episode.
pub const MAX_INFO_BYTES: usize = 64 << 10;

/// Who recorded an episode, in which env, and free metadata. Set at `begin_episode`.
#[derive(Clone, Debug, Default)]
pub struct EpisodeMeta {
    pub user: String,
    pub env: String,
    pub seed: Option<u64>,
    pub tags: Vec<String>,
    pub metadata: Info,
    /// Key/values of the episode's schema rather than of the episode (the Gymnasium spaces
    /// its fields were flattened from): the index keeps them once per schema, and an episode
    /// whose value of a key differs from the stored one keeps it in its own `metadata`
    /// (schema/index.md, "`schema_metadata`"). Read with
    /// [`Snapshot::schema_metadata`](crate::Snapshot::schema_metadata).
    pub schema_metadata: Info,
}

impl EpisodeMeta {
    pub fn new(user: impl Into<String>, env: impl Into<String>) -> Self {
        EpisodeMeta {
            user: user.into(),
            env: env.into(),
            ..Default::default()
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets a key of the schema metadata (see [`EpisodeMeta::schema_metadata`]).
    pub fn schema_meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.schema_metadata.insert(key.into(), value.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_user(&self.user)?;
        check_name("env id", &self.env)?;
        if self.tags.len() > MAX_TAGS {
            return Err(RecordError::InvalidMetadata {
                what: "tags",
                reason: format!("{} tags, at most {MAX_TAGS}", self.tags.len()),
            }
            .into());
        }
        for tag in &self.tags {
            check_name("tag", tag)?;
        }
        check_info_size("episode metadata", &self.metadata)?;
        check_info_size("schema metadata", &self.schema_metadata)
    }
}

pub(crate) fn check_info_size(what: &'static str, info: &Info) -> Result<()> {
    let len = postcard::experimental::serialized_size(info).unwrap_or(usize::MAX);
    if len > MAX_INFO_BYTES {
        return Err(RecordError::InvalidMetadata {
            what,
            reason: format!("encodes to {len} bytes, at most {MAX_INFO_BYTES}"),
        }
        .into());
    }
    Ok(())
}
