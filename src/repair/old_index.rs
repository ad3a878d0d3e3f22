//! Reading the existing index for `repair`: all of it, or why it cannot be read.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, OpenError, ReadError, RecordError, Result};
use crate::index::records::EpisodeRecordV1;
use crate::index::{Index, IndexSnapshot};
use crate::schema::FieldSpec;
use crate::value::Info;

/// Everything a readable index holds.
pub struct OldIndex {
    pub episodes: Vec<(u64, EpisodeRecordV1)>,
    /// Deleted episodes (tombstones, store format 2): their manifests are not missing from
    /// the index.
    pub deleted: Vec<(u64, EpisodeRecordV1)>,
    /// End of the last committed curation log entry (entries past it never committed).
    pub curation_log_end: Option<u64>,
    pub schemas: HashMap<u64, Vec<FieldSpec>>,
    pub infos: HashMap<u64, Vec<(u32, Info)>>,
    pub next_episode_id: u64,
    /// Disagreements inside the index itself (user statistics against the episodes table).
    pub problems: Vec<String>,
}

/// What the index file is.
pub enum IndexState {
    Missing,
    /// It cannot be opened or a table cannot be read whole; the reason.
    Damaged(String),
    Readable(OldIndex),
}

/// Reads the index at `path` whole. A newer store format is an error (never repaired over);
/// every other failure means the index is damaged.
pub fn read(path: &Path) -> Result<IndexState> {
    if !path.exists() {
        return Ok(IndexState::Missing);
    }
    // redb may panic on a damaged file: that is damage too, not a crash of repair.
    match crate::index::guarded(path, || load(path)) {
        Ok(old) => Ok(IndexState::Readable(old)),
        Err(Error::Open(OpenError::IndexDamaged { reason, .. })) => Ok(IndexState::Damaged(reason)),
        Err(e) if is_damage(&e) => Ok(IndexState::Damaged(e.to_string())),
        // A newer format, no permission, needs a writer's recovery: not ours to rebuild over.
        Err(e) => Err(e),
    }
}

fn is_damage(e: &Error) -> bool {
    match e {
        Error::Read(ReadError::CorruptRecord { .. })
        | Error::Record(RecordError::InvalidSchema { .. }) => true,
        _ => match e.index_engine() {
            Some(redb::Error::Io(io)) => !matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            Some(_) => true,
            None => false,
        },
    }
}

fn load(path: &Path) -> Result<OldIndex> {
    let index = Index::open_read(path, &crate::io::OsIo)?;
    let snap = IndexSnapshot::new(index.begin_read()?);
    let episodes = snap.episodes(None)?;
    let schemas = snap
        .schemas()?
        .into_iter()
        .map(|(id, s)| (id, s.fields().to_vec()))
        .collect();
    let mut infos = HashMap::new();
    for (id, _) in &episodes {
        infos.insert(*id, snap.infos(*id)?);
    }
    let mut counted: HashMap<&str, (u64, u64, u64, u64)> = HashMap::new();
    for (_, r) in &episodes {
        let c = counted.entry(r.user.as_str()).or_default();
        *c = (
            c.0 + 1,
            c.1 + u64::from(r.steps),
            c.2 + r.raw_bytes,
            c.3 + r.stored_bytes,
        );
    }
    let mut problems = Vec::new();
    for (name, u) in snap.users()? {
        let found = counted.remove(name.as_str()).unwrap_or_default();
        if found != (u.episodes, u.steps, u.raw_bytes, u.stored_bytes) {
            problems.push(format!(
                "user {name:?}: statistics disagree with the episodes table"
            ));
        }
    }
    for name in counted.keys() {
        problems.push(format!("user {name:?} has episodes but no statistics row"));
    }
    let next_episode_id = snap.next_episode_id()?;
    let deleted = snap
        .tombstones()?
        .into_iter()
        .map(|(id, t)| (id, t.record))
        .collect();
    Ok(OldIndex {
        episodes,
        deleted,
        curation_log_end: snap.curation_log_end()?,
        schemas,
        infos,
        next_episode_id,
        problems,
    })
}
