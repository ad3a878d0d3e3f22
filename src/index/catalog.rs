//! The episode catalog (format 2): one compact row per episode (table `catalog`, id to
//! [`CatalogRecordV1`]), and the same rows as columns, 1024 ids to a value (table
//! `catalog_chunks`), so that listing, selecting and partitioning decode neither chunk lists
//! nor metadata maps, and read a handful of values rather than one per episode
//! (schema/index.md, "Format 2").
//!
//! Every path that adds, removes or rewrites an `episodes` row keeps the catalog with it, in
//! the same write transaction, through a [`CatalogWriter`]. The row table is complete or
//! absent: the first writable open of a store without it (format 1, or written by a build
//! before the catalog) builds it from the `episodes` table in one transaction
//! ([`build_if_missing`]) and only then marks it complete in `meta`. Readers use it only when
//! marked complete, and otherwise decode full episode records ([`IndexSnapshot::catalog`]).
//!
//! Chunks are derived from the rows. Chunk `k` is *sealed* once every id it covers is below
//! `next_episode_id` (no commit can add to it): `meta` key `catalog_sealed` = `S` says that
//! each chunk `k < S` either holds exactly the rows of its ids or is absent (then its ids are
//! read from the rows). A write to a row of a sealed chunk removes that chunk; the writer's
//! [`CatalogWriter::finish`] rebuilds it and seals new chunks before the transaction commits.
//! So a reader is right whether or not a writer finished: a missing chunk only costs speed.
//!
//! [`IndexSnapshot::catalog`]: super::IndexSnapshot::catalog

use std::collections::BTreeSet;

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::catalog_columns::Catalog;
use super::chunk_decode::{self, ChunkAt};
use super::records::{CatalogRecordV1, EpisodeRecordV1, Record};
use super::{EPISODES, META, META_NEXT_EPISODE};
use crate::error::Result;
use crate::partition::EpisodeLen;

pub(crate) const CATALOG: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog");
/// Chunk number (`id >> CHUNK_BITS`) to [`CatalogChunkV1`](super::records::CatalogChunkV1).
pub(crate) const CATALOG_CHUNKS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("catalog_chunks");
/// `meta` key set (to 1) once the catalog holds a row for every episode.
pub(crate) const META_CATALOG_COMPLETE: &str = "catalog_complete";
/// `meta` key: chunks below it are sealed (present and exact, or absent).
pub(crate) const META_CATALOG_SEALED: &str = "catalog_sealed";
/// Ids per chunk: `2^CHUNK_BITS`. 1024 rows are about 50 KB of columns: big enough that a
/// million episodes are a thousand reads, small enough that rebuilding one after a relabel
/// is cheap.
pub(crate) const CHUNK_BITS: u32 = 10;
const CHUNK_IDS: u64 = 1 << CHUNK_BITS;

/// The catalog tables of one write transaction: every row change goes through here.
pub(crate) struct CatalogWriter<'t> {
    rows: Table<'t, u64, &'static [u8]>,
    chunks: Table<'t, u64, &'static [u8]>,
    /// `catalog_sealed` as this transaction found it.
    sealed: u64,
    /// Sealed chunks this transaction removed because one of their rows changed.
    stale: BTreeSet<u64>,
}

impl<'t> CatalogWriter<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        meta: &Table<'_, &'static str, u64>,
    ) -> Result<Self> {
        Ok(CatalogWriter {
            rows: txn.open_table(CATALOG)?,
            chunks: txn.open_table(CATALOG_CHUNKS)?,
            sealed: meta.get(META_CATALOG_SEALED)?.map_or(0, |v| v.value()),
            stale: BTreeSet::new(),
        })
    }

    /// Writes (or rewrites) the catalog row of episode `id` from its record.
    pub(crate) fn put(&mut self, id: u64, record: &EpisodeRecordV1) -> Result<()> {
        self.rows
            .insert(id, CatalogRecordV1::of(record).encode().as_slice())?;
        self.touch(id)
    }

    /// Removes the catalog row of episode `id` (when its `episodes` row goes: a delete).
    pub(crate) fn remove(&mut self, id: u64) -> Result<()> {
        self.rows.remove(id)?;
        self.touch(id)
    }

    /// A row of a sealed chunk changed: the chunk is no longer exact, so it goes (readers
    /// read its rows) until [`finish`](Self::finish) rebuilds it.
    fn touch(&mut self, id: u64) -> Result<()> {
        let chunk = id >> CHUNK_BITS;
        if chunk < self.sealed && self.stale.insert(chunk) {
            self.chunks.remove(chunk)?;
        }
        Ok(())
    }

    /// Rebuilds the chunks this transaction made stale and seals every chunk whose ids are
    /// all below `next_episode_id`; records the new `catalog_sealed`. Call it last, before
    /// the transaction commits.
    pub(crate) fn finish(
        &mut self,
        meta: &mut Table<'_, &'static str, u64>,
        next_episode_id: u64,
    ) -> Result<()> {
        let seal_below = (next_episode_id >> CHUNK_BITS).max(self.sealed);
        let stale = std::mem::take(&mut self.stale);
        for chunk in stale.into_iter().chain(self.sealed..seal_below) {
            self.seal(chunk)?;
        }
        if seal_below != self.sealed {
            meta.insert(META_CATALOG_SEALED, seal_below)?;
            self.sealed = seal_below;
        }
        Ok(())
    }

    /// Writes chunk `chunk` from the rows of its ids (nothing when it has none).
    fn seal(&mut self, chunk: u64) -> Result<()> {
        let first = chunk << CHUNK_BITS;
        let mut rows = Catalog::with_capacity(CHUNK_IDS as usize);
        for entry in self.rows.range(first..first + CHUNK_IDS)? {
            let (id, bytes) = entry?;
            rows.push(id.value(), &CatalogRecordV1::decode(bytes.value())?);
        }
        if rows.is_empty() {
            self.chunks.remove(chunk)?;
        } else {
            self.chunks
                .insert(chunk, rows.to_chunk(first).encode().as_slice())?;
        }
        Ok(())
    }
}

