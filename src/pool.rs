//! The library's own rayon thread pool, one per process, safe across `fork()`.
//!
//! rayon's global pool is not fork-safe: a child forked after the parent used it inherits the
//! pool's registry (which says its threads exist) but not the threads, so the first parallel
//! call in the child waits forever for workers that are not there. PyTorch's `DataLoader`
//! forks its workers by default on Linux, often after the parent already drew batches.
//!
//! So the library never touches the global pool: every parallel section runs through
//! [`install`], on a pool built lazily for the current process id. When the id changes (we are
//! a forked child), a new pool is built for the child; the parent's is leaked, never dropped,
//! since dropping would signal threads that do not exist in the child. The pool is found
//! without taking a lock, so a fork that happens while another thread of the parent is inside
//! `install` cannot leave the child waiting on a lock nobody will release.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, Result, StorageError};

/// A pool and the process it was built in.
struct ProcessPool {
    pid: u32,
    pool: rayon::ThreadPool,
}

/// The current process's pool: null until first use; only ever set to leaked boxes, so every
/// pointer it held stays valid for the life of the process.
static CURRENT: AtomicPtr<ProcessPool> = AtomicPtr::new(std::ptr::null_mut());

/// This process's pool, built on first use (and again in a forked child).
pub(crate) fn pool() -> Result<&'static rayon::ThreadPool> {
    let pid = std::process::id();
    loop {
        let current = CURRENT.load(Ordering::Acquire);
        // SAFETY: CURRENT holds null or a pointer from `Box::leak` below, never freed.
        if let Some(p) = unsafe { current.as_ref() }
            && p.pid == pid
        {
            return Ok(&p.pool);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("trajstore-{i}"))
            .build()
            .map_err(|e| {
                Error::Storage(StorageError::Threads {
                    reason: e.to_string(),
                })
            })?;
        let fresh = Box::new(ProcessPool { pid, pool });
        let fresh_ptr = &*fresh as *const ProcessPool as *mut ProcessPool;
        if CURRENT
            .compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // The previous pool (a parent's, after fork) is leaked on purpose: see the module doc.
            return Ok(&Box::leak(fresh).pool);
        }
        // Another thread of this process installed a pool first: use that one; ours (whose
        // threads do exist) is dropped normally.
        drop(fresh);
    }
}

/// Runs `op` on this process's pool: parallel iterators inside it use the pool's threads.
pub(crate) fn install<R: Send>(op: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(pool()?.install(op))
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    #[test]
    fn install_runs_on_our_pool_not_the_global_one() {
        let names: Vec<Option<String>> = super::install(|| {
            (0..64)
                .into_par_iter()
                .map(|_| std::thread::current().name().map(str::to_owned))
                .collect()
        })
        .unwrap();
        assert!(
            names
                .iter()
                .all(|n| n.as_deref().is_some_and(|n| n.starts_with("trajstore-"))),
            "{names:?}"
        );
        let a = super::pool().unwrap() as *const _;
        let b = super::pool().unwrap() as *const _;
        assert_eq!(a, b, "one pool per process");
    }
}
