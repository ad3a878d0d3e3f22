//! Many recorders at once: threads and OS processes append into one live store while
//! readers follow commits, and killed recorders lose only their unfinished episodes.
//!
//! Writer processes are the `trajstore` binary (`synth` prints one JSON line per episode after
//! its commit returned: a durable promise the tests hold it to). Scenarios that need a process
//! to stop at an exact point re-run this test binary as a child (see [`child_entry`]).
//!
//! Every wait is bounded and waits for a condition (a line printed, a process exited), never
//! for a fixed time. `cargo test -p trajstore-cli --test main -- --ignored concurrency::` runs the
//! longer soak.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trajstore::{
    ArrayRef, Codec, EpisodeMeta, ErrorKind, INDEX_FILE, Info, Query, Store, StoreOptions,
};
use trajstore_testkit::synth::{SynthConfig, record_one, synth_schema};

use crate::util::BIN;
/// Upper bound for any single wait; generous for a loaded 2-core machine and a debug build.
const TIMEOUT: Duration = Duration::from_secs(120);
const SMALL: [&str; 6] = [
    "--frame",
    "16x16x3",
    "--min-steps",
    "5",
    "--max-steps",
    "30",
];

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls `cond` every few milliseconds until it holds; panics after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a writer process promised: episode id -> (user, steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Promise {
    episode: u64,
    steps: u32,
}

/// A child process whose stdout lines are collected by a thread as they arrive.
struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    fn spawn(name: impl Into<String>, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            name: name.into(),
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Whether a line ends with `wanted` (libtest may print "test concurrency::child_entry ... " first).
    fn has_line(&self, wanted: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.ends_with(wanted))
    }

    /// SIGKILL: no destructor, no flush, no unlock but the kernel's.
    fn sigkill(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall on a child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
    }

    /// Waits (bounded) for the process to exit and for its stdout to be drained.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {TIMEOUT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("stdout reader");
        }
        status
    }

    /// The JSON lines of `trajstore synth`, parsed.
    fn promises(&self) -> Vec<(String, Promise)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("synth prints JSON");
                (
                    v["user"].as_str().expect("user").to_owned(),
                    Promise {
                        episode: v["episode"].as_u64().expect("episode"),
                        steps: v["steps"].as_u64().expect("steps") as u32,
                    },
                )
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failed assertion must not leave children running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn synth(dir: &Path, user: &str, episodes: u64, writers: usize, seed: u64) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("synth")
        .arg(dir)
        .args(["--user", user, "--episodes", &episodes.to_string()])
        .args([
            "--writers",
            &writers.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(SMALL);
    Proc::spawn(format!("synth {user}"), &mut cmd)
}

fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg(args[0])
        .arg(dir)
        .args(&args[1..])
        .output()
        .expect("run trajstore")
}

