use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::ValueEnum;
use trajstore::Codec;
use trajstore::Query;
use trajstore_testkit::bench::{
    Commit, ConcurrentSpec, CurateCost, MaintainSpec, Measurement, RecordSpec, Recorders,
    ScalePoint, ScaleSpec, StatsSchema, checked, combine_cost, compact, curate, merge, record,
    record_concurrently, record_stats_store, recording_cost, sample, scan, window,
};

use super::out;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Store to scan (a temporary store is recorded when absent).
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BenchMode::All)]
    mode: BenchMode,
    /// Field to scan.
    #[arg(long, default_value = "obs/frame")]
    field: String,
    /// `--mode stats`: episodes of the store statistics are combined over (recorded into DIR
    /// when DIR does not exist yet, and kept there; into a temporary store without DIR).
    #[arg(long, default_value_t = 100_000)]
    stats_episodes: u32,
    #[arg(long)]
    json: bool,
    /// Size of each store `merge` and `compact` build (MB).
    #[arg(long, default_value_t = 1024)]
    store_mb: u64,
    /// `--mode curate`: episodes of the store a tenth of which is deleted, restored and
    /// relabelled.
    #[arg(long, default_value_t = 100_000)]
    curate_episodes: u64,
    /// `--mode scale`: the largest store to grow to (sizes 1k, 10k, 100k, ... up to it).
    #[arg(long, default_value_t = 100_000)]
    max_episodes: u64,
    /// `--mode scale`: transitions per episode (1000 makes the sizes 10^6, 10^7, 10^8 steps;
    /// a 10^8-step store takes about 9 GB).
    #[arg(long, default_value_t = 50)]
    episode_steps: u32,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchMode {
    /// Concurrent recording: 1, 2, 4 writers as threads and as processes.
    // The processes are this executable run again (see `main`).
    Concurrent,
    /// Recording (into a temporary store), then a scan.
    All,
    /// Recording throughput only.
    Record,
    /// Full scan of one field.
    Scan,
    /// Random batches of 256 steps of one field (the loader's sampler).
    Sample,
    /// Random windows of 16 consecutive steps of one field (16 windows per batch).
    Window,
    /// Growth curves: one store of control-like episodes (1x17x4 frames, --episode-steps
    /// each) grown through 1k, 10k, 100k (up to --max-episodes); at each size recording
    /// (against append + fdatasync), info, list, ls --json, Loader, partition, the setup to a
    /// first shuffled batch and its anonymous memory (in a fresh process), random 256-step
    /// batches (against a plain gather) and verify (against cat).
    Scale,
    /// Checked reads against `verify_reads: false`: a first scan and a first loader epoch
    /// (every chunk's checksum verified on first read), then again with the checks remembered.
    Checked,
    /// Field statistics: recording with them against without (step path and whole, index
    /// bytes per episode), then combining them from the index for a store of
    /// `--stats-episodes` small episodes (all, and one of 8 users') against reading the
    /// values and computing the same figures (and against computing on values in memory).
    Stats,
    /// `merge` of two fresh stores of --store-mb each against cp + fsync of their segments.
    Merge,
    /// `compact` of a fresh store of --store-mb, half of it abandoned recordings, against
    /// read + write + fsync of the live bytes.
    Compact,
    /// Delete, restore and relabel of every tenth episode of a store of --curate-episodes
    /// (one index transaction each) against listing every episode from the index.
    Curate,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let BenchArgs {
        dir,
        mode,
        field,
        stats_episodes,
        json,
        store_mb,
        max_episodes,
        curate_episodes,
        episode_steps,
    } = args;
    let (dir, field) = (dir.as_deref(), field.as_str());
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    if mode == BenchMode::Concurrent {
        return concurrent(temp.path(), json);
    }
    if mode == BenchMode::Stats {
        return stats(temp.path(), dir, stats_episodes, json);
    }
    if mode == BenchMode::Curate {
        let c = curate(&temp.path().join("curate"), curate_episodes)?;
        return print_curate(&c, json);
    }
    if mode == BenchMode::Scale {
        let root = dir.unwrap_or(temp.path());
        return scale(root, max_episodes, episode_steps, json);
    }
    if matches!(mode, BenchMode::Merge | BenchMode::Compact) {
        let spec = MaintainSpec {
            store_bytes: store_mb << 20,
            steps: 250,
        };
        let (name, m) = if mode == BenchMode::Merge {
            ("merge", merge(temp.path(), &spec, 3)?)
        } else {
            ("compact", compact(temp.path(), &spec, 2)?)
        };
        return print(&[(name, m)], json);
    }
    let mut results: Vec<(&str, Measurement)> = Vec::new();
    let recorded = temp.path().join("store");
    if matches!(mode, BenchMode::All | BenchMode::Record) || dir.is_none() {
        let spec = RecordSpec {
            episodes: 40,
            steps: 250,
            frame: [128, 128, 3],
            codec: Codec::Raw,
        };
        results.push(("record", record(temp.path(), &spec, Commit::Wait)?));
    }
    if mode == BenchMode::Record {
        // Control-like episodes (17 x f32 observations, about 90 raw bytes a step), where the
        // per-episode commit and the per-step CPU matter most; committed as `commit` and, by
        // the same one recorder, in the background (the next episode records meanwhile).
        for (name, episodes, steps, commit) in [
            ("record control, 50-step episodes", 200, 50, Commit::Wait),
            ("record control, 1000-step episodes", 60, 1000, Commit::Wait),
            (
                "record control, 50-step, background commits",
                200,
                50,
                Commit::Background,
            ),
            (
                "record control, 1000-step, background commits",
                60,
                1000,
                Commit::Background,
            ),
        ] {
            let spec = RecordSpec {
                episodes,
                steps,
                frame: [1, 17, 4],
                codec: Codec::Raw,
            };
            let dir = temp.path().join(format!("control-{steps}-{commit:?}"));
            std::fs::create_dir_all(&dir)?;
            let m = record(&dir, &spec, commit)?;
            results.push(("record", Measurement { name, ..m }));
        }
    }
    let store = dir.unwrap_or(&recorded);
    let read = |what: &str| format!("cannot {what} {}", store.display());
    match mode {
        BenchMode::Record
        | BenchMode::Concurrent
        | BenchMode::Stats
        | BenchMode::Merge
        | BenchMode::Compact
        | BenchMode::Curate
        | BenchMode::Scale => {}
        BenchMode::All | BenchMode::Scan => {
            results.push(("scan", scan(store, field).with_context(|| read("scan"))?));
        }
        BenchMode::Sample => {
            results.push((
                "sample",
                sample(store, field, 256).with_context(|| read("sample"))?,
            ));
        }
        BenchMode::Window => {
            let m = window(store, field, 16, 16).with_context(|| read("window"))?;
            results.push(("window", m));
        }
        BenchMode::Checked => {
            for m in checked(store, field).with_context(|| read("bench checked reads of"))? {
                results.push(("checked", m));
            }
        }
    }
    print(&results, json)
}

