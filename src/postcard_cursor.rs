//! A cursor over postcard bytes (schema/index.md, "Value encoding"), for the decoders that
//! read stored values by hand rather than through serde: the catalog chunks
//! (`index::chunk_decode`), the metadata maps of episode records (`index::metadata`) and
//! verify's lean `episodes` rows (`read::verify::rows::lean`). Each reads only what it needs
//! and builds no per-value allocation.
//!
//! It refuses what postcard's deserializer refuses for each thing it reads: bytes that end
//! early; a varint of more bytes than its integer takes (`ceil(BITS / 7)`), or whose last
//! byte holds bits past the integer's width; a bool or option tag other than 0 or 1; a string
//! that is not UTF-8. So a value read here is one serde would read, with the same value (the
//! tests check this against postcard, seeded). Like postcard it takes an overlong encoding
//! that stays within those bytes (`[0x80, 0x00]` is 0).
//!
//! A module of the crate's first layer (it knows bytes, nothing of the store) because both
//! `index` (layer 2) and `read` (layer 4) decode with it: under `index` it would be an index
//! module that verify reaches into for something that is not the index's.

/// What was wrong with the bytes, in words; the caller names the table and the row.
pub(crate) type Bad = &'static str;

/// The bytes not read yet.
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { rest: bytes }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Bad> {
        let (&b, rest) = self.rest.split_first().ok_or("a byte past the end")?;
        self.rest = rest;
        Ok(b)
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.rest.len() {
            return Err("bytes past the end");
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// An unsigned integer of `BITS` bits as postcard stores it: 7 bits a byte, low first,
    /// the high bit set on every byte but the last; at most `ceil(BITS / 7)` bytes, and then
    /// the last one holds no more bits than are left. Always inlined: verify's row decode,
    /// its one serial part, is mostly this.
    #[inline(always)]
    fn varint<const BITS: u32>(&mut self) -> Result<u64, Bad> {
        const {
            // A width a multiple of 7 would leave the last byte all 7 bits; postcard's widths
            // (8 to 128) never are, and 64 is the widest this returns.
            assert!(!BITS.is_multiple_of(7) && BITS <= 64);
        }
        let max_bytes = BITS.div_ceil(7);
        let last_max = (1u8 << (BITS % 7)) - 1;
        let mut out = 0u64;
        for i in 0..max_bytes {
            let (&b, rest) = self.rest.split_first().ok_or("a varint past the end")?;
            self.rest = rest;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i + 1 == max_bytes && b > last_max {
                    return Err(excess_bits::<BITS>());
                }
                return Ok(out);
            }
        }
        Err(overlong::<BITS>())
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, Bad> {
        self.varint::<32>().map(|v| v as u32)
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, Bad> {
        self.varint::<64>()
    }

    /// A `usize` as postcard stores one: a varint of the target's width.
    #[inline]
    fn usize(&mut self) -> Result<usize, Bad> {
        self.varint::<{ usize::BITS }>().map(|v| v as usize)
    }

    /// An `i64`: zigzag (0, -1, 1, -2, ...) in a u64 varint.
    #[inline]
    pub(crate) fn i64(&mut self) -> Result<i64, Bad> {
        let z = self.u64()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    #[inline]
    pub(crate) fn f64(&mut self) -> Result<f64, Bad> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or("an f64 past the end")?;
        self.rest = rest;
        Ok(f64::from_le_bytes(*head))
    }

    #[inline]
    pub(crate) fn bool(&mut self) -> Result<bool, Bad> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a bool other than 0 or 1"),
        }
    }

    /// An `Option`'s tag: whether a value follows. One byte, as postcard reads it (not a
    /// varint: `[0x80, 0x00]` is refused).
    #[inline]
    fn option_tag(&mut self) -> Result<bool, Bad> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("an option tag other than 0 or 1"),
        }
    }

    #[inline]
    pub(crate) fn option_u64(&mut self) -> Result<Option<u64>, Bad> {
        Ok(if self.option_tag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    /// An enum's variant index (a u32 varint), one of the first `count`: a variant this build
    /// does not know is refused, never guessed.
    #[inline]
    pub(crate) fn variant(&mut self, count: u32) -> Result<u32, Bad> {
        let v = self.u32()?;
        if v >= count {
            return Err("an enum variant this build does not know");
        }
        Ok(v)
    }

    /// The length of a sequence, map, string or byte string, at most the bytes left: every
    /// element the decoders read takes a byte or more, so a longer one cannot be whole (and
    /// is refused before anything is sized by it).
    #[inline]
    pub(crate) fn len(&mut self) -> Result<usize, Bad> {
        let n = self.usize()?;
        if n > self.rest.len() {
            return Err("a length past the bytes left");
        }
        Ok(n)
    }

    /// A byte string's bytes.
    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.len()?;
        self.take(n)
    }

    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, Bad> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string that is not UTF-8")
    }

    /// Steps over a string, checking it is UTF-8 as reading it would. Most are short and
    /// ASCII: a word-at-a-time ASCII test answers for them, cheaper than `from_utf8`.
    #[inline]
    pub(crate) fn skip_str(&mut self) -> Result<(), Bad> {
        let bytes = self.bytes()?;
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
            Ok(())
        } else {
            Err("a string that is not UTF-8")
        }
    }
}

