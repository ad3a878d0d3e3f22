//! `trajstore`: a thin command line over the library. Errors print their whole chain with a
//! hint when the fix is known; a closed stdout pipe (`| head`) ends quietly.

mod cmd;
mod json;
mod serve;

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;

/// The command line as typed (clap derive).
#[derive(Parser, Debug)]
#[command(
    name = "trajstore",
    version,
    about = "Transactional dataset store for RL trajectories"
)]
struct Args {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    // `bench --mode concurrent` runs its recorder processes as this executable again; in
    // such a child this records and exits (trajstore_testkit::bench::recorder_process).
    trajstore_testkit::bench::recorder_process::run_if_recorder_process();
    let args = Args::parse();
    match cmd::run(args.command) {
        Ok(code) => code,
        Err(e) if io_kinds(&e).any(|k| k == ErrorKind::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "trajstore: error: {}", message(&e));
            if let Some(hint) = hint(&e) {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}

/// The error chain joined with ": ", skipping causes whose text the message already holds
/// (library errors include their cause in their own text).
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

fn io_kinds(e: &anyhow::Error) -> impl Iterator<Item = ErrorKind> + '_ {
    e.chain()
        .filter_map(|c| {
            c.downcast_ref::<std::io::Error>().or_else(|| {
                c.downcast_ref::<trajstore::Error>()
                    .and_then(trajstore::Error::io_error)
            })
        })
        .map(std::io::Error::kind)
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    io_kinds(e).find_map(|kind| match kind {
        ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded => Some(
            "the disk (or a size limit) is full: episodes committed before this are intact; free space and record again",
        ),
        ErrorKind::PermissionDenied => Some("check the permissions of the store directory and its files"),
        _ => None,
    })
}