/// Re-runs this test binary as a child executing `child_entry` in `mode`.
fn child(mode: &str, dir: &Path) -> Proc {
    // libtest names a test by its module path without the crate: `concurrency::child_entry`.
    let (_crate, module) = module_path!()
        .split_once("::")
        .expect("a module of the tests");
    let test = format!("{module}::child_entry");
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("TRAJSTORE_TEST_CHILD", mode)
        .env("TRAJSTORE_TEST_DIR", dir);
    Proc::spawn(format!("child {mode}"), &mut cmd)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Records one small episode with the writer API directly; `spill` forces chunks to disk early.
fn begin_small(store: &Store, user: &str) -> trajstore::EpisodeWriter {
    let schema = synth_schema([16, 16, 3], Codec::Raw).unwrap();
    let mut w = store
        .begin_episode(EpisodeMeta::new(user, "Synth-v0"), &schema)
        .unwrap();
    let frame = [7u8; 16 * 16 * 3];
    let health = [100i32, 100];
    w.reset(
        &[
            ("obs/frame", ArrayRef::new(&frame)),
            ("obs/ram/health", ArrayRef::new(&health)),
        ],
        &Info::new(),
    )
    .unwrap();
    w
}

fn step(w: &mut trajstore::EpisodeWriter, last: bool) {
    let frame = [9u8; 16 * 16 * 3];
    let health = [100i32, 99];
    w.step(
        &[
            ("obs/frame", ArrayRef::new(&frame)),
            ("obs/ram/health", ArrayRef::new(&health)),
            ("action", ArrayRef::scalar(&1i64)),
            ("reward", ArrayRef::scalar(&0.5f32)),
            ("terminated", ArrayRef::scalar(&last)),
            ("truncated", ArrayRef::scalar(&false)),
        ],
        &Info::new(),
    )
    .unwrap();
}

fn record_small(store: &Store, user: &str, steps: u32) -> trajstore::EpisodeId {
    let mut w = begin_small(store, user);
    for t in 1..=steps {
        step(&mut w, t == steps);
    }
    w.commit().unwrap()
}

/// Helper processes for scenarios that must stop at an exact point. A no-op in a normal run.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var("TRAJSTORE_TEST_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("TRAJSTORE_TEST_DIR").unwrap());
    match mode.as_str() {
        // Commits two episodes, then stops in the middle of a third whose chunks are already
        // written to its segment (tiny spill size), and waits to be killed.
        "mid-episode" => {
            let options = StoreOptions {
                spill_bytes: 1024,
                ..Default::default()
            };
            let store = Store::open_with(&dir, options).unwrap();
            for _ in 0..2 {
                let id = record_small(&store, "victim", 4);
                say(&format!("committed {id}"));
            }
            let mut w = begin_small(&store, "victim");
            for _ in 0..20 {
                step(&mut w, false);
            }
            say("MID-EPISODE");
            std::thread::sleep(TIMEOUT); // killed long before; `w` is never dropped
            drop(w);
        }
        // Opens the index as a second writer would and stops inside a redb write transaction
        // (holding the cross-process writer lock, pages half written).
        "mid-transaction" => {
            let store = Store::open(&dir).unwrap();
            let id = record_small(&store, "victim", 3);
            say(&format!("committed {id}"));
            drop(store);
            let mut b = redb::Database::builder();
            b.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
            let db = b.open(dir.join(INDEX_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let junk: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("junk");
                let mut t = txn.open_table(junk).unwrap();
                for i in 0..10_000u64 {
                    t.insert(i, [0xAB; 100].as_slice()).unwrap();
                }
            }
            say("MID-TRANSACTION");
            std::thread::sleep(TIMEOUT); // killed long before
            drop(txn);
        }
        other => panic!("unknown child mode {other}"),
    }
    std::thread::sleep(TIMEOUT); // killed long before
}

/// Everything a reader can check about a store: all episodes read whole, verify is clean.
/// Returns id -> (user, steps).
fn check_store(dir: &Path) -> BTreeMap<u64, (String, u32)> {
    let store = Store::open_read_only(dir).expect("read-only open");
    let snapshot = store.snapshot().unwrap();
    let report = snapshot.verify().unwrap();
    assert!(
        report.problems.is_empty(),
        "verify: {:?}",
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );
    let episodes = snapshot.episodes(&Query::default()).unwrap();
    assert_eq!(report.episodes, episodes.len() as u64);
    let mut seen = BTreeMap::new();
    for e in &episodes {
        for f in snapshot.fields(e).unwrap() {
            let bytes = f.to_vec().unwrap();
            assert_eq!(
                bytes.len(),
                f.len() * f.step_bytes(),
                "episode {} whole",
                e.id()
            );
        }
        assert!(
            seen.insert(e.id().get(), (e.user().to_owned(), e.steps()))
                .is_none(),
            "duplicate id {}",
            e.id()
        );
    }
    // Per-user listing is the same episodes, in id (= commit) order.
    for user in snapshot.users().unwrap() {
        let ids: Vec<u64> = snapshot
            .episodes(&Query::default().user(&user.name))
            .unwrap()
            .iter()
            .map(|e| e.id().get())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{} in order",
            user.name
        );
        let expected: Vec<u64> = seen
            .iter()
            .filter(|(_, (u, _))| *u == user.name)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, expected, "user {} lists its episodes", user.name);
    }
    seen
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("segments")).unwrap().count()
}