/// A varint of more bytes than an integer of `BITS` takes.
fn overlong<const BITS: u32>() -> Bad {
    match BITS {
        16 => "a u16 varint of more than 3 bytes",
        32 => "a u32 varint of more than 5 bytes",
        _ => "a 64-bit varint of more than 10 bytes",
    }
}

/// A varint whose last byte holds bits past an integer of `BITS`.
fn excess_bits<const BITS: u32>() -> Bad {
    match BITS {
        16 => "a u16 varint with bits past 16",
        32 => "a u32 varint with bits past 32",
        _ => "a 64-bit varint with bits past 64",
    }
}

/// A copy of `bytes` (not empty) with one byte damaged the ways that test a varint's and a
/// tag's checks: its continuation bit set, all ones, one more, or random. For the tests of
/// every decoder built on the cursor.
#[cfg(test)]
pub(crate) fn damaged_copy(rng: &mut crate::partition::rng::SplitMix64, bytes: &[u8]) -> Vec<u8> {
    let mut damaged = bytes.to_vec();
    let at = rng.below(damaged.len() as u64) as usize;
    damaged[at] = match rng.below(4) {
        0 => 0x80 | damaged[at],
        1 => 0xff,
        2 => damaged[at].wrapping_add(1),
        _ => rng.next_u64() as u8,
    };
    damaged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::Outcome;
    use crate::partition::rng::SplitMix64;

    /// A `u16`, which no decoder reads yet: what postcard's width rules make of 16 bits.
    fn u16(bytes: &[u8]) -> Result<u64, Bad> {
        Cursor::new(bytes).varint::<16>()
    }

    #[test]
    fn varints_are_read_to_their_last_byte_as_postcard_reads_them() {
        let read = |bytes: &[u8]| Cursor::new(bytes).u64();
        assert_eq!(read(&[0x7f]), Ok(0x7f));
        assert_eq!(read(&[0x80, 0x01]), Ok(0x80));
        assert_eq!(
            read(&[0x80, 0x00]),
            Ok(0),
            "an overlong zero within 10 bytes, as postcard takes it"
        );
        let mut max = [0xff; 10];
        max[9] = 0x01;
        assert_eq!(read(&max), Ok(u64::MAX));
        max[9] = 0x02;
        assert_eq!(read(&max), Err("a 64-bit varint with bits past 64"));
        assert_eq!(
            read(&[0xff; 11]),
            Err("a 64-bit varint of more than 10 bytes")
        );
        assert_eq!(read(&[0x80]), Err("a varint past the end"));
        let read = |bytes: &[u8]| Cursor::new(bytes).u32();
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok(u32::MAX));
        assert_eq!(read(&[0x85, 0x80, 0x80, 0x80, 0x00]), Ok(5));
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            Err("a u32 varint with bits past 32")
        );
        assert_eq!(
            read(&[0x85, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err("a u32 varint of more than 5 bytes")
        );
        assert_eq!(u16(&[0xff, 0xff, 0x03]), Ok(u64::from(u16::MAX)));
        assert_eq!(
            u16(&[0xff, 0xff, 0x04]),
            Err("a u16 varint with bits past 16")
        );
        assert_eq!(
            u16(&[0x80, 0x80, 0x80, 0x00]),
            Err("a u16 varint of more than 3 bytes")
        );
    }

    /// Values of every bit length, alone and followed by more bytes, as u64 and u32; and
    /// varints cut or damaged at every byte, as u64, u32 and u16.
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
                let mut cursor = Cursor::new(&bytes);
                assert_eq!(cursor.u64(), Ok(v), "{bytes:?}");
                assert_eq!(cursor.rest(), tail);
                let narrow = u32::try_from(v).ok();
                assert_eq!(Cursor::new(&bytes).u32().ok(), narrow, "{bytes:?}");
                for at in 0..len {
                    let mut damaged = bytes.clone();
                    damaged[at] ^= 0x80;
                    for cut in [&bytes[..at], &damaged[..]] {
                        let value = |r: postcard::Result<(u64, &[u8])>| r.ok().map(|(v, _)| v);
                        assert_eq!(
                            Cursor::new(cut).u64().ok(),
                            value(postcard::take_from_bytes::<u64>(cut)),
                            "{cut:?}"
                        );
                        assert_eq!(
                            Cursor::new(cut).u32().ok().map(u64::from),
                            value(
                                postcard::take_from_bytes::<u32>(cut).map(|(v, r)| (v.into(), r))
                            ),
                            "{cut:?}"
                        );
                        assert_eq!(
                            u16(cut).ok(),
                            value(
                                postcard::take_from_bytes::<u16>(cut).map(|(v, r)| (v.into(), r))
                            ),
                            "{cut:?}"
                        );
                    }
                }
            }
        }
    }

    /// Everything the cursor reads, as the decoders read it (`Outcome` for an enum's
    /// variant index).
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        U16,
        U32,
        U64,
        Usize,
        I64,
        F64,
        Bool,
        OptionU64,
        Outcome,
        Str,
    }

    const KINDS: [Kind; 10] = [
        Kind::U16,
        Kind::U32,
        Kind::U64,
        Kind::Usize,
        Kind::I64,
        Kind::F64,
        Kind::Bool,
        Kind::OptionU64,
        Kind::Outcome,
        Kind::Str,
    ];

    const OUTCOMES: [Outcome; 3] = [
        Outcome::Terminated,
        Outcome::Truncated,
        Outcome::Interrupted,
    ];

    /// A value read; integers (and floats, by their bits: NaN is not equal to itself) as
    /// one wide integer.
    #[derive(Clone, Debug, PartialEq)]
    enum Got {
        Int(i128),
        Bool(bool),
        Option(Option<u64>),
        Str(String),
    }

    /// Postcard's encoding of a random value of `kind`, of a random bit length.
    fn encode(kind: Kind, rng: &mut SplitMix64) -> Vec<u8> {
        let bits = rng.next_u64() >> rng.below(64);
        let bytes = match kind {
            Kind::U16 => postcard::to_allocvec(&(bits as u16)),
            Kind::U32 => postcard::to_allocvec(&(bits as u32)),
            Kind::U64 => postcard::to_allocvec(&bits),
            Kind::Usize => postcard::to_allocvec(&(bits as usize)),
            Kind::I64 => postcard::to_allocvec(&(bits as i64)),
            Kind::F64 => postcard::to_allocvec(&f64::from_bits(rng.next_u64())),
            Kind::Bool => postcard::to_allocvec(&(bits & 1 == 1)),
            Kind::OptionU64 => postcard::to_allocvec(&(bits & 1 == 1).then_some(bits)),
            Kind::Outcome => postcard::to_allocvec(&OUTCOMES[rng.below(3) as usize]),
            Kind::Str => {
                let s: String = (0..rng.below(6))
                    .map(|_| ['a', 'ü', '\0', '\u{10FFFF}'][rng.below(4) as usize])
                    .collect();
                postcard::to_allocvec(&s)
            }
        };
        bytes.unwrap()
    }

    fn by_cursor(kind: Kind, c: &mut Cursor<'_>) -> Result<Got, Bad> {
        Ok(match kind {
            Kind::U16 => Got::Int(c.varint::<16>()?.into()),
            Kind::U32 => Got::Int(c.u32()?.into()),
            Kind::U64 => Got::Int(c.u64()?.into()),
            Kind::Usize => Got::Int(c.usize()? as i128),
            Kind::I64 => Got::Int(c.i64()?.into()),
            Kind::F64 => Got::Int(c.f64()?.to_bits().into()),
            Kind::Bool => Got::Bool(c.bool()?),
            Kind::OptionU64 => Got::Option(c.option_u64()?),
            Kind::Outcome => Got::Int(c.variant(3)?.into()),
            Kind::Str => Got::Str(c.str()?.to_owned()),
        })
    }

    fn by_postcard(kind: Kind, bytes: &[u8]) -> Option<(Got, &[u8])> {
        use postcard::take_from_bytes as take;
        let int = |v: i128, rest| Some((Got::Int(v), rest));
        match kind {
            Kind::U16 => take::<u16>(bytes).ok().and_then(|(v, r)| int(v.into(), r)),
            Kind::U32 => take::<u32>(bytes).ok().and_then(|(v, r)| int(v.into(), r)),
            Kind::U64 => take::<u64>(bytes).ok().and_then(|(v, r)| int(v.into(), r)),
            Kind::Usize => take::<usize>(bytes)
                .ok()
                .and_then(|(v, r)| int(v as i128, r)),
            Kind::I64 => take::<i64>(bytes).ok().and_then(|(v, r)| int(v.into(), r)),
            Kind::F64 => take::<f64>(bytes)
                .ok()
                .and_then(|(v, r)| int(v.to_bits().into(), r)),
            Kind::Bool => take::<bool>(bytes).ok().map(|(v, r)| (Got::Bool(v), r)),
            Kind::OptionU64 => take::<Option<u64>>(bytes)
                .ok()
                .map(|(v, r)| (Got::Option(v), r)),
            Kind::Outcome => take::<Outcome>(bytes).ok().and_then(|(v, r)| {
                let i = OUTCOMES.iter().position(|&o| o == v).unwrap();
                int(i as i128, r)
            }),
            Kind::Str => take::<String>(bytes).ok().map(|(v, r)| (Got::Str(v), r)),
        }
    }

    /// The values of `kinds` read one after the other, and the bytes left; `None` when one
    /// is refused.
    fn read_cursor(kinds: &[Kind], bytes: &[u8]) -> Option<(Vec<Got>, Vec<u8>)> {
        let mut c = Cursor::new(bytes);
        let got = kinds
            .iter()
            .map(|&k| by_cursor(k, &mut c))
            .collect::<Result<_, _>>()
            .ok()?;
        Some((got, c.rest().to_vec()))
    }

    fn read_postcard(kinds: &[Kind], mut bytes: &[u8]) -> Option<(Vec<Got>, Vec<u8>)> {
        let mut got = Vec::new();
        for &k in kinds {
            let (v, rest) = by_postcard(k, bytes)?;
            got.push(v);
            bytes = rest;
        }
        Some((got, bytes.to_vec()))
    }

    /// Seeded runs of random values of every kind, as postcard writes them one after the
    /// other: the cursor reads each back; refuses every truncation; and of the runs with a
    /// byte damaged, accepts exactly those postcard accepts, reading the same values and
    /// leaving the same bytes.
    #[test]
    fn the_cursor_agrees_with_postcard() {
        let mut rng = SplitMix64::new(11);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..400 {
            let kinds: Vec<Kind> = (0..1 + rng.below(8))
                .map(|_| KINDS[rng.below(KINDS.len() as u64) as usize])
                .collect();
            let bytes: Vec<u8> = kinds.iter().flat_map(|&k| encode(k, &mut rng)).collect();
            let want = read_postcard(&kinds, &bytes).expect("postcard reads its own bytes");
            assert!(want.1.is_empty());
            assert_eq!(read_cursor(&kinds, &bytes), Some(want), "{kinds:?}");
            for cut in 0..bytes.len() {
                assert_eq!(
                    read_cursor(&kinds, &bytes[..cut]),
                    None,
                    "{kinds:?} cut at {cut}"
                );
            }
            for _ in 0..40 {
                let damaged = damaged_copy(&mut rng, &bytes);
                let found = read_cursor(&kinds, &damaged);
                assert_eq!(
                    found,
                    read_postcard(&kinds, &damaged),
                    "{kinds:?} {damaged:?}"
                );
                match found {
                    Some(_) => accepted += 1,
                    None => refused += 1,
                }
            }
        }
        assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
    }
}