/// Builds the catalog rows from the `episodes` table unless they are marked complete, then
/// seals the chunks of every id below `next_episode_id` that have none; returns the rows
/// written. One pass, in the caller's transaction.
pub(crate) fn build_if_missing(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value());
    let mut writer = CatalogWriter::open(txn, &meta)?;
    let mut rows = 0;
    if meta.get(META_CATALOG_COMPLETE)?.is_none() {
        let episodes = txn.open_table(EPISODES)?;
        for entry in episodes.iter()? {
            let (id, bytes) = entry?;
            writer.put(id.value(), &EpisodeRecordV1::decode(bytes.value())?)?;
            rows += 1;
        }
        meta.insert(META_CATALOG_COMPLETE, 1)?;
    }
    writer.finish(&mut meta, next)?;
    Ok(rows)
}

/// Which rows a read of the catalog keeps, and where it puts them.
pub(crate) enum Want<'a> {
    /// Every row, as columns.
    All(Catalog),
    /// The rows of these ids (increasing), as columns: the rest is decoded past.
    Ids(&'a [u64], Catalog),
    /// `(id, steps)` of every row, nothing else decoded.
    Lens(Vec<EpisodeLen>),
}

impl Want<'_> {
    /// Whether chunk `chunk` holds a wanted row.
    fn wants_chunk(&self, chunk: u64) -> bool {
        match self {
            Want::Ids(ids, _) => {
                let first = chunk << CHUNK_BITS;
                let at = ids.partition_point(|&id| id < first);
                ids.get(at).is_some_and(|&id| id < first + CHUNK_IDS)
            }
            _ => true,
        }
    }

    fn chunk(&mut self, chunk: u64, bytes: &[u8], end: u64) -> Result<()> {
        let chunk = ChunkAt {
            number: chunk,
            first_id: chunk << CHUNK_BITS,
        };
        match self {
            Want::All(out) => chunk_decode::extend(out, chunk, bytes, &mut |id| id < end),
            Want::Ids(ids, out) => chunk_decode::extend(out, chunk, bytes, &mut |id| {
                id < end && ids.binary_search(&id).is_ok()
            }),
            Want::Lens(out) => chunk_decode::extend_lens(out, chunk, bytes, end),
        }
    }

    fn row(&mut self, id: u64, bytes: &[u8]) -> Result<()> {
        let wanted = match self {
            Want::Ids(ids, _) => ids.binary_search(&id).is_ok(),
            _ => true,
        };
        if !wanted {
            return Ok(());
        }
        let record = CatalogRecordV1::decode(bytes)?;
        match self {
            Want::All(out) | Want::Ids(_, out) => out.push(id, &record),
            Want::Lens(out) => out.push(EpisodeLen {
                id,
                steps: u64::from(record.steps),
            }),
        }
        Ok(())
    }
}

