//! `trajstore stats`: per-element statistics from the index, the JSON keys users script
//! against, and stores whose episodes were recorded without statistics.

use crate::util::*;

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&cli_ok(args)).expect("one JSON document")
}

#[test]
fn stats_json_has_the_documented_keys_per_element_and_follows_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (user, n) in [("ana", "2"), ("bo", "3")] {
        let flags = ["--frame", "8x8x3", "--min-steps", "20", "--max-steps", "40"];
        synth(d, user, n, &flags);
    }
    let all = json(&["stats", d, "--json"]);
    let ana = json(&[
        "stats",
        d,
        "--user",
        "ana",
        "--field",
        "obs/ram/health",
        "--json",
    ]);
    assert_eq!(all["episodes"], 5);
    assert_eq!(ana["episodes"], 2);
    assert_eq!(ana["missing"], serde_json::json!([]));
    let fields = ana["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0]["field"], "obs/ram/health");
    assert_eq!(fields[0]["shape"], serde_json::json!([2]));
    let elements = fields[0]["elements"].as_array().unwrap();
    assert_eq!(elements.len(), 2);
    for e in elements {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["count", "max", "mean", "min", "quantiles", "std"]);
        let q: Vec<&str> = e["quantiles"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            q,
            [
                "q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99"
            ]
        );
        assert!(e["min"].as_f64() <= e["quantiles"]["q50"].as_f64());
        assert!(e["quantiles"]["q50"].as_f64() <= e["max"].as_f64());
    }
    // ana's steps are a subset of all: her count is below the store's.
    let all_health = all["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "obs/ram/health")
        .unwrap();
    assert!(elements[0]["count"].as_u64() < all_health["elements"][0]["count"].as_u64());
    // The frame (192 elements per value) has no statistics, and asking says why.
    assert!(
        all["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["field"] != "obs/frame")
    );
    let out = cli(&["stats", d, "--field", "obs/frame"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("192 elements"), "{err}");
}

#[test]
fn a_format_1_store_reports_missing_statistics_and_computes_them_on_request() {
    // A copy: the checked-in fixture is never opened in place.
    let dir = tempfile::tempdir().unwrap();
    copy_v1_fixture(dir.path());
    let fixture = dir.path().to_str().unwrap();
    let listed = json(&["stats", fixture, "--json"]);
    assert_eq!(listed["missing"], serde_json::json!([1, 2, 3]));
    assert_eq!(listed["fields"], serde_json::json!([]));
    let text = cli_ok(&["stats", fixture]);
    assert!(
        text.contains("3 episodes have no stored statistics"),
        "{text}"
    );
    let computed = json(&[
        "stats",
        fixture,
        "--compute-missing",
        "--field",
        "action",
        "--json",
    ]);
    assert_eq!(computed["missing"], serde_json::json!([]));
    assert_eq!(computed["computed"], serde_json::json!([1, 2, 3]));
    let action = &computed["fields"][0]["elements"][0];
    assert_eq!(
        action["count"], 12,
        "every transition of the fixture's 3 episodes"
    );
}
