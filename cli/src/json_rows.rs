//! The lines `ls --json` prints, written by hand into one buffer: each is the bytes of
//! [`episode_json`](crate::json::episode_json)`(..).to_string()` (plus `split`, `shard` and
//! `store` when set), keys in the same sorted order, without serde. Through serde_json a
//! call per field, each a few buffered writes, a formatted timestamp per row and a `Vec`
//! of tags per row were a third of listing 100k episodes; here a row is appends to a `Vec`,
//! and a timestamp is formatted once per distinct second (rows of a chunk were recorded
//! seconds apart).

use std::io::Write;

use serde_json::ser::{CompactFormatter, Formatter};
use trajstore::{CatalogRow, MetadataRef, ValueRef};

use crate::json::{timestamp, timestamp_in};

/// Rows are handed to the writer once this many bytes are buffered: one write call per
/// 64 KiB, as the `BufWriter` before had it (and a pipe holds by default).
const WRITE_AT: usize = 1 << 16;

/// Members that only some listings have: the split of each row (when the store has a split
/// spec) and, for a listing of several shards, the shard's number and path.
#[derive(Default)]
pub struct Extras<'a> {
    pub split: Option<&'a str>,
    pub shard: Option<&'a Shard>,
}

/// A shard's two members, escaped once for all its rows.
pub struct Shard {
    /// `,"shard":N`
    number: Vec<u8>,
    /// `,"store":"PATH"`
    store: Vec<u8>,
}

impl Shard {
    pub fn new(number: usize, store: &str) -> Self {
        let mut shard = Shard {
            number: b",\"shard\":".to_vec(),
            store: b",\"store\":".to_vec(),
        };
        push_integer(&mut shard.number, number);
        push_string(&mut shard.store, store);
        shard
    }
}

/// Buffered `ls --json` lines, handed to a writer 64 KiB at a time.
#[derive(Default)]
pub struct JsonRows {
    out: Vec<u8>,
    started: LastSecond,
    ended: LastSecond,
}

impl JsonRows {
    pub fn new() -> Self {
        JsonRows {
            out: Vec::with_capacity(WRITE_AT + 4096),
            ..Default::default()
        }
    }

    /// Appends episode `e`'s line (newline included), `metadata` its map (the catalog has
    /// none), and hands the buffer to `w` once it is full.
    pub fn push(
        &mut self,
        e: &CatalogRow<'_>,
        metadata: MetadataRef<'_>,
        extras: &Extras<'_>,
        w: &mut impl Write,
    ) -> std::io::Result<()> {
        let out = &mut self.out;
        out.extend_from_slice(b"{\"ended_at\":");
        self.ended.push(out, e.ended_at_us());
        out.extend_from_slice(b",\"env\":");
        push_string(out, e.env());
        out.extend_from_slice(b",\"episode\":");
        push_integer(out, e.id().get());
        out.extend_from_slice(b",\"metadata\":");
        push_metadata(out, metadata);
        out.extend_from_slice(b",\"outcome\":");
        push_string(out, e.outcome().name());
        out.extend_from_slice(b",\"raw_bytes\":");
        push_integer(out, e.raw_bytes());
        out.extend_from_slice(b",\"return\":");
        push_float(out, e.total_return());
        out.extend_from_slice(b",\"seed\":");
        match e.seed() {
            Some(seed) => push_integer(out, seed),
            None => out.extend_from_slice(b"null"),
        }
        if let Some(shard) = extras.shard {
            out.extend_from_slice(&shard.number);
        }
        if let Some(split) = extras.split {
            out.extend_from_slice(b",\"split\":");
            push_string(out, split);
        }
        out.extend_from_slice(b",\"started_at\":");
        self.started.push(out, e.started_at_us());
        out.extend_from_slice(b",\"steps\":");
        push_integer(out, e.steps());
        if let Some(shard) = extras.shard {
            out.extend_from_slice(&shard.store);
        }
        out.extend_from_slice(b",\"stored_bytes\":");
        push_integer(out, e.stored_bytes());
        out.extend_from_slice(b",\"tags\":[");
        for (i, tag) in e.tags().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_string(out, tag);
        }
        out.extend_from_slice(b"],\"user\":");
        push_string(out, e.user());
        out.extend_from_slice(b"}\n");
        if self.out.len() >= WRITE_AT {
            self.write_out(w)?;
        }
        Ok(())
    }

    /// Hands every buffered line to `w` (the caller flushes `w`).
    pub fn write_out(&mut self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }
}

