//! Helpers of the CLI's tests: running the binary, and the testkit's fixtures.
#![allow(dead_code, unused_imports)]

use std::process::{Command, Output};

pub use trajstore_testkit::fixtures::*;

/// The path of the `trajstore` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_trajstore");

/// The `trajstore` binary built for these tests.
pub fn bin() -> Command {
    Command::new(BIN)
}

/// Runs the CLI, returning its output (not asserting success).
pub fn cli(args: &[&str]) -> Output {
    bin().args(args).output().expect("run trajstore")
}

/// Runs the CLI and asserts it succeeded; returns stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "trajstore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `trajstore synth STORE --user USER --episodes EPISODES FLAGS..` and asserts it
/// succeeded; returns stdout (a JSON line per episode).
pub fn synth(store: &str, user: &str, episodes: &str, flags: &[&str]) -> String {
    let mut args = vec!["synth", store, "--user", user, "--episodes", episodes];
    args.extend_from_slice(flags);
    cli_ok(&args)
}

/// The number in the environment variable `name` (a soak's size), or `default` when it is
/// unset or not a number.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
