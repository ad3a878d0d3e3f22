//! The command line as typed (clap derive). Validation beyond types happens in each command.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CodecArg {
    Raw,
    Lz4,
}

impl From<CodecArg> for trajstore::Codec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::Raw => trajstore::Codec::Raw,
            CodecArg::Lz4 => trajstore::Codec::Lz4,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store (or check an existing one).
    Init { dir: PathBuf },
    /// Record synthetic demonstrations; prints one JSON line per committed episode.
    Synth {
        dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        episodes: u64,
        #[arg(long, default_value_t = 50)]
        min_steps: u32,
        #[arg(long, default_value_t = 200)]
        max_steps: u32,
        /// Frame shape HxWxC.
        #[arg(long, default_value = "128x128x3")]
        frame: String,
        #[arg(long, value_enum, default_value_t = CodecArg::Raw)]
        codec: CodecArg,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Recorder threads in this process.
        #[arg(long, default_value_t = 1)]
        writers: usize,
    },
    /// Users, episodes, steps, bytes, schemas and format version.
    Info {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List episodes, one per line, in commit order.
    Ls {
        dir: PathBuf,
        #[arg(long)]
        user: Vec<String>,
        #[arg(long)]
        env: Vec<String>,
        #[arg(long)]
        tag: Vec<String>,
        /// terminated, truncated or interrupted.
        #[arg(long)]
        outcome: Vec<String>,
        #[arg(long)]
        min_return: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// One episode: metadata and a summary of its fields.
    Show {
        dir: PathBuf,
        episode: u64,
        #[arg(long)]
        json: bool,
    },
    /// An image field of an episode as a PNG contact sheet (frames labelled with their step,
    /// over reward and action plots) or an animated GIF (by the --out extension).
    Preview {
        dir: PathBuf,
        episode: u64,
        /// FILE.png (contact sheet) or FILE.gif (animation); default episode-ID.png.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Image field (u8 HxW or HxWxC); default the first image observation field.
        #[arg(long)]
        field: Option<String>,
        /// Show every Kth step.
        #[arg(long, default_value_t = 1)]
        every: usize,
    },
    /// A local, read-only web viewer of the store (episode table, frames, plots, infos).
    Serve {
        dir: PathBuf,
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Address to bind; anything but a loopback address needs --allow-remote.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Allow binding a non-loopback address (the viewer has no authentication).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Check every checksum and that index and segments agree; exits 1 on any problem.
    Verify {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a missing or damaged index from the segments (keeps the old file aside, never
    /// touches segments); does nothing to a healthy index.
    Repair {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Record synthetic demos, query a user's episodes, read them back, report speed.
    Demo {
        /// Where to record (a temporary directory, removed afterwards, by default).
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        users: u32,
        #[arg(long, default_value_t = 8)]
        episodes: u64,
    },
    /// Per rank: the episodes served in one epoch (in serving order), their steps, and the
    /// step imbalance (max/min).
    Partition {
        dir: PathBuf,
        #[arg(long)]
        world_size: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 0)]
        epoch: u64,
        #[arg(long)]
        user: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Measure recording and reading against plain-file baselines in the same run.
    Bench {
        /// Store to scan (a temporary store is recorded when absent).
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = BenchMode::All)]
        mode: BenchMode,
        /// Field to scan.
        #[arg(long, default_value = "obs/frame")]
        field: String,
        #[arg(long)]
        json: bool,
    },
    /// One recorder process of `bench --mode concurrent`: prints `ready`, starts when stdin
    /// closes, prints its commit latencies.
    #[command(hide = true)]
    BenchWriter {
        dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        episodes: u32,
        #[arg(long)]
        steps: u32,
        #[arg(long)]
        frame: String,
        #[arg(long, value_enum, default_value_t = CodecArg::Raw)]
        codec: CodecArg,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchMode {
    /// Concurrent recording: 1, 2, 4 writers as threads and as processes.
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
    /// Checked reads against `verify_reads: false`: a first scan and a first loader epoch
    /// (every chunk's checksum verified on first read), then again with the checks remembered.
    Checked,
}

impl Command {
    /// The store directory the command works on, if any.
    pub fn store_dir(&self) -> Option<&std::path::Path> {
        match self {
            Command::Init { dir }
            | Command::Synth { dir, .. }
            | Command::Info { dir, .. }
            | Command::Ls { dir, .. }
            | Command::Show { dir, .. }
            | Command::Preview { dir, .. }
            | Command::Serve { dir, .. }
            | Command::Verify { dir, .. }
            | Command::Repair { dir, .. }
            | Command::Partition { dir, .. }
            | Command::BenchWriter { dir, .. } => Some(dir),
            Command::Demo { dir, .. } | Command::Bench { dir, .. } => dir.as_deref(),
        }
    }
}
