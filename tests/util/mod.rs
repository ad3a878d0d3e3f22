//! Helpers shared by the library's tests: the testkit's fixtures, the stores the tests build
//! and compare, and the simulated file system.
#![allow(dead_code, unused_imports)]

pub mod sim_io;
mod stores;

pub use stores::*;
pub use trajstore_testkit::fixtures::*;
