//! Appending records to segment files.
//!
//! Each [`Appender`] owns one segment file exclusively: it holds an OS file lock on it for as
//! long as it lives, so no two writers (threads or processes) ever append to the same file and
//! recorders never wait on each other for blob writes. A writer that dies releases its lock
//! with its process; its segment can then be adopted by a later writer, which appends after
//! whatever the dead writer left (that tail is garbage the index never references).

use std::hash::Hasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// The format's xxh3-64 (seed 0), with run-time AVX2 dispatch: a streamed chunk is hashed as
// its pieces are written, and this is the hot loop of recording large frames.
use twox_hash::XxHash3_64;

use super::format::{
    ChunkRef, HEADER_BYTES, MARKER_MAGIC, SEGMENT_FORMAT_VERSION, align_up, checksum,
    decode_file_header, encode_file_header, encode_meta_record_header, encode_record_header,
};
use super::manifest::{ABORTED, MarkerV1};
use super::sync_thread::SyncThread;
use super::{parse_segment_name, segment_path};
use crate::error::{Error, Result};
use crate::index::presync::SyncSignal;
use crate::io::{StoreFile, StoreIo};
use crate::schema::Codec;

/// Records up to this size (header and payload) are gathered in memory and written together
/// at the next sync: an episode's small chunks and its manifest then reach the file in one
/// write instead of two per record. Larger ones are written at once.
const GATHER_BYTES: usize = 256 << 10;

/// An exclusively owned, open segment file and where its next record goes.
#[derive(Debug)]
pub struct Appender {
    id: u64,
    path: PathBuf,
    file: Arc<dyn StoreFile>,
    /// Where the next record starts (64-byte aligned).
    end: u64,
    /// Small records not written yet, with the zero padding between them: always the last
    /// bytes before `end` ([`GATHER_BYTES`]; they are written before anything is written
    /// past them: a larger record, a streamed chunk). Nothing reads a segment's records
    /// before the sync that makes them durable, and every sync writes these first.
    gathered: Vec<u8>,
    /// Runs this segment's syncs beside the index commit; started at the first one.
    sync_thread: Option<SyncThread>,
    /// A sync [`Appender::begin_sync`] started, not yet waited for.
    syncing: bool,
    /// Set after a failed write: the tail is in an unknown state, never append again.
    poisoned: bool,
    /// Records were appended since the last sync (a commit marker): synced on a clean drop.
    unsynced: bool,
    /// A chunk being streamed at `end` ([`Appender::stream`]); nothing else is appended until
    /// it is closed.
    open: Option<OpenRecord>,
}

/// A chunk written piece by piece while its episode records: its header slot at the
/// appender's `end` is written last, once the payload's length and checksum are known.
struct OpenRecord {
    payload_len: u64,
    hasher: XxHash3_64,
}

impl std::fmt::Debug for OpenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenRecord")
            .field("payload_len", &self.payload_len)
            .finish_non_exhaustive()
    }
}

impl Appender {
    fn new(id: u64, path: PathBuf, file: Arc<dyn StoreFile>, end: u64) -> Appender {
        Appender {
            id,
            path,
            file,
            end,
            gathered: Vec::new(),
            sync_thread: None,
            syncing: false,
            poisoned: false,
            unsynced: false,
            open: None,
        }
    }

    /// Appends one record whose payload is the concatenation of `parts`, and returns where it
    /// went. The record is not durable until [`Appender::sync`].
    pub fn append(
        &mut self,
        codec: Codec,
        steps: u32,
        step_bytes: u32,
        parts: &[&[u8]],
    ) -> Result<ChunkRef> {
        let (header, chunk) = chunk_record(self.id, self.end, codec, steps, step_bytes, parts);
        self.write_checked(&header, parts)?;
        Ok(chunk)
    }

    /// Appends records laid out in memory as a segment holds them ([`RecordBuf`], from
    /// offset 0) and returns the offset they start at: a chunk at offset `o` of `records` is
    /// at `start + o` of this segment. Not durable until [`Appender::sync`].
    pub fn append_records(&mut self, records: &[u8]) -> Result<u64> {
        let start = self.end;
        // Record headers hold no segment id or offset, and the buffer's records are 64-byte
        // aligned from its start, which goes at a 64-byte aligned end.
        self.write_checked(&[], &[records])?;
        Ok(start)
    }

