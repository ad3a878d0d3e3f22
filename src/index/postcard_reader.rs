//! A cursor over postcard bytes (schema/index.md, "Value encoding"), for the readers that
//! decode stored values by hand rather than through serde: the catalog chunks
//! (`chunk_decode`) and the metadata maps of episode records (`metadata`). Each reads only
//! what it needs and builds no per-value allocation; their tests check them against what
//! serde writes.

use super::records::Outcome;

/// What was wrong with the bytes (the caller names the table and the row).
pub(super) type Bad = &'static str;

/// A cursor over postcard bytes.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(super) fn varint(&mut self) -> Result<u64, Bad> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err("a varint runs past its 10 bytes or the value")
    }

    pub(super) fn u32(&mut self) -> Result<u32, Bad> {
        u32::try_from(self.varint()?).map_err(|_| "a u32 out of range")
    }

    pub(super) fn i64(&mut self) -> Result<i64, Bad> {
        let z = self.varint()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    pub(super) fn f64(&mut self) -> Result<f64, Bad> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<8>()
            .ok_or("an f64 past the end")?;
        self.bytes = rest;
        Ok(f64::from_le_bytes(*head))
    }

    pub(super) fn bool(&mut self) -> Result<bool, Bad> {
        let (&byte, rest) = self.bytes.split_first().ok_or("a bool past the end")?;
        self.bytes = rest;
        match byte {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a bool other than 0 or 1"),
        }
    }

    /// A sequence length, at most the bytes left (every element takes one byte or more).
    pub(super) fn len(&mut self) -> Result<usize, Bad> {
        let n = self.varint()?;
        if n > self.bytes.len() as u64 {
            return Err("a sequence longer than the bytes left");
        }
        Ok(n as usize)
    }

    /// A byte string's bytes.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.len()?;
        let (s, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(s)
    }

    pub(super) fn str(&mut self) -> Result<&'a str, Bad> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string that is not UTF-8")
    }

    pub(super) fn outcome(&mut self) -> Result<Outcome, Bad> {
        match self.varint()? {
            0 => Ok(Outcome::Terminated),
            1 => Ok(Outcome::Truncated),
            2 => Ok(Outcome::Interrupted),
            _ => Err("an unknown outcome"),
        }
    }

    pub(super) fn option_u64(&mut self) -> Result<Option<u64>, Bad> {
        match self.varint()? {
            0 => Ok(None),
            1 => Ok(Some(self.varint()?)),
            _ => Err("an option tag other than 0 or 1"),
        }
    }
}
