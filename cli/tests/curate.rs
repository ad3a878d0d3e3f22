//! The curation commands (rm, restore, relabel, split): exit codes and messages, a delete
//! racing recorder processes, and an rm SIGKILLed mid-transaction.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, bin, cli, cli_ok};

fn synth(store: &str, user: &str, episodes: &str) {
    let flags = ["--frame", "8x8x3", "--min-steps", "3", "--max-steps", "6"];
    util::synth(store, user, episodes, &flags);
}

fn listed(store: &str, filters: &[&str]) -> Vec<u64> {
    let mut args = vec!["ls", store, "--json"];
    args.extend_from_slice(filters);
    cli_ok(&args)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["episode"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rm_needs_a_selector_names_unknown_ids_and_says_when_nothing_matches() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "4");
    let bare = cli(&["rm", s]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        stderr(&bare).contains("no filter given"),
        "{}",
        stderr(&bare)
    );

    let unknown = cli(&["rm", s, "1", "77"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no episode 77"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(
        listed(s, &[]),
        vec![1, 2, 3, 4],
        "nothing changed, episode 1 included"
    );

    let none = cli(&["rm", s, "--user", "nobody"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stdout).contains("no episode matches"));

    let dry: Value =
        serde_json::from_str(&cli_ok(&["rm", s, "2", "3", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["changed"], serde_json::json!([2, 3]));
    assert_eq!(listed(s, &[]), vec![1, 2, 3, 4]);

    let done: Value =
        serde_json::from_str(&cli_ok(&["rm", s, "2", "3", "--json", "--by", "qa"])).unwrap();
    assert_eq!(done["changed"], serde_json::json!([2, 3]));
    assert_eq!(listed(s, &[]), vec![1, 4]);
    let again = cli(&["rm", s, "2"]);
    assert!(
        stderr(&again).contains("already deleted"),
        "{}",
        stderr(&again)
    );

    let deleted: Vec<Value> = cli_ok(&["restore", s, "--list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0]["deleted_by"], "qa");
    let show: Value = serde_json::from_str(&cli_ok(&["show", s, "2", "--json"])).unwrap();
    assert!(show["deleted_at"].is_string());
    assert_eq!(show["history"][0]["changes"][0], "deleted");

    assert_eq!(cli(&["restore", s]).status.code(), Some(2));
    cli_ok(&["restore", s, "3"]);
    assert_eq!(listed(s, &[]), vec![1, 3, 4]);
    cli_ok(&["restore", s, "--all"]);
    assert_eq!(listed(s, &[]), vec![1, 2, 3, 4]);
    cli_ok(&["verify", s]);
}

#[test]
fn relabel_and_split_show_up_in_ls_show_and_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "6");
    cli_ok(&[
        "relabel",
        s,
        "1",
        "2",
        "--set-user",
        "bob",
        "--add-tag",
        "expert",
        "--set-meta",
        "level=3",
        "--by",
        "qa",
    ]);
    assert_eq!(listed(s, &["--user", "bob", "--tag", "expert"]), vec![1, 2]);
    let show: Value = serde_json::from_str(&cli_ok(&["show", s, "1", "--json"])).unwrap();
    assert_eq!(show["metadata"]["level"], 3);
    let h = &show["history"][0];
    assert_eq!(h["by"], "qa");
    assert_eq!(
        h["changes"][0]["user"],
        serde_json::json!({"from": "ann", "to": "bob"})
    );

    let no_split = cli(&["ls", s, "--split", "train"]);
    assert_eq!(no_split.status.code(), Some(2));
    assert!(
        stderr(&no_split).contains("no split"),
        "{}",
        stderr(&no_split)
    );
    cli_ok(&[
        "split",
        s,
        "--fractions",
        "train=0.5,val=0.5",
        "--seed",
        "3",
    ]);
    let rows: Vec<Value> = cli_ok(&["ls", s, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let val: Vec<u64> = rows
        .iter()
        .filter(|r| r["split"] == "val")
        .map(|r| r["episode"].as_u64().unwrap())
        .collect();
    assert_eq!(listed(s, &["--split", "val"]), val);
    // Partition and rm take the same filters.
    let part: Value = serde_json::from_str(&cli_ok(&[
        "partition",
        s,
        "--world-size",
        "1",
        "--split",
        "val",
        "--json",
    ]))
    .unwrap();
    let mut served: Vec<u64> = part["ranks"][0]["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    served.sort();
    assert_eq!(served, val);
    // New episodes leave the old labels where they were.
    synth(s, "cy", "5");
    let after: Vec<Value> = cli_ok(&["ls", s, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (old, new) in rows.iter().zip(&after) {
        assert_eq!(old["split"], new["split"]);
    }
    let bad = cli(&[
        "split",
        s,
        "--fractions",
        "train=0.5,val=0.6",
        "--seed",
        "1",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("sum to 1.1"), "{}", stderr(&bad));
}

/// Runs `trajstore rm` with the curation pause hook: it stops with its log entry durable and
/// its index transaction staged, and is SIGKILLed there.
fn rm_killed_mid_transaction(store: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("staged");
    let mut child = bin()
        .arg("rm")
        .arg(store)
        .args(args)
        .env("TRAJSTORE_TEST_CURATE_PAUSE", &flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(Instant::now() < deadline, "rm never reached its commit");
        assert!(
            child.try_wait().unwrap().is_none(),
            "rm exited before its commit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain syscall on a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    child.wait().unwrap();
}

#[test]
fn rm_sigkilled_mid_transaction_deletes_nothing_and_repair_does_not_replay_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "5");
    synth(s, "bob", "3");
    let all = listed(s, &[]);
    rm_killed_mid_transaction(s, &["--user", "ann"]);
    // All or nothing: nothing.
    assert_eq!(listed(s, &[]), all);
    assert!(cli_ok(&["restore", s, "--list", "--json"]).is_empty());
    cli_ok(&["verify", s]);
    // The lock died with the process: curation goes on, and cuts the dead entry off.
    cli_ok(&["rm", s, "--user", "bob"]);
    assert_eq!(listed(s, &[]), &all[..5]);
    // A rebuilt index replays only what committed.
    std::fs::remove_file(Path::new(s).join("index.redb")).unwrap();
    let report: Value = serde_json::from_str(&cli_ok(&["repair", s, "--json"])).unwrap();
    assert_eq!(report["curation_replayed"], 1);
    assert_eq!(listed(s, &[]), &all[..5]);
    assert_eq!(listed(s, &["--user", "bob"]), Vec::<u64>::new());
}

#[test]
fn rm_sigkilled_mid_transaction_is_whole_after_a_repair_that_finds_no_index() {
    // The documented other side: a killed rm's durable log entry with no index to say it never
    // committed is replayed whole (never half).
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "4");
    synth(s, "bob", "2");
    let all = listed(s, &[]);
    rm_killed_mid_transaction(s, &["--user", "ann"]);
    assert_eq!(listed(s, &[]), all);
    std::fs::remove_file(Path::new(s).join("index.redb")).unwrap();
    cli_ok(&["repair", s]);
    assert_eq!(listed(s, &[]), &all[4..]);
}

#[test]
fn a_delete_racing_recorder_processes_leaves_every_episode_live_or_deleted_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    let s = s.to_str().unwrap();
    synth(s, "ann", "2");
    let mut recorders: Vec<_> = (0..2)
        .map(|i| {
            bin()
                .args([
                    "synth",
                    s,
                    "--user",
                    "ann",
                    "--episodes",
                    "40",
                    "--frame",
                    "8x8x3",
                ])
                .args([
                    "--min-steps",
                    "2",
                    "--max-steps",
                    "4",
                    "--seed",
                    &i.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut deleted = Vec::new();
    for _ in 0..15 {
        let out = cli(&["rm", s, "--user", "ann", "--json"]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        deleted.extend(
            v["changed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap()),
        );
    }
    let mut committed = vec![1, 2];
    for r in &mut recorders {
        let out = r.wait().unwrap();
        assert!(out.success());
    }
    for r in recorders {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut r.stdout.unwrap(), &mut text).unwrap();
        committed.extend(text.lines().map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["episode"]
                .as_u64()
                .unwrap()
        }));
    }
    let live = listed(s, &[]);
    let tombstones: Vec<u64> = cli_ok(&["restore", s, "--list", "--json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["episode"]
                .as_u64()
                .unwrap()
        })
        .collect();
    deleted.sort();
    assert_eq!(tombstones, deleted);
    let mut all: Vec<u64> = live.iter().chain(&tombstones).copied().collect();
    all.sort();
    committed.sort();
    assert_eq!(
        all, committed,
        "every committed episode live or deleted, once"
    );
    cli_ok(&["verify", s]);
}
