//! The concurrent benchmark's process recorders: this test binary runs itself again as each
//! recorder (bench::recorder_process), so it has its own `main` instead of libtest's.

use trajstore::Codec;
use trajstore_testkit::bench::recorder_process::run_if_recorder_process;
use trajstore_testkit::bench::{
    Commit, ConcurrentSpec, RecordSpec, Recorders, episode_raw_bytes, record_concurrently,
};

fn main() {
    run_if_recorder_process();
    // Both ways of committing reach the recorder processes through their environment.
    for commit in [Commit::Wait, Commit::Background] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spec = ConcurrentSpec {
            writers: 3,
            recorders: Recorders::Processes,
            per_writer: RecordSpec {
                episodes: 4,
                steps: 5,
                frame: [8, 8, 3],
                codec: Codec::Lz4,
            },
            commit,
        };
        let report = record_concurrently(dir.path(), &spec).expect("three recorder processes");
        // Each process reported its own handle's commits: together, every episode once, and
        // one latency per episode.
        assert_eq!(report.stats.episodes, 12, "{commit:?}: {report:?}");
        assert!(report.stats.transactions >= 1, "{commit:?}: {report:?}");
        assert_eq!(report.commits, 12, "{commit:?}: {report:?}");
        assert!(report.commit_max_ms > 0.0, "{commit:?}: {report:?}");
        // The raw bytes of every field of the 12 episodes (what the plain baseline writes too).
        assert_eq!(
            report.measurement.bytes,
            12 * episode_raw_bytes(8 * 8 * 3, 5) as u64
        );
        println!("recorder processes, {commit:?}: ok ({})", report.line());
    }
}
