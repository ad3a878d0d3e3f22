//! `Catalog`: the episodes a query selects, as columns read from the index's compact catalog
//! (`Snapshot::catalog`), so listing 100k episodes builds no Python object per episode.
//! `Store.episodes()` wraps it in a lazy sequence that makes an `EpisodeInfo` only for the
//! rows it is asked for (`rows`), reading each one's metadata map then.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use trajstore::{DType, EpisodeId, EpisodeSummary, Info, Snapshot};

use crate::buffer::OwnedBuffer;
use crate::error::{InputError, IntoPy};
use crate::values::info_to_py;

/// The numeric columns, with their dtype: what `column` exports as arrays.
const NUMERIC: [(&str, DType); 9] = [
    ("id", DType::U64),
    ("schema_id", DType::U64),
    ("steps", DType::U32),
    ("total_return", DType::F64),
    ("started_at_us", DType::I64),
    ("ended_at_us", DType::I64),
    ("committed_at_us", DType::I64),
    ("raw_bytes", DType::U64),
    ("stored_bytes", DType::U64),
];

/// The text and list columns, exported as Python lists.
const LISTS: [&str; 5] = ["user", "env", "outcome", "seed", "tags"];

/// Selected episodes of one snapshot, as catalog rows.
#[pyclass(frozen, module = "trajstore._trajstore", name = "Catalog")]
pub struct PyCatalog {
    snapshot: Arc<Snapshot>,
    rows: Vec<EpisodeSummary>,
}

impl PyCatalog {
    pub fn new(snapshot: Arc<Snapshot>, rows: Vec<EpisodeSummary>) -> Self {
        PyCatalog { snapshot, rows }
    }

    /// The little-endian bytes of a numeric column.
    fn numeric(&self, name: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.rows.len() * 8);
        let rows = self.rows.iter();
        match name {
            "id" => rows.for_each(|e| out.extend(e.id().get().to_le_bytes())),
            "schema_id" => rows.for_each(|e| out.extend(e.schema_id().get().to_le_bytes())),
            "steps" => rows.for_each(|e| out.extend(e.steps().to_le_bytes())),
            "total_return" => rows.for_each(|e| out.extend(e.total_return().to_le_bytes())),
            "started_at_us" => rows.for_each(|e| out.extend(e.started_at_us().to_le_bytes())),
            "ended_at_us" => rows.for_each(|e| out.extend(e.ended_at_us().to_le_bytes())),
            "committed_at_us" => rows.for_each(|e| out.extend(e.committed_at_us().to_le_bytes())),
            "raw_bytes" => rows.for_each(|e| out.extend(e.raw_bytes().to_le_bytes())),
            "stored_bytes" => rows.for_each(|e| out.extend(e.stored_bytes().to_le_bytes())),
            _ => return None,
        }
        Some(out)
    }
}

#[pymethods]
impl PyCatalog {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// Names of every column, in `EpisodeInfo` order (`metadata` aside: read per row).
    #[staticmethod]
    fn columns() -> Vec<&'static str> {
        let mut names: Vec<&str> = NUMERIC.iter().map(|(n, _)| *n).collect();
        names.extend(LISTS);
        names
    }

    /// One column for every row: a 1-d array buffer for numeric columns (`id`, `steps`,
    /// `total_return`, times, bytes), a list for `user`, `env`, `outcome`, `seed` (ints or
    /// None) and `tags` (lists of str).
    fn column<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        if let Some(&(_, dtype)) = NUMERIC.iter().find(|(n, _)| *n == name) {
            let bytes = self.numeric(name).expect("a numeric column");
            let buffer = OwnedBuffer::new(bytes, dtype, &[self.rows.len()], false)?;
            return Ok(Bound::new(py, buffer)?.into_any());
        }
        let list = match name {
            "user" => PyList::new(py, self.rows.iter().map(EpisodeSummary::user))?,
            "env" => PyList::new(py, self.rows.iter().map(EpisodeSummary::env))?,
            "outcome" => PyList::new(py, self.rows.iter().map(|e| e.outcome().name()))?,
            "seed" => PyList::new(py, self.rows.iter().map(EpisodeSummary::seed))?,
            "tags" => PyList::new(py, self.rows.iter().map(EpisodeSummary::tags))?,
            other => {
                return Err(InputError::new_err(format!(
                    "no episode column {other:?}: the columns are {}",
                    Self::columns().join(", ")
                )));
            }
        };
        Ok(list.into_any())
    }

    /// Rows `start..stop` as `EpisodeInfo` keyword dicts (every column and `metadata`, which
    /// is read from each episode's index record now, in this catalog's snapshot).
    fn rows<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let stop = stop.min(self.rows.len());
        let start = start.min(stop);
        let snapshot = &self.snapshot;
        let rows = &self.rows[start..stop];
        let metadata = py
            .detach(|| {
                rows.iter()
                    .map(|e| metadata_of(snapshot, e.id()))
                    .collect::<trajstore::Result<Vec<_>>>()
            })
            .py_err()?;
        let list = PyList::empty(py);
        for (e, metadata) in rows.iter().zip(&metadata) {
            list.append(summary_dict(py, e, metadata)?)?;
        }
        Ok(list)
    }
}

/// An episode's metadata map from its index record; for an episode deleted since (a query
/// with an older cutoff still selects it), from its tombstone.
fn metadata_of(snapshot: &Snapshot, id: EpisodeId) -> trajstore::Result<Info> {
    match snapshot.episode(id) {
        Ok(e) => Ok(e.metadata().clone()),
        Err(err) => match snapshot.tombstone(id)? {
            Some(t) => Ok(t.episode.metadata().clone()),
            None => Err(err),
        },
    }
}

/// The `EpisodeInfo` keyword dict of an episode's catalog row and its metadata: the one
/// place an episode becomes a Python dict (listings, loader shares, tombstones).
pub(crate) fn summary_dict<'py>(
    py: Python<'py>,
    e: &EpisodeSummary,
    metadata: &Info,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", e.id().get())?;
    d.set_item("user", e.user())?;
    d.set_item("env", e.env())?;
    d.set_item("schema_id", e.schema_id().get())?;
    d.set_item("steps", e.steps())?;
    d.set_item("total_return", e.total_return())?;
    d.set_item("outcome", e.outcome().name())?;
    d.set_item("seed", e.seed())?;
    d.set_item("tags", e.tags())?;
    d.set_item("metadata", info_to_py(py, metadata)?)?;
    d.set_item("started_at_us", e.started_at_us())?;
    d.set_item("ended_at_us", e.ended_at_us())?;
    d.set_item("committed_at_us", e.committed_at_us())?;
    d.set_item("raw_bytes", e.raw_bytes())?;
    d.set_item("stored_bytes", e.stored_bytes())?;
    Ok(d)
}
