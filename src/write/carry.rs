//! Writing carried episodes (index/carried.rs) into a segment of the committing process.
//!
//! The leader of a round takes one appender of its process's pool for all the carried
//! episodes of the round, writes each episode's records and then its manifest as the round
//! collects it (the same records and manifest its recorder would have written: invariant 6 of
//! format.md holds), and syncs the segment once when the round has collected every episode. After the index transaction it appends their commit markers (or
//! aborted markers) as a recorder does after its own commit, and returns the appender.

use std::sync::Arc;

use crate::error::{Result, StorageError};
use crate::index::PendingEpisode;
use crate::index::carried::{Carried, Placement, Placer};
use crate::index::presync::SyncSignal;
use crate::segment::format::{HEADER_BYTES, MANIFEST_MAGIC, align_up};
use crate::segment::manifest::{ABORTED, ManifestV1, MarkerV1};
use crate::segment::{Appender, SegmentPool};

/// Places carried episodes into segments of `pool`.
pub(crate) struct SegmentPlacer<'a> {
    pool: &'a SegmentPool,
    /// The segment syncs beside the index commit (`StoreIo::overlapped_syncs`); else it is
    /// synced before the transaction commits.
    overlapped: bool,
}

impl<'a> SegmentPlacer<'a> {
    pub fn new(pool: &'a SegmentPool, overlapped: bool) -> SegmentPlacer<'a> {
        SegmentPlacer { pool, overlapped }
    }
}

impl Placer for SegmentPlacer<'_> {
    fn open<'a>(&'a self) -> Box<dyn Placement + 'a> {
        Box::new(Placed {
            pool: self.pool,
            overlapped: self.overlapped,
            appender: None,
            manifests: Vec::new(),
        })
    }
}

/// Refuses carried records whose chunk places do not lie in them (a ticket is checksummed,
/// so only a bug gets here: never index chunks that are not where the record says).
fn check_carried(episode: &PendingEpisode, carried: &Carried) -> Result<()> {
    let len = carried.records.len() as u64;
    let misplaced = !len.is_multiple_of(HEADER_BYTES as u64)
        || episode.record.fields.iter().flatten().any(|chunk| {
            chunk.segment != 0
                || !chunk.offset.is_multiple_of(HEADER_BYTES as u64)
                || chunk
                    .offset
                    .checked_add(HEADER_BYTES as u64 + chunk.payload_len)
                    .is_none_or(|end| align_up(end) > len)
        });
    if misplaced {
        return Err(StorageError::Panicked {
            during: "writing the records an episode carried into a segment",
            message: format!(
                "a chunk of {}'s episode is not inside its {len} carried bytes",
                episode.record.user
            ),
        }
        .into());
    }
    Ok(())
}

/// The appender the carried episodes of one round went into, until their transaction ended.
struct Placed<'a> {
    pool: &'a SegmentPool,
    overlapped: bool,
    /// Taken from the pool at the first episode placed.
    appender: Option<Appender>,
    /// Each placed episode's manifest offset, in order.
    manifests: Vec<u64>,
}

impl Placement for Placed<'_> {
    fn place(&mut self, episode: &mut PendingEpisode, carried: &Carried) -> Result<()> {
        check_carried(episode, carried)?;
        let appender = match &mut self.appender {
            Some(appender) => appender,
            none => none.insert(self.pool.checkout()?),
        };
        let start = appender.append_records(&carried.records)?;
        for chunk in episode.record.fields.iter_mut().flatten() {
            chunk.segment = appender.id();
            chunk.offset += start;
        }
        // Invariant (segment/manifest.rs): the manifest follows the episode's chunks in the
        // same segment and is made durable by the same sync.
        let manifest = ManifestV1::of(
            &episode.record,
            &carried.fields,
            &episode.infos,
            &episode.schema_metadata,
        );
        let offset = appender.append_meta(MANIFEST_MAGIC, &manifest.encode())?;
        self.manifests.push(offset);
        Ok(())
    }

    fn begin_sync(&mut self) -> Result<Option<Arc<SyncSignal>>> {
        let Some(appender) = &mut self.appender else {
            return Ok(None);
        };
        if self.overlapped {
            appender.begin_sync().map(Some)
        } else {
            appender.sync()?;
            Ok(None)
        }
    }

    fn finish(mut self: Box<Self>, ids: Option<&[Option<u64>]>) -> Result<()> {
        let Some(mut appender) = self.appender.take() else {
            return Ok(());
        };
        let synced: Result<()> = appender.end_sync();
        // Committed under their ids; aborted when the transaction failed (the recorders are
        // told so) or for a copy whose episode was indexed from another one.
        let markers = self
            .manifests
            .iter()
            .enumerate()
            .map(|(i, &manifest_offset)| MarkerV1 {
                episode: ids.and_then(|ids| ids[i]).unwrap_or(ABORTED),
                manifest_offset,
            });
        appender.append_markers(markers);
        self.pool.checkin(appender);
        synced
    }
}

impl Drop for Placed<'_> {
    /// A placement dropped unfinished (its transaction was never run, or unwound): its
    /// episodes stay unmarked garbage; the sync is waited for and the segment handed back.
    fn drop(&mut self) {
        if let Some(mut appender) = self.appender.take() {
            let _ = appender.end_sync();
            self.pool.checkin(appender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::{EpisodeRecordV1, Outcome};
    use crate::segment::format::ChunkRef;
    use crate::segment::{ChunkSink, RecordBuf};

    fn carried_episode(records: &[&[u8]]) -> (PendingEpisode, Carried) {
        let mut buf = RecordBuf::default();
        let chunks: Vec<ChunkRef> = records
            .iter()
            .map(|p| {
                buf.append_chunk(crate::Codec::Raw, p.len() as u32, 1, &[p])
                    .unwrap()
            })
            .collect();
        let record = EpisodeRecordV1 {
            user: "u".into(),
            env: "e".into(),
            schema_id: 1,
            started_at_us: 0,
            ended_at_us: 0,
            committed_at_us: 0,
            steps: 1,
            total_return: 0.0,
            outcome: Outcome::Terminated,
            seed: None,
            tags: Vec::new(),
            metadata: Default::default(),
            raw_bytes: 0,
            stored_bytes: 0,
            fields: vec![chunks],
        };
        let episode = PendingEpisode {
            record,
            infos: Vec::new(),
            stats: None,
            schema_metadata: Default::default(),
        };
        let carried = Carried {
            records: buf.into_bytes(),
            fields: Vec::new(),
        };
        (episode, carried)
    }

    #[test]
    fn carried_records_whose_chunks_lie_outside_them_are_refused() {
        let (episode, carried) = carried_episode(&[b"abc", &[7u8; 100]]);
        check_carried(&episode, &carried).unwrap();
        let mut beyond = episode;
        beyond.record.fields[0][1].payload_len = 200;
        let e = check_carried(&beyond, &carried).unwrap_err().to_string();
        assert!(e.contains("not inside its 320 carried bytes"), "{e}");
        let (mut placed, carried) = carried_episode(&[b"abc"]);
        placed.record.fields[0][0].segment = 3;
        assert!(check_carried(&placed, &carried).is_err());
    }
}
