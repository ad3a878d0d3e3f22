//! The commands on stores the library recorded (and damaged): what they print and their exit
//! codes agree with the library. The library's own side of each is in the library's tests.

use trajstore::Codec;
use trajstore::loader::{Loader, Selection, Shard};
use trajstore::{Query, Store};

use crate::util::{self, cli, cli_ok};

#[test]
fn ls_of_a_file_says_it_is_not_a_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    let out = cli(&["ls", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a file, not a store directory"),
        "{stderr}"
    );
}

#[test]
fn verify_names_only_the_damaged_episode_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    util::record_small(&store, "alice", 1, 10, Codec::Raw);
    let bad = util::record_small(&store, "bob", 2, 10, Codec::Lz4);
    drop(store);
    let (segment, header) = util::frame_record(dir.path(), bad);
    util::flip_bit(&segment, header + 64 + 70); // inside the lz4 payload

    let out = cli(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "verify fails");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("user \"bob\" episode {bad} field \"obs/frame\"")),
        "{stdout}"
    );
    assert!(stdout.contains("checksum"), "{stdout}");
    assert!(
        !stdout.contains("alice"),
        "only the damaged episode is named: {stdout}"
    );
}

#[test]
fn the_repair_command_rebuilds_a_lost_index_and_reports_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::create(&dir).unwrap();
    for (seed, steps) in [(1, 5), (2, 4), (3, 3), (4, 6)] {
        let codec = if seed % 2 == 0 {
            Codec::Lz4
        } else {
            Codec::Raw
        };
        util::record_small(&store, "ann", seed, steps, codec);
    }
    drop(store);
    let s = dir.to_str().unwrap();
    std::fs::remove_file(dir.join("index.redb")).unwrap();

    let ls = cli(&["ls", s]);
    assert_eq!(ls.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&ls.stderr);
    assert!(
        stderr.contains(&format!("trajstore repair {s}")),
        "{stderr}"
    );

    let json: serde_json::Value = serde_json::from_str(&cli_ok(&["repair", s, "--json"])).unwrap();
    assert_eq!(json["action"], "rebuilt");
    assert_eq!(json["episodes"], 4);
    assert_eq!(json["restored_with_id"], 4);
    assert_eq!(json["index_problems"][0], "index.redb is missing");

    let text = cli_ok(&["repair", s]);
    assert!(text.contains("nothing to do"), "{text}");
    assert_eq!(cli_ok(&["ls", s, "--json"]).lines().count(), 4);
}

/// `trajstore partition --json`, computed in a fresh process, matches what each rank's
/// loader serves in this one.
#[test]
fn partition_matches_the_loader_in_a_fresh_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    for (seed, steps) in [4, 17, 9, 1, 12, 6, 6, 20].into_iter().enumerate() {
        util::record_small(&store, "u", seed as u64, steps, Codec::Raw);
    }
    util::record_small(&store, "other", 99, 5, Codec::Raw);
    let json: serde_json::Value = serde_json::from_str(&cli_ok(&[
        "partition",
        dir.path().to_str().unwrap(),
        "--world-size",
        "3",
        "--seed",
        "7",
        "--epoch",
        "2",
        "--user",
        "u",
        "--json",
    ]))
    .expect("one JSON object");
    let ranks = json["ranks"].as_array().expect("ranks");
    assert_eq!(ranks.len(), 3);
    let mut steps = Vec::new();
    for (rank, r) in ranks.iter().enumerate() {
        let sel = Selection::new(Query::default().user("u"), 3, rank as u32, 7).epoch(2);
        let loader = Loader::new(&store, &sel).expect("loader");
        let ids: Vec<u64> = (0..loader.len()).map(|i| loader.id_of(i).get()).collect();
        assert_eq!(r["rank"], rank);
        assert_eq!(r["episodes"], serde_json::json!(ids));
        assert_eq!(r["steps"], loader.steps());
        steps.push(loader.steps() as f64);
    }
    let (max, min) = steps
        .iter()
        .fold((0f64, f64::MAX), |(a, b), &s| (a.max(s), b.min(s)));
    assert_eq!(json["imbalance"].as_f64(), Some(max / min));
}

