//! trajstore's episodes and steps as Apache Arrow record batches, and their export.
//!
//! - [`episodes_batch`]: the episode index (metadata only, no field data) as one record batch,
//!   what Python's `Store.episodes_table` hands to pyarrow, polars and DuckDB through the
//!   Arrow C stream interface.
//! - [`StepsPlan`] and [`StepsReader`]: the steps of episodes, one record batch per episode,
//!   one row per observation (`T + 1` rows; transition fields are null on the last row),
//!   raw observation fields handed over as slices of the store's memory map (no copy).
//! - [`export`]: both tables and a manifest written to a directory through a
//!   [`TableWriter`] (Parquet with the `parquet` feature, Lance from the Python package),
//!   staged aside and renamed into place whole. The layout is specified in
//!   `schema/export.md`.

mod columns;
mod episodes;
mod error;
mod export;
mod manifest;
#[cfg(feature = "parquet")]
mod parquet;
mod steps;

pub use columns::{column_type, field_of};
pub use episodes::{episodes_batch, episodes_schema};
pub use error::{ExportError, Result};
pub use export::{ExportRequest, Progress, TableWriter, export};
pub use manifest::{EXPORT_FORMAT_VERSION, FileEntry, Manifest};
#[cfg(feature = "parquet")]
pub use parquet::{ParquetCompression, ParquetWriter};
pub use steps::{EPISODE_COLUMN, STEP_COLUMN, StepsPlan, StepsReader};

/// Re-exported so users of this crate name the same Arrow types.
pub use arrow_array::{RecordBatch, RecordBatchReader};
pub use arrow_schema::{ArrowError, SchemaRef};
