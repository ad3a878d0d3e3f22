use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{human_bytes, open_read, out};
use crate::json::{episode_json, history_json, info_json, timestamp};

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    pub dir: PathBuf,
    episode: u64,
    #[arg(long)]
    json: bool,
}

pub fn run(args: ShowArgs) -> Result<ExitCode> {
    let ShowArgs {
        dir,
        episode: id,
        json,
    } = args;
    let dir = dir.as_path();
    let store = open_read(dir)?;
    let snapshot = store.snapshot()?;
    let id = trajstore::EpisodeId(id);
    // A deleted episode is still shown (it can be restored until compaction), marked so.
    let tombstone = match snapshot.episode(id) {
        Ok(_) => None,
        Err(e) => Some(snapshot.tombstone(id)?.ok_or(e)?),
    };
    let episode = match &tombstone {
        Some(t) => t.episode.clone(),
        None => snapshot.episode(id)?,
    };
    let split = snapshot.split_of(&episode)?;
    let history = snapshot.history(id)?;
    let fields = snapshot.fields(&episode)?;
    let infos = snapshot.infos(&episode)?;
    let with_info: Vec<(usize, &trajstore::Info)> = infos
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.is_empty())
        .collect();
    let mut meta = episode_json(&episode);
    if let Some(split) = &split {
        meta["split"] = split.clone().into();
    }
    if let Some(t) = &tombstone {
        meta["deleted_at"] = timestamp(t.deleted_at_us).into();
        meta["deleted_by"] = t.deleted_by.clone().into();
    }
    if json {
        let mut v = meta;
        v["history"] = history.iter().map(history_json).collect();
        v["fields"] = fields
            .iter()
            .map(|f| {
                let s = f.spec();
                serde_json::json!({"name": s.name, "dtype": s.dtype.name(), "shape": s.shape, "kind": s.kind.name(),
                    "codec": s.codec.name(), "values": f.len(), "chunks": f.extents().len(),
                    "stored_bytes": f.extents().iter().map(|x| x.payload_len).sum::<u64>()})
            })
            .collect();
        v["infos"] = with_info
            .iter()
            .map(|(step, i)| serde_json::json!({"step": step, "info": info_json(i)}))
            .collect();
        out(v)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (k, v) in meta.as_object().expect("object") {
        out(format!("{k:<13} {v}"))?;
    }
    if tombstone.is_some() {
        out("deleted: not in any query, loader or partition; `trajstore restore` brings it back")?;
    }
    out("fields:")?;
    for f in &fields {
        let s = f.spec();
        let stored: u64 = f.extents().iter().map(|x| x.payload_len).sum();
        out(format!(
            "  {:<20} {:<11} {:>4} {:<14} x {:>6} values  {:>4}  {:>10} stored ({} chunk{})",
            s.name,
            s.kind.name(),
            s.dtype.name(),
            format!("{:?}", s.shape),
            f.len(),
            s.codec.name(),
            human_bytes(stored),
            f.extents().len(),
            if f.extents().len() == 1 { "" } else { "s" }
        ))?;
    }
    out(format!(
        "info:         {} of {} steps carry info",
        with_info.len(),
        infos.len()
    ))?;
    for (step, info) in with_info.iter().take(5) {
        out(format!("  step {step}: {}", info_json(info)))?;
    }
    if !history.is_empty() {
        out("history:")?;
        for h in &history {
            let v = history_json(h);
            out(format!(
                "  {} by {}: {}",
                v["at"].as_str().unwrap_or(""),
                h.by,
                v["changes"]
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
