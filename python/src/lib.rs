//! The native half of the `trajstore` Python package. Thin: every behaviour lives in the Rust
//! library; this module converts arguments, releases the GIL around I/O and maps errors.

mod arrow;
mod buffer;
mod catalog;
mod cli;
mod error;
mod inbound;
mod lance;
mod loader;
mod out_array;
mod preview;
mod record;
mod schema;
mod store;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _trajstore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<arrow::ArrowTable>()?;
    m.add_class::<arrow::ArrowStream>()?;
    m.add_class::<store::PySnapshot>()?;
    m.add_class::<catalog::PyCatalog>()?;
    m.add_class::<record::PyEpisodeRecorder>()?;
    m.add_class::<record::PyPendingCommit>()?;
    m.add_class::<buffer::MappedBuffer>()?;
    m.add_class::<buffer::OwnedBuffer>()?;
    m.add_class::<loader::PyLoader>()?;
    m.add_class::<loader::PySampler>()?;
    m.add_class::<loader::PyReplay>()?;
    preview::register(m)?;
    m.add_function(wrap_pyfunction!(cli::run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(store::compact, m)?)?;
    // `trajstore export --format lance` in the wheel's command writes through pylance.
    trajstore_cli::register_lance_writer(lance::make_writer);
    m.add("FORMAT_VERSION", trajstore::STORE_FORMAT_VERSION)?;
    let dtypes = pyo3::types::PyDict::new(m.py());
    for dtype in trajstore::DType::ALL {
        dtypes.set_item(dtype.name(), buffer::numpy_typestr(dtype))?;
    }
    m.add("DTYPES", dtypes)?;
    Ok(())
}
