//! What can go wrong when building batches or exporting.

use std::path::PathBuf;

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// An export or batch-building failure. The store's own errors pass through unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed (damaged data, a missing episode, ...).
    #[error(transparent)]
    Store(#[from] trajstore::Error),
    /// Two selected episodes declare a field with different dtypes, shapes or kinds, so one
    /// column cannot hold both.
    #[error(
        "field {field:?} is {first} in schema {first_schema} but {second} in schema {second_schema}: one column cannot hold both (select episodes of one schema, or leave the field out with --fields)"
    )]
    FieldConflict {
        field: String,
        first_schema: u64,
        first: String,
        second_schema: u64,
        second: String,
    },
    /// A requested field is in no selected episode's schema.
    #[error("no selected episode has a field {field:?} (fields: {known})")]
    UnknownField { field: String, known: String },
    /// A field name asked for twice, or one that collides with the `episode`/`step` columns.
    #[error("field {field:?} {reason}")]
    BadField { field: String, reason: &'static str },
    /// The output path already exists; an export never overwrites.
    #[error("{} already exists; an export never overwrites (remove it or pick another path)", path.display())]
    OutputExists { path: PathBuf },
    /// A file-system operation on the output failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Building or encoding Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The table writer (Parquet, Lance) failed.
    #[error("{format} writer: {message}")]
    Writer {
        format: &'static str,
        message: String,
    },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.into(),
            source,
        }
    }

    /// Unwraps an error that travelled through an Arrow reader as `ArrowError::ExternalError`.
    pub fn from_arrow(e: arrow_schema::ArrowError) -> Self {
        match e {
            arrow_schema::ArrowError::ExternalError(inner) => match inner.downcast::<ExportError>()
            {
                Ok(export) => *export,
                Err(other) => ExportError::Arrow(arrow_schema::ArrowError::ExternalError(other)),
            },
            e => ExportError::Arrow(e),
        }
    }
}
