//! Copying live episodes into new segments: each chunk checked (header against the index,
//! payload checksum, lz4 framing) and written as it is, then a fresh manifest and a commit
//! marker under the episode's own id, so `repair` rebuilds the store after compaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::survey::damaged;
use crate::error::Result;
use crate::index::records::EpisodeRecordV1;
use crate::io::FileView;
use crate::schema::FieldSpec;
use crate::segment::checked::check_chunk;
use crate::segment::format::{
    ChunkRef, HEADER_BYTES, MANIFEST_MAGIC, MARKER_MAGIC, check_record_header,
};
use crate::segment::manifest::{ManifestV1, MarkerV1};
use crate::segment::{Appender, SegmentPool};
use crate::value::Info;

/// The new segments compaction writes, rotated at the target size between episodes.
pub struct Output {
    pool: SegmentPool,
    target_bytes: u64,
    current: Option<Appender>,
    /// Filled segments, synced, kept (locked) until the index switch.
    done: Vec<Appender>,
    /// Bytes of records written.
    pub written: u64,
}

impl Output {
    pub fn new(pool: SegmentPool, target_bytes: u64) -> Output {
        Output {
            pool,
            target_bytes,
            current: None,
            done: Vec::new(),
            written: 0,
        }
    }

    /// Ids of the segments written.
    pub fn segments(&self) -> Vec<u64> {
        self.done
            .iter()
            .chain(&self.current)
            .map(Appender::id)
            .collect()
    }

    fn appender(&mut self) -> Result<&mut Appender> {
        if self
            .current
            .as_ref()
            .is_some_and(|a| a.end() >= self.target_bytes)
        {
            let mut full = self.current.take().expect("checked");
            full.sync()?;
            self.done.push(full);
        }
        if self.current.is_none() {
            self.current = Some(self.pool.create()?);
        }
        Ok(self.current.as_mut().expect("created above"))
    }

    /// Copies the chunks of one episode that lie in `moving` segments (mapped in `maps`),
    /// then writes its manifest (with its schema's key/values, `schema_metadata`) and
    /// marker; returns its new chunk lists.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_episode(
        &mut self,
        id: u64,
        record: &EpisodeRecordV1,
        fields: &[FieldSpec],
        schema_metadata: &Info,
        infos: &[(u32, Info)],
        moving: &HashSet<u64>,
        maps: &HashMap<u64, Arc<dyn FileView>>,
    ) -> Result<Vec<Vec<ChunkRef>>> {
        let appender = self.appender()?;
        let start = appender.end();
        let mut new_fields = Vec::with_capacity(record.fields.len());
        for (spec, chunks) in fields.iter().zip(&record.fields) {
            let mut new_chunks = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                if !moving.contains(&chunk.segment) {
                    new_chunks.push(*chunk);
                    continue;
                }
                let map = &maps[&chunk.segment];
                let at = usize::try_from(chunk.offset).unwrap_or(usize::MAX);
                let end = at
                    .checked_add(HEADER_BYTES)
                    .and_then(|h| h.checked_add(usize::try_from(chunk.payload_len).ok()?));
                let Some(bytes) = end.and_then(|end| map.get(at..end)) else {
                    return Err(damaged(
                        id,
                        &spec.name,
                        chunk,
                        "record past the end of the file",
                    ));
                };
                let (header, payload) = bytes.split_at(HEADER_BYTES);
                check_record_header(header, chunk, spec.step_bytes())
                    .map_err(|e| damaged(id, &spec.name, chunk, &e.to_string()))?;
                check_chunk(chunk, payload, spec.step_bytes())
                    .map_err(|reason| damaged(id, &spec.name, chunk, &reason))?;
                let offset = appender.append_record(header, payload)?;
                new_chunks.push(ChunkRef {
                    segment: appender.id(),
                    offset,
                    ..*chunk
                });
            }
            new_fields.push(new_chunks);
        }
        let moved = EpisodeRecordV1 {
            fields: new_fields,
            ..record.clone()
        };
        let manifest = ManifestV1::of(&moved, fields, infos, schema_metadata);
        let manifest_offset = appender.append_meta(MANIFEST_MAGIC, &manifest.encode())?;
        let marker = MarkerV1 {
            episode: id,
            manifest_offset,
        };
        appender.append_meta(MARKER_MAGIC, &marker.encode())?;
        self.written += appender.end() - start;
        Ok(moved.fields)
    }

    /// Makes everything written durable; the segments stay locked until `finish`.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(a) = self.current.as_mut() {
            a.sync()?;
        }
        Ok(())
    }

    /// Releases the new segments (recorders may adopt them from now on).
    pub fn finish(self) -> Vec<u64> {
        self.segments()
    }

    /// A header-only segment above every id, so a removed highest id is never reused
    /// (invariant 3: a process's cached map or verified chunk of that id must stay right).
    pub fn placeholder(&mut self) -> Result<u64> {
        let a = self.pool.create()?;
        let id = a.id();
        self.done.push(a);
        Ok(id)
    }
}
