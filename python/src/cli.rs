//! The `trajstore` command line inside the extension module, so a `pip install` brings the
//! same CLI as the Rust binary (`trajstore` console script, `python -m trajstore`): the CLI
//! crate's own `run`.

use std::ffi::OsString;

use pyo3::prelude::*;

/// Runs the command line `argv` (program name first) and returns its exit status. The GIL is
/// released: `serve` and long commands run while other Python threads go on.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| trajstore_cli::run(argv))
}
