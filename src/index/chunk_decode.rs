//! Decodes a `catalog_chunks` value (postcard `CatalogChunkEnvelope::V1`, schema/index.md)
//! straight into the columns of a [`Catalog`], without the per-column vectors serde would
//! build for every chunk: listing a million episodes decodes a thousand chunks, and the
//! allocations were most of the cost. The encoding is the one serde writes (the tests check
//! both agree); only reading is by hand, through the shared postcard cursor, so a chunk
//! postcard's deserializer would refuse (an overlong varint, say) is refused here too.

use super::catalog_columns::Catalog;
use super::records::Outcome;
use crate::error::{ReadError, Result};
use crate::partition::EpisodeLen;
use crate::postcard_cursor::{Bad, Cursor};

/// The chunk's own reads: columns of one entry per row.
impl Cursor<'_> {
    /// A column's length, which must be the chunk's row count.
    fn column(&mut self, rows: usize) -> Result<(), Bad> {
        if self.len()? != rows {
            return Err("a column of another length than the ids");
        }
        Ok(())
    }

    /// A column of `rows` values read with `read`, keeping in `into` those of the rows
    /// `keep` accepts (the others are read past).
    fn kept_column<T>(
        &mut self,
        rows: usize,
        keep: impl Fn(usize) -> bool,
        into: &mut Vec<T>,
        mut read: impl FnMut(&mut Self) -> Result<T, Bad>,
    ) -> Result<(), Bad> {
        self.column(rows)?;
        for i in 0..rows {
            let value = read(self)?;
            if keep(i) {
                into.push(value);
            }
        }
        Ok(())
    }
}

/// An `Outcome`: its variant index (schema/index.md).
fn outcome(r: &mut Cursor<'_>) -> Result<Outcome, Bad> {
    Ok(Outcome::VARIANTS[r.variant(Outcome::VARIANTS.len() as u32)? as usize])
}

fn corrupt(chunk: u64) -> impl Fn(Bad) -> crate::Error {
    move |reason| {
        ReadError::CorruptRecord {
            table: "catalog_chunks",
            reason: format!("chunk {chunk}: {reason}"),
        }
        .into()
    }
}

/// Where a chunk stands: its number (named in errors) and the first id it can hold (its ids
/// are stored as deltas from that).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkAt {
    pub number: u64,
    pub first_id: u64,
}

/// Appends the rows of chunk `chunk` (its stored bytes) whose id `keep` accepts to `out`.
pub(crate) fn extend(
    out: &mut Catalog,
    chunk: ChunkAt,
    bytes: &[u8],
    keep: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    decode(out, chunk, bytes, keep).map_err(corrupt(chunk.number))
}

/// Appends `(id, steps)` of the rows of chunk `chunk` with ids below `end` to `out`, and
/// decodes nothing else.
pub(crate) fn extend_lens(
    out: &mut Vec<EpisodeLen>,
    chunk: ChunkAt,
    bytes: &[u8],
    end: u64,
) -> Result<()> {
    decode_lens(out, chunk, bytes, end).map_err(corrupt(chunk.number))
}

/// The envelope's version, then the ids column: each id with whether `keep` wants it.
fn ids(
    r: &mut Cursor<'_>,
    chunk: ChunkAt,
    keep: &mut dyn FnMut(u64) -> bool,
) -> Result<Vec<(u64, bool)>, Bad> {
    if r.u32()? != 0 {
        return Err("a record version this build does not know");
    }
    let n = r.len()?;
    let mut id = chunk.first_id;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        id = id.checked_add(r.u64()?).ok_or("an id past u64::MAX")?;
        ids.push((id, keep(id)));
    }
    Ok(ids)
}

fn decode_lens(
    out: &mut Vec<EpisodeLen>,
    chunk: ChunkAt,
    bytes: &[u8],
    end: u64,
) -> Result<(), Bad> {
    let mut r = Cursor::new(bytes);
    let ids = ids(&mut r, chunk, &mut |id| id < end)?;
    r.column(ids.len())?;
    for &(id, kept) in &ids {
        let steps = r.u32()?;
        if kept {
            out.push(EpisodeLen {
                id,
                steps: u64::from(steps),
            });
        }
    }
    Ok(())
}

