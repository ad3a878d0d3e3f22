//! `Snapshot::verify` of an existing store against reading its segment files (`cat`), the
//! two taking turns, page cache warm: the figure `bench --mode scale` reports, on a store
//! made once (`trajstore synth --frame 1x17x4 --min-steps 50 --max-steps 50 --writers 8`), so
//! that a change to verify can be tried without growing a store each time.
//!
//! Usage: verify_vs_cat STORE [SECONDS]  (each side runs SECONDS in total, 2 by default);
//! with `ONLY_VERIFY=N` in the environment, N verify passes and nothing else (for `perf`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use trajstore::Store;
use trajstore_testkit::bench::cat_segments;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: verify_vs_cat STORE [SECONDS]"));
    let seconds: f64 = args.next().map_or(2.0, |s| s.parse().expect("SECONDS"));
    let store = Store::open(&dir).expect("open store");
    let segments = dir.join("segments");
    let verify = || {
        let report = store.snapshot().unwrap().verify().unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
    };
    verify();
    if let Some(n) = std::env::var_os("ONLY_VERIFY") {
        // For `perf stat`: this many verify passes and nothing else.
        for _ in 0..n
            .to_str()
            .and_then(|n| n.parse().ok())
            .expect("ONLY_VERIFY=N")
        {
            verify();
        }
        return;
    }
    let (mut best, mut timed, mut passes) = ([f64::MAX; 2], [0.0; 2], 0u64);
    let mut all: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    while timed.iter().any(|&t| t < seconds) {
        for k in 0..2 {
            let side = (passes as usize + k) % 2;
            let start = Instant::now();
            if side == 0 {
                verify();
            } else {
                black_box(cat_segments(&segments).expect("cat"));
            }
            let s = start.elapsed().as_secs_f64();
            best[side] = best[side].min(s);
            timed[side] += s;
            all[side].push(s);
        }
        passes += 1;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [mut v, mut c] = all;
    println!(
        "passes {passes}  verify best {:.3} ms median {:.3} ms  cat best {:.3} ms median {:.3} ms  ratio best {:.3} median {:.3}",
        best[0] * 1e3,
        median(&mut v) * 1e3,
        best[1] * 1e3,
        median(&mut c) * 1e3,
        best[1] / best[0],
        median(&mut c) / median(&mut v),
    );
}
