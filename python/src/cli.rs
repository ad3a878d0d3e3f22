//! The `trajstore` command line inside the extension module, so a `pip install` brings the
//! same CLI as the Rust binary (`trajstore` console script, `python -m trajstore`) with no
//! second build: the binary's own source, compiled here as a module.

use std::ffi::OsString;

use pyo3::prelude::*;

#[path = "../../src/bin/trajstore/main.rs"]
pub(crate) mod command_line;

/// Runs the command line `argv` (program name first) and returns its exit status. The GIL is
/// released: `serve` and long commands run while other Python threads go on.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| command_line::run(argv))
}
