//! Tools around trajstore that are not part of it: synthetic demonstrations, the fixtures the
//! tests share, and the benchmark routines behind `testkit/benches/` and `trajstore bench`.
//! Not published; the library never depends on it (its tests do, as a dev-dependency).

pub mod bench;
pub mod fixtures;
pub mod synth;
mod threads;
