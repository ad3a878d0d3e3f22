//! A full disk during recording: the error surfaces with the path, and every episode committed
//! before it stays intact and readable. The disk filling up is simulated with RLIMIT_FSIZE in
//! a child recorder: past the limit, writes fail with EFBIG as they would with ENOSPC.

mod util;

use std::os::unix::process::CommandExt;

use trajstore::{Query, Store};

#[test]
fn a_full_disk_surfaces_as_an_error_and_committed_episodes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = store_dir.to_str().unwrap();
    util::cli_ok(&["init", store]);
    let mut cmd = util::bin();
    cmd.args([
        "synth",
        store,
        "--user",
        "full",
        "--episodes",
        "500",
        "--frame",
        "64x64x3",
    ])
    .args(["--min-steps", "20", "--max-steps", "40"]);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 6 << 20,
                rlim_max: 6 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "the recorder fails: {stderr}");
    assert!(
        stderr.contains("File too large") || stderr.contains("No space"),
        "the OS error is named: {stderr}"
    );
    assert!(
        stderr.contains("store/"),
        "the error names the file: {stderr}"
    );

    let committed: Vec<(u64, u32)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["episode"].as_u64().unwrap(),
                v["steps"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    assert!(
        committed.len() >= 3,
        "some episodes fit before the disk filled: {}",
        committed.len()
    );
    let store = Store::open(&store_dir).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.episodes(&Query::default()).unwrap().len(),
        committed.len()
    );
    for (id, steps) in committed {
        assert_eq!(snap.episode(id).unwrap().steps(), steps);
    }
    assert!(snap.verify().unwrap().problems.is_empty());
    // Once space is back (no limit here), recording goes on in the same store.
    util::cli_ok(&[
        "synth",
        store_dir.to_str().unwrap(),
        "--user",
        "after",
        "--episodes",
        "2",
        "--frame",
        "8x8x1",
    ]);
}
