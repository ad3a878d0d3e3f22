//! What can stop a benchmark: the store, the file system around it, a baseline that read
//! different bytes, or a recorder process.

use std::path::PathBuf;

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum BenchError {
    /// The store refused or failed.
    Store(trajstore::Error),
    /// A file of the benchmark itself (a baseline file, a temporary directory).
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The baseline and trajstore saw different bytes: the comparison would be meaningless.
    Mismatch(&'static str),
    /// A recorder process of the concurrent benchmark failed or said something unexpected.
    Recorder(String),
    /// The loader probe process of the scale benchmark failed or did not report.
    Probe(String),
}

impl BenchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<trajstore::Error> for BenchError {
    fn from(e: trajstore::Error) -> Self {
        BenchError::Store(e)
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Store(e) => std::fmt::Display::fmt(e, f),
            BenchError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            BenchError::Mismatch(what) => write!(f, "benchmark: {what}"),
            BenchError::Recorder(what) => write!(f, "benchmark recorder process: {what}"),
            BenchError::Probe(what) => write!(f, "benchmark loader probe: {what}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Store(e) => Some(e),
            BenchError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
