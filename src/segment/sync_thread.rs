//! One segment's `fdatasync`s, run on a thread of their own beside the index commit.
//!
//! A commit overlaps its segment's sync with the index transaction (index/presync.rs). The
//! sync used to run on a thread spawned for each commit; creating and tearing down a thread
//! (clone, stack map, guard page, unmap) cost as much CPU as the rest of a small episode's
//! commit. An appender now keeps one waiting thread for its whole life and hands it a request
//! per commit: a wake-up instead of a thread.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::index::presync::SyncSignal;
use crate::io::StoreFile;

/// A thread that syncs one file on request. Dropping it ends the thread and waits for it, so
/// the file (and the OS lock held through it) is closed when its appender is dropped.
#[derive(Debug)]
pub(crate) struct SyncThread {
    requests: Option<Sender<(u64, Arc<SyncSignal>)>>,
    /// Each sync's result, tagged with its request's number: a result left unread (the commit
    /// that asked for it unwound) is never taken for a later request's.
    results: Receiver<(u64, io::Result<()>)>,
    requested: u64,
    thread: Option<JoinHandle<()>>,
}

impl SyncThread {
    /// Starts the thread for `file`; `what` names the file in a failed sync's message.
    pub fn start(file: Arc<dyn StoreFile>, what: String) -> io::Result<SyncThread> {
        let (requests, jobs) = channel::<(u64, Arc<SyncSignal>)>();
        let (done, results) = channel();
        let thread = std::thread::Builder::new()
            .name("trajstore-segment-sync".into())
            .spawn(move || {
                for (number, signal) in jobs {
                    let synced = file.sync_data();
                    // The index commit waiting on the signal learns the outcome first; the
                    // appender then takes the error itself (with its kind) from `done`.
                    signal.set(&what, &synced);
                    if done.send((number, synced)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SyncThread {
            requests: Some(requests),
            results,
            requested: 0,
            thread: Some(thread),
        })
    }

    /// Starts one sync; its signal is set when it returns.
    pub fn request(&mut self) -> io::Result<Arc<SyncSignal>> {
        let signal = Arc::new(SyncSignal::default());
        let number = self.requested + 1;
        self.requests
            .as_ref()
            .expect("only taken by drop")
            .send((number, signal.clone()))
            .map_err(|_| ended())?;
        self.requested = number;
        Ok(signal)
    }

    /// Waits for the sync the last [`SyncThread::request`] started, and returns its result.
    pub fn wait(&self) -> io::Result<()> {
        loop {
            let (number, result) = self.results.recv().map_err(|_| ended())?;
            if number == self.requested {
                return result;
            }
        }
    }
}

fn ended() -> io::Error {
    io::Error::other("the segment sync thread ended")
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A file whose syncs fail in the order given (and succeed once the list is used up).
    #[derive(Debug, Default)]
    struct ScriptedSyncs {
        failures: Mutex<Vec<bool>>,
    }

    impl StoreFile for ScriptedSyncs {
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            Err(io::Error::other("the sync thread never reads"))
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::Error::other("the sync thread never writes"))
        }
        fn sync_data(&self) -> io::Result<()> {
            let mut failures = self.failures.lock().unwrap();
            match failures.is_empty() || !failures.remove(0) {
                true => Ok(()),
                false => Err(io::Error::other("scripted sync failure")),
            }
        }
        fn sync_all(&self) -> io::Result<()> {
            self.sync_data()
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn try_lock(&self) -> io::Result<bool> {
            Ok(true)
        }
        fn lock(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn thread_over(failures: Vec<bool>) -> SyncThread {
        let file = Arc::new(ScriptedSyncs {
            failures: Mutex::new(failures),
        });
        SyncThread::start(file, "seg".into()).unwrap()
    }

    #[test]
    fn a_sync_failure_reaches_the_signal_and_the_waiter() {
        let mut thread = thread_over(vec![true]);
        let signal = thread.request().unwrap();
        let err = signal.wait().unwrap_err();
        assert!(err.to_string().contains("syncing seg"), "{err}");
        assert!(thread.wait().is_err());
        // The thread keeps serving: the next sync succeeds.
        let signal = thread.request().unwrap();
        signal.wait().unwrap();
        thread.wait().unwrap();
    }

    #[test]
    fn a_result_left_unread_is_not_taken_for_the_next_request() {
        // The first sync fails and nobody reads its result (its commit unwound); the second
        // succeeds, and its waiter must get that, not the first one's failure.
        let mut thread = thread_over(vec![true, false]);
        let first = thread.request().unwrap();
        assert!(first.wait().is_err());
        let second = thread.request().unwrap();
        thread.wait().unwrap();
        second.wait().unwrap();
    }
}
