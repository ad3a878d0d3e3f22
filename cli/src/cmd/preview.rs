use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use trajstore::preview::{EpisodeFrames, MAX_GIF_FRAMES, MAX_SHEET_TILES};

use super::{open_read, out};

/// Hundredths of a second per GIF frame (about 15 frames a second).
const GIF_DELAY_CS: u16 = 7;

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    pub dir: PathBuf,
    episode: u64,
    /// FILE.png (contact sheet) or FILE.gif (animation); default episode-ID.png.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Image field (u8 HxW or HxWxC); default the first image observation field.
    #[arg(long)]
    field: Option<String>,
    /// Show every Kth step.
    #[arg(long, default_value_t = 1)]
    every: usize,
}

pub fn run(args: PreviewArgs) -> Result<ExitCode> {
    let PreviewArgs {
        dir,
        episode: id,
        out: out_path,
        field,
        every,
    } = args;
    let (dir, field) = (dir.as_path(), field.as_deref());
    if every == 0 {
        bail!("--every must be at least 1");
    }
    let out_path = out_path.map_or_else(|| PathBuf::from(format!("episode-{id}.png")), Into::into);
    let kind = out_path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let store = open_read(dir)?;
    let snapshot = store.snapshot()?;
    let episode = snapshot.episode(trajstore::EpisodeId(id))?;
    let (bytes, what, frames) = match kind.as_deref() {
        Some("gif") => {
            let frames = EpisodeFrames::read(&snapshot, &episode, field, every, MAX_GIF_FRAMES)?;
            let what = format!("animated GIF of {} frames", frames.steps.len());
            (frames.gif(GIF_DELAY_CS)?, what, frames)
        }
        Some("png") => {
            let frames = EpisodeFrames::read(&snapshot, &episode, field, every, MAX_SHEET_TILES)?;
            let sheet = frames.sheet(&frames.series(&snapshot, &episode)?);
            let what = format!(
                "contact sheet of {} frames, {}x{} px",
                frames.steps.len(),
                sheet.width,
                sheet.height
            );
            (sheet.to_png()?, what, frames)
        }
        _ => bail!(
            "--out {}: expected a .png (contact sheet) or .gif (animation) file name",
            out_path.display()
        ),
    };
    std::fs::write(&out_path, bytes).with_context(|| format!("writing {}", out_path.display()))?;
    out(format!(
        "{}: {what} of {} (episode {id}, {} steps)",
        out_path.display(),
        frames.field,
        episode.steps()
    ))?;
    Ok(ExitCode::SUCCESS)
}
