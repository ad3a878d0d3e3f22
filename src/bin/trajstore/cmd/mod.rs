//! One module per subcommand; each returns the process exit code.

mod bench;
mod demo;
mod info;
mod ls;
mod partition;
mod preview;
mod repair;
mod show;
mod synth;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::args::Command;

/// Runs a command; an error that does not name the store directory gets it in front, so
/// every error says which store it is about.
pub fn run(command: Command) -> Result<ExitCode> {
    let dir = command.store_dir().map(|d| d.display().to_string());
    run_command(command).map_err(|e| match dir {
        Some(dir) if !format!("{e:#}").contains(&dir) => e.context(dir),
        _ => e,
    })
}

fn run_command(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init { dir } => init(&dir),
        Command::Synth {
            dir,
            user,
            episodes,
            min_steps,
            max_steps,
            frame,
            codec,
            seed,
            writers,
        } => synth::run(
            &dir,
            user,
            episodes,
            min_steps,
            max_steps,
            &frame,
            codec.into(),
            seed,
            writers,
        ),
        Command::Info { dir, json } => info::run(&dir, json),
        Command::Ls {
            dir,
            user,
            env,
            tag,
            outcome,
            min_return,
            json,
        } => ls::run(&dir, user, env, tag, outcome, min_return, json),
        Command::Show { dir, episode, json } => show::run(&dir, episode, json),
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::Preview {
            dir,
            episode,
            out,
            field,
            every,
        } => preview::run(&dir, episode, out.as_deref(), field.as_deref(), every),
        Command::Serve {
            dir,
            port,
            host,
            allow_remote,
        } => crate::serve::run(&dir, &host, port, allow_remote),
        Command::Repair { dir, json } => repair::run(&dir, json),
        Command::Demo {
            dir,
            users,
            episodes,
        } => demo::run(dir.as_deref(), users, episodes),
        Command::Partition {
            dir,
            world_size,
            seed,
            epoch,
            user,
            json,
        } => partition::run(&dir, world_size, seed, epoch, user, json),
        Command::Bench {
            dir,
            mode,
            field,
            json,
        } => bench::run(dir.as_deref(), mode, &field, json),
        Command::BenchWriter {
            dir,
            user,
            episodes,
            steps,
            frame,
            codec,
        } => bench::writer(&dir, &user, episodes, steps, &frame, codec.into()),
    }
}

fn init(dir: &Path) -> Result<ExitCode> {
    let existed = dir.join(trajstore::INDEX_FILE).is_file();
    let store = trajstore::Store::create(dir)?;
    let version = store.snapshot()?.format_version()?;
    let what = if existed {
        "already a trajstore store"
    } else {
        "initialised an empty trajstore store"
    };
    println!("{}: {what} (format version {version})", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Opens a store for reading (library errors name the path).
pub(crate) fn open_read(dir: &Path) -> Result<trajstore::Store> {
    Ok(trajstore::Store::open_read_only(dir)?)
}

/// Writes a line to stdout, surfacing a closed pipe as an error (handled quietly by main).
fn out(line: impl std::fmt::Display) -> Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

/// Microseconds since the epoch as RFC 3339 UTC (second precision).
pub(crate) fn timestamp(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub(crate) fn value_json(v: &trajstore::Value) -> serde_json::Value {
    use trajstore::Value::*;
    match v {
        Bool(b) => (*b).into(),
        Int(i) => (*i).into(),
        Float(f) => (*f).into(),
        Str(s) => s.clone().into(),
        Ints(v) => v.clone().into(),
        Floats(v) => v.clone().into(),
    }
}

pub(crate) fn info_json(info: &trajstore::Info) -> serde_json::Value {
    info.iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The JSON object `ls --json` prints for an episode (and `show --json` extends).
pub(crate) fn episode_json(e: &trajstore::Episode) -> serde_json::Value {
    serde_json::json!({
        "episode": e.id(),
        "user": e.user(),
        "env": e.env(),
        "steps": e.steps(),
        "return": e.total_return(),
        "outcome": e.outcome().name(),
        "seed": e.seed(),
        "tags": e.tags(),
        "metadata": info_json(e.metadata()),
        "started_at": timestamp(e.started_at_us()),
        "ended_at": timestamp(e.ended_at_us()),
        "raw_bytes": e.raw_bytes(),
        "stored_bytes": e.stored_bytes(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::timestamp(1_700_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            super::timestamp(951_782_400_000_000),
            "2000-02-29T00:00:00Z"
        );
    }
}
