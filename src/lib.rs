//! trajstore