fn decode(
    out: &mut Catalog,
    chunk: ChunkAt,
    bytes: &[u8],
    keep: &mut dyn FnMut(u64) -> bool,
) -> Result<(), Bad> {
    // Columns in CatalogChunkV1 field order; rows `keep` refuses are read past.
    let mut r = Cursor::new(bytes);
    let ids = ids(&mut r, chunk, keep)?;
    let n = ids.len();
    for &(id, kept) in &ids {
        if kept {
            out.ids.push(id);
        }
    }
    let keep = |i: usize| ids[i].1;
    r.kept_column(n, keep, &mut out.steps, Cursor::u32)?;
    let strings = r.len()?;
    let mut names = Vec::with_capacity(strings);
    for _ in 0..strings {
        let s = r.str()?;
        names.push(out.intern(s));
    }
    let name = |r: &mut Cursor<'_>| {
        names
            .get(r.u32()? as usize)
            .copied()
            .ok_or("a string number past the strings")
    };
    r.kept_column(n, keep, &mut out.users, name)?;
    r.kept_column(n, keep, &mut out.envs, name)?;
    r.kept_column(n, keep, &mut out.schema_ids, Cursor::u64)?;
    r.kept_column(n, keep, &mut out.started_at_us, Cursor::i64)?;
    r.kept_column(n, keep, &mut out.ended_at_us, Cursor::i64)?;
    r.kept_column(n, keep, &mut out.committed_at_us, Cursor::i64)?;
    r.kept_column(n, keep, &mut out.total_returns, Cursor::f64)?;
    r.kept_column(n, keep, &mut out.outcomes, outcome)?;
    r.kept_column(n, keep, &mut out.seeds, Cursor::option_u64)?;
    r.column(n)?;
    for i in 0..n {
        let tags = r.len()?;
        for _ in 0..tags {
            let tag = name(&mut r)?;
            if keep(i) {
                out.tag_values.push(tag);
            }
        }
        if keep(i) {
            out.tag_starts.push(out.tag_values.len() as u32);
        }
    }
    r.kept_column(n, keep, &mut out.raw_bytes, Cursor::u64)?;
    r.kept_column(n, keep, &mut out.stored_bytes, Cursor::u64)?;
    if !r.rest().is_empty() {
        return Err("bytes after the last column");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::{CatalogChunkV1, CatalogRecordV1, Record};

    /// Chunk 5 of 1024 ids a chunk (the decoder takes the first id as given: the chunk size
    /// is the catalog's business).
    const CHUNK: ChunkAt = ChunkAt {
        number: 5,
        first_id: 5 * 1024,
    };

    /// Rows with the edge values of every column, ids with gaps, in chunk 5.
    fn rows() -> Vec<(u64, CatalogRecordV1)> {
        let base = CHUNK.first_id;
        let row = |user: &str, steps, started, ret, outcome, seed, tags: &[&str]| CatalogRecordV1 {
            user: user.into(),
            env: "cartpole".into(),
            schema_id: u64::from(steps),
            started_at_us: started,
            ended_at_us: started.wrapping_add(1),
            committed_at_us: 9,
            steps,
            total_return: ret,
            outcome,
            seed,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            raw_bytes: u64::from(steps) * 3,
            stored_bytes: u64::MAX - u64::from(steps),
        };
        vec![
            (
                base + 3,
                row("alice", 0, -5, 0.5, Outcome::Terminated, None, &[]),
            ),
            (
                base + 4,
                row(
                    "alice",
                    1,
                    0,
                    -1e300,
                    Outcome::Truncated,
                    Some(0),
                    &["ünï", "alice"],
                ),
            ),
            (
                base + 204,
                row(
                    "ünï",
                    300,
                    i64::MIN,
                    f64::INFINITY,
                    Outcome::Interrupted,
                    Some(u64::MAX),
                    &[],
                ),
            ),
            (
                base + 1023,
                row(
                    "bob",
                    u32::MAX,
                    i64::MAX,
                    -0.0,
                    Outcome::Terminated,
                    None,
                    &["x"],
                ),
            ),
        ]
    }

    fn stored(rows: &[(u64, CatalogRecordV1)]) -> Vec<u8> {
        let mut c = Catalog::new();
        for (id, r) in rows {
            c.push(*id, r);
        }
        c.to_chunk(CHUNK.first_id).encode()
    }

    /// What serde encodes, this decoder reads back, row for row, whatever the cutoff.
    #[test]
    fn the_hand_decoder_reads_what_serde_encodes() {
        let rows = rows();
        let bytes = stored(&rows);
        let base = CHUNK.first_id;
        for end in [0, base + 4, base + 5, base + 1023, u64::MAX] {
            let mut got = Catalog::new();
            extend(&mut got, CHUNK, &bytes, &mut |id| id < end).unwrap();
            let mut lens = Vec::new();
            extend_lens(&mut lens, CHUNK, &bytes, end).unwrap();
            let want: Vec<_> = rows.iter().filter(|(id, _)| *id < end).collect();
            assert_eq!(got.len(), want.len(), "end {end}");
            for (i, (id, r)) in want.iter().enumerate() {
                assert_eq!(got.ids[i], *id);
                assert_eq!(
                    got.record(i).total_return.to_bits(),
                    r.total_return.to_bits()
                );
                assert_eq!(&got.record(i), r);
                assert_eq!(
                    lens[i],
                    EpisodeLen {
                        id: *id,
                        steps: u64::from(r.steps)
                    }
                );
            }
            assert_eq!(lens.len(), want.len());
        }
        let mut some = Catalog::new();
        extend(&mut some, CHUNK, &bytes, &mut |id| id == base + 204).unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some.record(0), rows[2].1);
    }

    /// A truncated or padded value, or one of a version this build does not know, is a
    /// corrupt record naming the table and chunk, never a panic or a wrong row.
    #[test]
    fn a_damaged_chunk_is_refused_naming_it() {
        let bytes = stored(&rows());
        let chunk = ChunkAt {
            number: 9,
            first_id: 9 * 1024,
        };
        for bad in [
            bytes[..bytes.len() - 1].to_vec(),
            [bytes.as_slice(), &[0]].concat(),
            [&[1u8][..], &bytes[1..]].concat(),
        ] {
            match extend(&mut Catalog::new(), chunk, &bad, &mut |_| true) {
                Err(crate::Error::Read(ReadError::CorruptRecord { table, reason })) => {
                    assert_eq!(table, "catalog_chunks");
                    assert!(reason.starts_with("chunk 9: "), "{reason}");
                }
                other => panic!("accepted a damaged chunk: {other:?}"),
            }
        }
    }

    /// `bytes` with `len` bytes at `at` replaced by `with`.
    fn splice(bytes: &[u8], at: usize, len: usize, with: &[u8]) -> Vec<u8> {
        [&bytes[..at], with, &bytes[at + len..]].concat()
    }

    fn refusal(bytes: &[u8]) -> String {
        match extend(&mut Catalog::new(), CHUNK, bytes, &mut |_| true) {
            Err(crate::Error::Read(ReadError::CorruptRecord { table, reason })) => {
                assert_eq!(table, "catalog_chunks");
                reason
            }
            other => panic!("accepted a damaged chunk: {other:?}"),
        }
    }

    /// Values postcard's deserializer refuses, which this decoder took before it read
    /// through the shared cursor (a varint of up to 10 bytes for any integer, the excess
    /// bits of a u64 dropped, an option's tag read as a varint), are refused naming what
    /// is wrong; an overlong encoding within an integer's bytes, which postcard takes, is
    /// still read.
    #[test]
    fn a_chunk_is_refused_where_postcard_refuses_it() {
        let row = CatalogRecordV1 {
            user: "alice".into(),
            env: "cartpole".into(),
            schema_id: 1,
            started_at_us: 0,
            ended_at_us: 0,
            committed_at_us: 0,
            steps: 5,
            total_return: 0.0,
            outcome: Outcome::Terminated,
            seed: None,
            tags: vec![],
            raw_bytes: 2,
            stored_bytes: 1,
        };
        let bytes = stored(&[(CHUNK.first_id + 3, row.clone())]);
        let decodes = |bytes: &[u8]| CatalogChunkV1::decode(bytes).is_ok();
        assert!(decodes(&bytes));
        // Envelope 0, one id (delta 3), one steps entry: 5.
        assert_eq!(bytes[..5], [0, 1, 3, 1, 5]);
        // Seeds: one entry, `None`; tags: one empty list; raw_bytes [2]; stored_bytes [1].
        let tail = bytes.len() - 8;
        assert_eq!(bytes[tail..], [1, 0, 1, 0, 1, 2, 1, 1]);

        let five_in_five_bytes = splice(&bytes, 4, 1, &[0x85, 0x80, 0x80, 0x80, 0x00]);
        assert!(decodes(&five_in_five_bytes));
        let mut got = Catalog::new();
        extend(&mut got, CHUNK, &five_in_five_bytes, &mut |_| true).unwrap();
        assert_eq!(got.record(0), row);

        for (bad, reason) in [
            (
                splice(&bytes, 4, 1, &[0x85, 0x80, 0x80, 0x80, 0x80, 0x00]),
                "chunk 5: a u32 varint of more than 5 bytes",
            ),
            (
                splice(
                    &bytes,
                    bytes.len() - 1,
                    1,
                    &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],
                ),
                "chunk 5: a 64-bit varint with bits past 64",
            ),
            (
                splice(&bytes, tail + 1, 1, &[0x80, 0x00]),
                "chunk 5: an option tag other than 0 or 1",
            ),
        ] {
            assert!(!decodes(&bad), "{bad:?}");
            assert_eq!(refusal(&bad), reason);
        }
    }

    /// `Outcome::VARIANTS[i]` is the outcome postcard stores as variant `i`.
    #[test]
    fn outcome_variants_are_postcards_indices() {
        for (i, outcome) in Outcome::VARIANTS.into_iter().enumerate() {
            assert_eq!(postcard::to_allocvec(&outcome).unwrap(), [i as u8]);
            match outcome {
                Outcome::Terminated | Outcome::Truncated | Outcome::Interrupted => {}
            }
        }
    }
}
