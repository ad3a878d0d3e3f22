//! `STORE/curation.log`: every curation operation, appended, checksummed and synced before
//! its index transaction commits, so that `trajstore repair` (which rebuilds the index from
//! the segments alone) can replay it: deleted episodes stay deleted, labels and the split come
//! back. The format is normative in schema/format.md ("The curation log").
//!
//! ```text
//! log    := header entry*
//! header := "TRAJCLOG" version:u32 reserved:u32            (16 bytes)
//! entry  := len:u32 reserved:u32 xxh3_64(payload):u64 payload[len]
//! ```
//!
//! The payload is a postcard envelope (index.md, "Value encoding") of a [`LogOp`]. Writers
//! hold the file's exclusive lock (`flock`) from before their index transaction begins until
//! it ended, so the log's order is the order the operations committed in. A torn last entry
//! (a crash mid-append, before the sync, so before the index commit) is cut off by the next
//! writer; the log is never memory-mapped, so truncating it is safe.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::curate::relabel::Relabel;
use crate::error::{Error, Result};
use crate::index::records::SplitSpecV1;

/// The log's file name inside a store directory.
pub const LOG_FILE: &str = "curation.log";
const MAGIC: &[u8; 8] = b"TRAJCLOG";
const LOG_VERSION: u32 = 1;
/// Bytes of the file header: where the first entry starts.
pub const HEADER_BYTES: u64 = 16;
const ENTRY_HEADER_BYTES: usize = 16;
/// Largest payload accepted when reading (a million ids is ~5 MB).
const MAX_ENTRY_BYTES: u32 = 1 << 30;

/// One curation operation as logged: resolved to episode ids, so replaying it does not depend
/// on what a query would select in a rebuilt index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogOp {
    Delete {
        ids: Vec<u64>,
        at_us: i64,
        by: String,
    },
    Restore {
        ids: Vec<u64>,
        at_us: i64,
        by: String,
    },
    Relabel {
        ids: Vec<u64>,
        relabel: Relabel,
        at_us: i64,
        by: String,
    },
    Split {
        spec: SplitSpecV1,
    },
    /// Tombstones removed for good (compaction).
    Purge {
        ids: Vec<u64>,
    },
    /// The entry at byte `offset` did not commit (its index transaction failed): skip it.
    Aborted {
        offset: u64,
    },
}

#[derive(Serialize, Deserialize)]
enum LogEnvelope {
    V1(LogOp),
}

/// What reading a log found.
#[derive(Debug, Default)]
pub struct LogContents {
    /// Committed operations (aborted ones removed), in log order, with their offsets.
    pub ops: Vec<(u64, LogOp)>,
    /// End of the last valid entry.
    pub valid_len: u64,
    /// Why reading stopped before the end of the file (a torn or damaged entry).
    pub problem: Option<String>,
}

/// Reads the log at `path`; a missing file is an empty log.
pub fn read(path: &Path) -> Result<LogContents> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogContents::default()),
        Err(e) => return Err(Error::io(path, e)),
    }
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<LogContents> {
    let mut out = LogContents::default();
    if bytes.len() < HEADER_BYTES as usize {
        if !bytes.is_empty() {
            out.problem = Some(format!("a header cut short ({} bytes)", bytes.len()));
        }
        return Ok(out);
    }
    if &bytes[..8] != MAGIC {
        return Err(log_error(path, "not a trajstore curation log (bad magic)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > LOG_VERSION {
        return Err(crate::error::OpenError::UnsupportedFormat {
            path: path.to_owned(),
            found: version,
            supported: LOG_VERSION,
        }
        .into());
    }
    let mut at = HEADER_BYTES as usize;
    out.valid_len = at as u64;
    let mut aborted = Vec::new();
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + ENTRY_HEADER_BYTES) else {
            out.problem = Some(format!("an entry header cut short at offset {at}"));
            break;
        };
        let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
        let sum = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        let start = at + ENTRY_HEADER_BYTES;
        let payload = (len <= MAX_ENTRY_BYTES)
            .then(|| bytes.get(start..start + len as usize))
            .flatten();
        let Some(payload) = payload else {
            out.problem = Some(format!("an entry cut short at offset {at}"));
            break;
        };
        if xxhash_rust::xxh3::xxh3_64(payload) != sum {
            out.problem = Some(format!("an entry at offset {at} fails its checksum"));
            break;
        }
        match postcard::from_bytes::<LogEnvelope>(payload) {
            Ok(LogEnvelope::V1(LogOp::Aborted { offset })) => aborted.push(offset),
            Ok(LogEnvelope::V1(op)) => out.ops.push((at as u64, op)),
            Err(e) => {
                // Checksummed but not decodable: written by a newer build. Refuse, never guess.
                return Err(log_error(
                    path,
                    &format!(
                        "the entry at offset {at} does not decode ({e}): written by a newer trajstore?"
                    ),
                ));
            }
        }
        at = start + len as usize;
        out.valid_len = at as u64;
    }
    out.ops.retain(|(offset, _)| !aborted.contains(offset));
    Ok(out)
}

