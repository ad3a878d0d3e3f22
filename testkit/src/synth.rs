//! Synthetic demonstrations: game-like frames (smooth background, a few moving shapes, a
//! little noise: compressible like a screen, not like random bytes), discrete actions and
//! rewards. Used by `trajstore synth`, the demo, benchmarks and tests.
//!
//! With the `clap` feature, [`SynthConfig`] is also the `trajstore synth` command's flags,
//! so each is defined once, here (the field docs are the `--help` text).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use trajstore::partition::rng::SplitMix64;
use trajstore::{ArrayRef, Codec, DType, EpisodeMeta, Info, Result, Schema, Store, Value};

/// Env id of synthetic episodes.
pub const SYNTH_ENV: &str = "Synth-v0";
/// Number of discrete actions.
pub const SYNTH_ACTIONS: i64 = 9;

/// What to record.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SynthConfig {
    /// User name recorded in every episode.
    #[cfg_attr(feature = "clap", arg(long))]
    pub user: String,
    /// Episodes to record.
    #[cfg_attr(feature = "clap", arg(long))]
    pub episodes: u64,
    /// Fewest transitions of an episode.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_MIN_STEPS))]
    pub min_steps: u32,
    /// Most transitions of an episode.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_MAX_STEPS))]
    pub max_steps: u32,
    /// Frame shape HxWxC (or HxW for one channel).
    #[cfg_attr(feature = "clap", arg(long, default_value = DEFAULT_FRAME, value_parser = parse_frame))]
    pub frame: [u32; 3],
    /// Codec of the frames: raw or lz4.
    #[cfg_attr(feature = "clap", arg(long, default_value = "raw", value_parser = parse_codec))]
    pub codec: Codec,
    /// Seed of the episodes' content and lengths.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Recorder threads sharing the store handle.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub writers: usize,
}

const DEFAULT_MIN_STEPS: u32 = 50;
const DEFAULT_MAX_STEPS: u32 = 200;
const DEFAULT_FRAME: &str = "128x128x3";

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            user: "synth".into(),
            episodes: 10,
            min_steps: DEFAULT_MIN_STEPS,
            max_steps: DEFAULT_MAX_STEPS,
            frame: parse_frame(DEFAULT_FRAME).expect("a valid default"),
            codec: Codec::Raw,
            seed: 0,
            writers: 1,
        }
    }
}

impl SynthConfig {
    /// What `record` needs beyond types: a valid user name, `1 <= min_steps <= max_steps`,
    /// at least one writer. The message names the flag.
    pub fn check(&self) -> std::result::Result<(), String> {
        trajstore::validate_user(&self.user).map_err(|e| e.to_string())?;
        let (min, max) = (self.min_steps, self.max_steps);
        if min == 0 || max < min {
            return Err(format!(
                "--min-steps must be at least 1 and at most --max-steps (got {min}..{max})"
            ));
        }
        if self.writers == 0 {
            return Err("--writers must be at least 1".into());
        }
        Ok(())
    }
}

/// A frame shape, `HxWxC` or `HxW` (one channel), every size positive.
pub fn parse_frame(s: &str) -> std::result::Result<[u32; 3], String> {
    let usage = || format!("{s:?}: expected HxWxC with positive sizes, e.g. 128x128x3");
    let dims: Vec<u32> = s
        .split('x')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{}: {e}", usage()))?;
    match dims[..] {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        [h, w] if h > 0 && w > 0 => Ok([h, w, 1]),
        _ => Err(usage()),
    }
}

/// A codec by its name (`raw`, `lz4`), as [`Codec::name`] spells it.
pub fn parse_codec(s: &str) -> std::result::Result<Codec, String> {
    Codec::parse(s).ok_or_else(|| format!("{s:?}: expected raw or lz4"))
}

/// The schema of synthetic episodes: `obs/frame` `u8[H,W,C]`, `obs/ram/health` `i32[2]`,
/// `action` i64, and the standard reward / terminated / truncated.
pub fn synth_schema(frame: [u32; 3], codec: Codec) -> Result<Schema> {
    Schema::builder()
        .observation("obs/frame", DType::U8, &frame, codec)
        .observation("obs/ram/health", DType::I32, &[2], Codec::Raw)
        .transition("action", DType::I64, &[])
        .build()
}

/// Renders game-like frames.
pub struct FrameGen {
    h: usize,
    w: usize,
    c: usize,
    shapes: Vec<Shape>,
    rng: SplitMix64,
    palette: [u8; 3],
}

struct Shape {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    size: usize,
    color: [u8; 3],
}

