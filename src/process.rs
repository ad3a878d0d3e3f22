//! Fork awareness: what a process opened belongs to that process.
//!
//! After `fork()` a child holds a copy of its parent's memory: open redb databases and read
//! transactions, segment appenders, commit queues, and file descriptors that share their open
//! file descriptions, and so their `flock`s and redb's byte-range locks, with the parent.
//! Using any of them in the child acts on the parent's locks and files: two processes append at
//! one segment tail, a redb handle commits from stale in-memory state, or unlocks a byte the
//! parent's reader still relies on. Dropping them is no better: closing a redb database writes
//! its shutdown state and releases locks the parent holds.
//!
//! So every such object sits in a [`ProcessBound`]: it is handed out only in the process that
//! made it, and in any other process it is leaked, never used nor dropped. The store handle
//! (open.rs) and snapshots reopen what they need in the new process instead.

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

/// The id of the calling process. Every read checks it (several times per field opened), so
/// it is kept instead of asked for: `getpid` is a system call (glibc stopped caching it), a
/// fifth of the cost of opening a small field. A child after `fork()` must not see its
/// parent's id, so the kept id is cleared by a `pthread_atfork` child handler, which libc's
/// `fork()` runs in the child before returning there (Python's `os.fork`, `multiprocessing`);
/// children that only `exec` (`posix_spawn`, `vfork`) run no code of ours.
pub(crate) fn current() -> u32 {
    match KNOWN_PID.load(Ordering::Relaxed) {
        0 => refresh(),
        pid => pid,
    }
}

/// The kept process id; 0 until first asked, and again in a child right after `fork()`.
static KNOWN_PID: AtomicU32 = AtomicU32::new(0);

fn refresh() -> u32 {
    static FORGET_IN_CHILD: Once = Once::new();
    FORGET_IN_CHILD.call_once(|| {
        // SAFETY: registers a plain function that only stores to an atomic, which is
        // async-signal-safe, as a child handler must be.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
        assert_eq!(rc, 0, "pthread_atfork: out of memory");
    });
    let pid = std::process::id();
    KNOWN_PID.store(pid, Ordering::Relaxed);
    pid
}

extern "C" fn forget_in_child() {
    KNOWN_PID.store(0, Ordering::Relaxed);
}

/// A value usable only in the process that created it. In any other process (a child after
/// `fork()`) [`ProcessBound::get`] returns `None` and dropping leaks the value.
pub(crate) struct ProcessBound<T> {
    owner: u32,
    value: Option<T>,
}

impl<T> ProcessBound<T> {
    pub fn new(value: T) -> Self {
        ProcessBound {
            owner: current(),
            value: Some(value),
        }
    }

    /// The process that created the value.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// Whether the caller is the process that created the value.
    pub fn is_home(&self) -> bool {
        self.owner == current()
    }

    /// The value, in its own process; `None` in any other.
    pub fn get(&self) -> Option<&T> {
        if self.is_home() {
            self.value.as_ref()
        } else {
            None
        }
    }
}

impl<T> ProcessBound<T> {
    /// Takes the value out, in its own process; in any other it stays (and is leaked on drop).
    pub fn take(&mut self) -> Option<T> {
        if self.is_home() {
            self.value.take()
        } else {
            None
        }
    }
}

impl<T> Drop for ProcessBound<T> {
    fn drop(&mut self) {
        if !self.is_home()
            && let Some(value) = self.value.take()
        {
            // The parent's object: its destructor would act on the parent's files and locks.
            std::mem::forget(value);
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ProcessBound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBound")
            .field("owner", &self.owner)
            .field("value", &self.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_handed_out_and_dropped_in_its_own_process() {
        let dropped = std::sync::Arc::new(());
        let bound = ProcessBound::new(dropped.clone());
        assert!(bound.get().is_some());
        drop(bound);
        assert_eq!(std::sync::Arc::strong_count(&dropped), 1);
        let mut bound = ProcessBound::new(dropped.clone());
        assert!(bound.take().is_some());
        assert_eq!(std::sync::Arc::strong_count(&dropped), 1);
    }

    #[test]
    fn a_forked_child_sees_its_own_pid_not_the_kept_parent_one() {
        let parent = current();
        assert_eq!(parent, std::process::id());
        // SAFETY: the child only reads atomics, calls getpid and `_exit`s (no allocation, no
        // lock another test thread could hold at the fork).
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed"),
            0 => {
                let ok = current() != parent && current() == std::process::id();
                // SAFETY: ends the child at once, running nothing of the parent's (no atexit
                // handlers, no test harness).
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            child => {
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
                assert!(libc::WIFEXITED(status), "child ended by a signal");
                assert_eq!(
                    libc::WEXITSTATUS(status),
                    0,
                    "the child saw its parent's pid"
                );
                assert_eq!(current(), parent, "the parent keeps its own");
            }
        }
    }

    #[test]
    fn a_value_from_another_process_is_never_handed_out_nor_dropped() {
        let dropped = std::sync::Arc::new(());
        let mut bound = ProcessBound::new(dropped.clone());
        bound.owner = current().wrapping_add(1); // as if made by the parent before a fork
        assert!(bound.get().is_none());
        assert!(!bound.is_home());
        assert!(bound.take().is_none());
        drop(bound);
        assert_eq!(
            std::sync::Arc::strong_count(&dropped),
            2,
            "leaked, not dropped"
        );
    }
}
