//! One field's buffered values, written out as chunks.

use crate::error::Result;
use crate::schema::Codec;
use crate::segment::format::{
    ChunkRef, HEADER_BYTES, align_up, encode_lz4_table, lz4_table_bytes, push_lz4_block,
};
use crate::segment::{Appender, ChunkSink};

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

    /// Writes the buffered values out as a chunk (closing the streamed one); returns the
    /// chunk's payload bytes.
    pub fn flush(&mut self, appender: &mut Appender) -> Result<u64> {
        if self.streamed > 0 {
            appender.stream(&self.data)?;
            self.streamed = 0;
            let chunk = appender.close_stream(Codec::Raw, self.steps, self.step_bytes as u32)?;
            return Ok(self.flushed(chunk));
        }
        self.flush_into(appender)
    }

    /// Writes the buffered values, none of them streamed, out as a chunk into `sink`.
    pub fn flush_into(&mut self, sink: &mut impl ChunkSink) -> Result<u64> {
        debug_assert_eq!(self.streamed, 0, "a streamed chunk is closed by flush");
        if self.steps == 0 {
            return Ok(0);
        }
        let step_bytes = self.step_bytes as u32;
        let chunk = match self.codec {
            Codec::Raw => sink.append_chunk(Codec::Raw, self.steps, step_bytes, &[&self.data])?,
            Codec::Lz4 => {
                let table = encode_lz4_table(&self.lz4_ends, &self.lz4_kinds);
                sink.append_chunk(Codec::Lz4, self.steps, step_bytes, &[&table, &self.data])?
            }
        };
        Ok(self.flushed(chunk))
    }

    /// The bytes of a record [`Column::flush_into`] would write now (header, payload and
    /// padding), or 0 when nothing is buffered.
    pub fn record_bytes(&self) -> u64 {
        if self.steps == 0 {
            return 0;
        }
        let payload = match self.codec {
            Codec::Raw => self.data.len(),
            Codec::Lz4 => lz4_table_bytes(self.lz4_ends.len()) + self.data.len(),
        };
        align_up(HEADER_BYTES as u64 + payload as u64)
    }

    /// Notes `chunk` as written and empties the buffer.
    fn flushed(&mut self, chunk: ChunkRef) -> u64 {
        self.chunks.push(chunk);
        self.data.clear();
        self.lz4_ends.clear();
        self.lz4_kinds.clear();
        self.steps = 0;
        chunk.payload_len
    }
}
