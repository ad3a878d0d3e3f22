//! The command line is a contract: names, JSON shapes and exit codes.

use crate::util::{cli, cli_ok, synth};
use serde_json::Value;

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn init_synth_ls_show_info_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let s = store.to_str().unwrap();
    assert!(cli_ok(&["init", s]).contains("initialised"));
    assert!(cli_ok(&["init", s]).contains("already a trajstore store"));

    let flags = [
        "--frame",
        "8x8x3",
        "--min-steps",
        "4",
        "--max-steps",
        "9",
        "--writers",
        "2",
    ];
    let out = synth(s, "ann", "3", &flags);
    let mut lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    lines.sort_by_key(|l| l["episode"].as_u64());
    for l in &lines {
        assert_eq!(l["user"], "ann");
        let steps = l["steps"].as_u64().unwrap();
        assert!((4..=9).contains(&steps), "{l}");
    }
    synth(
        s,
        "bob",
        "2",
        &["--frame", "8x8x1", "--codec", "lz4", "--seed", "5"],
    );

    let ls = json_lines(&cli_ok(&["ls", s, "--user", "ann", "--json"]));
    assert_eq!(ls.len(), 3);
    for (row, committed) in ls.iter().zip(&lines) {
        assert_eq!(row["episode"], committed["episode"]);
        assert_eq!(row["steps"], committed["steps"]);
        assert_eq!(row["user"], "ann");
        assert_eq!(row["env"], "Synth-v0");
        assert!(row["return"].is_number());
    }
    assert_eq!(json_lines(&cli_ok(&["ls", s, "--json"])).len(), 5);
    assert_eq!(
        json_lines(&cli_ok(&["ls", s, "--env", "Nope-v0", "--json"])).len(),
        0
    );
    let text = cli_ok(&["ls", s, "--user", "bob"]);
    assert_eq!(text.lines().count(), 3, "header and two episodes: {text}");

    let id = ls[0]["episode"].as_u64().unwrap().to_string();
    let show: Value = serde_json::from_str(&cli_ok(&["show", s, &id, "--json"])).unwrap();
    let fields = show["fields"].as_array().unwrap();
    let frame = fields.iter().find(|f| f["name"] == "obs/frame").unwrap();
    assert_eq!(
        frame["values"].as_u64().unwrap(),
        ls[0]["steps"].as_u64().unwrap() + 1
    );
    assert_eq!(frame["shape"], serde_json::json!([8, 8, 3]));
    assert!(cli_ok(&["show", s, &id]).contains("obs/frame"));

    let info: Value = serde_json::from_str(&cli_ok(&["info", s, "--json"])).unwrap();
    assert_eq!(info["episodes"], 5);
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["users"].as_array().unwrap().len(), 2);
    assert_eq!(info["schemas"].as_array().unwrap().len(), 2);
    assert!(info["disk_bytes"].as_u64().unwrap() > info["stored_bytes"].as_u64().unwrap());

    let verify: Value = serde_json::from_str(&cli_ok(&["verify", s, "--json"])).unwrap();
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["episodes"], 5);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().to_str().unwrap();
    for (args, needle) in [
        (
            vec!["synth", s, "--user", "", "--episodes", "1"],
            "invalid user name",
        ),
        (
            vec![
                "synth",
                s,
                "--user",
                "a",
                "--episodes",
                "1",
                "--frame",
                "8by8",
            ],
            "expected HxWxC",
        ),
        (
            vec![
                "synth",
                s,
                "--user",
                "a",
                "--episodes",
                "1",
                "--min-steps",
                "9",
                "--max-steps",
                "3",
            ],
            "--min-steps",
        ),
        (vec!["ls", s], "not a trajstore store"),
        (
            vec!["ls", s, "--outcome", "won"],
            "invalid outcome: \"won\": expected terminated",
        ),
    ] {
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    cli_ok(&["init", s]);
    let out = cli(&["show", s, "42"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("episode 42 not found"));
}