    /// Appends a manifest or commit marker record (`magic` from segment/format.rs) and returns
    /// the offset of its header. Not durable until [`Appender::sync`] (or a clean drop).
    pub fn append_meta(&mut self, magic: [u8; 4], payload: &[u8]) -> Result<u64> {
        let header = encode_meta_record_header(magic, payload.len() as u64, checksum(payload));
        let offset = self.end;
        self.write_checked(&header, &[payload])?;
        Ok(offset)
    }

    /// Appends commit markers after an index transaction (segment/manifest.rs), best effort:
    /// the episodes' fate is decided, and a failed write only poisons the appender (it is
    /// then sealed) and leaves a manifest unmarked. Markers are written to the file at once,
    /// so that a process killed before its next sync leaves them in the page cache; when one
    /// of them is aborted (its recorder was told the commit failed, or the copy was not the
    /// one indexed), they are also synced, so that `repair` never restores that manifest.
    pub fn append_markers(&mut self, markers: impl IntoIterator<Item = MarkerV1>) {
        let mut aborted = false;
        for marker in markers {
            aborted |= marker.episode == ABORTED;
            if self.append_meta(MARKER_MAGIC, &marker.encode()).is_err() {
                return;
            }
        }
        let _ = if aborted {
            self.sync()
        } else {
            self.write_gathered()
        };
    }

    /// Writes one record at the end; on failure the appender is poisoned.
    fn write_checked(&mut self, header: &[u8], parts: &[&[u8]]) -> Result<()> {
        debug_assert!(
            self.open.is_none(),
            "a record appended over a streamed chunk"
        );
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        let payload_len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let record_len = header.len() as u64 + payload_len;
        // A record that would not fit writes the gathered ones first (a larger one is then
        // written in place, past them).
        if self.gathered.len() as u64 + record_len > GATHER_BYTES as u64 {
            self.write_gathered()?;
        }
        if record_len <= GATHER_BYTES as u64 {
            self.gathered.extend_from_slice(header);
            parts
                .iter()
                .for_each(|p| self.gathered.extend_from_slice(p));
            let padded = align_up(self.end + record_len) - self.end;
            self.gathered
                .resize(self.gathered.len() + (padded - record_len) as usize, 0);
        } else if let Err(e) = self.write_record(header, parts) {
            self.poisoned = true;
            return Err(Error::io(&self.path, e));
        }
        self.end = align_up(self.end + record_len);
        self.unsynced = true;
        Ok(())
    }

    fn write_record(&self, header: &[u8], parts: &[&[u8]]) -> io::Result<()> {
        let mut at = self.end;
        self.file.write_all_at(header, at)?;
        at += header.len() as u64;
        for part in parts {
            self.file.write_all_at(part, at)?;
            at += part.len() as u64;
        }
        Ok(())
    }

