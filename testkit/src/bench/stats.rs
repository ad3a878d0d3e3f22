//! Field statistics: what gathering them costs a recorder, what they add to the index, and
//! how fast they combine for a large store against reading the values and computing the same
//! figures directly.
//!
//! - Recording cost: the same episodes recorded into two fresh stores, one with
//!   `StoreOptions::field_stats` and one without, rounds alternated, best round of each. The
//!   step path (`reset` + `step` calls, where statistics are gathered) is timed apart from
//!   the whole (which adds the durable commit per episode).
//! - Index bytes per episode: the index file sizes of those two stores, over the episodes.
//! - Combining: `Snapshot::stats` over every episode (and over one user's) of a store of
//!   100k small episodes, against reading every value of the same fields from the segments
//!   and computing count, mean, std, min, max and exact quantiles (sort), and against that
//!   computation alone on values already in memory.

use std::path::Path;
use std::time::{Duration, Instant};

use trajstore::partition::rng::SplitMix64;
use trajstore::{
    ArrayRef, Codec, DType, EpisodeMeta, Info, QUANTILES, Query, Schema, Store, StoreOptions,
};

use super::{BenchError, ROUNDS, Result};
use crate::synth::synth_schema;

/// Which fields a recording-cost run records.
#[derive(Clone, Copy, Debug)]
pub enum StatsSchema {
    /// The synthetic game schema: an `h x w x 3` u8 frame (no statistics: too large) plus
    /// `obs/ram/health` i32[2], `action` i64 and the standard transition fields.
    Frames(u32),
    /// Proprioceptive control: `obs` f32[n], `action` f32[6] and the standard fields.
    Proprio(u32),
}

impl StatsSchema {
    fn schema(self) -> Result<Schema> {
        Ok(match self {
            StatsSchema::Frames(side) => synth_schema([side, side, 3], Codec::Raw)?,
            StatsSchema::Proprio(n) => Schema::builder()
                .observation("obs", DType::F32, &[n], Codec::Raw)
                .transition("action", DType::F32, &[6])
                .build()?,
        })
    }

    pub fn name(self) -> String {
        match self {
            StatsSchema::Frames(side) => format!("frame u8[{side},{side},3] + 5 scalars"),
            StatsSchema::Proprio(n) => format!("obs f32[{n}] + action f32[6] + 3 scalars"),
        }
    }
}

/// Values of one episode, generated before timing (a random walk per element at magnitudes
/// from 1e-2 to 1e2, as proprioceptive observations have them).
struct EpisodeValues {
    frames: Vec<Vec<u8>>,
    obs: Vec<Vec<f32>>,
    actions: Vec<[f32; 6]>,
    rewards: Vec<f32>,
}

