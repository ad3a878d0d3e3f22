//! Python exceptions mirroring the library's error families (`trajstore::ErrorKind`).

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use trajstore::ErrorKind;

create_exception!(
    trajstore,
    TrajstoreError,
    PyException,
    "Base class of every trajstore error."
);
create_exception!(
    trajstore,
    StoreOpenError,
    TrajstoreError,
    "The store cannot be opened as asked."
);
create_exception!(
    trajstore,
    InputError,
    TrajstoreError,
    "An invalid value or call; nothing was written."
);
create_exception!(
    trajstore,
    NotFoundError,
    TrajstoreError,
    "The episode (or field) asked for does not exist."
);
create_exception!(
    trajstore,
    CorruptionError,
    TrajstoreError,
    "Stored bytes are damaged."
);
create_exception!(
    trajstore,
    StorageError,
    TrajstoreError,
    "The operating system or the index failed."
);
create_exception!(
    trajstore,
    EndOfData,
    TrajstoreError,
    "A replay or loader has served everything it holds."
);

/// Converts a library error into the matching Python exception.
pub fn to_py(e: trajstore::Error) -> PyErr {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::Open => StoreOpenError::new_err(message),
        ErrorKind::Input => InputError::new_err(message),
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::Corruption => CorruptionError::new_err(message),
        ErrorKind::Io => StorageError::new_err(message),
        ErrorKind::EndOfData => EndOfData::new_err(message),
        // ErrorKind is non-exhaustive in spirit: new families fall back to the base class.
        #[allow(unreachable_patterns)]
        _ => TrajstoreError::new_err(message),
    }
}

/// Takes the lock of an object that two threads must not use at once (a recorder, a replay
/// env), without waiting: a second thread gets a clear error instead of blocking. Waiting
/// could deadlock: the holder may need the GIL (to build Python objects) that the waiter holds.
/// A lock poisoned by a panic in an earlier call is an error too, never a panic here.
pub fn try_lock<'a, T>(lock: &'a Mutex<T>, what: &str) -> PyResult<MutexGuard<'a, T>> {
    match lock.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::WouldBlock) => Err(TrajstoreError::new_err(format!(
            "this {what} is used from two threads at once; give each thread its own {what}, or serialize the calls"
        ))),
        Err(TryLockError::Poisoned(_)) => Err(poisoned(what)),
    }
}

/// The error for an object whose lock a panic (a bug) poisoned in an earlier call.
pub fn poisoned(what: &str) -> PyErr {
    TrajstoreError::new_err(format!(
        "this {what} failed with an internal error in an earlier call and cannot be used any more"
    ))
}

/// `?`-friendly conversion for library results.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for trajstore::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TrajstoreError", py.get_type::<TrajstoreError>())?;
    m.add("StoreOpenError", py.get_type::<StoreOpenError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("EndOfData", py.get_type::<EndOfData>())?;
    Ok(())
}
