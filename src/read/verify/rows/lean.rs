//! An `episodes` row read by hand up to its chunk lists: postcard's encodings of
//! `EpisodeRecordV1` (schema/index.md) read straight off the stored bytes, keeping the user,
//! steps, schema id and chunk lists and stepping over the rest without allocating.
//!
//! Read by hand rather than through serde because this decode is the one part of verify that
//! runs on a single thread: postcard's deserializer spent about two thirds of it in its
//! byte-at-a-time varint and error plumbing.
//!
//! Every check postcard's deserializer makes is made here too (the shared cursor's varint
//! lengths and last bytes, bool and option tags, enum variant indices, UTF-8 of every
//! string), so a row this decoder accepts is one the full decoder accepts, with the same
//! values. It may refuse more: an enum variant appended after it was written, say; the caller
//! decodes such a row in full.

use crate::index::records::Outcome;
use crate::postcard_cursor::{Bad, Cursor};
use crate::schema::Codec;
use crate::segment::format::ChunkRef;

use super::{Batch, Head};

/// Decodes a stored `episodes` row up to its chunk lists, which it appends to `batch`;
/// `None` when the bytes do not follow `EpisodeRecordV1` as this decoder knows it (what it
/// appended is then the caller's to drop). Why not is dropped: the caller decodes such a row
/// in full, and that decoder names what is wrong.
pub(super) fn lean_row<'a>(bytes: &'a [u8], batch: &mut Batch) -> Option<Head<'a>> {
    read_row(bytes, batch).ok()
}

fn read_row<'a>(bytes: &'a [u8], batch: &mut Batch) -> Result<Head<'a>, Bad> {
    let mut row = Cursor::new(bytes);
    // The envelope: the variant index, V1 = 0.
    if row.u32()? != 0 {
        return Err("a record version this decoder does not know");
    }
    let user = row.str()?;
    row.skip_str()?; // env
    let schema_id = row.u64()?;
    // started_at_us, ended_at_us, committed_at_us: zigzag varints.
    for _ in 0..3 {
        row.u64()?;
    }
    let steps = row.u32()?;
    let _total_return = row.f64()?;
    let _outcome = row.variant(Outcome::VARIANTS.len() as u32)?;
    let _seed = row.option_u64()?;
    for _ in 0..row.len()? {
        row.skip_str()?;
    }
    for _ in 0..row.len()? {
        row.skip_str()?;
        skip_value(&mut row)?;
    }
    // raw_bytes, stored_bytes.
    row.u64()?;
    row.u64()?;
    // Each loop below takes a byte or more per turn: a corrupt count runs out of bytes.
    for _ in 0..row.len()? {
        let start = batch.chunks.len();
        for _ in 0..row.len()? {
            let chunk = chunk_ref(&mut row)?;
            batch.chunks.push(chunk);
        }
        batch.lists.push(start..batch.chunks.len());
    }
    Ok(Head {
        user,
        steps,
        schema_id,
    })
}

/// Variants of `Value` (Bool, Int, Float, Str, Ints, Floats); of `Codec` (Raw, Lz4); those
/// of `Outcome` are `Outcome::VARIANTS`. A variant appended later is refused here, not
/// misread: the row is then decoded in full.
const VALUES: u32 = 6;
const CODECS: [Codec; 2] = [Codec::Raw, Codec::Lz4];

/// Steps over a stored `Value`.
fn skip_value(row: &mut Cursor<'_>) -> Result<(), Bad> {
    match row.variant(VALUES)? {
        0 => row.bool().map(drop),
        1 => row.u64().map(drop),
        2 => row.f64().map(drop),
        3 => row.skip_str(),
        4 => (0..row.len()?).try_for_each(|_| row.u64().map(drop)),
        _ => {
            let n = row.len()?;
            row.take(n.checked_mul(8).ok_or("a list of floats past the end")?)
                .map(drop)
        }
    }
}