// ---------------------------------------------------------------------------------------------
// Stress: processes x threads, CLI readers, a library reader, one writer SIGKILLed.

struct StressConfig {
    processes: usize,
    writers: usize,
    episodes_per_process: u64,
    /// The victim process is killed after it reported this many commits.
    kill_after: usize,
    rounds: usize,
}

fn stress(cfg: &StressConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // No `init`: the writers race to create the store (atomic index creation).
    let mut promised: Vec<(String, Promise)> = Vec::new();
    for round in 0..cfg.rounds {
        let mut writers: Vec<Proc> = (0..cfg.processes)
            .map(|p| {
                let user = format!("r{round}p{p}");
                // The victim (process 0) is given far more work than it will live to do.
                let episodes = if p == 0 {
                    10_000
                } else {
                    cfg.episodes_per_process
                };
                synth(&dir, &user, episodes, cfg.writers, (round * 100 + p) as u64)
            })
            .collect();
        wait_until("the store to exist", TIMEOUT, || {
            dir.join(INDEX_FILE).is_file()
        });

        let done = Arc::new(AtomicBool::new(false));
        let cli_reader = spawn_cli_reader(dir.clone(), done.clone());
        let lib_reader = spawn_library_reader(dir.clone(), done.clone());

        let (victim, others) = writers.split_first_mut().unwrap();
        wait_until("the victim's commits", TIMEOUT, || {
            victim.line_count() >= cfg.kill_after
        });
        victim.sigkill();
        let status = victim.wait();
        assert!(!status.success(), "the victim was killed, not finished");
        promised.extend(victim.promises());
        for w in others {
            let status = w.wait();
            assert!(
                status.success(),
                "{} failed after the kill: {status}",
                w.name
            );
            let p = w.promises();
            assert_eq!(p.len() as u64, cfg.episodes_per_process, "{}", w.name);
            promised.extend(p);
        }
        done.store(true, Ordering::Relaxed);
        let cli_rounds = cli_reader.join().expect("CLI reader");
        let lib_rounds = lib_reader.join().expect("library reader");
        assert!(cli_rounds > 0 && lib_rounds > 0, "the readers ran");
        eprintln!(
            "round {round}: {} promised so far; readers: {cli_rounds} CLI, {lib_rounds} library",
            promised.len()
        );
    }

    let stored = check_store(&dir);
    for (user, p) in &promised {
        assert_eq!(
            stored.get(&p.episode),
            Some(&(user.clone(), p.steps)),
            "episode {} promised to {user}",
            p.episode
        );
    }
    let ids: HashSet<u64> = promised.iter().map(|(_, p)| p.episode).collect();
    assert_eq!(ids.len(), promised.len(), "ids unique across writers");
    // Every stored episode was promised, except at most one per killed process that committed
    // after the victim's last printed line (the kill can land between commit and print); each
    // victim ran `writers` threads.
    let unpromised = stored.keys().filter(|id| !ids.contains(id)).count();
    assert!(
        unpromised <= cfg.rounds * cfg.writers,
        "{unpromised} episodes nobody reported"
    );

    // The CLI agrees, and a later writer adopts the dead and idle segments instead of creating.
    let out = cli(&["verify", "--json"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let segments = segment_count(&dir);
    let mut late = synth(&dir, "late", 3, 1, 99);
    assert!(late.wait().success());
    assert_eq!(
        segment_count(&dir),
        segments,
        "an unlocked segment was adopted"
    );
    check_store(&dir);
}

/// `trajstore ls --json`, `info --json` and `verify --json` in a loop until `done`; each must
/// succeed and see a store that only grows. Returns the number of loops.
fn spawn_cli_reader(dir: PathBuf, done: Arc<AtomicBool>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut loops = 0;
        let mut last = 0usize;
        while !done.load(Ordering::Relaxed) || loops == 0 {
            let ls = cli(&["ls", "--json"], &dir);
            assert!(
                ls.status.success(),
                "ls: {}",
                String::from_utf8_lossy(&ls.stderr)
            );
            let listed: Vec<u64> = String::from_utf8(ls.stdout)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["episode"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            assert!(listed.windows(2).all(|w| w[0] < w[1]), "ls in commit order");
            assert!(listed.len() >= last, "a later ls never sees fewer episodes");
            last = listed.len();
            let info = cli(&["info", "--json"], &dir);
            assert!(
                info.status.success(),
                "info: {}",
                String::from_utf8_lossy(&info.stderr)
            );
            let verify = cli(&["verify", "--json"], &dir);
            assert!(
                verify.status.success(),
                "verify while writing: {} {}",
                String::from_utf8_lossy(&verify.stdout),
                String::from_utf8_lossy(&verify.stderr)
            );
            loops += 1;
        }
        loops
    })
}

/// One read-only handle kept open across the whole round (and the kill): each new snapshot
/// sees at least what the previous one did, and every listed episode reads whole.
fn spawn_library_reader(dir: PathBuf, done: Arc<AtomicBool>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let store = Store::open_read_only(&dir).expect("read-only open");
        let mut loops = 0;
        let mut last = 0;
        while !done.load(Ordering::Relaxed) || loops == 0 {
            let snapshot = store.snapshot().unwrap();
            let episodes = snapshot.episodes(&Query::default()).unwrap();
            assert!(episodes.len() >= last, "snapshots only grow");
            last = episodes.len();
            for e in &episodes {
                for f in snapshot.fields(e).unwrap() {
                    f.verify()
                        .unwrap_or_else(|(s, err)| panic!("episode {} steps {s:?}: {err}", e.id()));
                }
            }
            loops += 1;
        }
        loops
    })
}