fn uniform(rng: &mut SplitMix64) -> f32 {
    (rng.below(1 << 24) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
}

fn episode_values(kind: StatsSchema, steps: u32, seed: u64) -> EpisodeValues {
    let mut rng = SplitMix64::new(seed);
    let n = steps as usize + 1;
    let (frames, obs) = match kind {
        StatsSchema::Frames(side) => {
            let frames = super::pregenerated_frames([side, side, 3], 8);
            (
                (0..n).map(|t| frames[t % frames.len()].clone()).collect(),
                Vec::new(),
            )
        }
        StatsSchema::Proprio(width) => {
            let mut x: Vec<f32> = vec![0.0; width as usize];
            let obs = (0..n)
                .map(|_| {
                    for (e, v) in x.iter_mut().enumerate() {
                        *v += uniform(&mut rng) * 10f32.powi(e as i32 % 5 - 2);
                    }
                    x.clone()
                })
                .collect();
            (Vec::new(), obs)
        }
    };
    let actions = (0..steps)
        .map(|_| std::array::from_fn(|_| uniform(&mut rng)))
        .collect();
    let rewards = (0..steps).map(|_| uniform(&mut rng)).collect();
    EpisodeValues {
        frames,
        obs,
        actions,
        rewards,
    }
}

/// Records one episode; returns the time spent in `reset` and `step` (the step path).
fn record_values(
    store: &Store,
    kind: StatsSchema,
    schema: &Schema,
    user: &str,
    v: &EpisodeValues,
) -> Result<Duration> {
    let mut w = store.begin_episode(EpisodeMeta::new(user, "StatsBench-v0"), schema)?;
    let health = [100i32, 90];
    let steps = v.rewards.len();
    let start = Instant::now();
    let observation = |t: usize| -> Vec<(&str, ArrayRef<'_>)> {
        match kind {
            StatsSchema::Frames(_) => vec![
                ("obs/frame", ArrayRef::new(&v.frames[t])),
                ("obs/ram/health", ArrayRef::new(&health)),
            ],
            StatsSchema::Proprio(_) => vec![("obs", ArrayRef::new(&v.obs[t]))],
        }
    };
    w.reset(&observation(0), &Info::new())?;
    let action = [0i64];
    for t in 1..=steps {
        let mut values = observation(t);
        match kind {
            StatsSchema::Frames(_) => values.push(("action", ArrayRef::new(&action))),
            StatsSchema::Proprio(_) => values.push(("action", ArrayRef::new(&v.actions[t - 1]))),
        }
        let last = t == steps;
        values.extend([
            ("reward", ArrayRef::scalar(&v.rewards[t - 1])),
            ("terminated", ArrayRef::scalar(&last)),
            ("truncated", ArrayRef::scalar(&false)),
        ]);
        w.step(&values, &Info::new())?;
    }
    let stepping = start.elapsed();
    w.commit()?;
    Ok(stepping)
}

/// Recording with statistics against recording without, on the same episodes.
#[derive(Clone, Debug)]
pub struct RecordingCost {
    pub schema: String,
    pub episodes: u32,
    pub steps: u32,
    /// Best round, seconds in `reset` + `step` calls: with statistics, without.
    pub step_path_seconds: [f64; 2],
    /// Best round, seconds for the whole recording (commits included): with, without.
    pub total_seconds: [f64; 2],
    /// Index file bytes per episode: with, without.
    pub index_bytes_per_episode: [f64; 2],
}

impl RecordingCost {
    /// Step-path time with statistics over without (1.0 = free).
    pub fn step_path_ratio(&self) -> f64 {
        self.step_path_seconds[0] / self.step_path_seconds[1]
    }

    pub fn total_ratio(&self) -> f64 {
        self.total_seconds[0] / self.total_seconds[1]
    }

    pub fn ns_per_step(&self, with: bool) -> f64 {
        let i = usize::from(!with);
        self.step_path_seconds[i] * 1e9 / f64::from(self.episodes * self.steps)
    }

    pub fn line(&self) -> String {
        format!(
            "record {:<36} step path {:>7.0} ns/step with stats, {:>7.0} without: ratio {:.3}; \
             whole (commit/episode) ratio {:.3}; index +{:.0} B/episode",
            self.schema,
            self.ns_per_step(true),
            self.ns_per_step(false),
            self.step_path_ratio(),
            self.total_ratio(),
            self.index_bytes_per_episode[0] - self.index_bytes_per_episode[1]
        )
    }
}

/// Records `episodes` episodes of `steps` steps into fresh stores with and without field
/// statistics, alternating, [`ROUNDS`] rounds.
pub fn recording_cost(
    dir: &Path,
    kind: StatsSchema,
    episodes: u32,
    steps: u32,
) -> Result<RecordingCost> {
    let schema = kind.schema()?;
    let values: Vec<EpisodeValues> = (0..episodes)
        .map(|e| episode_values(kind, steps, u64::from(e)))
        .collect();
    let mut step_path = [f64::INFINITY; 2];
    let mut total = [f64::INFINITY; 2];
    let mut index_bytes = [0.0; 2];
    for round in 0..ROUNDS {
        for (side, field_stats) in [(0, true), (1, false)] {
            let path = dir.join(format!("cost-{round}-{side}"));
            let options = StoreOptions {
                field_stats,
                ..StoreOptions::default()
            };
            let store = Store::create_with(&path, options)?;
            // Registers the schema outside the timed part.
            drop(store.begin_episode(EpisodeMeta::new("bench", "StatsBench-v0"), &schema)?);
            let start = Instant::now();
            let mut stepping = Duration::ZERO;
            for v in &values {
                stepping += record_values(&store, kind, &schema, "bench", v)?;
            }
            total[side] = total[side].min(start.elapsed().as_secs_f64());
            step_path[side] = step_path[side].min(stepping.as_secs_f64());
            drop(store);
            let index = path.join(trajstore::INDEX_FILE);
            let len = std::fs::metadata(&index)
                .map_err(|e| BenchError::io(&index, e))?
                .len();
            index_bytes[side] = len as f64 / f64::from(episodes);
            std::fs::remove_dir_all(&path).map_err(|e| BenchError::io(&path, e))?;
        }
    }
    Ok(RecordingCost {
        schema: kind.name(),
        episodes,
        steps,
        step_path_seconds: step_path,
        total_seconds: total,
        index_bytes_per_episode: index_bytes,
    })
}

/// Records the combining benchmark's store: `episodes` proprioceptive episodes (obs f32[17],
/// action f32[6]) of `min_steps..=max_steps` steps, by `writers` threads, user `u<i>` each.
pub fn record_stats_store(
    path: &Path,
    episodes: u32,
    min_steps: u32,
    max_steps: u32,
    writers: u32,
) -> Result<f64> {
    let kind = StatsSchema::Proprio(17);
    let schema = kind.schema()?;
    let store = Store::create(path)?;
    let start = Instant::now();
    crate::threads::on_threads(writers as usize, |w| -> Result<()> {
        let w = w as u32;
        let user = format!("u{w}");
        let mut rng = SplitMix64::new(u64::from(w));
        for e in (w..episodes).step_by(writers as usize) {
            let steps = min_steps + rng.below(u64::from(max_steps - min_steps) + 1) as u32;
            let v = episode_values(kind, steps, u64::from(e));
            record_values(&store, kind, &schema, &user, &v)?;
        }
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// Combining statistics from the index against computing them from the values.
#[derive(Clone, Debug)]
pub struct CombineCost {
    pub what: String,
    pub episodes: u64,
    pub values: u64,
    /// Best of [`ROUNDS`]: `Snapshot::stats` from the index.
    pub index_seconds: f64,
    /// Reading every value from the segments, then computing the figures.
    pub read_and_compute_seconds: f64,
    /// Computing the figures on values already in memory.
    pub compute_seconds: f64,
}

impl CombineCost {
    pub fn line(&self) -> String {
        format!(
            "stats {:<22} {:>7} episodes {:>10} values: index {:>8.1} ms; read + compute {:>8.1} ms \
             (ratio {:.0}x); compute in memory {:>8.1} ms (ratio {:.1}x)",
            self.what,
            self.episodes,
            self.values,
            self.index_seconds * 1e3,
            self.read_and_compute_seconds * 1e3,
            self.read_and_compute_seconds / self.index_seconds,
            self.compute_seconds * 1e3,
            self.compute_seconds / self.index_seconds
        )
    }
}

/// The figures the index reports, computed directly: per element count, mean, population
/// std, min, max and the `floor(q (n - 1))` order statistics (numpy's `method="lower"`).
/// Returns a checksum of the figures so the work cannot be optimized away.
fn compute_directly(columns: &mut [Vec<f64>]) -> f64 {
    let mut check = 0.0;
    for column in columns.iter_mut() {
        let n = column.len() as f64;
        let mean = column.iter().sum::<f64>() / n;
        let var = column.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let min = column.iter().copied().fold(f64::INFINITY, f64::min);
        let max = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        column.sort_unstable_by(f64::total_cmp);
        let q: f64 = QUANTILES
            .iter()
            .map(|(_, q)| column[(q * (n - 1.0)).floor() as usize])
            .sum();
        check += mean + var.sqrt() + min + max + q;
    }
    check
}

/// Reads every value of `obs` and `action` of the selected episodes, one column per element.
fn read_columns(store: &Store, query: &Query) -> Result<Vec<Vec<f64>>> {
    let snap = store.snapshot()?;
    let mut columns: Vec<Vec<f64>> = Vec::new();
    for e in snap.episodes(query)? {
        let mut base = 0;
        for name in ["obs", "action"] {
            let field = snap.field(&e, name)?;
            let width = field.step_bytes() / 4;
            if columns.len() < base + width {
                columns.resize_with(base + width, Vec::new);
            }
            let bytes = field.to_vec()?;
            for (i, b) in bytes.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
                columns[base + i % width].push(f64::from(v));
            }
            base += width;
        }
    }
    Ok(columns)
}

/// `Snapshot::stats` of `obs` and `action` over `query`, against the same figures computed
/// from the values (read from the segments, and already in memory).
pub fn combine_cost(store_path: &Path, what: &str, query: &Query) -> Result<CombineCost> {
    let store = Store::open_read_only(store_path)?;
    let mut index = f64::INFINITY;
    let mut read = f64::INFINITY;
    let mut compute = f64::INFINITY;
    let mut episodes = 0;
    let mut values = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let stats = store.snapshot()?.stats(query, &["obs", "action"], false)?;
        index = index.min(start.elapsed().as_secs_f64());
        episodes = stats.episodes;
        if !stats.missing.is_empty() {
            return Err(BenchError::Mismatch(
                "the store has episodes without statistics: the index would not cover what is read",
            ));
        }

        let start = Instant::now();
        let mut columns = read_columns(&store, query)?;
        let reading = start.elapsed().as_secs_f64();
        values = columns.iter().map(|c| c.len() as u64).sum();
        let start = Instant::now();
        std::hint::black_box(compute_directly(&mut columns));
        let computing = start.elapsed().as_secs_f64();
        read = read.min(reading + computing);
        compute = compute.min(computing);
    }
    Ok(CombineCost {
        what: what.to_owned(),
        episodes,
        values,
        index_seconds: index,
        read_and_compute_seconds: read,
        compute_seconds: compute,
    })
}
