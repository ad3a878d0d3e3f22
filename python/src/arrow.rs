//! Arrow tables and streams handed to Python through the Arrow PyCapsule interface
//! (`__arrow_c_stream__`, `__arrow_c_schema__`): pyarrow, polars, DuckDB, Lance and Ray read
//! the record batches the Rust side built, through the Arrow C stream interface, without a
//! copy and without this package importing any of them.

use std::sync::Mutex;

use arrow_array::ffi::FFI_ArrowSchema;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_schema::SchemaRef;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use trajstore_export::ExportError;

use crate::error::{InputError, TrajstoreError, to_py, try_lock};

const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";
const SCHEMA_CAPSULE: &std::ffi::CStr = c"arrow_schema";

/// An export or batch-building error as the matching Python exception.
pub fn export_err(e: ExportError) -> PyErr {
    match e {
        ExportError::Store(e) => to_py(e),
        e @ (ExportError::FieldConflict { .. }
        | ExportError::UnknownField { .. }
        | ExportError::BadField { .. }
        | ExportError::OutputExists { .. }) => InputError::new_err(e.to_string()),
        e => TrajstoreError::new_err(e.to_string()),
    }
}

fn schema_capsule<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref())
        .map_err(|e| TrajstoreError::new_err(format!("arrow schema export: {e}")))?;
    PyCapsule::new_with_value(py, ffi, SCHEMA_CAPSULE)
}

fn stream_capsule<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
) -> PyResult<Bound<'py, PyCapsule>> {
    // The consumer moves the stream out of the capsule (leaving `release` null); a stream
    // never consumed is released when the capsule's box drops.
    PyCapsule::new_with_value(py, FFI_ArrowArrayStream::new(reader), STREAM_CAPSULE)
}

/// Record batches built in Rust, readable any number of times through the Arrow PyCapsule
/// interface: `pyarrow.table(t)`, `polars.DataFrame(t)`, `duckdb.sql("... FROM t")`.
#[pyclass(frozen, module = "trajstore._trajstore", name = "ArrowTable")]
pub struct ArrowTable {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl ArrowTable {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        ArrowTable { schema, batches }
    }
}

#[pymethods]
impl ArrowTable {
    /// Rows in all batches.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The columns' names, in order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn __len__(&self) -> usize {
        self.num_rows()
    }

    /// The table's schema as an `arrow_schema` capsule.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    /// A new stream over the batches as an `arrow_array_stream` capsule (the batches'
    /// buffers are shared, not copied). `requested_schema` is not applied: the table's own
    /// schema is what it has.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = RecordBatchIterator::new(
            self.batches.clone().into_iter().map(Ok),
            self.schema.clone(),
        );
        stream_capsule(py, Box::new(reader))
    }

    fn __repr__(&self) -> String {
        format!(
            "trajstore.ArrowTable({} rows: {})",
            self.num_rows(),
            self.column_names().join(", ")
        )
    }
}

/// A stream of record batches produced on demand, readable once through the Arrow PyCapsule
/// interface (what the Lance writer consumes while the export's progress bar advances).
#[pyclass(frozen, module = "trajstore._trajstore", name = "ArrowStream")]
pub struct ArrowStream {
    schema: SchemaRef,
    reader: Mutex<Option<Box<dyn RecordBatchReader + Send>>>,
}

impl ArrowStream {
    pub fn new(reader: Box<dyn RecordBatchReader + Send>) -> Self {
        ArrowStream {
            schema: reader.schema(),
            reader: Mutex::new(Some(reader)),
        }
    }
}

#[pymethods]
impl ArrowStream {
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    /// The stream as an `arrow_array_stream` capsule; a second call raises (it is consumed).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = try_lock(&self.reader, "ArrowStream")?
            .take()
            .ok_or_else(|| InputError::new_err("this ArrowStream was already consumed"))?;
        stream_capsule(py, reader)
    }
}
