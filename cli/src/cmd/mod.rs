//! One module per subcommand; each returns the process exit code.

pub mod bench;
pub mod demo;
pub mod info;
pub mod init;
pub mod ls;
pub mod partition;
pub mod preview;
pub mod repair;
pub mod show;
pub mod synth;
pub mod verify;

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
        Command::Init(args) => init::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Info(args) => info::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Show(args) => show::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Preview(args) => preview::run(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Partition(args) => partition::run(args),
        Command::Bench(args) => bench::run(args),
    }
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
