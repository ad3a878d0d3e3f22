//! The `trajstore` command line: a thin layer over the library. Errors print their whole
//! chain with a hint when the fix is known; a closed stdout pipe (`| head`) ends quietly.
//!
//! A library as well as the binary: the Python package calls [`run`], so the wheel's
//! `trajstore` command (console script, `python -m trajstore`) is this very CLI.

mod cmd;
mod json;
mod json_rows;
mod serve;

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;

pub use cmd::export::{WriterFactory, register_lance_writer};

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

/// Runs the command line `args` (program name first) and returns its exit status: 0 done,
/// 1 a problem found (`verify`), 2 an error (printed to stderr), clap's own for usage errors.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and succeed.
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    match cmd::run(args.command) {
        Ok(code) => exit_status(code),
        Err(e) if io_kinds(&e).any(|k| k == ErrorKind::BrokenPipe) => 0,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "trajstore: error: {}", message(&e));
            if let Some(hint) = hint(&e) {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            2
        }
    }
}

/// The commands return `ExitCode`, which cannot be read back; they only ever return these.
fn exit_status(code: ExitCode) -> u8 {
    if code == ExitCode::SUCCESS { 0 } else { 1 }
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcommand_s_flags_are_well_formed() {
        // clap checks names (a flag defined twice, e.g. by a flattened struct) only when a
        // subcommand is parsed: check them all here, not in front of a user.
        <super::Args as clap::CommandFactory>::command().debug_assert();
    }
}