/// One timestamp column's last second, quoted: a timestamp prints to the second, so a row
/// recorded in the same second as the one before prints the same text.
#[derive(Default)]
struct LastSecond {
    second: Option<i64>,
    quoted: Vec<u8>,
}

impl LastSecond {
    fn push(&mut self, out: &mut Vec<u8>, us: i64) {
        let second = us.div_euclid(1_000_000);
        if self.second != Some(second) {
            // Its text needs no escaping: digits, `-`, `:`, `T` and `Z`.
            self.quoted.clear();
            self.quoted.push(b'"');
            match timestamp_in(us, &mut [0; 20]) {
                Some(text) => self.quoted.extend_from_slice(text.as_bytes()),
                None => self.quoted.extend_from_slice(timestamp(us).as_bytes()),
            }
            self.quoted.push(b'"');
            self.second = Some(second);
        }
        out.extend_from_slice(&self.quoted);
    }
}

fn push_metadata(out: &mut Vec<u8>, map: MetadataRef<'_>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_string(out, key);
        out.push(b':');
        push_value(out, value);
    }
    out.push(b'}');
}

/// A metadata value as [`value_json`](crate::json::value_json) prints it.
fn push_value(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        ValueRef::Int(i) => push_integer(out, i),
        ValueRef::Float(f) => push_float(out, f),
        ValueRef::Str(s) => push_string(out, s),
        ValueRef::Ints(items) => push_list(out, items, push_integer),
        ValueRef::Floats(items) => push_list(out, items, push_float),
    }
}

fn push_list<T: Copy>(out: &mut Vec<u8>, items: &[T], push: fn(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (i, &item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push(out, item);
    }
    out.push(b']');
}

fn push_integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float as serde_json prints one: its own shortest form, `null` when not finite.
fn push_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    // serde_json's own float writer, so the digits stay serde_json's through its upgrades.
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_f64(out, f);
}

/// A JSON string escaped as serde_json escapes one: `"` and `\` with a backslash, the
/// control characters below U+0020 as `\b \t \n \f \r` or `\u00xx`, the rest as it is.
fn push_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            b'\t' => b't',
            b'\n' => b'n',
            0x0c => b'f',
            b'\r' => b'r',
            0x20.. => continue,
            _ => 0,
        };
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        match short {
            0 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            c => out.extend_from_slice(&[b'\\', c]),
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    /// Every ASCII character alone and inside text, and non-ASCII: escaped as serde_json
    /// escapes it.
    #[test]
    fn a_string_is_escaped_as_serde_json_escapes_it() {
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        texts.extend(
            [
                "",
                "plain",
                "a\"b\\c\nd\u{1}e\u{1f}f\u{7f}",
                "ünïcødé \u{2028}\u{fffd} 😀",
                "\\\\\"\"",
            ]
            .map(String::from),
        );
        texts.push((0u8..0x80).map(char::from).collect());
        for text in &texts {
            let mut out = Vec::new();
            super::push_string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// Floats (a return, a metadata value) as serde_json's `Value` prints them: its digits,
    /// `null` when not finite.
    #[test]
    fn a_float_prints_as_serde_json_prints_it() {
        for f in [
            0.0,
            -0.0,
            1.0,
            -2.0,
            0.1,
            1.0 / 3.0,
            1e15,
            1e16,
            1e300,
            -1e-7,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::from(f32::MAX) * 2.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let mut out = Vec::new();
            super::push_float(&mut out, f);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::Value::from(f).to_string(),
                "{f:?}"
            );
        }
    }

    /// A column's timestamps, formatted once per second: each is still its own second's
    /// text, across second boundaries either side of the epoch and years `timestamp` prints
    /// without the in-place writer.
    #[test]
    fn a_timestamp_remembered_per_second_is_each_row_s_own() {
        let mut last = super::LastSecond::default();
        for us in [
            1_700_000_000_000_000,
            1_700_000_000_999_999,
            1_700_000_001_000_000,
            1_700_000_000_999_999,
            0,
            -1,
            -1_000_000,
            -1_000_001,
            -62_167_219_200_000_001,
            -62_167_219_200_000_002,
            253_402_300_800_000_000,
            253_402_300_799_999_999,
        ] {
            let mut out = Vec::new();
            last.push(&mut out, us);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", crate::json::timestamp(us)),
                "{us}"
            );
        }
    }
}