/// Reads the catalog rows `want` asks for among the episodes with id below `cutoff` (all
/// when `None`), in id order: each sealed chunk from its one value, the rest (chunks removed
/// by a change, and ids not sealed yet) from the rows. `None` when the store has no complete
/// catalog (the caller reads full records instead).
pub(crate) fn read<'a>(
    txn: &ReadTransaction,
    cutoff: Option<u64>,
    mut want: Want<'a>,
) -> Result<Option<Want<'a>>> {
    let meta = txn.open_table(META)?;
    if meta.get(META_CATALOG_COMPLETE)?.is_none() {
        return Ok(None);
    }
    let rows = match txn.open_table(CATALOG) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let end = cutoff.unwrap_or(u64::MAX);
    let sealed = meta.get(META_CATALOG_SEALED)?.map_or(0, |v| v.value());
    // Every id is below `next_episode_id`: room for that many rows is never too little.
    let next = meta.get(META_NEXT_EPISODE)?.map_or(1, |v| v.value());
    let room = next.min(end).min(1 << 32) as usize;
    match &mut want {
        Want::All(out) => *out = Catalog::with_capacity(room),
        Want::Ids(ids, out) => *out = Catalog::with_capacity(ids.len()),
        Want::Lens(out) => out.reserve(room),
    }
    let scan = |want: &mut Want<'_>, from: u64, to: u64| -> Result<()> {
        if from >= to {
            return Ok(());
        }
        for entry in rows.range(from..to)? {
            let (id, bytes) = entry?;
            want.row(id.value(), bytes.value())?;
        }
        Ok(())
    };
    // Ids below `sealed_end` are in chunks (or in the rows, for a chunk that is absent).
    let sealed_end = sealed.saturating_mul(CHUNK_IDS).min(end);
    let mut covered = 0u64;
    match txn.open_table(CATALOG_CHUNKS) {
        Ok(chunks) => {
            let last_chunk = sealed_end.div_ceil(CHUNK_IDS);
            for entry in chunks.range(0..last_chunk)? {
                let (chunk, bytes) = entry?;
                let chunk = chunk.value();
                scan(&mut want, covered, chunk << CHUNK_BITS)?;
                if want.wants_chunk(chunk) {
                    want.chunk(chunk, bytes.value(), end)?;
                }
                covered = (chunk + 1) << CHUNK_BITS;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    scan(&mut want, covered.min(end), end)?;
    Ok(Some(want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::Outcome;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn record(user: &str, steps: u32, tags: &[&str]) -> EpisodeRecordV1 {
        EpisodeRecordV1 {
            user: user.into(),
            env: "env".into(),
            schema_id: 1,
            started_at_us: 10,
            ended_at_us: 20,
            committed_at_us: 30,
            steps,
            total_return: f64::from(steps) / 2.0,
            outcome: Outcome::Truncated,
            seed: Some(u64::from(steps)),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            metadata: Default::default(),
            raw_bytes: 100,
            stored_bytes: 90,
            fields: Vec::new(),
        }
    }

    /// The columns read back equal the rows written, whichever mix of sealed chunks, stale
    /// chunks and unsealed rows they come from.
    #[test]
    fn chunks_and_rows_read_back_as_the_rows_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("i.redb")).unwrap();
        let n = 3 * CHUNK_IDS + 17;
        let mut expected = Vec::new();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_CATALOG_COMPLETE, 1).unwrap();
            let mut w = CatalogWriter::open(&txn, &meta).unwrap();
            for id in 1..n {
                if id % 7 == 0 {
                    continue; // a gap, as a delete leaves
                }
                let r = record(
                    ["a", "b", "c"][id as usize % 3],
                    id as u32,
                    &["x"][..(id % 2) as usize],
                );
                w.put(id, &r).unwrap();
                expected.push((id, CatalogRecordV1::of(&r)));
            }
            w.finish(&mut meta, n).unwrap();
            assert_eq!(meta.get(META_CATALOG_SEALED).unwrap().unwrap().value(), 3);
        }
        txn.commit().unwrap();
        let check = |expected: &[(u64, CatalogRecordV1)], cutoff: Option<u64>| {
            let txn = db.begin_read().unwrap();
            let Some(Want::All(c)) = read(&txn, cutoff, Want::All(Catalog::new())).unwrap() else {
                panic!("no catalog")
            };
            let got: Vec<(u64, CatalogRecordV1)> =
                (0..c.len()).map(|i| (c.ids[i], c.record(i))).collect();
            let want: Vec<_> = expected
                .iter()
                .filter(|(id, _)| cutoff.is_none_or(|c| *id < c))
                .cloned()
                .collect();
            assert_eq!(got, want);
        };
        check(&expected, None);
        check(&expected, Some(CHUNK_IDS + 5));
        check(&expected, Some(2 * CHUNK_IDS));

        // A relabel in a sealed chunk without `finish`: the chunk is gone, its rows are read.
        let txn = db.begin_write().unwrap();
        {
            let meta = txn.open_table(META).unwrap();
            let mut w = CatalogWriter::open(&txn, &meta).unwrap();
            let r = record("relabelled", 5, &["y", "z"]);
            w.put(5, &r).unwrap();
            expected[4] = (5, CatalogRecordV1::of(&r));
            w.remove(CHUNK_IDS + 1).unwrap();
            expected.retain(|(id, _)| *id != CHUNK_IDS + 1);
        }
        txn.commit().unwrap();
        check(&expected, None);
        // ... and with `finish`, rebuilt.
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            let mut w = CatalogWriter::open(&txn, &meta).unwrap();
            w.stale.extend([0, 1]);
            w.finish(&mut meta, n).unwrap();
        }
        txn.commit().unwrap();
        check(&expected, None);
        let txn = db.begin_read().unwrap();
        assert_eq!(txn.open_table(CATALOG_CHUNKS).unwrap().len().unwrap(), 3);
    }
}
