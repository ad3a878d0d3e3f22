//! Previews of image fields for `Episode.preview` (trajstore::preview does the work).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use trajstore::preview::{self, EpisodeFrames};

use crate::error::{InputError, IntoPy};
use crate::store::PySnapshot;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(preview_sheet, m)?)?;
    m.add_function(wrap_pyfunction!(preview_encode, m)?)?;
    Ok(())
}

/// A contact sheet of `field` (default: the first image observation) of an episode, every
/// `every`th step, as (RGBA bytes, height, width).
#[pyfunction]
#[pyo3(signature = (snapshot, episode, field=None, every=1))]
fn preview_sheet<'py>(
    py: Python<'py>,
    snapshot: &PySnapshot,
    episode: u64,
    field: Option<&str>,
    every: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
    let sheet = {
        let snapshot = &snapshot.snapshot;
        py.detach(|| sheet(snapshot, episode, field, every))?
    };
    Ok((PyBytes::new(py, &sheet.pixels), sheet.height, sheet.width))
}

/// The contact sheet as PNG bytes (`kind="png"`) or an animated GIF (`kind="gif"`).
#[pyfunction]
#[pyo3(signature = (snapshot, episode, field=None, every=1, kind="png"))]
fn preview_encode<'py>(
    py: Python<'py>,
    snapshot: &PySnapshot,
    episode: u64,
    field: Option<&str>,
    every: usize,
    kind: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = {
        let snapshot = &snapshot.snapshot;
        py.detach(|| -> PyResult<Vec<u8>> {
            match kind {
                "png" => sheet(snapshot, episode, field, every)?.to_png().py_err(),
                "gif" => {
                    check_every(every)?;
                    let e = snapshot.episode(trajstore::EpisodeId(episode)).py_err()?;
                    EpisodeFrames::read(snapshot, &e, field, every, preview::MAX_GIF_FRAMES)
                        .py_err()?
                        .gif(7)
                        .py_err()
                }
                _ => Err(InputError::new_err(format!(
                    "kind {kind:?}: expected \"png\" or \"gif\""
                ))),
            }
        })?
    };
    Ok(PyBytes::new(py, &bytes))
}

fn check_every(every: usize) -> PyResult<()> {
    if every == 0 {
        return Err(InputError::new_err("every must be at least 1"));
    }
    Ok(())
}

fn sheet(
    snapshot: &trajstore::Snapshot,
    episode: u64,
    field: Option<&str>,
    every: usize,
) -> PyResult<preview::Rgba> {
    check_every(every)?;
    let e = snapshot.episode(trajstore::EpisodeId(episode)).py_err()?;
    let frames =
        EpisodeFrames::read(snapshot, &e, field, every, preview::MAX_SHEET_TILES).py_err()?;
    let series = frames.series(snapshot, &e).py_err()?;
    Ok(frames.sheet(&series))
}
