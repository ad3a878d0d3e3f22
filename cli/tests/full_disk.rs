//! A full disk during recording: the error surfaces with the path, and every episode committed
//! before it stays intact and readable. Two ways: a real, small tmpfs filled by recording
//! (where this environment may mount; CI runs as root), and RLIMIT_FSIZE in a child recorder
//! (anywhere: past the limit, writes fail with EFBIG as they would with ENOSPC).

use crate::util;

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

    let committed = committed_lines(&out.stdout);
    assert!(
        committed.len() >= 3,
        "some episodes fit before the disk filled: {}",
        committed.len()
    );
    assert_exactly_these_intact(&store_dir, &committed);
    // Once space is back (no limit here), recording goes on in the same store.
    util::synth(store, "after", "2", &["--frame", "8x8x1"]);
}

/// A small tmpfs mounted for the test and unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`; `Err` with the reason when this environment may not mount
    /// (not root, no mount namespace rights).
    fn mount(at: &std::path::Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The real thing where the environment allows mounting: a 6 MiB tmpfs filled by recording
/// (ENOSPC from the file system itself, in segments and in the index). Falls back to the
/// RLIMIT_FSIZE test above, with a printed reason, where it may not mount.
#[test]
fn a_really_full_file_system_surfaces_enospc_and_committed_episodes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("small-disk");
    let disk = match Tmpfs::mount(&mount_point, 6 << 20) {
        Ok(disk) => disk,
        Err(reason) => {
            println!(
                "skipped: cannot mount a tmpfs here ({reason}); RLIMIT_FSIZE test covers ENOSPC"
            );
            return;
        }
    };
    let store_dir = disk.0.join("store");
    let store = store_dir.to_str().unwrap();
    util::cli_ok(&["init", store]);
    // Ballast to free once the disk is full, so recording can go on in the same store.
    std::fs::write(disk.0.join("ballast"), vec![1u8; 1 << 20]).unwrap();
    let out = util::bin()
        .args(["synth", store, "--user", "full", "--episodes", "500"])
        .args([
            "--frame",
            "64x64x3",
            "--min-steps",
            "20",
            "--max-steps",
            "40",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "the recorder fails: {stderr}");
    assert!(stderr.contains("No space"), "ENOSPC is named: {stderr}");
    assert!(stderr.contains("hint: the disk"), "with the hint: {stderr}");
    let committed = committed_lines(&out.stdout);
    assert!(
        committed.len() >= 3,
        "some episodes fit: {}",
        committed.len()
    );

    // Still full: reading works, everything committed is whole.
    assert_exactly_these_intact(&store_dir, &committed);
    // Space back: recording goes on in the same store.
    std::fs::remove_file(disk.0.join("ballast")).unwrap();
    util::synth(store, "after", "2", &["--frame", "8x8x1"]);
    let snap = Store::open(&store_dir).unwrap().snapshot().unwrap();
    assert_eq!(
        snap.episodes(&Query::default()).unwrap().len(),
        committed.len() + 2
    );
    assert!(snap.verify().unwrap().problems.is_empty());
}

/// The (episode, steps) of every JSON line `synth` printed: episodes whose commit returned.
fn committed_lines(stdout: &[u8]) -> Vec<(u64, u32)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["episode"].as_u64().unwrap(),
                v["steps"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

/// The store lists exactly the committed episodes, each of its recorded length, and verifies.
fn assert_exactly_these_intact(store_dir: &std::path::Path, committed: &[(u64, u32)]) {
    let store = Store::open_read_only(store_dir).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.episodes(&Query::default()).unwrap().len(),
        committed.len()
    );
    for (id, steps) in committed {
        assert_eq!(
            snap.episode(trajstore::EpisodeId(*id)).unwrap().steps(),
            *steps
        );
    }
    assert!(snap.verify().unwrap().problems.is_empty());
}
