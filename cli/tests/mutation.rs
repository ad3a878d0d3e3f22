//! Malformed files never panic: random byte overwrites, truncations and appends in the index
//! and in segment files, then every reading command (and a writer open) on the damaged store.
//! Each must end on its own (no hang), by an exit code, never a signal or a panic, and every
//! error names the store's path.
//!
//! `cargo test` runs a bounded sample; `cargo test -p trajstore-cli --test main -- --ignored mutation::` runs
//! thousands (set `TRAJSTORE_MUTATIONS` to choose how many).

use crate::util;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use trajstore::Codec;
use trajstore::partition::rng::SplitMix64;

/// Commands run on every damaged store; `{dir}` is replaced by the store path.
const COMMANDS: &[&[&str]] = &[
    &["info", "{dir}"],
    &["ls", "{dir}", "--json"],
    &["show", "{dir}", "2"],
    &["verify", "{dir}"],
    &["repair", "{dir}"],
    // A writer open: lets redb recover the file, may need to write it.
    &["init", "{dir}"],
];

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A store with raw and lz4 fields, infos and several episodes, recorded once per test run.
fn pristine(dir: &Path) -> PathBuf {
    let root = dir.join("pristine");
    let store = trajstore::Store::create(&root).unwrap();
    for seed in 0..3 {
        util::record_small(&store, "alice", seed, 6, Codec::Raw);
        util::record_small(&store, "bob", 10 + seed, 4, Codec::Lz4);
    }
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn files_of(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join(trajstore::INDEX_FILE)];
    let mut segments: Vec<PathBuf> = std::fs::read_dir(root.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    files.extend(segments);
    files
}

/// Damages one file of the store at `root`; returns what was done, for the failure message.
fn mutate(root: &Path, rng: &mut SplitMix64) -> String {
    let files = files_of(root);
    let file = &files[rng.below(files.len() as u64) as usize];
    let mut bytes = std::fs::read(file).unwrap();
    let name = file.strip_prefix(root).unwrap().display().to_string();
    let what = match rng.below(4) {
        0 | 1 => {
            let n = 1 + rng.below(16);
            let mut at = Vec::new();
            for _ in 0..n {
                let i = rng.below(bytes.len().max(1) as u64) as usize;
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << rng.below(8); // a flipped bit, then whatever else
                    at.push(i);
                }
            }
            format!("{name}: flipped bits at {at:?}")
        }
        2 => {
            let len = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(len);
            format!("{name}: truncated to {len} bytes")
        }
        _ => {
            let n = 1 + rng.below(4096) as usize;
            bytes.extend((0..n).map(|_| rng.below(256) as u8));
            format!("{name}: appended {n} random bytes")
        }
    };
    std::fs::write(file, bytes).unwrap();
    what
}

/// Runs one CLI command with a deadline; returns (exit code, stderr) or panics naming the
/// failure (signal, panic message, hang, error without the path).
fn run_checked(args: &[String], dir: &Path, case: &str) {
    let mut child = util::bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            panic!("{case}: `trajstore {args:?}` hung for {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let Some(code) = status.code() else {
        panic!("{case}: `trajstore {args:?}` died by a signal ({status}); stderr: {stderr}");
    };
    assert!(
        !stderr.contains("panicked"),
        "{case}: `trajstore {args:?}` panicked: {stderr}"
    );
    assert!(
        matches!(code, 0..=2),
        "{case}: `trajstore {args:?}` exit code {code}: {stderr}"
    );
    if code == 2 {
        assert!(
            stderr.contains(&dir.display().to_string()),
            "{case}: the error of `trajstore {args:?}` does not name the store path: {stderr}"
        );
    }
}

fn run_cases(cases: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let pristine = pristine(dir.path());
    let mut rng = SplitMix64::new(seed);
    for case in 0..cases {
        let root = dir.path().join(format!("case-{case}"));
        copy_dir(&pristine, &root);
        let mutations = 1 + rng.below(2);
        let what: Vec<String> = (0..mutations).map(|_| mutate(&root, &mut rng)).collect();
        let label = format!("case {case} (seed {seed}): {}", what.join("; "));
        for command in COMMANDS {
            let args: Vec<String> = command
                .iter()
                .map(|a| a.replace("{dir}", root.to_str().unwrap()))
                .collect();
            run_checked(&args, &root, &label);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn random_damage_to_index_and_segments_never_panics_hangs_or_loses_the_path() {
    run_cases(200, 0x5eed);
}

#[test]
#[ignore = "thousands of cases: cargo test -p trajstore-cli --test main -- --ignored mutation::"]
fn random_damage_soak() {
    let cases = util::env_number("TRAJSTORE_MUTATIONS", 2000);
    run_cases(cases, 0xdead_beef);
}

#[test]
fn a_damaged_store_still_never_panics_in_process() {
    // The same damage through the library, in this process: errors, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let pristine = pristine(dir.path());
    let mut rng = SplitMix64::new(7);
    for case in 0..150 {
        let root = dir.path().join(format!("lib-{case}"));
        copy_dir(&pristine, &root);
        let what = mutate(&root, &mut rng);
        let result = std::panic::catch_unwind(|| read_everything(&root));
        assert!(result.is_ok(), "case {case}: {what}: the library panicked");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// Reads all a user can through the library; errors are fine, panics are not.
fn read_everything(root: &Path) {
    let Ok(store) = trajstore::Store::open_read_only(root) else {
        return;
    };
    let Ok(snapshot) = store.snapshot() else {
        return;
    };
    let _ = snapshot.users();
    let _ = snapshot.schemas();
    let _ = snapshot.verify();
    let Ok(episodes) = snapshot.episodes(&trajstore::Query::default()) else {
        return;
    };
    for episode in &episodes {
        let _ = snapshot.infos(episode);
        if let Ok(fields) = snapshot.fields(episode) {
            for field in fields {
                let _ = field.to_vec();
                let _ = field.verify();
            }
        }
    }
}
