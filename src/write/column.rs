//! One field's buffered values, written out as chunks.

use crate::error::Result;
use crate::schema::Codec;
use crate::segment::Appender;
use crate::segment::format::{ChunkRef, encode_lz4_table, push_lz4_block};

/// A chunk is cut before it would pass this size (lz4 offsets are u32).
const MAX_CHUNK_BYTES: usize = 1 << 31;

/// One field's data not yet written, and the chunks already written.
pub(crate) struct Column {
    step_bytes: usize,
    codec: Codec,
    steps: u32,
    /// Raw: the step values back to back (those not streamed yet). Lz4: the compressed blocks.
    data: Vec<u8>,
    /// Raw values of the current chunk already streamed to the appender ([`Column::stream`]);
    /// 0 when the chunk is all in `data`.
    streamed: u64,
    lz4_ends: Vec<u32>,
    lz4_kinds: Vec<u8>,
    chunks: Vec<ChunkRef>,
}

impl Column {
    pub fn new(step_bytes: usize, codec: Codec) -> Column {
        Column {
            step_bytes,
            codec,
            steps: 0,
            data: Vec::new(),
            streamed: 0,
            lz4_ends: Vec::new(),
            lz4_kinds: Vec::new(),
            chunks: Vec::new(),
        }
    }

    pub fn push(&mut self, value: &[u8]) {
        match self.codec {
            Codec::Raw => self.data.extend_from_slice(value),
            Codec::Lz4 => push_lz4_block(
                value,
                &mut self.lz4_ends,
                &mut self.lz4_kinds,
                &mut self.data,
            ),
        }
        self.steps += 1;
    }

    /// Whether one more step could push the current chunk past [`MAX_CHUNK_BYTES`].
    pub fn is_full(&self) -> bool {
        self.streamed as usize + self.buffered_bytes() + self.step_bytes * 2 > MAX_CHUNK_BYTES
    }

    /// Whether this column's values can be streamed: raw values are the payload as they come;
    /// an lz4 payload starts with a table of every block's end, known only at the last one.
    pub fn streamable(&self) -> bool {
        self.codec == Codec::Raw
    }

    /// Hands the buffered raw values to `appender`'s open chunk (which this column then owns
    /// until [`Column::flush`] closes it), keeping the buffer's memory for the next values.
    pub fn stream(&mut self, appender: &mut Appender) -> Result<()> {
        debug_assert!(self.streamable());
        appender.stream(&self.data)?;
        self.streamed += self.data.len() as u64;
        self.data.clear();
        Ok(())
    }

    /// The buffered values (not yet streamed nor flushed), steps back to back, when the
    /// buffer holds them as they came (raw); `None` for lz4, whose buffer is compressed.
    pub fn raw_values(&self) -> Option<&[u8]> {
        (self.codec == Codec::Raw).then_some(&self.data[..])
    }

    /// The chunks written so far, in step order.
    pub fn take_chunks(&mut self) -> Vec<ChunkRef> {
        std::mem::take(&mut self.chunks)
    }

    pub fn buffered_bytes(&self) -> usize {
        self.data.len() + self.lz4_ends.len() * 5
    }

    pub fn flush(&mut self, appender: &mut Appender) -> Result<u64> {
        if self.steps == 0 {
            return Ok(0);
        }
        let step_bytes = self.step_bytes as u32;
        let chunk = match self.codec {
            Codec::Raw if self.streamed > 0 => {
                appender.stream(&self.data)?;
                self.streamed = 0;
                appender.close_stream(Codec::Raw, self.steps, step_bytes)?
            }
            Codec::Raw => appender.append(Codec::Raw, self.steps, step_bytes, &[&self.data])?,
            Codec::Lz4 => {
                let table = encode_lz4_table(&self.lz4_ends, &self.lz4_kinds);
                appender.append(Codec::Lz4, self.steps, step_bytes, &[&table, &self.data])?
            }
        };
        self.chunks.push(chunk);
        self.data.clear();
        self.lz4_ends.clear();
        self.lz4_kinds.clear();
        self.steps = 0;
        Ok(chunk.payload_len)
    }
}
