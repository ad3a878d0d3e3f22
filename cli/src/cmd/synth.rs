use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use trajstore::Store;
use trajstore_testkit::synth::{SynthConfig, record};

/// `trajstore synth`: the store, and the testkit's own config as flags.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    pub dir: PathBuf,
    #[command(flatten)]
    config: SynthConfig,
}

pub fn run(args: SynthArgs) -> Result<ExitCode> {
    let SynthArgs { dir, config } = args;
    if let Err(problem) = config.check() {
        bail!(problem);
    }
    let store = Store::create(&dir)?;
    let stdout = std::io::stdout();
    record(&store, &config, |r| {
        // Printed (and flushed) only after the commit returned: a line is a durable promise.
        let line = serde_json::json!({"episode": r.episode, "user": config.user, "steps": r.steps});
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
