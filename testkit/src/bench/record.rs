//! Recording into a fresh store against a plain sequential write + fsync per episode.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use trajstore::{ArrayRef, Codec, EpisodeMeta, EpisodeWriter, Info, Schema, Store};

use super::{BenchError, Measurement, Result};
use crate::synth::{FrameGen, SYNTH_ENV, synth_schema};

/// Shape of a recording benchmark.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub episodes: u32,
    pub steps: u32,
    pub frame: [u32; 3],
    pub codec: Codec,
}

/// How a recording benchmark commits each episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// [`EpisodeWriter::commit`]: the recorder waits until each episode is durable.
    Wait,
    /// [`EpisodeWriter::commit_in_background`]: the recorder goes on with its next episode
    /// while the last ones commit; the clock stops once every commit has returned.
    Background,
}

/// Records `spec` into a fresh store under `dir` (durable commit per episode, committed as
/// `commit` says) and writes the same raw bytes to a plain file with one fdatasync per
/// episode, alternating the two [`ROUNDS`](super::ROUNDS) times (both see the same machine
/// noise; the best of each counts). Returns the store measurement.
pub fn record(dir: &Path, spec: &RecordSpec, commit: Commit) -> Result<Measurement> {
    let schema = synth_schema(spec.frame, spec.codec)?;
    let frames = pregenerated_frames(spec.frame, 32);
    let bytes = u64::from(spec.episodes) * episode_raw_bytes(frames[0].len(), spec.steps) as u64;

    let (mut seconds, mut baseline_seconds) = (f64::MAX, f64::MAX);
    for round in 0..super::ROUNDS {
        // The last round's store is kept at `dir/store` (the `all` mode scans it).
        let last = round + 1 == super::ROUNDS;
        let store_dir = if last {
            dir.join("store")
        } else {
            dir.join(format!("store-{round}"))
        };
        let store = Store::create(&store_dir)?;
        let start = Instant::now();
        let mut pending = Vec::new();
        for e in 0..spec.episodes {
            match commit {
                Commit::Wait => {
                    record_episode(&store, &schema, &frames, spec, "bench", e)?;
                }
                Commit::Background => {
                    let mut w = begin(&store, &schema, "bench")?;
                    write_synth_steps(&mut w, &frames, e as usize, spec.steps)?;
                    pending.push(w.commit_in_background()?);
                }
            }
        }
        for p in pending {
            p.wait()?;
        }
        seconds = seconds.min(start.elapsed().as_secs_f64());
        drop(store);
        if !last {
            std::fs::remove_dir_all(&store_dir).map_err(|e| BenchError::io(&store_dir, e))?;
        }

        let plain = dir.join("plain.bin");
        baseline_seconds = baseline_seconds.min(plain_write(&plain, &frames, spec)?);
        std::fs::remove_file(&plain).map_err(|e| BenchError::io(&plain, e))?;
    }
    Ok(Measurement {
        name: match spec.codec {
            Codec::Raw => "record raw (commit/episode)",
            Codec::Lz4 => "record lz4 (commit/episode)",
        },
        bytes,
        seconds,
        baseline: "plain write + fdatasync/episode",
        baseline_seconds,
    })
}

/// Raw bytes of one synthetic episode of `steps` transitions: `steps + 1` frames and health
/// values, `steps` actions (i64), rewards (f32) and the two flags.
pub fn episode_raw_bytes(frame_bytes: usize, steps: u32) -> usize {
    let t = steps as usize;
    (t + 1) * (frame_bytes + 8) + t * (8 + 4 + 1 + 1)
}

/// Records episode `e` of `spec` from pregenerated frames; returns how long `commit` took.
fn record_episode(
    store: &Store,
    schema: &Schema,
    frames: &[Vec<u8>],
    spec: &RecordSpec,
    user: &str,
    e: u32,
) -> Result<Duration> {
    let mut w = begin(store, schema, user)?;
    write_synth_steps(&mut w, frames, e as usize, spec.steps)?;
    let start = Instant::now();
    w.commit()?;
    Ok(start.elapsed())
}

fn begin(store: &Store, schema: &Schema, user: &str) -> trajstore::Result<EpisodeWriter> {
    store.begin_episode(EpisodeMeta::new(user, SYNTH_ENV), schema)
}