impl FrameGen {
    pub fn new(frame: [u32; 3], seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let [h, w, c] = frame.map(|d| d as usize);
        let shapes = (0..4)
            .map(|_| Shape {
                x: rng.below(w as u64) as f32,
                y: rng.below(h as u64) as f32,
                vx: (rng.below(7) as f32 - 3.0) * 0.7,
                vy: (rng.below(7) as f32 - 3.0) * 0.7,
                size: 4 + rng.below((h.min(w) / 6).max(1) as u64) as usize,
                color: [
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ],
            })
            .collect();
        let palette = [
            rng.below(128) as u8,
            rng.below(128) as u8,
            rng.below(128) as u8,
        ];
        FrameGen {
            h,
            w,
            c,
            shapes,
            rng,
            palette,
        }
    }

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Renders frame `t` into `out` (`frame_bytes()` long) and advances the shapes.
    pub fn render(&mut self, t: u32, out: &mut [u8]) {
        let (h, w, c) = (self.h, self.w, self.c);
        for y in 0..h {
            let row = &mut out[y * w * c..(y + 1) * w * c];
            for x in 0..w {
                let base = ((x + y) / 4 + t as usize / 2) as u8;
                for ch in 0..c {
                    row[x * c + ch] = self.palette[ch % 3].wrapping_add(base >> (ch % 3));
                }
            }
        }
        for s in &mut self.shapes {
            let (x0, y0) = (s.x.max(0.0) as usize, s.y.max(0.0) as usize);
            for y in y0..(y0 + s.size).min(h) {
                for x in x0..(x0 + s.size).min(w) {
                    for ch in 0..c {
                        out[(y * w + x) * c + ch] = s.color[ch % 3];
                    }
                }
            }
            s.x += s.vx;
            s.y += s.vy;
            if s.x < 0.0 || s.x + s.size as f32 >= w as f32 {
                s.vx = -s.vx;
            }
            if s.y < 0.0 || s.y + s.size as f32 >= h as f32 {
                s.vy = -s.vy;
            }
        }
        // Sensor-like noise on a few pixels.
        for _ in 0..(h * w / 64) {
            let i = self.rng.below(out.len() as u64) as usize;
            out[i] = out[i].wrapping_add(self.rng.below(8) as u8);
        }
    }
}

/// One committed synthetic episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub episode: u64,
    pub steps: u32,
}

/// Records `config.episodes` episodes with `config.writers` threads; calls `on_commit` after
/// each commit returned (from the recording thread).
pub fn record(
    store: &Store,
    config: &SynthConfig,
    on_commit: impl Fn(Recorded) + Sync,
) -> Result<Vec<Recorded>> {
    let schema = synth_schema(config.frame, config.codec)?;
    let next = AtomicU64::new(0);
    let done = Mutex::new(Vec::new());
    let writers = config.writers.max(1);
    crate::threads::on_threads(writers, |_| -> Result<()> {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= config.episodes {
                return Ok(());
            }
            let recorded = record_one(store, config, &schema, n)?;
            done.lock().expect("results").push(recorded);
            on_commit(recorded);
        }
    })?;
    let mut done = done.into_inner().expect("results");
    done.sort_by_key(|r| r.episode);
    Ok(done)
}

/// Records synthetic episode number `n` of a run.
pub fn record_one(
    store: &Store,
    config: &SynthConfig,
    schema: &Schema,
    n: u64,
) -> Result<Recorded> {
    let seed = config
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n);
    let mut rng = SplitMix64::new(seed);
    let span = u64::from(config.max_steps.saturating_sub(config.min_steps)) + 1;
    let steps = config.min_steps.max(1) + rng.below(span) as u32;
    let difficulty = rng.below(5) as i64;
    let meta = EpisodeMeta::new(config.user.clone(), SYNTH_ENV)
        .seed(seed)
        .tag("synthetic")
        .meta("difficulty", difficulty)
        .meta(
            "frame",
            format!(
                "{}x{}x{}",
                config.frame[0], config.frame[1], config.frame[2]
            ),
        );
    let mut episode = store.begin_episode(meta, schema)?;
    let mut frames = FrameGen::new(config.frame, seed);
    let mut frame = vec![0u8; frames.frame_bytes()];
    let mut health = [100i32, 100];
    frames.render(0, &mut frame);
    let reset_info = Info::from([("stage".to_owned(), Value::Int(1))]);
    episode.reset(
        &[
            ("obs/frame", ArrayRef::new(&frame)),
            ("obs/ram/health", ArrayRef::new(&health)),
        ],
        &reset_info,
    )?;
    for t in 1..=steps {
        let action = rng.below(SYNTH_ACTIONS as u64) as i64;
        let hit = rng.below(10);
        let reward = match hit {
            0 => 1.0f32,
            1 => -1.0,
            _ => 0.0,
        };
        health[hit.min(1) as usize] -= i32::from(hit < 2);
        frames.render(t, &mut frame);
        let last = t == steps;
        let terminated = last && health[0] != health[1];
        let truncated = last && !terminated;
        let info = if last {
            Info::from([(
                "winner".to_owned(),
                Value::Int(i64::from(health[0] < health[1])),
            )])
        } else {
            Info::new()
        };
        episode.step(
            &[
                ("obs/frame", ArrayRef::new(&frame)),
                ("obs/ram/health", ArrayRef::new(&health)),
                ("action", ArrayRef::scalar(&action)),
                ("reward", ArrayRef::scalar(&reward)),
                ("terminated", ArrayRef::scalar(&terminated)),
                ("truncated", ArrayRef::scalar(&truncated)),
            ],
            &info,
        )?;
    }
    let id = episode.commit()?;
    Ok(Recorded {
        episode: id.get(),
        steps,
    })
}