#[test]
fn stress_processes_threads_readers_and_a_kill() {
    stress(&StressConfig {
        processes: 4,
        writers: 2,
        episodes_per_process: 50, // 25 per recorder thread
        kill_after: 25,
        rounds: 1,
    });
}

#[test]
#[ignore = "soak, minutes: cargo test -p trajstore-cli --release --test main -- --ignored concurrency::"]
fn soak_many_rounds_of_writers_and_kills() {
    stress(&StressConfig {
        processes: 4,
        writers: 3,
        episodes_per_process: 200,
        kill_after: 60,
        rounds: 8,
    });
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn a_snapshot_does_not_change_and_a_new_one_sees_new_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path()).unwrap();
    let first = record_small(&store, "alice", 3);
    let before = store.snapshot().unwrap();
    let cutoff = before.cutoff().unwrap();
    let second = record_small(&store, "alice", 4);

    let ids = |s: &trajstore::Snapshot| -> Vec<trajstore::EpisodeId> {
        s.episodes(&Query::default())
            .unwrap()
            .iter()
            .map(|e| e.id())
            .collect()
    };
    assert_eq!(ids(&before), vec![first]);
    assert_eq!(before.cutoff().unwrap(), cutoff);
    assert_eq!(before.users().unwrap()[0].episodes, 1);
    assert_eq!(
        before.episode(second).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let after = store.snapshot().unwrap();
    assert_eq!(ids(&after), vec![first, second]);
    assert_eq!(after.users().unwrap()[0].episodes, 2);
    // The old snapshot still reads its episode, whole.
    let e = before.episode(first).unwrap();
    assert_eq!(before.field(&e, "obs/frame").unwrap().len(), 4);
}