fn chunk_ref(row: &mut Cursor<'_>) -> Result<ChunkRef, Bad> {
    Ok(ChunkRef {
        segment: row.u64()?,
        offset: row.u64()?,
        payload_len: row.u64()?,
        steps: row.u32()?,
        codec: CODECS[row.variant(CODECS.len() as u32)? as usize],
        checksum: row.u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::{EpisodeRecordV1, Record};
    use crate::partition::rng::SplitMix64;
    use crate::value::{Info, Value};

    /// One value of every variant: adding a variant to `Value` breaks this match, so that
    /// `VALUES` and `skip_value` get the variant too (until they do, rows holding one are
    /// decoded in full: slower, never wrong). The same for `Outcome` and `Codec`.
    fn every_value() -> Vec<Value> {
        let values = vec![
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(0.25),
            Value::Str("a string".into()),
            Value::Ints(vec![1, -2, 3]),
            Value::Floats(vec![-0.5, 1e300]),
        ];
        for v in &values {
            match v {
                Value::Bool(_)
                | Value::Int(_)
                | Value::Float(_)
                | Value::Str(_)
                | Value::Ints(_)
                | Value::Floats(_) => {}
            }
        }
        assert_eq!(values.len(), VALUES as usize);
        let outcomes = [
            Outcome::Terminated,
            Outcome::Truncated,
            Outcome::Interrupted,
        ];
        for o in outcomes {
            match o {
                Outcome::Terminated | Outcome::Truncated | Outcome::Interrupted => {}
            }
        }
        assert_eq!(outcomes, Outcome::VARIANTS);
        for c in CODECS {
            match c {
                Codec::Raw | Codec::Lz4 => {}
            }
        }
        values
    }

    fn record(user: &str, fields: Vec<Vec<ChunkRef>>, metadata: Info) -> EpisodeRecordV1 {
        EpisodeRecordV1 {
            user: user.into(),
            env: "CartPole-v1".into(),
            schema_id: 300,
            started_at_us: -5,
            ended_at_us: 1 << 40,
            committed_at_us: 1 << 41,
            steps: 70_000,
            total_return: -1.5,
            outcome: Outcome::Truncated,
            seed: Some(u64::MAX),
            tags: vec!["a".into(), "".into(), "ccc".into()],
            metadata,
            raw_bytes: 1 << 33,
            stored_bytes: 12,
            fields,
        }
    }

    fn chunk(segment: u64, steps: u32, codec: Codec) -> ChunkRef {
        ChunkRef {
            segment,
            offset: segment.wrapping_mul(4096) | 64,
            payload_len: u64::from(steps) * 3 + 1,
            steps,
            codec,
            checksum: segment.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Rows with every variant of every enum, short and long varints, empty and full lists.
    fn records() -> Vec<EpisodeRecordV1> {
        let metadata: Info = every_value()
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("key{i}"), v))
            .collect();
        let mut plain = record("", vec![], Info::new());
        plain.seed = None;
        plain.outcome = Outcome::Interrupted;
        plain.tags.clear();
        let mut ended = record("ünïcode", vec![vec![chunk(0, 0, Codec::Raw)]], Info::new());
        ended.outcome = Outcome::Terminated;
        ended.steps = u32::MAX;
        ended.started_at_us = i64::MIN;
        vec![
            record(
                "alice",
                vec![
                    vec![chunk(1, 5, Codec::Raw), chunk(2, 300, Codec::Lz4)],
                    vec![],
                    vec![chunk(u64::MAX, u32::MAX, Codec::Raw)],
                ],
                metadata,
            ),
            plain,
            ended,
        ]
    }

    /// What the lean decoder makes of `bytes`: the head and chunk lists, or `None`.
    fn lean(bytes: &[u8]) -> Option<(String, u32, u64, Vec<Vec<ChunkRef>>)> {
        let mut batch = Batch::default();
        let head = lean_row(bytes, &mut batch)?;
        let lists = batch
            .lists
            .iter()
            .map(|range| batch.chunks[range.clone()].to_vec())
            .collect();
        Some((head.user.to_owned(), head.steps, head.schema_id, lists))
    }

    fn full(bytes: &[u8]) -> Option<(String, u32, u64, Vec<Vec<ChunkRef>>)> {
        let r = EpisodeRecordV1::decode(bytes).ok()?;
        Some((r.user, r.steps, r.schema_id, r.fields))
    }

    #[test]
    fn lean_rows_agree_with_the_full_decoder() {
        for r in records() {
            let bytes = r.encode();
            let (user, steps, schema_id, lists) = lean(&bytes).expect("a V1 row decodes lean");
            assert_eq!(
                (user.as_str(), steps, schema_id),
                (r.user.as_str(), r.steps, r.schema_id)
            );
            assert_eq!(lists, r.fields);
        }
    }

    /// Truncated rows, and rows with a byte changed (seeded): the lean decoder accepts
    /// exactly the rows the full decoder accepts, and reads the same values from them.
    #[test]
    fn damaged_rows_are_accepted_lean_exactly_when_in_full() {
        let mut rng = SplitMix64::new(10);
        let (mut accepted, mut refused) = (0, 0);
        for r in records() {
            let bytes = r.encode();
            let mut cases: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            for _ in 0..3000 {
                cases.push(crate::postcard_cursor::damaged_copy(&mut rng, &bytes));
            }
            for case in cases {
                let found = lean(&case);
                assert_eq!(found, full(&case), "{case:?}");
                match found {
                    Some(_) => accepted += 1,
                    None => refused += 1,
                }
            }
        }
        assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
    }

    #[test]
    fn a_row_of_an_unknown_record_version_is_not_decoded_lean() {
        let mut bytes = record("bob", vec![vec![chunk(3, 1, Codec::Raw)]], Info::new()).encode();
        bytes[0] = 1;
        assert!(lean(&bytes).is_none());
    }
}
