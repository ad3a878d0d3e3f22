//! An `episodes` row read by hand up to its chunk lists: postcard's encodings of
//! `EpisodeRecordV1` (schema/index.md) read straight off the stored bytes, keeping the user,
//! steps, schema id and chunk lists and stepping over the rest without allocating.
//!
//! Read by hand rather than through serde because this decode is the one part of verify that
//! runs on a single thread: postcard's deserializer spent about two thirds of it in its
//! byte-at-a-time varint and error plumbing.
//!
//! Every check postcard's deserializer makes is made here too (varint lengths and last bytes,
//! bool and option tags, enum variant indices, UTF-8 of every string), so a row this decoder
//! accepts is one the full decoder accepts, with the same values. It may refuse more: an enum
//! variant appended after it was written, say; the caller decodes such a row in full.

use crate::schema::Codec;
use crate::segment::format::ChunkRef;

use super::{Batch, Head};

/// Decodes a stored `episodes` row up to its chunk lists, which it appends to `batch`;
/// `None` when the bytes do not follow `EpisodeRecordV1` as this decoder knows it (what it
/// appended is then the caller's to drop).
pub(super) fn lean_row<'a>(bytes: &'a [u8], batch: &mut Batch) -> Option<Head<'a>> {
    let mut row = Cursor { rest: bytes };
    // The envelope: the variant index, V1 = 0.
    if row.u32()? != 0 {
        return None;
    }
    let user = row.str()?;
    row.skip_str()?; // env
    let schema_id = row.u64()?;
    // started_at_us, ended_at_us, committed_at_us: zigzag varints.
    for _ in 0..3 {
        row.u64()?;
    }
    let steps = row.u32()?;
    let _total_return = row.take(8)?;
    let _outcome = row.variant(OUTCOMES)?;
    match row.byte()? {
        0 => {}
        1 => {
            let _seed = row.u64()?;
        }
        _ => return None,
    }
    for _ in 0..row.len()? {
        row.skip_str()?;
    }
    for _ in 0..row.len()? {
        row.skip_str()?;
        row.value()?;
    }
    // raw_bytes, stored_bytes.
    row.u64()?;
    row.u64()?;
    // Each loop below takes a byte or more per turn: a corrupt count runs out of bytes.
    for _ in 0..row.len()? {
        let start = batch.chunks.len();
        for _ in 0..row.len()? {
            let chunk = row.chunk()?;
            batch.chunks.push(chunk);
        }
        batch.lists.push(start..batch.chunks.len());
    }
    Some(Head {
        user,
        steps,
        schema_id,
    })
}

/// Variants of `Outcome` (Terminated, Truncated, Interrupted); of `Value` (Bool, Int, Float,
/// Str, Ints, Floats); of `Codec` (Raw, Lz4). A variant appended later is refused here, not
/// misread: the row is then decoded in full.
const OUTCOMES: u32 = 3;
const VALUES: u32 = 6;
const CODECS: [Codec; 2] = [Codec::Raw, Codec::Lz4];