#[test]
fn a_read_only_handle_follows_commits_of_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(synth(dir, "first", 2, 1, 1).wait().success());
    let reader = Store::open_read_only(dir).unwrap();
    let before = reader.snapshot().unwrap();
    assert_eq!(before.episodes(&Query::default()).unwrap().len(), 2);

    let mut writer = synth(dir, "second", 3, 2, 2);
    assert!(writer.wait().success());
    let promised = writer.promises();
    assert_eq!(promised.len(), 3);

    assert_eq!(
        before.episodes(&Query::default()).unwrap().len(),
        2,
        "unchanged"
    );
    let after = reader.snapshot().unwrap();
    let second = after.episodes(&Query::default().user("second")).unwrap();
    assert_eq!(
        second.len(),
        3,
        "a new snapshot sees the other process's commits"
    );
    for (_, p) in promised {
        let e = after.episode(trajstore::EpisodeId(p.episode)).unwrap();
        assert_eq!((e.user(), e.steps()), ("second", p.steps));
        for f in after.fields(&e).unwrap() {
            f.verify().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crashes

#[test]
fn a_recorder_killed_mid_episode_loses_only_that_episode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Store::create(dir).unwrap();
    let mut bystander = synth(dir, "bystander", 40, 2, 3);
    let mut victim = child("mid-episode", dir);
    wait_until("the victim to be mid-episode", TIMEOUT, || {
        victim.has_line("MID-EPISODE")
    });
    let before_kill = segment_bytes(dir);
    victim.sigkill();
    assert!(!victim.wait().success());
    assert!(bystander.wait().success(), "the other recorder goes on");

    let committed: Vec<u64> = victim
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split("committed ").nth(1)?.parse().ok())
        .collect();
    assert_eq!(committed.len(), 2);
    let stored = check_store(dir);
    let victim_ids: Vec<u64> = stored
        .iter()
        .filter(|(_, (u, _))| u == "victim")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        victim_ids, committed,
        "the unfinished episode is not visible"
    );
    for (_, p) in bystander.promises() {
        assert_eq!(stored[&p.episode], ("bystander".to_owned(), p.steps));
    }
    assert_eq!(stored.len(), 42);
    // The dead episode's chunks were written (and are now garbage the index never names).
    let report = Store::open_read_only(dir)
        .unwrap()
        .snapshot()
        .unwrap()
        .verify()
        .unwrap();
    assert!(before_kill > 0 && report.unreferenced_bytes > 0);
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn killed_inside_an_index_transaction_readers_open_and_writers_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Store::create(dir).unwrap();
    let mut victim = child("mid-transaction", dir);
    wait_until("the victim inside its transaction", TIMEOUT, || {
        victim.has_line("MID-TRANSACTION")
    });
    victim.sigkill();
    assert!(!victim.wait().success());

    // The state that matters: no live writer, the index marked for recovery. redb alone
    // refuses to open it read-only...
    let mut b = redb::Database::builder();
    b.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    assert!(matches!(
        b.open_read_only(dir.join(INDEX_FILE)),
        Err(redb::DatabaseError::RepairAborted)
    ));
    // ...the store recovers it and opens: the committed episode is there, the junk is not.
    let stored = check_store(dir);
    assert_eq!(stored.len(), 1);
    let reader = Store::open_read_only(dir).unwrap();
    // The killed writer's lock died with it: other writers commit, and the reader follows.
    let mut next = synth(dir, "next", 3, 2, 4);
    assert!(next.wait().success());
    let snapshot = reader.snapshot().unwrap();
    assert_eq!(snapshot.episodes(&Query::default()).unwrap().len(), 4);
    assert_eq!(check_store(dir).len(), 4);
}

