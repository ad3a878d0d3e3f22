//! An export: the episodes and steps tables of a selection, and a manifest, written into a
//! staging directory beside the output and renamed into place whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatchIterator, RecordBatchReader};
use serde_json::{Value, json};
use trajstore::{Query, Store};

use crate::columns::column_type;
use crate::episodes::episodes_batch;
use crate::error::{ExportError, Result};
use crate::manifest::{FileEntry, Manifest};
use crate::steps::{StepsPlan, StepsReader};

/// Writes one table of an export in some file format.
pub trait TableWriter {
    /// `"parquet"`, `"lance"`: recorded in the manifest.
    fn format(&self) -> &'static str;
    /// Writes table `name` (`episodes` or `steps`) into `dir` from `batches`, and returns what
    /// it wrote (paths relative to `dir`). A table with no rows is still written, with its
    /// schema.
    fn write_table(
        &mut self,
        dir: &Path,
        name: &str,
        batches: Box<dyn RecordBatchReader + Send>,
    ) -> Result<Vec<FileEntry>>;
}

/// Progress of the steps table, in rows (a terminal progress bar, or nothing).
pub trait Progress: Send + Sync {
    fn start(&self, total_rows: u64);
    fn advance(&self, rows: u64);
    fn finish(&self);
}

/// What to export, and where.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub query: Query,
    /// The fields to export, in column order; `None` for every field.
    pub fields: Option<Vec<String>>,
    /// The directory to create; it must not exist.
    pub out: PathBuf,
}

impl ExportRequest {
    fn selection_json(&self) -> Value {
        let q = &self.query;
        json!({
            "users": q.users,
            "envs": q.envs,
            "tags": q.tags,
            "outcomes": q.outcomes.iter().map(|o| o.name()).collect::<Vec<_>>(),
            "min_return": q.min_return,
            "max_return": q.max_return,
            "min_steps": q.min_steps,
            "splits": q.splits,
            "before_id": q.before_id.map(|id| id.get()),
            "fields": self.fields,
        })
    }
}

/// Exports the episodes `request` selects from a snapshot of `store` with `writer`. The
/// output appears whole, with its `manifest.json`, or not at all: everything is written into
/// a staging directory beside it (`.NAME.partial-PID`), removed on failure, and renamed to
/// `request.out` at the end.
pub fn export(
    store: &Store,
    request: &ExportRequest,
    writer: &mut dyn TableWriter,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    let out = &request.out;
    if out.symlink_metadata().is_ok() {
        return Err(ExportError::OutputExists { path: out.clone() });
    }
    let snapshot = Arc::new(store.snapshot()?);
    let episodes = snapshot.episodes(&request.query)?;
    let plan = Arc::new(StepsPlan::new(
        &snapshot,
        &episodes,
        request.fields.as_deref(),
    )?);
    let store_path = store
        .path()
        .canonicalize()
        .map_err(|e| ExportError::io(store.path(), e))?;
    let transitions: u64 = episodes.iter().map(|e| u64::from(e.steps())).sum();
    let mut manifest = Manifest {
        table_format: writer.format(),
        store_path,
        store_format_version: snapshot.format_version()?,
        cutoff: snapshot.cutoff()?.get(),
        episodes: episodes.len() as u64,
        max_episode_id: episodes.iter().map(|e| e.id().get()).max(),
        transitions,
        selection: request.selection_json(),
        fields: Value::Array(
            plan.fields()
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "dtype": f.dtype.name(),
                        "shape": f.shape,
                        "kind": f.kind.name(),
                        "column": column_type(f).to_string(),
                    })
                })
                .collect(),
        ),
        episode_files: Vec::new(),
        step_files: Vec::new(),
    };

    let staging = staging_path(out)?;
    if staging.exists() {
        // Left by an earlier export of this process id that died: never part of an output.
        std::fs::remove_dir_all(&staging).map_err(|e| ExportError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| ExportError::io(&staging, e))?;
    let written = (|| -> Result<()> {
        let batch = episodes_batch(&episodes)?;
        let schema = batch.schema();
        manifest.episode_files = writer.write_table(
            &staging,
            "episodes",
            Box::new(RecordBatchIterator::new([Ok(batch)], schema)),
        )?;
        progress.start(transitions + episodes.len() as u64);
        let ticker = progress.clone();
        let steps = StepsReader::new(snapshot.clone(), plan.clone(), episodes.clone())
            .on_batch(move |b| ticker.advance(b.num_rows() as u64));
        manifest.step_files = writer.write_table(&staging, "steps", Box::new(steps))?;
        progress.finish();
        write_synced(
            &staging.join("manifest.json"),
            format!("{:#}\n", manifest.to_json()).as_bytes(),
        )?;
        sync_dir(&staging)?;
        std::fs::rename(&staging, out).map_err(|e| ExportError::io(out, e))?;
        sync_dir(
            out.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written.map(|()| manifest)
}

/// `.NAME.partial-PID` beside `out`.
fn staging_path(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| {
        ExportError::io(
            out,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output needs a directory name",
            ),
        )
    })?;
    let mut staged = std::ffi::OsString::from(".");
    staged.push(name);
    staged.push(format!(".partial-{}", std::process::id()));
    Ok(out.with_file_name(staged))
}

/// Writes `bytes` to a new file at `path` and syncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| ExportError::io(path, e))?;
    f.write_all(bytes).map_err(|e| ExportError::io(path, e))?;
    f.sync_all().map_err(|e| ExportError::io(path, e))
}

/// Syncs a directory, so the names of what was created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ExportError::io(dir, e))
}