/// The bytes of a row not read yet.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.rest.get(..n)?;
        self.rest = &self.rest[n..];
        Some(taken)
    }

    /// An unsigned integer of `BITS` bits as postcard stores it: 7 bits a byte, low first,
    /// the high bit set on every byte but the last; at most `ceil(BITS / 7)` bytes, and then
    /// the last one holds no more bits than are left.
    #[inline(always)]
    fn varint<const BITS: u32>(&mut self) -> Option<u64> {
        let max_bytes = BITS.div_ceil(7);
        let last_max = (1u8 << (BITS % 7)) - 1;
        let mut out = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return (i + 1 < max_bytes || b <= last_max).then_some(out);
            }
        }
        None
    }

    fn u64(&mut self) -> Option<u64> {
        self.varint::<64>()
    }

    fn u32(&mut self) -> Option<u32> {
        self.varint::<32>().map(|v| v as u32)
    }

    /// A length of a sequence, map, string or byte string (a `usize`).
    fn len(&mut self) -> Option<usize> {
        self.varint::<{ usize::BITS }>().map(|v| v as usize)
    }

    /// An enum's variant index, one of `count`.
    fn variant(&mut self, count: u32) -> Option<u32> {
        self.u32().filter(|&v| v < count)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// Steps over a string, checking it is UTF-8 as decoding it would. Most are short and
    /// ASCII: a word-at-a-time ASCII test answers for them, cheaper than `from_utf8`.
    fn skip_str(&mut self) -> Option<()> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        (bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()).then_some(())
    }

    /// Steps over a stored `Value`.
    fn value(&mut self) -> Option<()> {
        match self.variant(VALUES)? {
            0 => (self.byte()? <= 1).then_some(()),
            1 => self.u64().map(drop),
            2 => self.take(8).map(drop),
            3 => self.skip_str(),
            4 => (0..self.len()?).try_for_each(|_| self.u64().map(drop)),
            _ => {
                let n = self.len()?;
                self.take(n.checked_mul(8)?).map(drop)
            }
        }
    }

    fn chunk(&mut self) -> Option<ChunkRef> {
        Some(ChunkRef {
            segment: self.u64()?,
            offset: self.u64()?,
            payload_len: self.u64()?,
            steps: self.u32()?,
            codec: CODECS[self.variant(CODECS.len() as u32)? as usize],
            checksum: self.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::{EpisodeRecordV1, Outcome, Record};
    use crate::partition::rng::SplitMix64;
    use crate::value::{Info, Value};

    /// One value of every variant: adding a variant to `Value` breaks this match, so that
    /// `VALUES` and `Cursor::value` get the variant too (until they do, rows holding one are
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
        assert_eq!(outcomes.len(), OUTCOMES as usize);
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
                let mut damaged = bytes.clone();
                let at = rng.below(damaged.len() as u64) as usize;
                damaged[at] = match rng.below(4) {
                    0 => 0x80 | damaged[at],
                    1 => 0xff,
                    2 => damaged[at].wrapping_add(1),
                    _ => rng.next_u64() as u8,
                };
                cases.push(damaged);
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

    #[test]
    fn varints_are_read_to_their_last_byte_as_postcard_reads_them() {
        let read = |bytes: &[u8]| Cursor { rest: bytes }.u64();
        assert_eq!(read(&[0x7f]), Some(0x7f));
        assert_eq!(read(&[0x80, 0x01]), Some(0x80));
        assert_eq!(
            read(&[0x80, 0x00]),
            Some(0),
            "an overlong zero, as postcard takes it"
        );
        let mut max = [0xff; 10];
        max[9] = 0x01;
        assert_eq!(read(&max), Some(u64::MAX));
        max[9] = 0x02;
        assert_eq!(read(&max), None, "a 65th bit");
        assert_eq!(read(&[0xff; 10]), None, "an 11th byte");
        assert_eq!(read(&[0x80]), None, "cut short");
        assert_eq!(
            Cursor {
                rest: &[0xff, 0xff, 0xff, 0xff, 0x0f]
            }
            .u32(),
            Some(u32::MAX)
        );
        assert_eq!(
            Cursor {
                rest: &[0xff, 0xff, 0xff, 0xff, 0x10]
            }
            .u32(),
            None
        );
    }

    /// Values of every bit length, alone and followed by more bytes, as u64 and as u32; and
    /// varints cut or damaged at every byte.
    #[test]
    fn varints_agree_with_postcard() {
        let mut rng = SplitMix64::new(7);
        let mut values: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        values.extend((0..2000).map(|i| rng.next_u64() >> (i % 64)));
        values.push(u64::MAX);
        for v in values {
            for tail in [&[][..], &[0x85, 0x01, 0, 0, 0, 0, 0, 0, 0, 0][..]] {
                let mut bytes = postcard::to_allocvec(&v).unwrap();
                let len = bytes.len();
                bytes.extend_from_slice(tail);
                let mut cursor = Cursor { rest: &bytes };
                assert_eq!(cursor.u64(), Some(v), "{bytes:?}");
                assert_eq!(cursor.rest, tail);
                let narrow = u32::try_from(v).ok();
                let mut cursor = Cursor { rest: &bytes };
                assert_eq!(cursor.u32(), narrow, "{bytes:?}");
                for at in 0..len {
                    let mut damaged = bytes.clone();
                    damaged[at] ^= 0x80;
                    for cut in [&bytes[..at], &damaged[..]] {
                        assert_eq!(
                            Cursor { rest: cut }.u64(),
                            postcard::take_from_bytes::<u64>(cut).ok().map(|(v, _)| v),
                            "{cut:?}"
                        );
                        assert_eq!(
                            Cursor { rest: cut }.u32(),
                            postcard::take_from_bytes::<u32>(cut).ok().map(|(v, _)| v),
                            "{cut:?}"
                        );
                    }
                }
            }
        }
    }
}
