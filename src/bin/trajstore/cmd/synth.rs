use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use trajstore::synth::{SynthConfig, record};
use trajstore::{Codec, Store};

#[allow(clippy::too_many_arguments)]
pub fn run(
    dir: &Path,
    user: String,
    episodes: u64,
    min_steps: u32,
    max_steps: u32,
    frame: &str,
    codec: Codec,
    seed: u64,
    writers: usize,
) -> Result<ExitCode> {
    trajstore::validate_user(&user)?;
    if min_steps == 0 || max_steps < min_steps {
        bail!(
            "--min-steps must be at least 1 and at most --max-steps (got {min_steps}..{max_steps})"
        );
    }
    if writers == 0 {
        bail!("--writers must be at least 1");
    }
    let frame = parse_frame(frame)?;
    let store = Store::create(dir)?;
    let config = SynthConfig {
        user: user.clone(),
        episodes,
        min_steps,
        max_steps,
        frame,
        codec,
        seed,
        writers,
    };
    let stdout = std::io::stdout();
    record(&store, &config, |r| {
        // Printed (and flushed) only after the commit returned: a line is a durable promise.
        let line = serde_json::json!({"episode": r.episode, "user": user, "steps": r.steps});
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn parse_frame(s: &str) -> Result<[u32; 3]> {
    let dims: Vec<u32> = s
        .split('x')
        .map(|d| d.parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--frame {s:?}: expected HxWxC, e.g. 128x128x3"))?;
    match dims.as_slice() {
        [h, w, c] if *h > 0 && *w > 0 && *c > 0 => Ok([*h, *w, *c]),
        [h, w] if *h > 0 && *w > 0 => Ok([*h, *w, 1]),
        _ => bail!("--frame {s:?}: expected HxWxC with positive sizes, e.g. 128x128x3"),
    }
}
