//! trajstore

pub mod loader;
