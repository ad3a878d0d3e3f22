//! `trajstore import`: reading DIAMBRA and Minari data needs their Python libraries, so the
//! importers live in the Python package (`trajstore.importers`), whose console script runs
//! them. This binary says how to get that command.

use std::process::ExitCode;

use anyhow::{Result, bail};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// `diambra DIR FILES...` or `minari DIR DATASET_PATH` (run by the Python package's
    /// `trajstore` command).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

pub fn run(args: ImportArgs) -> Result<ExitCode> {
    bail!(
        "`trajstore import {}` runs in the Python package, where the DIAMBRA and Minari \
         readers live: `pip install trajstore` (from this repository: `pip install ./python`), \
         plus `pip install diambra-arena` or `pip install 'minari[hdf5,arrow]'`, then run \
         the `trajstore` command it installs (or `python -m trajstore import ...`)",
        args.rest.join(" ")
    )
}
