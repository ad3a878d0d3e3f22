//! The metadata maps of a batch of episodes ([`MetadataMaps`]), read by hand from their
//! stored `episodes` records: the record's head is stepped over and its map copied into one
//! flat, checked batch (keys and strings in one text buffer, numbers in two arrays), with no
//! `String` or tree node per entry. A listing of 100k episodes spent a third of its time
//! building `Info` maps and dropping them again; it now reads them through [`MetadataRef`]s.
//! Read through the shared postcard cursor: what postcard's deserializer would refuse up to
//! the end of the map (an overlong varint, a string not UTF-8, say) is refused here too.

use super::records::{EpisodeRecordV1, Outcome, Record};
use crate::error::{ReadError, Result};
use crate::postcard_cursor::{Bad, Cursor};
use crate::value::{Info, Value};

/// A range of one of a batch's buffers.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
}

/// A value, with its text or numbers in the batch's buffers.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Span),
    Ints(Span),
    Floats(Span),
}

/// The metadata maps of several episodes, in the order they were asked for
/// ([`Snapshot::metadata_maps`](crate::Snapshot::metadata_maps)); map `i` is [`get(i)`](Self::get).
#[derive(Clone, Debug, Default)]
pub struct MetadataMaps {
    /// Every key and string value, one after the other.
    text: String,
    ints: Vec<i64>,
    floats: Vec<f64>,
    /// `(key, value)` of every map, map after map, each in key order.
    entries: Vec<(Span, Slot)>,
    /// Map `i` is `entries[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<usize>,
}

/// A metadata value borrowed from where it was read: a [`Value`] without its copies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Ints(&'a [i64]),
    Floats(&'a [f64]),
}

impl ValueRef<'_> {
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.to_owned()),
            ValueRef::Ints(v) => Value::Ints(v.to_vec()),
            ValueRef::Floats(v) => Value::Floats(v.to_vec()),
        }
    }
}

/// So that one writer serves a map read into a batch and an [`Info`] alike.
impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(s),
            Value::Ints(v) => ValueRef::Ints(v),
            Value::Floats(v) => ValueRef::Floats(v),
        }
    }
}

/// One episode's metadata map in a [`MetadataMaps`].
#[derive(Clone, Copy, Debug)]
pub struct MetadataRef<'a> {
    maps: &'a MetadataMaps,
    entries: &'a [(Span, Slot)],
}

impl<'a> MetadataRef<'a> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Its entries, in key order (an [`Info`]'s order).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, ValueRef<'a>)> + 'a {
        let maps = self.maps;
        self.entries
            .iter()
            .map(move |&(key, value)| (maps.text(key), maps.value(value)))
    }

    /// The map as an owned [`Info`].
    pub fn to_info(&self) -> Info {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_value()))
            .collect()
    }
}

impl MetadataMaps {
    pub(crate) fn with_capacity(maps: usize) -> Self {
        MetadataMaps {
            entries: Vec::with_capacity(maps),
            ends: Vec::with_capacity(maps),
            ..Default::default()
        }
    }

    /// How many maps.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Map `i` (below [`len`](Self::len)).
    pub fn get(&self, i: usize) -> MetadataRef<'_> {
        assert!(i < self.len(), "map {i} of {}", self.len());
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        MetadataRef {
            maps: self,
            entries: &self.entries[start..self.ends[i]],
        }
    }

    /// Appends the metadata map of episode `id` from its stored `episodes` record, checked
    /// (an error leaves the batch part-written: the caller drops it).
    pub(crate) fn push_record(&mut self, id: u64, bytes: &[u8]) -> Result<()> {
        self.read_record(bytes).map_err(|reason| {
            ReadError::CorruptRecord {
                table: EpisodeRecordV1::TABLE,
                reason: format!("episode {id}: {reason}"),
            }
            .into()
        })
    }

    /// Appends a map held as an [`Info`] (a deleted episode's, from its tombstone).
    pub(crate) fn push_info(&mut self, info: &Info) {
        for (key, value) in info {
            let key = self.put_text(key);
            let value = match value.into() {
                ValueRef::Bool(b) => Slot::Bool(b),
                ValueRef::Int(i) => Slot::Int(i),
                ValueRef::Float(f) => Slot::Float(f),
                ValueRef::Str(s) => Slot::Str(self.put_text(s)),
                ValueRef::Ints(v) => Slot::Ints(put(&mut self.ints, v)),
                ValueRef::Floats(v) => Slot::Floats(put(&mut self.floats, v)),
            };
            self.entries.push((key, value));
        }
        self.ends.push(self.entries.len());
    }

    /// The stored `EpisodeEnvelope::V1(EpisodeRecordV1)` (schema/index.md): every field
    /// before `metadata` stepped over (its strings checked UTF-8, as decoding them would),
    /// the map read, the chunk lists after it left alone.
    fn read_record(&mut self, bytes: &[u8]) -> Result<(), Bad> {
        let mut r = Cursor::new(bytes);
        if r.u32()? != 0 {
            return Err("a record version this build does not know (refused, never guessed)");
        }
        r.skip_str()?; // user
        r.skip_str()?; // env
        r.u64()?; // schema_id
        for _ in 0..3 {
            r.i64()?; // started_at_us, ended_at_us, committed_at_us
        }
        r.u32()?; // steps
        r.f64()?; // total_return
        r.variant(Outcome::VARIANTS.len() as u32)?;
        r.option_u64()?; // seed
        for _ in 0..r.len()? {
            r.skip_str()?; // a tag
        }
        for _ in 0..r.len()? {
            let key = self.put_text(r.str()?);
            // `Value`'s variants, by index (value.rs: never reordered).
            let value = match r.u32()? {
                0 => Slot::Bool(r.bool()?),
                1 => Slot::Int(r.i64()?),
                2 => Slot::Float(r.f64()?),
                3 => Slot::Str(self.put_text(r.str()?)),
                4 => Slot::Ints(read_list(&mut self.ints, &mut r, Cursor::i64)?),
                5 => Slot::Floats(read_list(&mut self.floats, &mut r, Cursor::f64)?),
                _ => return Err("a metadata value of a kind this build does not know"),
            };
            self.entries.push((key, value));
        }
        self.ends.push(self.entries.len());
        Ok(())
    }

    fn put_text(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn text(&self, span: Span) -> &str {
        &self.text[span.start..span.end]
    }

    fn value(&self, slot: Slot) -> ValueRef<'_> {
        match slot {
            Slot::Bool(b) => ValueRef::Bool(b),
            Slot::Int(i) => ValueRef::Int(i),
            Slot::Float(f) => ValueRef::Float(f),
            Slot::Str(s) => ValueRef::Str(self.text(s)),
            Slot::Ints(s) => ValueRef::Ints(&self.ints[s.start..s.end]),
            Slot::Floats(s) => ValueRef::Floats(&self.floats[s.start..s.end]),
        }
    }
}

