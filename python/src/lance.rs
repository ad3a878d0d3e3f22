//! `trajstore export --format lance` in the wheel's command: the CLI's table writer for Lance,
//! handing each table's record batches to pylance (`trajstore._lance.write_table`) through
//! the Arrow C stream interface.

use std::path::Path;

use arrow_array::RecordBatchReader;
use pyo3::prelude::*;
use trajstore_export::{ExportError, FileEntry, Result, TableWriter};

use crate::arrow::ArrowStream;

struct LanceWriter;

/// Registered with the CLI when the module loads.
pub fn make_writer() -> Box<dyn TableWriter> {
    Box::new(LanceWriter)
}

/// Bytes of every file under `path`.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

impl TableWriter for LanceWriter {
    fn format(&self) -> &'static str {
        "lance"
    }

    fn write_table(
        &mut self,
        dir: &Path,
        name: &str,
        batches: Box<dyn RecordBatchReader + Send>,
    ) -> Result<Vec<FileEntry>> {
        let rel = format!("{name}.lance");
        let path = dir.join(&rel);
        let rows: u64 = Python::attach(|py| -> PyResult<u64> {
            let stream = Bound::new(py, ArrowStream::new(batches))?;
            py.import("trajstore._lance")?
                .call_method1("write_table", (&path, stream))?
                .extract()
        })
        .map_err(|e| ExportError::Writer {
            format: "lance",
            message: e.to_string(),
        })?;
        Ok(vec![FileEntry {
            bytes: tree_bytes(&path),
            path: rel,
            rows,
        }])
    }
}
