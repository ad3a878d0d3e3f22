//! The `trajstore` binary: the command line of the `trajstore_cli` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // `bench --mode concurrent` runs its recorder processes as this executable again; in
    // such a child this records and exits (trajstore_testkit::bench::recorder_process).
    trajstore_testkit::bench::recorder_process::run_if_recorder_process();
    // `bench --mode scale` measures the loader's setup and memory in a fresh process: this
    // executable again (trajstore_testkit::bench::loader_probe).
    trajstore_testkit::bench::loader_probe::run_if_loader_probe();
    ExitCode::from(trajstore_cli::run(std::env::args_os()))
}