/// Reads a postcard list of values into `into`: the span they fill.
fn read_list<'a, T>(
    into: &mut Vec<T>,
    r: &mut Cursor<'a>,
    read: fn(&mut Cursor<'a>) -> Result<T, Bad>,
) -> Result<Span, Bad> {
    let start = into.len();
    for _ in 0..r.len()? {
        into.push(read(r)?);
    }
    Ok(Span {
        start,
        end: into.len(),
    })
}

/// Appends `items` to `into`: the span they fill.
fn put<T: Copy>(into: &mut Vec<T>, items: &[T]) -> Span {
    let start = into.len();
    into.extend_from_slice(items);
    Span {
        start,
        end: into.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::Outcome;

    /// A record with every kind of value before and in its map, and chunk lists after it.
    fn record(metadata: Info) -> EpisodeRecordV1 {
        EpisodeRecordV1 {
            user: "alice".into(),
            env: "cartpole".into(),
            schema_id: 7,
            started_at_us: -1,
            ended_at_us: 2,
            committed_at_us: i64::MIN,
            steps: 50,
            total_return: 1.5,
            outcome: Outcome::Interrupted,
            seed: Some(u64::MAX),
            tags: vec!["a".into(), "ünï".into()],
            metadata,
            raw_bytes: 1,
            stored_bytes: 1,
            fields: vec![vec![]],
        }
    }

    fn every_kind() -> Info {
        let mut metadata = Info::new();
        metadata.insert("level".into(), Value::Int(3));
        metadata.insert("name".into(), Value::Str("ünï\n\"".into()));
        metadata.insert("flag".into(), Value::Bool(true));
        metadata.insert("nan".into(), Value::Float(f64::NAN));
        metadata.insert("neg".into(), Value::Float(-0.0));
        metadata.insert("ints".into(), Value::Ints(vec![i64::MIN, 0, i64::MAX]));
        metadata.insert("floats".into(), Value::Floats(vec![0.5, f64::INFINITY]));
        metadata.insert("none".into(), Value::Ints(vec![]));
        metadata.insert(String::new(), Value::Str(String::new()));
        metadata
    }

    /// Info compared bit for bit (NaN is not equal to itself).
    fn bits(info: &Info) -> String {
        format!(
            "{:?}",
            info.iter()
                .map(|(k, v)| (k, v.render()))
                .collect::<Vec<_>>()
        )
    }

    fn read(bytes: &[u8]) -> Result<Info> {
        let mut maps = MetadataMaps::default();
        maps.push_record(5, bytes)?;
        Ok(maps.get(0).to_info())
    }

    /// The hand reader reads the metadata serde's full decoder reads, tags and all before it.
    #[test]
    fn the_metadata_of_a_record_is_read_without_decoding_its_chunks() {
        let record = record(every_kind());
        let bytes = record.encode();
        let decoded = EpisodeRecordV1::decode(&bytes).unwrap();
        assert_eq!(bits(&read(&bytes).unwrap()), bits(&decoded.metadata));
        assert_eq!(bits(&read(&bytes).unwrap()), bits(&record.metadata));
        let plain = EpisodeRecordV1 {
            metadata: Info::new(),
            ..record
        };
        assert_eq!(read(&plain.encode()).unwrap(), Info::new());
        assert!(read(&[1]).is_err());
    }

    /// Maps from records, from `Info`s and empty ones, interleaved in one batch, each read
    /// back as itself, entries in key order.
    #[test]
    fn a_batch_keeps_each_map_apart_in_key_order() {
        let mut small = Info::new();
        small.insert("b".into(), Value::Int(-2));
        small.insert("a".into(), Value::Floats(vec![1.0]));
        let mut maps = MetadataMaps::default();
        maps.push_record(1, &record(every_kind()).encode()).unwrap();
        maps.push_info(&Info::new());
        maps.push_info(&small);
        maps.push_record(4, &record(small.clone()).encode())
            .unwrap();
        assert_eq!(maps.len(), 4);
        assert_eq!(bits(&maps.get(0).to_info()), bits(&every_kind()));
        assert!(maps.get(1).is_empty());
        for i in [2, 3] {
            let map = maps.get(i);
            let entries: Vec<_> = map.iter().collect();
            assert_eq!(
                entries,
                [("a", ValueRef::Floats(&[1.0])), ("b", ValueRef::Int(-2))]
            );
            assert_eq!(map.to_info(), small);
        }
    }

    /// A record cut short anywhere, or of a version this build does not know, is a corrupt
    /// record naming the table and the episode, never a panic or a wrong map.
    #[test]
    fn a_damaged_record_is_refused_naming_the_episode() {
        let bytes = record(every_kind()).encode();
        // After the map: raw_bytes 1, stored_bytes 1 and the chunk lists `[[]]`, 4 bytes.
        let map_end = bytes.len() - 4;
        for cut in 0..map_end {
            match read(&bytes[..cut]) {
                Err(crate::Error::Read(ReadError::CorruptRecord { table, reason })) => {
                    assert_eq!(table, "episodes");
                    assert!(reason.starts_with("episode 5: "), "{reason}");
                }
                other => panic!("read a record cut at {cut}: {other:?}"),
            }
        }
        let other_version = [&[1u8][..], &bytes[1..]].concat();
        assert!(read(&other_version).is_err());
    }

    /// Where `needle` starts in `bytes`, the only place it does.
    fn find(bytes: &[u8], needle: &[u8]) -> usize {
        let at: Vec<usize> = (0..=bytes.len() - needle.len())
            .filter(|&i| bytes[i..].starts_with(needle))
            .collect();
        assert_eq!(at.len(), 1, "{needle:?} in {bytes:?}");
        at[0]
    }

    /// `bytes` with `len` bytes at `at` replaced by `with`.
    fn splice(bytes: &[u8], at: usize, len: usize, with: &[u8]) -> Vec<u8> {
        [&bytes[..at], with, &bytes[at + len..]].concat()
    }

    /// Records postcard's deserializer refuses, which this reader took before it read
    /// through the shared cursor (a user name not UTF-8, stepped over unchecked; the seed's
    /// option tag and a value's variant index read as varints of up to 10 bytes; an `Int`
    /// whose 10th byte held bits past 64, dropped), are refused naming the episode and what
    /// is wrong.
    #[test]
    fn a_record_is_refused_where_postcard_refuses_it() {
        let record = |value: Value| {
            let mut r = record(Info::from([("k".to_owned(), value)]));
            r.seed = None;
            r.total_return = 1.25;
            r
        };
        let flag = record(Value::Bool(true)).encode();
        let zero = record(Value::Int(0)).encode();
        for bytes in [&flag, &zero] {
            assert!(read(bytes).is_ok());
        }
        // The seed's tag follows total_return's 8 bytes and the outcome's variant.
        let seed = find(&flag, &1.25f64.to_le_bytes()) + 9;
        assert_eq!(flag[seed], 0);
        // The map: one entry, key "k", then the value's variant and its bytes.
        let flag_at = find(&flag, &[1, 1, b'k', 0, 1]) + 3;
        let zero_at = find(&zero, &[1, 1, b'k', 1, 0]) + 4;
        for (bad, reason) in [
            (
                splice(&flag, find(&flag, b"alice"), 1, &[0xff]),
                "episode 5: a string that is not UTF-8",
            ),
            (
                splice(&flag, seed, 1, &[0x80, 0x00]),
                "episode 5: an option tag other than 0 or 1",
            ),
            (
                splice(&flag, flag_at, 1, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
                "episode 5: a u32 varint of more than 5 bytes",
            ),
            (
                splice(
                    &zero,
                    zero_at,
                    1,
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],
                ),
                "episode 5: a 64-bit varint with bits past 64",
            ),
        ] {
            assert!(EpisodeRecordV1::decode(&bad).is_err(), "{bad:?}");
            match read(&bad) {
                Err(crate::Error::Read(ReadError::CorruptRecord { table, reason: r })) => {
                    assert_eq!((table, r.as_str()), ("episodes", reason));
                }
                other => panic!("read a damaged record: {other:?}"),
            }
        }
    }
}