#[test]
fn ls_and_info_work_right_after_a_writer_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut victim = synth(dir, "victim", 10_000, 2, 5);
    wait_until("some commits", TIMEOUT, || victim.line_count() >= 5);
    victim.sigkill();
    victim.wait();
    let promised = victim.promises();
    for cmd in [&["ls", "--json"][..], &["info"], &["verify"]] {
        let out = cli(cmd, dir);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = check_store(dir);
    for (_, p) in promised {
        assert_eq!(stored[&p.episode], ("victim".to_owned(), p.steps));
    }
}

// ---------------------------------------------------------------------------------------------
// Ids and order

#[test]
fn ids_are_unique_and_each_user_lists_in_commit_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path()).unwrap();
    let threads = 4;
    let per_thread = 12;
    let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let config = SynthConfig {
                        user: format!("u{t}"),
                        min_steps: 2,
                        max_steps: 12,
                        frame: [16, 16, 3],
                        seed: t as u64,
                        ..Default::default()
                    };
                    let schema = synth_schema(config.frame, config.codec).unwrap();
                    (0..per_thread)
                        .map(|n| record_one(store, &config, &schema, n).unwrap().episode)
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: HashSet<u64> = ids.iter().flatten().copied().collect();
    assert_eq!(all.len(), threads * per_thread as usize, "unique ids");
    let snapshot = store.snapshot().unwrap();
    for (t, mine) in ids.iter().enumerate() {
        // One thread commits one after another: its ids grow, and its user lists them so.
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        let listed: Vec<u64> = snapshot
            .episodes(&Query::default().user(format!("u{t}")))
            .unwrap()
            .iter()
            .map(|e| e.id().get())
            .collect();
        assert_eq!(&listed, mine);
    }
    let stats = store.commit_stats();
    assert_eq!(stats.episodes, (threads * per_thread as usize) as u64);
    assert!(stats.transactions >= 1 && stats.transactions <= stats.episodes);
}

#[test]
fn concurrent_creators_share_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let mut procs: Vec<Proc> = (0..4)
        .map(|p| synth(&dir, &format!("c{p}"), 2, 1, p))
        .collect();
    let mut promised = Vec::new();
    for p in &mut procs {
        assert!(p.wait().success(), "{}", p.name);
        promised.extend(p.promises());
    }
    let stored = check_store(&dir);
    assert_eq!(stored.len(), 8);
    for (user, p) in promised {
        assert_eq!(stored[&p.episode], (user, p.steps));
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("creating"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary index files left: {leftovers:?}"
    );
}

#[test]
fn episodes_two_processes_queued_together_go_into_one_segment_and_repair_restores_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    assert!(cli(&["init"], &dir).status.success());
    // The test holds the leader lock, so both recorders post their episode as a ticket
    // (schema/concurrency.md, "Carried episodes") and wait.
    let lock = std::fs::File::create(dir.join("commit.lock")).unwrap();
    lock.lock().unwrap();
    let mut procs: Vec<Proc> = (0..2)
        .map(|p| synth(&dir, &format!("q{p}"), 1, 1, p))
        .collect();
    let queue = dir.join("commit-queue");
    wait_until("both tickets posted whole", TIMEOUT, || {
        let posted = std::fs::read_dir(&queue).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "q"))
                .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b.starts_with(b"TRAJQUE\0")))
                .count()
        });
        posted == 2
    });
    assert_eq!(
        segment_count(&dir),
        0,
        "a posted episode carries its records"
    );
    // The first poster to take the lock leads the round: it writes both episodes into one
    // segment of its own, under one sync, and indexes both.
    lock.unlock().unwrap();
    for p in &mut procs {
        assert!(p.wait().success(), "{}", p.name);
    }
    assert_eq!(segment_count(&dir), 1, "one segment holds the round");
    let stored = check_store(&dir);
    assert_eq!(stored.len(), 2);

    // The leader wrote each episode's manifest and its commit marker beside its records:
    // an index rebuilt from the segments alone has both, under the same ids.
    std::fs::remove_file(dir.join(INDEX_FILE)).unwrap();
    let out = cli(&["repair"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check_store(&dir), stored);
}