    /// Writes the gathered small records to the file (before any sync, and by the writer
    /// right after a commit marker, so a killed process leaves it in the page cache).
    pub fn write_gathered(&mut self) -> Result<()> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        let at = self.end - self.gathered.len() as u64;
        if let Err(e) = self.file.write_all_at(&self.gathered, at) {
            self.poisoned = true;
            return Err(Error::io(&self.path, e));
        }
        self.gathered.clear();
        Ok(())
    }

    /// Writes `part` as the next payload bytes of the chunk being streamed at the end (one is
    /// opened at the first call): the bytes go to the file now, while the episode records,
    /// instead of all at its commit, so a large field is copied once, from a small buffer
    /// still in cache, and the page cache fills as the episode goes. Not durable until
    /// [`Appender::sync`]; not a record until [`Appender::close_stream`].
    pub fn stream(&mut self, part: &[u8]) -> Result<()> {
        if self.open.is_none() {
            // Gathered records go out first, so that every write below the file's length is
            // into the open chunk itself (format.md, invariant 2).
            self.write_gathered()?;
        }
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        let open = self.open.get_or_insert_with(|| OpenRecord {
            payload_len: 0,
            hasher: XxHash3_64::new(),
        });
        let at = self.end + HEADER_BYTES as u64 + open.payload_len;
        if let Err(e) = self.file.write_all_at(part, at) {
            self.poisoned = true;
            return Err(Error::io(&self.path, e));
        }
        open.hasher.write(part);
        open.payload_len += part.len() as u64;
        Ok(())
    }

    /// Makes the streamed chunk a record: writes its header into the slot reserved in front
    /// of its payload and returns where it went. Its bytes were never part of any record
    /// until now, so no reader can have looked at the slot (format.md, invariant 2).
    pub fn close_stream(&mut self, codec: Codec, steps: u32, step_bytes: u32) -> Result<ChunkRef> {
        let open = self
            .open
            .take()
            .expect("close_stream follows stream (write/column.rs)");
        let sum = open.hasher.finish();
        let header = encode_record_header(codec, open.payload_len, steps, step_bytes, sum);
        let chunk = ChunkRef {
            segment: self.id,
            offset: self.end,
            payload_len: open.payload_len,
            steps,
            codec,
            checksum: sum,
        };
        if self.poisoned {
            return Err(self.poisoned_error());
        }
        if let Err(e) = self.file.write_all_at(&header, self.end) {
            self.poisoned = true;
            return Err(Error::io(&self.path, e));
        }
        self.end = align_up(self.end + HEADER_BYTES as u64 + open.payload_len);
        self.unsynced = true;
        Ok(chunk)
    }

    /// Drops a chunk being streamed, if any (its episode was discarded): the next record
    /// starts where it would have, over its bytes, which no record ever included.
    fn abandon_stream(&mut self) {
        self.open = None;
    }

    fn poisoned_error(&self) -> Error {
        Error::io(
            &self.path,
            io::Error::other("an earlier write to this segment failed"),
        )
    }

    /// Appends a record exactly as it is (a 64-byte record header and its payload, checked by
    /// the caller) and returns the offset of its header. Record headers hold no segment id or
    /// offset, so a chunk moves between segments unchanged (compaction).
    pub fn append_record(&mut self, header: &[u8], payload: &[u8]) -> Result<u64> {
        let offset = self.end;
        self.write_checked(header, &[payload])?;
        Ok(offset)
    }

    /// Where the next record goes: the file's length once every record is written.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The segment id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes every appended record durable (fdatasync).
    pub fn sync(&mut self) -> Result<()> {
        self.write_gathered()?;
        self.file.sync_data().map_err(|e| {
            self.poisoned = true;
            Error::io(&self.path, e)
        })?;
        self.unsynced = false;
        Ok(())
    }

    /// Makes every appended record durable (fdatasync) on a helper thread while `during` runs
    /// on this one; `during` gets the sync's signal (index/presync.rs: the index commit waits
    /// for it before its commit can become durable). Returns `during`'s result, or the sync's
    /// error when the sync failed and `during` succeeded regardless (it cannot have, when it
    /// waited for the signal).
    pub fn sync_during<R>(
        &mut self,
        during: impl FnOnce(Arc<SyncSignal>) -> Result<R>,
    ) -> Result<R> {
        let signal = self.begin_sync()?;
        let result = during(signal);
        let synced = self.end_sync();
        result.and_then(|r| synced.map(|()| r))
    }

    /// Starts making every appended record durable (fdatasync) on the appender's helper
    /// thread; the signal is set when the sync returned. [`Appender::end_sync`] waits for it
    /// and must follow before anything else is appended.
    pub fn begin_sync(&mut self) -> Result<Arc<SyncSignal>> {
        self.write_gathered()?;
        let sync_thread = match &mut self.sync_thread {
            Some(thread) => thread,
            unstarted => {
                let what = self.path.display().to_string();
                let thread = SyncThread::start(self.file.clone(), what)
                    .map_err(|e| Error::io(&self.path, e))?;
                unstarted.insert(thread)
            }
        };
        let signal = sync_thread
            .request()
            .map_err(|e| Error::io(&self.path, e))?;
        self.syncing = true;
        Ok(signal)
    }

    /// Waits for the sync [`Appender::begin_sync`] started; a failed one poisons the appender.
    pub fn end_sync(&mut self) -> Result<()> {
        let synced = match &self.sync_thread {
            Some(thread) if std::mem::take(&mut self.syncing) => thread.wait(),
            _ => Ok(()),
        };
        match synced {
            Ok(()) => {
                self.unsynced = false;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(Error::io(&self.path, e))
            }
        }
    }
}

