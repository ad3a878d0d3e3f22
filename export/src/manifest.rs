//! The export's manifest: which store snapshot and selection it came from, and what it holds.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Version of the exported layout (schema/export.md); recorded in every manifest.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// One file (or, for Lance, one dataset directory) written for a table.
#[derive(Clone, Debug, PartialEq)]
pub struct FileEntry {
    /// Relative to the export directory, with `/` separators.
    pub path: String,
    pub rows: u64,
    /// Bytes on disk (the directory's total for a Lance dataset).
    pub bytes: u64,
}

/// What `manifest.json` records (schema/export.md, "manifest.json").
#[derive(Clone, Debug)]
pub struct Manifest {
    pub table_format: &'static str,
    pub store_path: PathBuf,
    pub store_format_version: u32,
    /// Every episode id of the snapshot is below this.
    pub cutoff: u64,
    pub episodes: u64,
    pub max_episode_id: Option<u64>,
    /// Transitions (`T`, summed over episodes).
    pub transitions: u64,
    /// The query and field list the export was asked for.
    pub selection: Value,
    /// The steps table's fields: name, dtype, shape, kind and column type.
    pub fields: Value,
    pub episode_files: Vec<FileEntry>,
    pub step_files: Vec<FileEntry>,
}

fn files_json(files: &[FileEntry]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|f| json!({"path": f.path, "rows": f.rows, "bytes": f.bytes}))
            .collect(),
    )
}

impl Manifest {
    /// The manifest as JSON. Holds nothing that differs between two exports of one snapshot
    /// with one selection (no clock, no host): part of the deterministic output.
    pub fn to_json(&self) -> Value {
        json!({
            "format": "trajstore-export",
            "version": EXPORT_FORMAT_VERSION,
            "table_format": self.table_format,
            "store": {
                "path": self.store_path.display().to_string(),
                "format_version": self.store_format_version,
                "cutoff": self.cutoff,
            },
            "selection": self.selection,
            "episodes": self.episodes,
            "max_episode_id": self.max_episode_id,
            "transitions": self.transitions,
            "step_rows": self.transitions + self.episodes,
            "fields": self.fields,
            "tables": {
                "episodes": {"rows": self.episodes, "files": files_json(&self.episode_files)},
                "steps": {"rows": self.transitions + self.episodes, "files": files_json(&self.step_files)},
            },
        })
    }
}
