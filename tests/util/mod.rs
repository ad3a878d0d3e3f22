//! Helpers shared by the library's tests: the testkit's fixtures and the simulated file system.
#![allow(dead_code, unused_imports)]

pub mod sim_io;

pub use trajstore_testkit::fixtures::*;
