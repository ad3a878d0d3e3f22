use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Result, bail};
use trajstore_export::{
    ExportRequest, ParquetCompression, ParquetWriter, Progress, TableWriter, export,
};

use super::filters::EpisodeFilters;
use super::{human_bytes, open_read, out};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    pub dir: PathBuf,
    /// The directory to create (it must not exist): `episodes/` and `steps/` tables and a
    /// `manifest.json` (schema/export.md).
    pub out: PathBuf,
    /// parquet (this binary) or lance (the Python package's `trajstore` command, with pylance).
    #[arg(long, default_value = "parquet")]
    format: String,
    #[command(flatten)]
    filters: EpisodeFilters,
    /// Fields to export, comma-separated, in column order (default: every field).
    #[arg(long, value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// Parquet page compression: none, snappy or lz4.
    #[arg(long, default_value = "snappy")]
    compression: String,
    /// Print the manifest as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Makes the writer of a table format this binary does not carry (Lance, from the Python
/// package, which registers it before running the command line).
pub type WriterFactory = fn() -> Box<dyn TableWriter>;

static LANCE_WRITER: OnceLock<WriterFactory> = OnceLock::new();

/// Registers the Lance writer (the Python package does, with pylance).
pub fn register_lance_writer(make: WriterFactory) {
    let _ = LANCE_WRITER.set(make);
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total_rows: u64) {
        self.0.set_length(total_rows);
    }
    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn progress_bar() -> Bar {
    if !std::io::stderr().is_terminal() {
        return Bar(indicatif::ProgressBar::hidden());
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "exporting steps {bar:40} {pos}/{len} rows, {per_sec}, eta {eta}",
        )
        .expect("a valid template"),
    );
    Bar(bar)
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let compression = ParquetCompression::parse(&args.compression).ok_or_else(|| {
        anyhow::anyhow!(
            "--compression {:?}: expected none, snappy or lz4",
            args.compression
        )
    })?;
    let mut writer: Box<dyn TableWriter> = match args.format.as_str() {
        "parquet" => Box::new(ParquetWriter {
            compression,
            ..ParquetWriter::default()
        }),
        "lance" => match LANCE_WRITER.get() {
            Some(make) => make(),
            None => bail!(
                "--format lance is written by the Python package's trajstore command: \
                 `pip install ./python pylance` (or `pip install trajstore pylance`), then run \
                 the same command line with that `trajstore`"
            ),
        },
        other => bail!("--format {other:?}: expected parquet or lance"),
    };
    let request = ExportRequest {
        query: args.filters.query()?,
        fields: args.fields,
        out: args.out,
    };
    let store = open_read(&args.dir)?;
    let started = Instant::now();
    let manifest = export(&store, &request, writer.as_mut(), Arc::new(progress_bar()))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        out(manifest.to_json())?;
    } else {
        let bytes: u64 = manifest.step_files.iter().map(|f| f.bytes).sum();
        out(format!(
            "exported {} episodes ({} step rows, {} fields) to {} as {}: {} of steps in {:.2} s",
            manifest.episodes,
            manifest.transitions + manifest.episodes,
            manifest.fields.as_array().map_or(0, Vec::len),
            request.out.display(),
            manifest.table_format,
            human_bytes(bytes),
            seconds
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