/// Writes the reset and `steps` transitions of a [`synth_schema`] episode into `w` from
/// pregenerated `frames` (step `t`'s frame is `frames[(t + first) % frames.len()]`): full
/// health, action and reward 0, terminated on the last step.
pub(super) fn write_synth_steps(
    w: &mut EpisodeWriter,
    frames: &[Vec<u8>],
    first: usize,
    steps: u32,
) -> trajstore::Result<()> {
    let health = [100i32, 100];
    let frame = |t: u32| ArrayRef::new(&frames[(t as usize + first) % frames.len()]);
    w.reset(
        &[
            ("obs/frame", frame(0)),
            ("obs/ram/health", ArrayRef::new(&health)),
        ],
        &Info::new(),
    )?;
    for t in 1..=steps {
        let last = t == steps;
        w.step(
            &[
                ("obs/frame", frame(t)),
                ("obs/ram/health", ArrayRef::new(&health)),
                ("action", ArrayRef::scalar(&0i64)),
                ("reward", ArrayRef::scalar(&0.0f32)),
                ("terminated", ArrayRef::scalar(&last)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )?;
    }
    Ok(())
}

pub(super) fn plain_write(path: &Path, frames: &[Vec<u8>], spec: &RecordSpec) -> Result<f64> {
    let io = |e| BenchError::io(path, e);
    let mut file = File::create(path).map_err(io)?;
    let frame_bytes = frames[0].len();
    let episode_bytes = episode_raw_bytes(frame_bytes, spec.steps);
    let start = Instant::now();
    for e in 0..spec.episodes {
        // The same bytes, buffered per episode as a recorder must, then one sequential write:
        // the frames, then the small fields' bytes (their values do not matter to the disk).
        let mut episode = Vec::with_capacity(episode_bytes);
        for t in 0..=spec.steps {
            episode.extend_from_slice(&frames[(t as usize + e as usize) % frames.len()]);
        }
        episode.resize(episode_bytes, 0);
        file.write_all(&episode).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Frames rendered once, so benchmarks measure storage, not rendering.
pub fn pregenerated_frames(frame: [u32; 3], n: usize) -> Vec<Vec<u8>> {
    let mut renderer = FrameGen::new(frame, 7);
    (0..n)
        .map(|t| {
            let mut f = vec![0u8; renderer.frame_bytes()];
            renderer.render(t as u32, &mut f);
            f
        })
        .collect()
}

/// The body of one recorder: `spec.episodes` episodes as `user`, committed as `commit` says.
/// `ready` is called once the schema is registered and frames are rendered; recording starts
/// when it returns. Returns each commit's latency in microseconds: for a background commit,
/// from the hand-off until the recorder saw it finished (it looks after each episode it
/// records, so the figure is high by at most one episode's recording).
pub fn recorder(
    store: &Store,
    spec: &RecordSpec,
    user: &str,
    commit: Commit,
    ready: impl FnOnce() -> std::io::Result<()>,
) -> Result<Vec<u64>> {
    let schema = synth_schema(spec.frame, spec.codec)?;
    let frames = pregenerated_frames(spec.frame, 32);
    // Registers the schema (one index transaction) outside the timed part.
    drop(store.begin_episode(EpisodeMeta::new(user, SYNTH_ENV), &schema)?);
    ready().map_err(|e| BenchError::io("(start signal)", e))?;
    let micros = |d: Duration| d.as_micros() as u64;
    let mut commit_us = Vec::with_capacity(spec.episodes as usize);
    let mut in_flight = std::collections::VecDeque::new();
    for e in 0..spec.episodes {
        match commit {
            Commit::Wait => {
                let took = record_episode(store, &schema, &frames, spec, user, e)?;
                commit_us.push(micros(took));
            }
            Commit::Background => {
                let mut w = begin(store, &schema, user)?;
                write_synth_steps(&mut w, &frames, e as usize, spec.steps)?;
                in_flight.push_back((Instant::now(), w.commit_in_background()?));
                while let Some((_, p)) = in_flight.front() {
                    if !p.is_finished() {
                        break;
                    }
                    let (since, p) = in_flight.pop_front().expect("front exists");
                    p.wait()?;
                    commit_us.push(micros(since.elapsed()));
                }
            }
        }
    }
    for (since, p) in in_flight {
        p.wait()?;
        commit_us.push(micros(since.elapsed()));
    }
    Ok(commit_us)
}
