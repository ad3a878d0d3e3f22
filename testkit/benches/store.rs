//! Recording and reading throughput, each against a plain-file baseline of the same bytes
//! measured in the same run (`cargo bench --bench store`).
//!
//! Goals: recording >= 0.8x a plain sequential write + fsync per episode; reading raw
//! frames >= 0.8x a plain memory-mapped read of the same bytes.

use trajstore::Codec;
use trajstore_testkit::bench::{Commit, RecordSpec, record, scan};

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let episodes: u32 = std::env::var("TRAJSTORE_BENCH_EPISODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for codec in [Codec::Raw, Codec::Lz4] {
        let dir = tempfile::tempdir_in(
            std::env::var("TRAJSTORE_BENCH_DIR").unwrap_or_else(|_| ".".into()),
        )
        .expect("temporary directory");
        let spec = RecordSpec {
            episodes,
            steps: 250,
            frame: [128, 128, 3],
            codec,
        };
        let recorded = record(dir.path(), &spec, Commit::Wait).expect("record");
        println!("{}", recorded.line());
        let scanned = scan(&dir.path().join("store"), "obs/frame").expect("scan");
        println!("{}", scanned.line());
    }
}