fn print(results: &[(&str, Measurement)], json: bool) -> Result<ExitCode> {
    for (mode, m) in results {
        if json {
            out(
                serde_json::json!({"mode": mode, "name": m.name, "bytes": m.bytes, "seconds": m.seconds,
                "floor": m.baseline, "floor_seconds": m.baseline_seconds, "ratio": m.ratio()}),
            )?;
        } else {
            out(m.line())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn concurrent(temp: &Path, json: bool) -> Result<ExitCode> {
    // Frames (84x84x3, 100 steps) and control-like episodes (1x17x4: 17 floats, 50 steps),
    // where the index commit is most of an episode's cost; the control episodes also with
    // each recorder committing in the background (every recorder then has several episodes
    // in flight, which rounds across processes can gather).
    let workloads = [
        ("frames", [84, 84, 3], 100, 128, Commit::Wait),
        // 1024 control episodes: with 256, four processes recorded 64 each in about 0.1 s,
        // and their ratio against one moved by a third from run to run.
        ("control", [1, 17, 4], 50, 1024, Commit::Wait),
        (
            "control, background commits",
            [1, 17, 4],
            50,
            512,
            Commit::Background,
        ),
    ];
    for (workload, frame, steps, episodes, commit) in workloads {
        for recorders in [Recorders::Threads, Recorders::Processes] {
            let mut one_writer = None;
            for writers in [1, 2, 4] {
                let spec = ConcurrentSpec::sharing(episodes, writers, recorders, steps, frame)
                    .committing(commit);
                let r = record_concurrently(temp, &spec)?;
                // Throughput against one recorder of the same kind (bytes per second).
                let per_s = r.measurement.bytes as f64 / r.measurement.seconds;
                let one = *one_writer.get_or_insert(per_s);
                let scaling = per_s / one;
                if json {
                    out(
                        serde_json::json!({"mode": "concurrent", "workload": workload, "recorders": recorders.name(),
                    "writers": writers, "bytes": r.measurement.bytes, "seconds": r.measurement.seconds,
                    "floor_seconds": r.measurement.baseline_seconds, "ratio": r.measurement.ratio(),
                    "episodes": r.stats.episodes, "index_commits": r.stats.transactions,
                    "commit_p50_ms": r.commit_p50_ms, "commit_p99_ms": r.commit_p99_ms,
                    "commit_max_ms": r.commit_max_ms, "x_one_writer": scaling,
                    "plain_x_one_writer": r.plain_scaling()}),
                    )?;
                } else {
                    out(format!(
                        "{workload:<8} {}  x1 writer {scaling:.2}",
                        r.line()
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(temp: &Path, dir: Option<&Path>, episodes: u32, json: bool) -> Result<ExitCode> {
    for (kind, episodes, steps) in [
        (StatsSchema::Frames(84), 60, 100),
        (StatsSchema::Proprio(17), 500, 100),
        (StatsSchema::Proprio(64), 500, 100),
    ] {
        let c = recording_cost(temp, kind, episodes, steps)?;
        if json {
            out(
                serde_json::json!({"mode": "stats", "measure": "recording", "schema": c.schema,
                "episodes": c.episodes, "steps": c.steps,
                "step_ns_with": c.ns_per_step(true), "step_ns_without": c.ns_per_step(false),
                "step_path_ratio": c.step_path_ratio(), "total_ratio": c.total_ratio(),
                "index_bytes_per_episode_with": c.index_bytes_per_episode[0],
                "index_bytes_per_episode_without": c.index_bytes_per_episode[1]}),
            )?;
        } else {
            out(c.line())?;
        }
    }
    let store = match dir {
        Some(d) if d.exists() => d.to_path_buf(),
        other => {
            let path = other.map_or_else(|| temp.join("stats-store"), Path::to_path_buf);
            let seconds = record_stats_store(&path, episodes, 10, 40, 8)?;
            if !json {
                out(format!(
                    "recorded {episodes} episodes (obs f32[17], action f32[6], 10-40 steps) in \
                     {seconds:.1} s into {}",
                    path.display()
                ))?;
            }
            path
        }
    };
    for (what, query) in [
        ("every episode", Query::default()),
        ("one user (u0)", Query::default().user("u0")),
    ] {
        let c = combine_cost(&store, what, &query)?;
        if json {
            out(
                serde_json::json!({"mode": "stats", "measure": "combine", "selection": what,
                "episodes": c.episodes, "values": c.values,
                "index_ms": c.index_seconds * 1e3,
                "read_and_compute_ms": c.read_and_compute_seconds * 1e3,
                "compute_in_memory_ms": c.compute_seconds * 1e3,
                "ratio_read": c.read_and_compute_seconds / c.index_seconds,
                "ratio_in_memory": c.compute_seconds / c.index_seconds}),
            )?;
        } else {
            out(c.line())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--mode scale`: grows a store under `root` and prints one row per size as it is reached,
/// then how the sampler's per-row cost grew against its floor's.
fn scale(root: &Path, max_episodes: u64, episode_steps: u32, json: bool) -> Result<ExitCode> {
    if episode_steps == 0 {
        anyhow::bail!("--episode-steps must be at least 1");
    }
    let spec = ScaleSpec::up_to(max_episodes).steps(episode_steps);
    let store_dir = root.join("store");
    if store_dir.exists() {
        anyhow::bail!(
            "{} exists: --mode scale grows a new store there",
            store_dir.display()
        );
    }
    if !json {
        out(format!(
            "{:>8} {:>10}  {:>8} {:>7} {:>7} {:>8} {:>7} {:>9}  {:>8} {:>8} {:>8}  {:>8} {:>7} {:>7} {:>6}  {:>8} {:>8}  {:>7} {:>7}  {:>9} {:>9} {:>9} {:>5}  {:>5}",
            "episodes",
            "steps",
            "record/x",
            "info ms",
            "list ms",
            "ls-json",
            "loader",
            "partition",
            "setup ms",
            "anon MiB",
            "+anon",
            "sample/x",
            "ns/row",
            "fl ns",
            "fl thr",
            "verify/x",
            "cat ms",
            "ep/s",
            "fl ep/s",
            "store MiB",
            "avail MiB",
            "flt s/set",
            "cache",
            "load1"
        ))?;
    }
    let mut failed = None;
    let mut points: Vec<ScalePoint> = Vec::new();
    trajstore_testkit::bench::scale(root, &spec, |p| {
        let ls_json = ls_json_seconds(&store_dir).unwrap_or(f64::NAN);
        let load = load_average();
        let line = if json {
            scale_json(p, ls_json, load).to_string()
        } else {
            let per_s = |seconds: f64| spec.record_sample as f64 / seconds;
            let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
            let (ns, floor_ns) = p.sample_ns_per_row();
            format!(
                "{:>8} {:>10}  {:>8.3} {:>7.2} {:>7.1} {:>8.1} {:>7.1} {:>9.1}  {:>8.1} {:>8.1} {:>8.1}  {:>8.2} {:>7.0} {:>7.0} {:>6}  {:>8.3} {:>8.1}  {:>7.0} {:>7.0}  {:>9.0} {:>9.0} {:>9} {:>5}  {:>5.2}",
                p.episodes,
                p.steps,
                p.record.ratio(),
                p.info * 1e3,
                p.list * 1e3,
                ls_json * 1e3,
                p.loader * 1e3,
                p.partition * 1e3,
                p.probe.setup() * 1e3,
                mib(p.probe.anon),
                mib(p.probe.added_anon()),
                p.sample.measurement.ratio(),
                ns,
                floor_ns,
                p.sample.floor_threads,
                p.verify.ratio(),
                p.verify.baseline_seconds * 1e3,
                per_s(p.record.seconds),
                per_s(p.record.baseline_seconds),
                mib(p.store_bytes),
                mib(p.mem_available),
                format!("{}/{}", p.sample.major_faults, p.probe.major_faults),
                if p.in_page_cache() { "yes" } else { "NO" },
                load,
            )
        };
        if let Err(e) = out(line) {
            failed.get_or_insert(e);
        }
        points.push(p.clone());
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let (Some(first), Some(last)) = (points.first(), points.last())
        && points.len() > 1
    {
        let ((a, fa), (b, fb)) = (first.sample_ns_per_row(), last.sample_ns_per_row());
        let (growth, floor_growth) = (b / a, fb / fa);
        let (from, to) = (first.steps, last.steps);
        let cached = first.in_page_cache() && last.in_page_cache();
        if json {
            out(
                serde_json::json!({"mode": "scale", "measure": "sample growth",
                "from_steps": from, "to_steps": to, "growth": growth,
                "floor_growth": floor_growth, "relative_growth": growth / floor_growth,
                "page_cache": cached})
                .to_string(),
            )?;
        } else {
            out(format!(
                "sample per-row cost from {from} to {to} steps: x{growth:.2}, its floor's \
                 x{floor_growth:.2}: {:.2}x the floor's growth ({})",
                growth / floor_growth,
                if cached {
                    "both sizes from the page cache"
                } else {
                    "NOT all from the page cache: see majflt and cache"
                }
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The one-minute load average (/proc/loadavg), printed next to every scale row since the
/// machine may be shared; NaN where there is no such file.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn scale_json(p: &ScalePoint, ls_json: f64, load: f64) -> serde_json::Value {
    serde_json::json!({"mode": "scale", "episodes": p.episodes, "steps": p.steps,
        "record_seconds": p.record.seconds, "record_floor_seconds": p.record.baseline_seconds,
        "record_ratio": p.record.ratio(), "info_seconds": p.info, "list_seconds": p.list,
        "ls_json_seconds": ls_json, "loader_seconds": p.loader, "partition_seconds": p.partition,
        "setup_seconds": p.probe.setup(), "setup_loader_seconds": p.probe.loader,
        "setup_sampler_seconds": p.probe.sampler, "first_batch_seconds": p.probe.first_batch,
        "anon_bytes": p.probe.anon, "added_anon_bytes": p.probe.added_anon(),
        "sample_seconds": p.sample.measurement.seconds,
        "sample_floor_seconds": p.sample.measurement.baseline_seconds,
        "sample_floor": p.sample.measurement.baseline,
        "sample_floor_threads": p.sample.floor_threads,
        "sample_ratio": p.sample.measurement.ratio(), "sample_ns_per_row": p.sample_ns_per_row().0,
        "sample_floor_ns_per_row": p.sample_ns_per_row().1,
        "sample_major_faults": p.sample.major_faults,
        "setup_major_faults": p.probe.major_faults, "store_bytes": p.store_bytes,
        "mem_available_bytes": p.mem_available, "page_cache": p.in_page_cache(),
        "load_average_1m": load,
        "verify_seconds": p.verify.seconds, "verify_floor_seconds": p.verify.baseline_seconds,
        "verify_ratio": p.verify.ratio()})
}

/// What `ls --json` does, into a sink instead of the terminal.
fn ls_json_seconds(store_dir: &Path) -> Result<f64> {
    let store = trajstore::Store::open_read_only(store_dir)?;
    let start = std::time::Instant::now();
    super::ls::write_json(
        &[store],
        &[store_dir.to_owned()],
        &trajstore::Query::default(),
        &mut std::io::sink(),
    )?;
    Ok(start.elapsed().as_secs_f64())
}

fn print_curate(c: &CurateCost, json: bool) -> Result<ExitCode> {
    let ops = [
        ("delete", c.delete_seconds),
        ("restore", c.restore_seconds),
        ("relabel", c.relabel_seconds),
    ];
    if json {
        for (op, s) in ops {
            out(
                serde_json::json!({"mode": "curate", "operation": op, "episodes": c.touched,
                "store_episodes": c.episodes, "ms": s * 1e3, "baseline": "list every episode",
                "baseline_ms": c.list_seconds * 1e3, "ratio": s / c.list_seconds}),
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    out(format!(
        "curate: a store of {} one-step episodes (recorded in {:.1} s); listing them all from the index: {:.1} ms",
        c.episodes,
        c.record_seconds,
        c.list_seconds * 1e3
    ))?;
    for (op, s) in ops {
        out(format!(
            "  {op:<8} {} episodes: {:>8.1} ms  = {:.2}x the listing",
            c.touched,
            s * 1e3,
            s / c.list_seconds
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
