//! Python exceptions mirroring the library's error families, one to one:
//!
//! | Rust                                   | Python                                 |
//! |----------------------------------------|----------------------------------------|
//! | `Error::Open` (any)                    | `StoreOpenError`                       |
//! | `Error::Record` (any)                  | `RecordError` (an `InputError`)        |
//! | `Error::Read`: episode not found       | `NotFoundError`                        |
//! | `Error::Read`: end of data             | `EndOfData`                            |
//! | `Error::Read`: damaged bytes           | `CorruptionError`                      |
//! | `Error::Read`: a request that cannot be served | `InputError`                   |
//! | `Error::Storage` (any)                 | `StorageError`                         |

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use trajstore::{Error, ErrorKind};

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
    "The store cannot be opened as asked, or a handle cannot do what was asked (read-only, used after fork)."
);
create_exception!(
    trajstore,
    InputError,
    TrajstoreError,
    "An invalid value or call; nothing was written."
);
create_exception!(
    trajstore,
    RecordError,
    InputError,
    "A recording call was refused (schema, metadata, a value's dtype or shape, a call out of order); the episode is unchanged."
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
    match (&e, e.kind()) {
        (Error::Open(_), _) => StoreOpenError::new_err(message),
        (Error::Record(_), _) => RecordError::new_err(message),
        (Error::Storage(_), _) => StorageError::new_err(message),
        (_, ErrorKind::NotFound) => NotFoundError::new_err(message),
        (_, ErrorKind::EndOfData) => EndOfData::new_err(message),
        (_, ErrorKind::Corruption) => CorruptionError::new_err(message),
        (_, ErrorKind::Input) => InputError::new_err(message),
        // Families and kinds are non-exhaustive: a new one falls back to the base class.
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
    m.add("RecordError", py.get_type::<RecordError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("EndOfData", py.get_type::<EndOfData>())?;
    Ok(())
}
