//! The CLI's tests, one binary: every test here runs the `trajstore` binary (as the user
//! does, or as the recorder and reader processes of the concurrency and crash tests).
//! Soaks are `#[ignore]`d: `cargo test -p trajstore-cli --release --test main -- --ignored`.

mod cli;
mod compaction;
mod concurrency;
mod crash;
mod curate;
mod full_disk;
mod look;
mod mutation;
mod scale;
mod stats;
mod store_commands;
mod util;
