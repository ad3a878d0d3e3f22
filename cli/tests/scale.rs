//! `bench --mode scale` end to end on a tiny store: every figure is reported, and the
//! loader's setup and memory come from the probe process (this binary run again).

use serde_json::Value;

use crate::util::*;

#[test]
fn scale_bench_reports_every_figure_with_the_loader_probed_in_a_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_str().expect("utf-8 path");
    let text = cli_ok(&[
        "bench",
        root,
        "--mode",
        "scale",
        "--max-episodes",
        "30",
        "--episode-steps",
        "4",
        "--json",
    ]);
    let points: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(points.len(), 1, "one size below 1000 episodes: {text}");
    let p = &points[0];
    assert_eq!(p["episodes"], 30);
    assert_eq!(p["steps"], 120);
    let number = |key: &str| p[key].as_f64().unwrap_or_else(|| panic!("{key} in {p}"));
    for key in [
        "setup_seconds",
        "first_batch_seconds",
        "sample_seconds",
        "sample_floor_seconds",
        "sample_ratio",
        "verify_ratio",
    ] {
        assert!(number(key) > 0.0 && number(key).is_finite(), "{key} in {p}");
    }
    // The floor says which plain gather it was, and whether the figure came from the page
    // cache: a store of a few KB fits in any machine's memory.
    assert!(number("sample_floor_threads") >= 1.0, "{p}");
    assert!(number("store_bytes") > 0.0, "{p}");
    assert!(
        p["sample_floor"]
            .as_str()
            .is_some_and(|s| s.starts_with("plain gather")),
        "{p}"
    );
    if cfg!(target_os = "linux") {
        assert!(number("mem_available_bytes") > number("store_bytes"), "{p}");
        assert!(p["page_cache"].is_boolean(), "{p}");
        assert!(number("load_average_1m") >= 0.0, "{p}");
    }
    // The probe process read its own RssAnon: a running process has some, and the loader's
    // share of it is part of it.
    if cfg!(target_os = "linux") {
        assert!(number("anon_bytes") > 0.0, "{p}");
        assert!(number("added_anon_bytes") <= number("anon_bytes"), "{p}");
    }
    let again = cli(&["bench", root, "--mode", "scale", "--max-episodes", "30"]);
    assert!(
        !again.status.success(),
        "a second run must not grow the same store"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