impl Drop for Appender {
    /// A commit marker is appended without a sync of its own (it becomes durable with the next
    /// commit's sync); an appender dropped cleanly (sealed, or its store handle closed) syncs
    /// it now. A failure is ignored: a lost marker only means `repair` restores the episode
    /// under the documented rule for unmarked manifests (schema/format.md).
    fn drop(&mut self) {
        if self.unsynced && !self.poisoned && self.write_gathered().is_ok() {
            let _ = self.file.sync_data();
        }
    }
}

/// The header of a chunk record whose payload is `parts` back to back, and its place when the
/// record starts at `offset` of segment `segment`.
fn chunk_record(
    segment: u64,
    offset: u64,
    codec: Codec,
    steps: u32,
    step_bytes: u32,
    parts: &[&[u8]],
) -> ([u8; HEADER_BYTES], ChunkRef) {
    let payload_len: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let sum = if let [one] = parts {
        checksum(one)
    } else {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        parts.iter().for_each(|p| h.update(p));
        h.digest()
    };
    let header = encode_record_header(codec, payload_len, steps, step_bytes, sum);
    let chunk = ChunkRef {
        segment,
        offset,
        payload_len,
        steps,
        codec,
        checksum: sum,
    };
    (header, chunk)
}

/// Where a column's chunks go: a segment ([`Appender`]), or memory ([`RecordBuf`]).
pub trait ChunkSink {
    /// Appends one chunk record whose payload is `parts` back to back; returns its place.
    fn append_chunk(
        &mut self,
        codec: Codec,
        steps: u32,
        step_bytes: u32,
        parts: &[&[u8]],
    ) -> Result<ChunkRef>;
}

impl ChunkSink for Appender {
    fn append_chunk(
        &mut self,
        codec: Codec,
        steps: u32,
        step_bytes: u32,
        parts: &[&[u8]],
    ) -> Result<ChunkRef> {
        self.append(codec, steps, step_bytes, parts)
    }
}

/// Chunk records laid out in memory exactly as a segment holds them, from offset 0, each
/// 64-byte aligned: a small episode's chunks before the committing leader writes them into a
/// segment with [`Appender::append_records`] (write/carry.rs). Its chunks' places name
/// segment 0 (no segment) and offsets in the buffer, until the leader moves them.
#[derive(Debug, Default)]
pub struct RecordBuf {
    bytes: Vec<u8>,
}

impl RecordBuf {
    /// The records, padded to a multiple of 64 bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl ChunkSink for RecordBuf {
    fn append_chunk(
        &mut self,
        codec: Codec,
        steps: u32,
        step_bytes: u32,
        parts: &[&[u8]],
    ) -> Result<ChunkRef> {
        let offset = self.bytes.len() as u64;
        let (header, chunk) = chunk_record(0, offset, codec, steps, step_bytes, parts);
        self.bytes.extend_from_slice(&header);
        parts.iter().for_each(|p| self.bytes.extend_from_slice(p));
        self.bytes
            .resize(align_up(self.bytes.len() as u64) as usize, 0);
        Ok(chunk)
    }
}

/// The appenders of one process, handed out one per recording episode.
#[derive(Debug)]
pub struct SegmentPool {
    dir: PathBuf,
    /// A segment at or past this size is sealed: never appended to again.
    target_bytes: u64,
    io: Arc<dyn StoreIo>,
    idle: Mutex<Vec<Appender>>,
}

