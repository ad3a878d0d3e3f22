use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    pub dir: PathBuf,
}

pub fn run(args: InitArgs) -> Result<ExitCode> {
    let dir = args.dir.as_path();
    let existed = dir.join(trajstore::INDEX_FILE).is_file();
    let store = trajstore::Store::create(dir)?;
    let version = store.snapshot()?.format_version()?;
    let what = if existed {
        "already a trajstore store"
    } else {
        "initialised an empty trajstore store"
    };
    super::out(format!(
        "{}: {what} (format version {version})",
        dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
