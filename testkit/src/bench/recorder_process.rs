//! Recorder processes of the concurrent benchmark, by re-running the current executable.
//!
//! The parent starts `std::env::current_exe()` with [`RECORDER_ENV`] set (the recorder's
//! spec) and [`RECORDER_DIR_ENV`] (the store); any executable that runs
//! [`super::Recorders::Processes`] calls [`run_if_recorder_process`] first thing in `main`,
//! which in such a child records, reports and exits, and in any other process returns at
//! once. The child prints `ready` once set up, starts when its stdin closes (the parent closes
//! all children's together) and prints [`RecorderRun::to_lines`]. An executable that forgot
//! the call runs its own `main` instead: the parent fails on its first line that is not
//! `ready`, and the child refuses to start recorders of its own (no endless recursion).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use trajstore::{Codec, Store};

use crate::synth::parse_frame;

use super::{BenchError, Commit, ConcurrentSpec, RecordSpec, RecorderRun, Result, recorder};

/// Set in a recorder process: `USER EPISODES STEPS HxWxC CODEC COMMIT` (`wait` or
/// `background`).
pub const RECORDER_ENV: &str = "TRAJSTORE_TESTKIT_RECORDER";
/// Set in a recorder process: the store directory it records into.
pub const RECORDER_DIR_ENV: &str = "TRAJSTORE_TESTKIT_RECORDER_DIR";

/// In a recorder process started by the concurrent benchmark: records, prints what it
/// measured and exits (status 0, or 1 with the error on stderr). Anywhere else: returns.
pub fn run_if_recorder_process() {
    let Some(spec) = std::env::var_os(RECORDER_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(RECORDER_DIR_ENV).unwrap_or_default());
    let code = match child(&dir, &spec.to_string_lossy()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("recorder process: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn encode(user: &str, spec: &RecordSpec, commit: Commit) -> String {
    let [h, w, c] = spec.frame;
    let codec = spec.codec.name();
    let commit = match commit {
        Commit::Wait => "wait",
        Commit::Background => "background",
    };
    format!(
        "{user} {} {} {h}x{w}x{c} {codec} {commit}",
        spec.episodes, spec.steps
    )
}

fn decode(text: &str) -> Option<(String, RecordSpec, Commit)> {
    let [user, episodes, steps, frame, codec, commit] = text.split(' ').collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let commit = match commit {
        "wait" => Commit::Wait,
        "background" => Commit::Background,
        _ => return None,
    };
    let spec = RecordSpec {
        episodes: episodes.parse().ok()?,
        steps: steps.parse().ok()?,
        frame: parse_frame(frame).ok()?,
        codec: Codec::parse(codec)?,
    };
    Some((user.to_owned(), spec, commit))
}

/// The body of a recorder process.
fn child(dir: &Path, text: &str) -> Result<()> {
    let (user, spec, commit) = decode(text)
        .ok_or_else(|| BenchError::Recorder(format!("{RECORDER_ENV}={text:?}: not a spec")))?;
    let store = Store::open(dir)?;
    let stdio = |e| BenchError::io("(stdio)", e);
    let commit_us = recorder(&store, &spec, &user, commit, || {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
        // The start signal: the parent closes our stdin.
        std::io::stdin().read_to_end(&mut Vec::new())?;
        Ok(())
    })?;
    let run = RecorderRun {
        commit_us,
        stats: store.commit_stats(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(run.to_lines().as_bytes()).map_err(stdio)?;
    stdout.flush().map_err(stdio)
}

/// Starts `spec.writers` recorder processes, waits until each printed `ready`, releases them
/// together (by closing their stdin) and collects what they measured.
pub(super) fn record_in_processes(
    store_dir: &Path,
    spec: &ConcurrentSpec,
) -> Result<(f64, Vec<RecorderRun>)> {
    if std::env::var_os(RECORDER_ENV).is_some() {
        // A recorder child whose main skipped `run_if_recorder_process`: starting recorders
        // of its own would recurse without end.
        return Err(BenchError::Recorder(format!(
            "{RECORDER_ENV} is set: this process is a recorder, its main must call \
             run_if_recorder_process first"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| BenchError::io("(current executable)", e))?;
    let io = |e| BenchError::io(&exe, e);
    let mut children = Vec::new();
    for w in 0..spec.writers {
        let mut child = Command::new(&exe)
            .env(
                RECORDER_ENV,
                encode(&format!("w{w}"), &spec.per_writer, spec.commit),
            )
            .env(RECORDER_DIR_ENV, store_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io)?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(io)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Recorder(format!(
                "{} did not get ready (does its main call \
                 trajstore_testkit::bench::recorder_process::run_if_recorder_process?): {line:?}",
                exe.display()
            )));
        }
        children.push((child, stdout));
    }
    let start = Instant::now();
    for (child, _) in &mut children {
        drop(child.stdin.take());
    }
    let mut runs = Vec::new();
    for (mut child, mut stdout) in children {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map_err(io)?;
        let status = child.wait().map_err(io)?;
        let run = RecorderRun::parse(&text).filter(|_| status.success());
        runs.push(run.ok_or_else(|| BenchError::Recorder(format!("failed ({status}): {text}")))?);
    }
    // The last process to finish ends the measurement; reading their output is negligible.
    Ok((start.elapsed().as_secs_f64(), runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_survives_the_environment() {
        let spec = RecordSpec {
            episodes: 3,
            steps: 7,
            frame: [84, 80, 3],
            codec: Codec::Lz4,
        };
        let (user, back, commit) = decode(&encode("w2", &spec, Commit::Background)).unwrap();
        assert_eq!((user.as_str(), commit), ("w2", Commit::Background));
        assert_eq!(
            (back.episodes, back.steps, back.frame, back.codec),
            (3, 7, [84, 80, 3], Codec::Lz4)
        );
        assert!(decode("w2 3 7 84x0x3 lz4 wait").is_none());
        assert!(decode("w2 3 7 84x80x3 zstd wait").is_none());
        assert!(decode("w2 3 7 84x80x3 lz4 later").is_none());
        assert!(decode("w2 3 7 84x80x3 lz4").is_none());
    }
}
