//! The command line as typed (clap derive): one `Args` struct per command, in the command's
//! own module, each flag defined there once. Validation beyond types happens in each command.

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::cmd::{
    bench::BenchArgs, demo::DemoArgs, info::InfoArgs, init::InitArgs, ls::LsArgs,
    partition::PartitionArgs, preview::PreviewArgs, repair::RepairArgs, show::ShowArgs,
    synth::SynthArgs, verify::VerifyArgs,
};
use crate::serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(
    name = "trajstore",
    version,
    about = "Transactional dataset store for RL trajectories"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

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
    /// A local, read-only web viewer of the store (episode table, frames, plots, infos).
    Serve(ServeArgs),
    /// Check every checksum and that index and segments agree; exits 1 on any problem.
    Verify(VerifyArgs),
    /// Rebuild a missing or damaged index from the segments (keeps the old file aside, never
    /// touches segments); does nothing to a healthy index.
    Repair(RepairArgs),
    /// Record synthetic demos, query a user's episodes, read them back, report speed.
    Demo(DemoArgs),
    /// Per rank: the episodes served in one epoch (in serving order), their steps, and the
    /// step imbalance (max/min).
    Partition(PartitionArgs),
    /// Measure recording and reading against plain-file baselines in the same run.
    Bench(BenchArgs),
}

impl Command {
    /// The store directory the command works on, if any.
    pub fn store_dir(&self) -> Option<&Path> {
        match self {
            Command::Init(a) => Some(&a.dir),
            Command::Synth(a) => Some(&a.dir),
            Command::Info(a) => Some(&a.dir),
            Command::Ls(a) => Some(&a.dir),
            Command::Show(a) => Some(&a.dir),
            Command::Preview(a) => Some(&a.dir),
            Command::Serve(a) => Some(&a.dir),
            Command::Verify(a) => Some(&a.dir),
            Command::Repair(a) => Some(&a.dir),
            Command::Partition(a) => Some(&a.dir),
            Command::Demo(a) => a.dir.as_deref(),
            Command::Bench(a) => a.dir.as_deref(),
        }
    }
}
