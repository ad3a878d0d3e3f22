//! `readers.lock`: who may still use a segment file that compaction replaced.
//!
//! Every store handle (reader or writer, in every process) holds a *shared* `flock` on
//! `STORE/readers.lock` for as long as it is open. Compaction moves the files it replaced to
//! `segments/retired/` after its index switch, and deletes them only while it holds the lock
//! *exclusively*: then no handle is open, so no snapshot from before the switch exists (one
//! opened later sees only the new segments). When it cannot, the files stay in `retired/`
//! for the next compaction, or for the last handle to close: a handle that can take the lock
//! exclusively when it closes deletes them (schema/format.md, "Compaction").

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::SEGMENTS_DIR;
use super::link::RETIRED_DIR;

/// Name of the lock file in the store directory.
pub const READERS_LOCK: &str = "readers.lock";

/// A shared hold on a store's `readers.lock`, released (after deleting retired segments when
/// this was the last holder) on drop.
#[derive(Debug)]
pub struct ReadersLock {
    file: File,
    store: PathBuf,
}

impl ReadersLock {
    /// Takes the shared lock, creating the file if needed; waits while a compaction deletes
    /// retired files (a moment). `None` when the file can neither be opened nor created (a
    /// read-only medium, where nothing can be compacted either).
    pub fn shared(store: &Path) -> Option<ReadersLock> {
        let file = open(store)?;
        file.lock_shared().ok()?;
        Some(ReadersLock {
            file,
            store: store.to_owned(),
        })
    }
}

impl Drop for ReadersLock {
    fn drop(&mut self) {
        let retired = self.store.join(SEGMENTS_DIR).join(RETIRED_DIR);
        let pending = std::fs::read_dir(&retired).is_ok_and(|mut d| d.next().is_some());
        // Converting our shared lock to exclusive succeeds only when no other handle is open.
        if pending && self.file.try_lock().is_ok() {
            let _ = delete_retired(&self.store);
        }
    }
}

fn open(store: &Path) -> Option<File> {
    let path = store.join(READERS_LOCK);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .ok()
}

/// The lock held exclusively: no store handle is open anywhere.
pub struct Exclusive(#[allow(dead_code)] File);

/// Takes `readers.lock` exclusively without waiting: `Ok(None)` while any handle is open.
pub fn try_exclusive(store: &Path) -> io::Result<Option<Exclusive>> {
    let Some(file) = open(store) else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(Exclusive(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Deletes every file in `segments/retired/` (call only holding the lock exclusively);
/// returns how many files and bytes.
pub fn delete_retired(store: &Path) -> io::Result<(u64, u64)> {
    let dir = store.join(SEGMENTS_DIR).join(RETIRED_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let len = entry.metadata().map_or(0, |m| m.len());
        std::fs::remove_file(entry.path())?;
        files += 1;
        bytes += len;
    }
    if files > 0 {
        File::open(&dir)?.sync_all()?;
    }
    Ok((files, bytes))
}
