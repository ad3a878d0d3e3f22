//! A simulated file system for the store (`trajstore::io::StoreIo`), with the two failures the
//! real one cannot give on demand:
//!
//! - **power cuts**: every file has a *live* image (what reads see) and a *durable* one (what
//!   survives); a sync copies live to durable, a directory sync makes new names durable. The
//!   power is cut at a chosen sync: that sync and every later operation fail, and
//!   [`SimIo::durable_image`] is the disk as a machine would find it after rebooting (unsynced
//!   writes and unsynced new names lost).
//! - **I/O faults**: the N-th write or sync fails once with EIO or ENOSPC; the rest succeed.
//!
//! Segment files and the redb index both go through it (the index as a storage backend).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use trajstore::io::{FileView, StoreFile, StoreIo};

/// What goes wrong, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// The power goes at the n-th sync (1-based): it does not happen, nor anything after.
    PowerCutAtSync(u64),
    /// The n-th write or sync (1-based) fails once with this OS error (libc::EIO, ENOSPC).
    FailOp(u64, i32),
}

#[derive(Debug, Default)]
struct FileData {
    live: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
    locked: AtomicBool,
}

#[derive(Debug)]
struct State {
    files: HashMap<PathBuf, Arc<FileData>>,
    durable_names: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
    syncs: u64,
    ops: u64,
    failure: Failure,
    powered_off: bool,
}

/// The simulated file system. Cheap to share: clone the `Arc`.
#[derive(Debug)]
pub struct SimIo {
    state: Mutex<State>,
}

impl SimIo {
    pub fn new(failure: Failure) -> Arc<SimIo> {
        Arc::new(SimIo {
            state: Mutex::new(State {
                files: HashMap::new(),
                durable_names: HashSet::new(),
                dirs: HashSet::new(),
                syncs: 0,
                ops: 0,
                failure,
                powered_off: false,
            }),
        })
    }

    /// Syncs seen so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().unwrap().syncs
    }

    /// Writes and syncs seen so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().unwrap().ops
    }

    /// Whether the power was cut.
    pub fn powered_off(&self) -> bool {
        self.state.lock().unwrap().powered_off
    }

    /// The disk after a reboot: durable names with their durable bytes, no failure armed.
    pub fn durable_image(&self) -> Arc<SimIo> {
        let state = self.state.lock().unwrap();
        let files = state
            .files
            .iter()
            .filter(|(path, _)| state.durable_names.contains(*path))
            .map(|(path, data)| {
                let durable = data.durable.lock().unwrap().clone();
                let copy = FileData {
                    live: Mutex::new(durable.clone()),
                    durable: Mutex::new(durable),
                    locked: AtomicBool::new(false),
                };
                (path.clone(), Arc::new(copy))
            })
            .collect::<HashMap<_, _>>();
        Arc::new(SimIo {
            state: Mutex::new(State {
                durable_names: files.keys().cloned().collect(),
                files,
                dirs: state.dirs.clone(),
                syncs: 0,
                ops: 0,
                failure: Failure::None,
                powered_off: false,
            }),
        })
    }

    /// Counts one write (or sync, when `sync`) and says whether it may happen.
    fn begin_op(&self, sync: bool) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if state.powered_off {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        state.ops += 1;
        if sync {
            state.syncs += 1;
        }
        match state.failure {
            Failure::PowerCutAtSync(n) if sync && state.syncs == n => {
                state.powered_off = true;
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
            Failure::FailOp(n, errno) if state.ops == n => Err(io::Error::from_raw_os_error(errno)),
            _ => Ok(()),
        }
    }

    fn data(&self, path: &Path) -> io::Result<Arc<FileData>> {
        let state = self.state.lock().unwrap();
        if state.powered_off {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        state
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn handle(self: &Arc<Self>, data: Arc<FileData>) -> Box<dyn StoreFile> {
        Box::new(SimFile {
            io: self.clone(),
            data,
            holds_lock: AtomicBool::new(false),
        })
    }
}

/// The store sees the simulated file system through this handle.
#[derive(Debug, Clone)]
pub struct SimHandle(pub Arc<SimIo>);

impl StoreIo for SimHandle {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.0.state.lock().unwrap();
        for d in dir.ancestors() {
            state.dirs.insert(d.to_owned());
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.begin_op(true)?;
        let mut state = self.0.state.lock().unwrap();
        let names: Vec<PathBuf> = state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        state.durable_names.extend(names);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.0.state.lock().unwrap();
        Ok(state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(ToOwned::to_owned))
            .collect())
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        if self.is_dir(path) {
            return Ok(0);
        }
        Ok(self.0.data(path)?.live.lock().unwrap().len() as u64)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.0.state.lock().unwrap().dirs.contains(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let data = {
            let mut state = self.0.state.lock().unwrap();
            if state.powered_off {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            if state.files.contains_key(path) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            let data = Arc::new(FileData::default());
            state.files.insert(path.to_owned(), data.clone());
            data
        };
        Ok(self.0.handle(data))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let data = self.0.data(path)?;
        Ok(self.0.handle(data))
    }

    fn map(&self, path: &Path) -> io::Result<Arc<dyn FileView>> {
        let bytes = self.0.data(path)?.live.lock().unwrap().clone();
        Ok(Arc::new(SimView(bytes)))
    }

    fn index_file(&self, path: &Path) -> io::Result<Option<Box<dyn StoreFile>>> {
        match self.open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create_new(path).map(Some),
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug)]
struct SimFile {
    io: Arc<SimIo>,
    data: Arc<FileData>,
    holds_lock: AtomicBool,
}

impl StoreFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let live = self.data.live.lock().unwrap();
        let start = offset as usize;
        let end = start + buf.len();
        if end > live.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        buf.copy_from_slice(&live[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.io.begin_op(false)?;
        let mut live = self.data.live.lock().unwrap();
        let end = offset as usize + buf.len();
        if live.len() < end {
            live.resize(end, 0);
        }
        live[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.io.begin_op(true)?;
        let live = self.data.live.lock().unwrap().clone();
        *self.data.durable.lock().unwrap() = live;
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.data.live.lock().unwrap().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.io.begin_op(false)?;
        self.data.live.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }

    fn try_lock(&self) -> io::Result<bool> {
        if self.holds_lock.load(Ordering::SeqCst) {
            return Ok(true);
        }
        let took = self
            .data
            .locked
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.holds_lock.store(took, Ordering::SeqCst);
        Ok(took)
    }

    fn lock(&self) -> io::Result<()> {
        while !self.try_lock()? {
            std::thread::yield_now();
        }
        Ok(())
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if self.holds_lock.load(Ordering::SeqCst) {
            self.data.locked.store(false, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
struct SimView(Vec<u8>);

impl Deref for SimView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FileView for SimView {}
