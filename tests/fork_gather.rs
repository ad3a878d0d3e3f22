//! Parallel reads after `fork()`: a child forked after its parent gathered batches (and so
//! started the library's thread pool) must gather too, instead of waiting forever on pool
//! threads that only exist in the parent. PyTorch's DataLoader forks its workers this way.
//! One test per binary: `fork` in a process with as few threads as possible.

use std::time::{Duration, Instant};

use trajstore::loader::{Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
use trajstore::{Query, Store};
use trajstore_testkit::synth::{SynthConfig, record_one, synth_schema};

/// Runs `child` in a forked child process; its return value is the exit status. Fails if the
/// child does not exit within `timeout` (it is killed then).
fn in_forked_child(timeout: Duration, child: impl FnOnce() -> bool) -> Result<i32, String> {
    // SAFETY: fork in a test; the child only runs `child` (trajstore code and allocation) and
    // leaves with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            });
        }
        if start.elapsed() > timeout {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("the forked child hung for {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_forked_child_gathers_batches_after_its_parent_did() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path()).unwrap();
    let config = SynthConfig {
        user: "u".into(),
        min_steps: 20,
        max_steps: 40,
        // Big enough units that a batch is split across threads (small ones run inline).
        frame: [64, 64, 3],
        ..Default::default()
    };
    let schema = synth_schema(config.frame, config.codec).unwrap();
    for n in 0..6 {
        record_one(&store, &config, &schema, n).unwrap();
    }
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 0)).unwrap();
    let spec = || {
        SamplerSpec::steps(
            vec![FieldRequest::new("obs/frame"), FieldRequest::new("action")],
            64,
            Order::Shuffle,
        )
    };
    // The parent gathers: its pool's threads now exist (in the parent only).
    let mut sampler = Sampler::new(&loader, spec()).unwrap();
    let mut batch = Batch::new();
    assert!(sampler.next_into(&mut batch).unwrap());
    let report = store.snapshot().unwrap().verify().unwrap();
    assert!(report.problems.is_empty());

    let status = in_forked_child(Duration::from_secs(60), || {
        // The parent's sampler, mid-epoch, and a fresh one; then a parallel verify.
        let mut batch = Batch::new();
        let mut served = 0;
        while sampler.next_into(&mut batch).unwrap() {
            served += batch.units;
        }
        let mut fresh = Sampler::new(&loader, spec()).unwrap();
        let mut all = 0;
        while fresh.next_into(&mut batch).unwrap() {
            all += batch.units;
        }
        let verified = store.snapshot().unwrap().verify().unwrap();
        served > 0 && all as u64 == loader.steps() && verified.problems.is_empty()
    });
    assert_eq!(status, Ok(0));
    // And the parent's pool still works.
    assert!(sampler.next_into(&mut batch).unwrap());
}
