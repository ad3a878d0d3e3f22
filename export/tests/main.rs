//! The export crate's tests, one binary: record batches against the store's values, and
//! Parquet exports (read back, deterministic, whole or absent).

mod batches;
mod parquet_export;
