//! Relabelling: what may change of an episode after its commit (user, outcome label, tags,
//! metadata) and how a change applies to one record. Field data, env, times and return never
//! change: they describe what was recorded.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::records::{EpisodeRecordV1, LabelChange, Outcome};
use crate::value::Value;
use crate::write::EpisodeMeta;

/// The label changes of one relabel operation, applied to each selected episode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Relabel {
    pub set_user: Option<String>,
    pub set_outcome: Option<Outcome>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub set_meta: Vec<(String, Value)>,
    pub unset_meta: Vec<String>,
}

impl Relabel {
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.set_user = Some(user.into());
        self
    }
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.set_outcome = Some(outcome);
        self
    }
    pub fn add_tag(mut self, tag: impl Into<String>) -> Self {
        self.add_tags.push(tag.into());
        self
    }
    pub fn remove_tag(mut self, tag: impl Into<String>) -> Self {
        self.remove_tags.push(tag.into());
        self
    }
    pub fn set_meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set_meta.push((key.into(), value.into()));
        self
    }
    pub fn unset_meta(mut self, key: impl Into<String>) -> Self {
        self.unset_meta.push(key.into());
        self
    }

    /// Whether this asks for no change at all.
    pub fn is_empty(&self) -> bool {
        self.set_user.is_none()
            && self.set_outcome.is_none()
            && self.add_tags.is_empty()
            && self.remove_tags.is_empty()
            && self.set_meta.is_empty()
            && self.unset_meta.is_empty()
    }

    /// Refuses what cannot be asked of any episode: no change, a bad user or tag, a tag both
    /// added and removed, a key both set and unset.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::invalid_request(
                "relabel",
                "no change given (set a user or an outcome, add or remove tags, set or unset metadata)",
            ));
        }
        let mut meta = EpisodeMeta::new(self.set_user.as_deref().unwrap_or("user"), "env");
        meta.tags = self
            .add_tags
            .iter()
            .chain(&self.remove_tags)
            .cloned()
            .collect();
        meta.metadata = self.set_meta.iter().cloned().collect();
        meta.validate()?;
        for tag in self.add_tags.iter().chain(&self.remove_tags) {
            crate::names::check_name("tag", tag)?;
        }
        for key in self.set_meta.iter().map(|(k, _)| k).chain(&self.unset_meta) {
            crate::names::check_name("metadata key", key)?;
        }
        if let Some(t) = self.add_tags.iter().find(|t| self.remove_tags.contains(t)) {
            return Err(Error::invalid_request(
                "relabel",
                format!("tag {t:?} is both added and removed"),
            ));
        }
        if let Some(k) = self
            .set_meta
            .iter()
            .map(|(k, _)| k)
            .find(|k| self.unset_meta.contains(k))
        {
            return Err(Error::invalid_request(
                "relabel",
                format!("metadata key {k:?} is both set and unset"),
            ));
        }
        Ok(())
    }

    /// The record relabelled, with what actually changed (empty when nothing did: adding a
    /// tag the episode has, removing one it has not, setting a value it already has).
    pub(crate) fn apply(&self, r: &EpisodeRecordV1) -> Result<(EpisodeRecordV1, Vec<LabelChange>)> {
        let mut new = r.clone();
        let mut changes = Vec::new();
        if let Some(user) = &self.set_user
            && *user != r.user
        {
            changes.push(LabelChange::User {
                from: r.user.clone(),
                to: user.clone(),
            });
            new.user = user.clone();
        }
        if let Some(outcome) = self.set_outcome
            && outcome != r.outcome
        {
            changes.push(LabelChange::Outcome {
                from: r.outcome,
                to: outcome,
            });
            new.outcome = outcome;
        }
        for tag in &self.remove_tags {
            if new.tags.contains(tag) {
                new.tags.retain(|t| t != tag);
                changes.push(LabelChange::RemoveTag(tag.clone()));
            }
        }
        for tag in &self.add_tags {
            if !new.tags.contains(tag) {
                new.tags.push(tag.clone());
                changes.push(LabelChange::AddTag(tag.clone()));
            }
        }
        for key in &self.unset_meta {
            if let Some(from) = new.metadata.remove(key) {
                changes.push(LabelChange::UnsetMeta {
                    key: key.clone(),
                    from,
                });
            }
        }
        for (key, value) in &self.set_meta {
            let from = new.metadata.insert(key.clone(), value.clone());
            if from.as_ref() != Some(value) {
                changes.push(LabelChange::SetMeta {
                    key: key.clone(),
                    from,
                    to: value.clone(),
                });
            }
        }
        if !changes.is_empty() {
            // The same limits as at recording (tag count, metadata size).
            let mut meta = EpisodeMeta::new(new.user.clone(), new.env.clone());
            meta.tags = new.tags.clone();
            meta.metadata = new.metadata.clone();
            meta.validate()?;
        }
        Ok((new, changes))
    }
}