impl SegmentPool {
    pub fn new(dir: PathBuf, target_bytes: u64, io: Arc<dyn StoreIo>) -> Self {
        SegmentPool {
            dir,
            target_bytes,
            io,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An appender nobody else uses: an idle one of this process, an unlocked unsealed segment
    /// left by a finished or dead writer, or a new segment.
    pub fn checkout(&self) -> Result<Appender> {
        if let Some(a) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(a);
        }
        if let Some(a) = self.adopt()? {
            return Ok(a);
        }
        self.create()
    }

    /// Returns an appender after use; full or failed ones are dropped (sealed).
    pub fn checkin(&self, mut appender: Appender) {
        appender.abandon_stream();
        if !appender.poisoned && appender.end < self.target_bytes {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(appender);
        }
    }

    fn list_ids(&self) -> Result<Vec<u64>> {
        let names = self
            .io
            .list(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|name| name.to_str().and_then(parse_segment_name))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn adopt(&self) -> Result<Option<Appender>> {
        for id in self.list_ids()? {
            let path = segment_path(&self.dir, id);
            let sealed = |p: &Path| self.io.len(p).map_or(true, |len| len >= self.target_bytes);
            if sealed(&path) {
                continue;
            }
            let Ok(file) = self.io.open(&path) else {
                continue;
            };
            if !file.try_lock().map_err(|e| Error::io(&path, e))? {
                continue;
            }
            // Compaction may have retired the file between our open and our lock: append only
            // to a file still named in `segments/`.
            if let Some(ours) = file.identity()
                && self.io.identity(&path) != Some(ours)
            {
                continue;
            }
            // Sizes are read again under the lock: the previous owner may have appended.
            let len = file.len().map_err(|e| Error::io(&path, e))?;
            if len >= self.target_bytes || !has_current_header(&*file, id) {
                // Sealed, a torn creation, or another segment format version: never append to
                // it (a v1 segment must never receive v2 records; a new segment is created).
                continue;
            }
            return Ok(Some(Appender::new(id, path, file.into(), align_up(len))));
        }
        Ok(None)
    }

    /// A new segment (never an adopted one), locked by the returned appender.
    pub fn create(&self) -> Result<Appender> {
        let mut id = self.list_ids()?.last().map_or(1, |last| last + 1);
        loop {
            let path = segment_path(&self.dir, id);
            // create_new is O_EXCL: two processes racing for an id get it once.
            match self.io.create_new(&path) {
                Ok(file) => return self.initialise(id, path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    fn initialise(&self, id: u64, path: PathBuf, file: Box<dyn StoreFile>) -> Result<Appender> {
        let io_err = |e| Error::io(&path, e);
        // Only a process adopting it before its header is written can hold the lock of a file
        // we just created; it refuses the file (invalid header) and lets go.
        file.lock().map_err(io_err)?;
        file.write_all_at(&encode_file_header(id), 0)
            .map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        // The new name must be durable before any index commit refers to the file.
        self.io
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        Ok(Appender::new(id, path, file.into(), HEADER_BYTES as u64))
    }
}

/// The ids of the segment files in a segments directory, ascending.
pub fn list_segment_ids(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A valid header of exactly this build's segment format version.
fn has_current_header(file: &dyn StoreFile, id: u64) -> bool {
    let mut h = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut h, 0).is_ok()
        && decode_file_header(&h, id) == Ok(SEGMENT_FORMAT_VERSION)
}

/// fsyncs a directory, making the names in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::OsIo;
    use crate::segment::format::check_record_header;

    /// Chunks laid out in memory and appended to a segment later, after other records, are
    /// byte for byte the records appended directly, at their buffer offset plus where the
    /// buffer went (the leader's placement of carried episodes, write/carry.rs).
    #[test]
    fn records_laid_out_in_memory_land_as_if_appended_where_the_buffer_went() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SegmentPool::new(dir.path().to_path_buf(), 1 << 30, Arc::new(OsIo));
        let mut direct = pool.create().unwrap();
        let mut placed = pool.create().unwrap();
        let payloads: Vec<Vec<u8>> = [1usize, 63, 64, 65, 3000]
            .iter()
            .map(|&n| (0..n).map(|b| (b * 13 + n) as u8).collect())
            .collect();
        let mut buf = RecordBuf::default();
        let mut in_buf = Vec::new();
        let mut appended = Vec::new();
        for p in &payloads {
            in_buf.push(
                buf.append_chunk(Codec::Raw, p.len() as u32, 1, &[p])
                    .unwrap(),
            );
            appended.push(direct.append(Codec::Raw, p.len() as u32, 1, &[p]).unwrap());
        }
        let records = buf.into_bytes();
        assert_eq!(records.len() % HEADER_BYTES, 0);
        // Another record first, so the buffer does not go at the first offset.
        placed.append_meta(*b"MANI", b"before").unwrap();
        let start = placed.append_records(&records).unwrap();
        placed.sync().unwrap();
        direct.sync().unwrap();
        let (direct_file, placed_file) = (
            std::fs::read(segment_path(dir.path(), direct.id())).unwrap(),
            std::fs::read(segment_path(dir.path(), placed.id())).unwrap(),
        );
        for ((chunk, ours), payload) in in_buf.iter().zip(&appended).zip(&payloads) {
            assert_eq!(chunk.segment, 0, "not in a segment yet");
            let moved = ChunkRef {
                segment: placed.id(),
                offset: start + chunk.offset,
                ..*chunk
            };
            let len = HEADER_BYTES + payload.len();
            let at = moved.offset as usize;
            check_record_header(&placed_file[at..at + HEADER_BYTES], &moved, 1).unwrap();
            assert_eq!(
                placed_file[at..at + len],
                direct_file[ours.offset as usize..][..len],
                "the record of {chunk:?}"
            );
        }
    }

    /// Records of every size class (gathered, one that no longer fits the gathered ones, one
    /// written at once) read back from the file, after the sync, exactly where their chunk
    /// references say, and the manifest-like record after them too.
    #[test]
    fn gathered_and_direct_records_land_where_their_references_say() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SegmentPool::new(dir.path().to_path_buf(), 1 << 30, Arc::new(OsIo));
        let mut appender = pool.create().unwrap();
        let sizes = [
            1,
            63,
            64,
            200,
            GATHER_BYTES - 200,
            5000,
            GATHER_BYTES + 1,
            7,
        ];
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
            .collect();
        let chunks: Vec<ChunkRef> = payloads
            .iter()
            .map(|p| {
                appender
                    .append(Codec::Raw, p.len() as u32, 1, &[p])
                    .unwrap()
            })
            .collect();
        let meta = appender.append_meta(*b"MANI", b"manifest bytes").unwrap();
        appender.sync().unwrap();
        let end = appender.end();
        drop(appender);

        let file = std::fs::read(segment_path(dir.path(), 1)).unwrap();
        assert_eq!(align_up(file.len() as u64), end);
        for (chunk, payload) in chunks.iter().zip(&payloads) {
            let at = chunk.offset as usize;
            check_record_header(&file[at..at + HEADER_BYTES], chunk, 1).unwrap();
            let body = &file[at + HEADER_BYTES..][..payload.len()];
            assert!(body == payload.as_slice(), "payload of {chunk:?}");
        }
        let at = meta as usize + HEADER_BYTES;
        assert_eq!(&file[at..at + 14], b"manifest bytes");
    }

    /// A streamed chunk closed after gathered records is written in place; records gathered
    /// after it must not be written as one run with the earlier ones (over the chunk).
    #[test]
    fn records_gathered_around_a_streamed_chunk_keep_it_intact() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SegmentPool::new(dir.path().to_path_buf(), 1 << 30, Arc::new(OsIo));
        let mut appender = pool.create().unwrap();
        let small: Vec<u8> = (0..100u8).collect();
        let before = appender.append(Codec::Raw, 100, 1, &[&small]).unwrap();
        let streamed: Vec<u8> = (0..3000u32).map(|b| (b % 251) as u8).collect();
        appender.stream(&streamed[..1000]).unwrap();
        appender.stream(&streamed[1000..]).unwrap();
        let chunk = appender.close_stream(Codec::Raw, 3000, 1).unwrap();
        let after = appender.append(Codec::Raw, 100, 1, &[&small]).unwrap();
        appender.sync().unwrap();
        drop(appender);

        let file = std::fs::read(segment_path(dir.path(), 1)).unwrap();
        for (c, payload) in [(before, &small), (chunk, &streamed), (after, &small)] {
            let at = c.offset as usize;
            check_record_header(&file[at..at + HEADER_BYTES], &c, 1).unwrap();
            assert!(&file[at + HEADER_BYTES..][..payload.len()] == payload.as_slice());
        }
    }
}
