//! A damaged index file is an error, never a panic.
//!
//! redb assumes its file is the one it wrote: on some damaged files (a flipped bit in the
//! allocator state, a truncated region) it panics instead of returning an error. trajstore
//! promises that a bad byte yields an error naming the file, and the Python package must never
//! let a panic cross into the interpreter. So every call into redb runs under [`guarded`]: a
//! panic there is caught and becomes [`OpenError::IndexDamaged`], which says to run
//! `trajstore repair`, and redb's own "DB corrupted" errors become the same.
//!
//! The default panic hook would still print the caught panic to stderr as if the program had
//! crashed; a hook installed once (chained to whatever hook was set before) stays quiet for
//! panics inside a guarded call and defers to the previous hook for every other panic.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

use crate::error::{Error, OpenError, Result, StorageError};

thread_local! {
    /// Depth of guarded calls on this thread.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

static QUIET_HOOK: Once = Once::new();

fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `call` (which talks to the redb index file at `path`), turning a panic or a redb
/// corruption error into [`OpenError::IndexDamaged`] naming the store directory.
pub(crate) fn guarded<T>(path: &Path, call: impl FnOnce() -> Result<T>) -> Result<T> {
    let store = || path.parent().unwrap_or(Path::new(".")).to_owned();
    install_quiet_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(call));
    GUARDED.with(|g| g.set(g.get() - 1));
    match outcome {
        Ok(Err(e)) => Err(match e {
            Error::Storage(StorageError::Index { source, .. })
                if matches!(source.engine(), redb::Error::Corrupted(_)) =>
            {
                OpenError::IndexDamaged {
                    path: store(),
                    reason: source.to_string(),
                }
                .into()
            }
            Error::Storage(StorageError::Index { path: p, source }) if p.as_os_str().is_empty() => {
                StorageError::Index {
                    path: path.to_owned(),
                    source,
                }
                .into()
            }
            other => other,
        }),
        Ok(Ok(value)) => Ok(value),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(OpenError::IndexDamaged {
                path: store(),
                reason: format!("the index library failed on it ({message})"),
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_guarded_call_becomes_an_error_naming_the_file() {
        let path = Path::new("/stores/demos/index.redb");
        let err = guarded::<()>(path, || panic!("range end index 47 out of range")).unwrap_err();
        match &err {
            Error::Open(OpenError::IndexDamaged { path: p, reason }) => {
                assert_eq!(p, Path::new("/stores/demos"));
                assert!(reason.contains("range end index 47"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("trajstore repair"), "{err}");
        assert_eq!(GUARDED.with(Cell::get), 0, "depth restored after the panic");
    }

    #[test]
    fn results_pass_through_and_redb_corruption_is_named_damage() {
        let path = Path::new("index.redb");
        assert_eq!(guarded(path, || Ok(7)).unwrap(), 7);
        let err = guarded::<()>(path, || {
            Err(Error::index("", redb::Error::Corrupted("bad page".into())))
        })
        .unwrap_err();
        assert!(
            matches!(err, Error::Open(OpenError::IndexDamaged { .. })),
            "{err:?}"
        );
    }
}
