//! Work spread over scoped threads, as the recorders of the synthetic runs and benchmarks are.

/// Runs `work(t)` for each `t` in `0..threads`, each on its own scoped thread, and waits for
/// all of them; returns the first error in thread order. A panicking thread panics the caller.
pub(crate) fn on_threads<E: Send>(
    threads: usize,
    work: impl Fn(usize) -> Result<(), E> + Sync,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads).map(|t| scope.spawn(move || work(t))).collect();
        for h in handles {
            h.join().expect("recorder thread panicked")?;
        }
        Ok(())
    })
}
