//! Background prefetch: a thread keeps the next batches gathered while the trainer consumes
//! the current one, and batches are recycled so their buffers are reused.
//!
//! The gather itself is already parallel (rayon, inside [`Sampler::next_into`]); this only
//! overlaps it with the consumer's work. Batches come back in exactly the sampler's order.

use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::loader::batch::Batch;
use crate::loader::sampler::Sampler;

/// Gathers up to `depth` batches ahead on a background thread.
pub struct Prefetcher {
    ready: Option<Receiver<Result<Batch>>>,
    free: Sender<Batch>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts prefetching from `sampler` (from its current position to the end of its epoch).
    pub fn new(mut sampler: Sampler, depth: usize) -> Prefetcher {
        let (ready_tx, ready): (SyncSender<Result<Batch>>, _) = sync_channel(depth.max(1));
        let (free, free_rx) = channel::<Batch>();
        let thread = std::thread::spawn(move || {
            loop {
                // Reuse a recycled batch when there is one; allocate only when the consumer
                // keeps its batches.
                let mut batch = match free_rx.try_recv() {
                    Ok(b) => b,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => Batch::new(),
                };
                let item = match sampler.next_into(&mut batch) {
                    Ok(true) => Ok(batch),
                    Ok(false) => return,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                // A send error means the consumer is gone: stop.
                if ready_tx.send(item).is_err() || failed {
                    return;
                }
            }
        });
        Prefetcher {
            ready: Some(ready),
            free,
            thread: Some(thread),
        }
    }

    /// The next batch, `None` at the end of the epoch. After an error, `None` follows.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        self.ready.as_ref()?.recv().ok()
    }

    /// Hands a consumed batch back so its buffers are reused.
    pub fn recycle(&self, batch: Batch) {
        // The thread may have finished: then the batch is simply dropped.
        let _ = self.free.send(batch);
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel makes the thread's next send fail, so it exits.
        self.ready.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
