//! One module per subcommand, with its flags as one clap `Args` struct; each returns the
//! process exit code. Validation beyond types happens in each command.

pub mod bench;
pub mod compact;
mod curate;
pub mod demo;
pub mod export;
pub mod filters;
pub mod import;
pub mod info;
pub mod init;
pub mod ls;
pub mod merge;
pub mod partition;
pub mod preview;
pub mod relabel;
pub mod repair;
pub mod restore;
pub mod rm;
pub mod show;
pub mod split;
pub mod stats;
pub mod synth;
pub mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::serve::ServeArgs;
use bench::BenchArgs;
use compact::CompactArgs;
use demo::DemoArgs;
use export::ExportArgs;
use import::ImportArgs;
use info::InfoArgs;
use init::InitArgs;
use ls::LsArgs;
use merge::MergeArgs;
use partition::PartitionArgs;
use preview::PreviewArgs;
use relabel::RelabelArgs;
use repair::RepairArgs;
use restore::RestoreArgs;
use rm::RmArgs;
use show::ShowArgs;
use split::SplitArgs;
use stats::StatsArgs;
use synth::SynthArgs;
use verify::VerifyArgs;

/// The subcommands, each with its own `Args` struct (in its module, each flag defined once).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store (or check an existing one).
    Init(InitArgs),
    /// Record synthetic demonstrations; prints one JSON line per committed episode.
    Synth(SynthArgs),
    /// Users, episodes, steps, bytes, schemas and format version.
    Info(InfoArgs),
    /// List episodes, one per line, in commit order.
    Ls(LsArgs),
    /// One episode: metadata and a summary of its fields.
    Show(ShowArgs),
    /// An image field of an episode as a PNG contact sheet (frames labelled with their step,
    /// over reward and action plots) or an animated GIF (by the --out extension).
    Preview(PreviewArgs),
    /// Per-element statistics (count, mean, std, min, max, quantiles) of the small numeric
    /// fields over the selected episodes, from the index alone (no frame is read).
    Stats(StatsArgs),
    /// A local, read-only web viewer of the store (episode table, frames, plots, infos).
    Serve(ServeArgs),
    /// Check every checksum and that index and segments agree; exits 1 on any problem.
    Verify(VerifyArgs),
    /// Rebuild a missing or damaged index from the segments (keeps the old file aside, never
    /// touches segments); does nothing to a healthy index.
    Repair(RepairArgs),
    /// Delete episodes (by id and/or filters; a selector is required): one index
    /// transaction; bytes stay until compaction; `restore` brings them back.
    Rm(RmArgs),
    /// Restore deleted episodes (ids or --all), or --list them.
    Restore(RestoreArgs),
    /// Change the user, outcome, tags or metadata of selected episodes (index only), with a
    /// history of each change.
    Relabel(RelabelArgs),
    /// Set a deterministic train/validation/... split (only the spec is stored).
    Split(SplitArgs),
    /// Merge whole stores into OUT (created when missing) without decoding a frame: segments
    /// hard-linked (copied across file systems), episodes under new ids (the mapping printed).
    Merge(MergeArgs),
    /// Reclaim the bytes of aborted or crashed recordings and of unreferenced segments: live
    /// episodes copied into new segments, the index switched, old files removed when no
    /// process can still read them. Safe while others record and read.
    Compact(CompactArgs),
    /// Record synthetic demos, query a user's episodes, read them back, report speed.
    Demo(DemoArgs),
    /// Selected episodes as an `episodes` and a `steps` table (Parquet, or Lance from the
    /// Python package) with a manifest naming the snapshot; deterministic (schema/export.md).
    Export(ExportArgs),
    /// Per rank: the episodes served in one epoch (in serving order), their steps, and the
    /// step imbalance (max/min).
    Partition(PartitionArgs),
    /// Measure recording and reading against plain-file baselines in the same run.
    Bench(BenchArgs),
    /// Import DIAMBRA `.diambra` files or a Minari dataset (runs in the Python package's
    /// `trajstore` command: `trajstore import diambra DIR FILES...`, `... minari DIR PATH`).
    Import(ImportArgs),
}

impl Command {
    /// The store directory the command works on, if any.
    fn store_dir(&self) -> Option<&Path> {
        match self {
            Command::Init(a) => Some(&a.dir),
            Command::Synth(a) => Some(&a.dir),
            Command::Info(a) => Some(&a.dir),
            Command::Ls(a) => only(&a.dirs),
            Command::Show(a) => Some(&a.dir),
            Command::Stats(a) => Some(&a.dir),
            Command::Preview(a) => Some(&a.dir),
            Command::Serve(a) => Some(&a.dir),
            Command::Verify(a) => Some(&a.dir),
            Command::Repair(a) => Some(&a.dir),
            Command::Merge(a) => Some(&a.dir),
            Command::Compact(a) => Some(&a.dir),
            Command::Partition(a) => only(&a.dirs),
            Command::Export(a) => Some(&a.dir),
            Command::Rm(a) => Some(&a.dir),
            Command::Restore(a) => Some(&a.dir),
            Command::Relabel(a) => Some(&a.dir),
            Command::Split(a) => Some(&a.dir),
            Command::Demo(a) => a.dir.as_deref(),
            Command::Bench(a) => a.dir.as_deref(),
            Command::Import(_) => None,
        }
    }
}

/// The store of a command given one store; with several, errors name their shard themselves.
fn only(dirs: &[PathBuf]) -> Option<&Path> {
    match dirs {
        [dir] => Some(dir),
        _ => None,
    }
}

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
        Command::Stats(args) => stats::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Preview(args) => preview::run(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Partition(args) => partition::run(args),
        Command::Export(args) => export::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Relabel(args) => relabel::run(args),
        Command::Split(args) => split::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Import(args) => import::run(args),
    }
}

/// Index page cache of a command's store: a command reads each index page about once, and a
/// big cache would only fault in fresh memory for pages never read again
/// (`StoreOptions::index_cache_bytes`).
const COMMAND_INDEX_CACHE_BYTES: usize = 1 << 20;

/// Opens a store for reading (library errors name the path).
pub(crate) fn open_read(dir: &Path) -> Result<trajstore::Store> {
    let options = trajstore::StoreOptions {
        index_cache_bytes: COMMAND_INDEX_CACHE_BYTES,
        ..Default::default()
    };
    Ok(trajstore::Store::open_read_only_with(dir, options)?)
}

/// Opens every store of a shard list read-only; with several, an error names the shard
/// (its position in the list) and its path.
pub(crate) fn open_shards(dirs: &[PathBuf]) -> Result<Vec<trajstore::Store>> {
    dirs.iter()
        .enumerate()
        .map(|(i, dir)| {
            open_read(dir).map_err(|e| match dirs.len() {
                1 => e,
                _ => e.context(format!("shard {i} ({})", dir.display())),
            })
        })
        .collect()
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