fn log_error(path: &Path, reason: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_owned()),
    )
}

/// The log opened for appending, under its exclusive lock (held until dropped).
pub struct LogWriter {
    file: File,
    path: PathBuf,
    end: u64,
}

impl LogWriter {
    /// Opens (creating it if needed) and locks the log of the store at `root`, waiting for
    /// another writer's lock; cuts off a torn last entry.
    pub fn open(root: &Path) -> Result<LogWriter> {
        let path = root.join(LOG_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        let mut bytes = Vec::new();
        (&file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&path, e))?;
        let mut writer = LogWriter { file, path, end: 0 };
        if bytes.len() < HEADER_BYTES as usize {
            // New, or its creation was cut short: (re)write the header.
            let mut header = [0u8; HEADER_BYTES as usize];
            header[..8].copy_from_slice(MAGIC);
            header[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
            writer.write_at(0, &header)?;
            writer.truncate(HEADER_BYTES)?;
            crate::segment::sync_dir(root)?;
            writer.end = HEADER_BYTES;
            return Ok(writer);
        }
        let contents = parse(&writer.path, &bytes)?;
        if contents.valid_len < bytes.len() as u64 {
            writer.truncate(contents.valid_len)?;
        }
        writer.end = contents.valid_len;
        Ok(writer)
    }

    /// End of the last entry.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Cuts off the entries past `end`: their transactions never committed (the index
    /// records the end of the last committed entry; a writer killed between its log sync and
    /// its commit leaves one behind).
    pub fn discard_after(&mut self, end: u64) -> Result<()> {
        if end < self.end && end >= HEADER_BYTES {
            self.truncate(end)?;
            self.end = end;
        }
        Ok(())
    }

    /// Appends `op` durably; returns its offset.
    pub fn append(&mut self, op: &LogOp) -> Result<u64> {
        let payload = postcard::to_allocvec(&LogEnvelope::V1(op.clone()))
            .expect("postcard encodes to a Vec infallibly");
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_ENTRY_BYTES)
            .ok_or_else(|| log_error(&self.path, "a curation operation too large to log"))?;
        let mut entry = Vec::with_capacity(ENTRY_HEADER_BYTES + payload.len());
        entry.extend_from_slice(&len.to_le_bytes());
        entry.extend_from_slice(&0u32.to_le_bytes());
        entry.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        entry.extend_from_slice(&payload);
        let offset = self.end;
        self.write_at(offset, &entry)?;
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))?;
        self.end = offset + entry.len() as u64;
        Ok(offset)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(|e| Error::io(&self.path, e))
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete(ids: &[u64]) -> LogOp {
        LogOp::Delete {
            ids: ids.to_vec(),
            at_us: 5,
            by: "ana".into(),
        }
    }

    #[test]
    fn entries_round_trip_and_aborted_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::open(dir.path()).unwrap();
        let first = log.append(&delete(&[1, 2])).unwrap();
        let second = log.append(&delete(&[3])).unwrap();
        log.append(&LogOp::Aborted { offset: second }).unwrap();
        drop(log);
        let read = read(&dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(read.ops, vec![(first, delete(&[1, 2]))]);
        assert!(read.problem.is_none());
    }

    #[test]
    fn a_torn_last_entry_is_ignored_then_cut_off_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut log = LogWriter::open(dir.path()).unwrap();
        log.append(&delete(&[1])).unwrap();
        let end = log.append(&delete(&[2])).unwrap();
        drop(log);
        let full = std::fs::metadata(&path).unwrap().len();
        // A crash mid-append of the second entry: its last bytes never reached the disk.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 3)
            .unwrap();
        let torn = read(&path).unwrap();
        assert_eq!(torn.ops.len(), 1);
        assert!(torn.problem.unwrap().contains("cut short"));
        let mut log = LogWriter::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
        log.append(&delete(&[3])).unwrap();
        drop(log);
        let after = read(&path).unwrap();
        assert_eq!(
            after.ops.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
            vec![delete(&[1]), delete(&[3])]
        );
        assert!(after.problem.is_none());
    }

    #[test]
    fn a_flipped_byte_stops_the_read_at_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut log = LogWriter::open(dir.path()).unwrap();
        log.append(&delete(&[1])).unwrap();
        let second = log.append(&delete(&[2])).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.ops.len(), 1);
        assert_eq!(read.valid_len, second);
        assert!(read.problem.unwrap().contains("checksum"));
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LOG_FILE),
            b"hello, this is not a log at all",
        )
        .unwrap();
        assert!(LogWriter::open(dir.path()).is_err());
        assert!(read(&dir.path().join(LOG_FILE)).is_err());
    }
}
