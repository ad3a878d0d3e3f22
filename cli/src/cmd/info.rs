use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{human_bytes, open_read, out};
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    pub dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let InfoArgs { dir, json } = args;
    let dir = dir.as_path();
    let store = open_read(dir)?;
    let snapshot = store.snapshot()?;
    let users = snapshot.users()?;
    // O(users): the users table holds the counts; no episode record is decoded.
    let episodes: u64 = users.iter().map(|u| u.episodes).sum();
    let steps: u64 = users.iter().map(|u| u.steps).sum();
    let raw: u64 = users.iter().map(|u| u.raw_bytes).sum();
    let stored: u64 = users.iter().map(|u| u.stored_bytes).sum();
    let disk = disk_bytes(dir);
    let schemas = snapshot.schemas()?;
    let version = snapshot.format_version()?;
    if json {
        let schemas: Vec<_> = schemas
            .iter()
            .map(|(id, s)| {
                let fields: Vec<_> = s
                    .fields()
                    .iter()
                    .map(|f| {
                        serde_json::json!({"name": f.name, "dtype": f.dtype.name(), "shape": f.shape,
                            "kind": f.kind.name(), "codec": f.codec.name()})
                    })
                    .collect();
                let metadata = snapshot.schema_metadata(*id)?;
                Ok(serde_json::json!({"id": id, "fields": fields,
                    "metadata": crate::json::info_json(&metadata)}))
            })
            .collect::<Result<Vec<_>>>()?;
        let users: Vec<_> = users
            .iter()
            .map(|u| serde_json::json!({"user": u.name, "episodes": u.episodes, "steps": u.steps, "raw_bytes": u.raw_bytes, "stored_bytes": u.stored_bytes}))
            .collect();
        out(serde_json::json!({
            "format_version": version,
            "users": users,
            "episodes": episodes,
            "steps": steps,
            "raw_bytes": raw,
            "stored_bytes": stored,
            "disk_bytes": disk,
            "schemas": schemas,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out(format!("store        {}", dir.display()))?;
    out(format!("format       v{version}"))?;
    out(format!("episodes     {episodes}"))?;
    out(format!("steps        {steps}"))?;
    out(format!(
        "field bytes  {} raw, {} stored, {} on disk (index + segments)",
        human_bytes(raw),
        human_bytes(stored),
        human_bytes(disk)
    ))?;
    out(format!("users        {}", users.len()))?;
    for u in &users {
        out(format!(
            "  {:<24} {:>6} episodes {:>9} steps {:>10}",
            u.name,
            u.episodes,
            u.steps,
            human_bytes(u.stored_bytes)
        ))?;
    }
    out(format!("schemas      {}", schemas.len()))?;
    for (id, s) in &schemas {
        let fields: Vec<String> = s
            .fields()
            .iter()
            .map(|f| format!("{} {}{:?} {}", f.name, f.dtype, f.shape, f.codec.name()))
            .collect();
        out(format!("  #{id}: {}", fields.join(", ")))?;
        let metadata = snapshot.schema_metadata(*id)?;
        if !metadata.is_empty() {
            let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
            out(format!("      metadata: {}", keys.join(", ")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of the index file and every segment file.
fn disk_bytes(dir: &Path) -> u64 {
    let file_len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let segments: u64 = std::fs::read_dir(dir.join("segments"))
        .map(|entries| entries.flatten().map(|e| file_len(&e.path())).sum())
        .unwrap_or(0);
    file_len(&dir.join(trajstore::INDEX_FILE)) + segments
}