/// Three stores as one dataset: `partition` over the shard list (with the cutoffs given)
/// matches what each rank's loader over the same list serves, keyed `[shard, id]`, and `ls`
/// lists every shard's episodes with its shard.
#[test]
fn partition_of_several_stores_matches_the_loader_and_ls_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3)
        .map(|s| dir.path().join(format!("host-{s}")))
        .collect();
    let stores: Vec<Store> = paths.iter().map(|p| Store::create(p).unwrap()).collect();
    for (n, steps) in [4, 17, 9, 1, 12, 6, 6, 20, 3, 8].into_iter().enumerate() {
        util::record_small(&stores[n % 3], "u", n as u64, steps, Codec::Raw);
    }
    let shards: Vec<_> = stores.iter().map(Shard::new).collect();
    let cutoffs = Loader::new_sharded(&shards, &Selection::new(Query::default(), 1, 0, 0))
        .unwrap()
        .cutoffs();
    // Recorded after the cutoffs: not part of the dataset.
    util::record_small(&stores[2], "u", 50, 5, Codec::Raw);
    let cutoff_arg = cutoffs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<&str> = vec!["partition"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend([
        "--world-size",
        "2",
        "--seed",
        "5",
        "--cutoff",
        &cutoff_arg,
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&cli_ok(&args)).expect("one JSON object");
    let pinned: Vec<Shard> = shards
        .iter()
        .zip(&cutoffs)
        .map(|(s, &c)| s.clone().cutoff(c))
        .collect();
    for (rank, r) in json["ranks"].as_array().unwrap().iter().enumerate() {
        let loader = Loader::new_sharded(
            &pinned,
            &Selection::new(Query::default(), 2, rank as u32, 5),
        )
        .unwrap();
        let keys: Vec<serde_json::Value> = (0..loader.len())
            .map(|i| serde_json::json!([loader.shard_of(i), loader.id_of(i).get()]))
            .collect();
        assert_eq!(r["episodes"], serde_json::json!(keys));
        assert_eq!(r["steps"], loader.steps());
    }
    assert_eq!(json["shards"].as_array().unwrap().len(), 3);
    assert_eq!(json["shards"][2]["episodes"], 3);

    args.retain(|a| !a.starts_with("--") && !a.contains(',') && *a != "2" && *a != "5");
    args[0] = "ls";
    args.push("--json");
    let lines: Vec<serde_json::Value> = cli_ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);
    let shard_ids: Vec<(u64, u64)> = lines
        .iter()
        .map(|l| (l["shard"].as_u64().unwrap(), l["episode"].as_u64().unwrap()))
        .collect();
    assert_eq!(shard_ids[..4], [(0, 1), (0, 2), (0, 3), (0, 4)]);
    assert_eq!(shard_ids[10], (2, 4));
    let text = cli_ok(&args[..4]);
    assert!(text.starts_with("shard  "), "{text}");

    let out = cli(&[
        "partition",
        paths[0].to_str().unwrap(),
        paths[1].to_str().unwrap(),
        "--world-size",
        "2",
        "--cutoff",
        "3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 cutoff(s) for 2 store(s)"));
}

/// A shard written by a newer trajstore is refused, naming the shard and what to do; nothing
/// is served from the others.
#[test]
fn a_shard_of_a_newer_format_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("a"), dir.path().join("b"));
    util::record_small(&Store::create(&old).unwrap(), "u", 1, 3, Codec::Raw);
    drop(Store::create(&new).unwrap());
    util::set_format_version(&new, 99);
    for cmd in ["ls", "partition"] {
        let mut args = vec![cmd, old.to_str().unwrap(), new.to_str().unwrap()];
        if cmd == "partition" {
            args.extend(["--world-size", "2"]);
        }
        let out = cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("shard 1 ({})", new.display())),
            "{err}"
        );
        assert!(
            err.contains("format version 99") && err.contains("upgrade trajstore"),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "every shard is opened before anything is printed"
        );
    }
}

/// The importers need DIAMBRA's and Minari's Python libraries: the plain binary says which
/// command runs them, and creates nothing.
#[test]
fn import_in_the_rust_binary_names_the_pip_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = cli(&["import", "minari", store.to_str().unwrap(), "some/dataset"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pip install") && err.contains("trajstore import minari"),
        "{err}"
    );
    assert!(!store.exists());
}

#[test]
fn merge_prints_the_id_mapping_and_refuses_the_output_as_a_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("out"),
    );
    for (dir, user) in [(&a, "ann"), (&b, "bob")] {
        let store = Store::create(dir).unwrap();
        util::record_small(&store, user, 1, 4, Codec::Raw);
        util::record_small(&store, user, 2, 5, Codec::Lz4);
    }
    let (a_s, b_s, out_s) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&["merge", out_s, a_s, b_s, "--json"])).unwrap();
    let mapping: Vec<(u64, u64)> = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["episodes"].as_array().unwrap().clone())
        .map(|p| (p["old"].as_u64().unwrap(), p["new"].as_u64().unwrap()))
        .collect();
    assert_eq!(mapping, [(1, 1), (2, 2), (1, 3), (2, 4)]);
    assert_eq!(json["schemas_added"], 2);
    // The merged episodes read back as recorded.
    util::check_small(&out, trajstore::EpisodeId(4), 2, 5);
    assert!(cli_ok(&["verify", out_s]).starts_with("ok"));

    let refused = cli(&["merge", out_s, out_s]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the output store itself"), "{stderr}");
}

/// `trajstore ls [--json] DIR | head -1`: a reader that stops early is not an error. The
/// listing is bigger than a pipe's buffer, so the command is still writing when the pipe
/// closes; it must exit 0 without a word on stderr. (Which write meets the closed pipe
/// depends on the bytes; `json::tests::a_pipe_closed_at_any_byte_of_a_line_is_a_broken_pipe`
/// tries every one.)
#[test]
fn ls_into_a_pipe_closed_after_one_line_exits_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    util::synth(
        store,
        "u",
        "1200",
        &[
            "--min-steps",
            "1",
            "--max-steps",
            "2",
            "--frame",
            "1x1",
            "--writers",
            "8",
        ],
    );
    for json in [false, true] {
        let mut args = vec!["ls", store];
        if json {
            args.push("--json");
        }
        let mut child = util::bin()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "trajstore {args:?} printed nothing");
        // The reader (and with it the pipe's read end) is dropped here.
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "trajstore {args:?} into a closed pipe: {:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
