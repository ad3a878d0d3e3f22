//! Benchmarks shared by `benches/` and `trajstore bench`. Every figure is a ratio against a
//! baseline measured in the same run on the same bytes, because shared machines are noisy.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::schema::Codec;
use crate::snapshot::Query;
use crate::store::Store;
use crate::synth::{FrameGen, synth_schema};
use crate::value::{ArrayRef, Info};
use crate::writer::EpisodeMeta;

/// A measurement and its baseline. `ratio` > 1 means trajstore was faster than the baseline.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub name: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    pub baseline: &'static str,
    pub baseline_seconds: f64,
}

impl Measurement {
    /// Baseline time over trajstore time: the fraction of the baseline's throughput reached.
    pub fn ratio(&self) -> f64 {
        self.baseline_seconds / self.seconds
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }

    pub fn baseline_mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.baseline_seconds / 1e6
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{:<28} {:>9.1} MB/s   {:<34} {:>9.1} MB/s   ratio {:.2}",
            self.name,
            self.mb_per_s(),
            self.baseline,
            self.baseline_mb_per_s(),
            self.ratio()
        )
    }
}

/// Shape of a recording benchmark.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub episodes: u32,
    pub steps: u32,
    pub frame: [u32; 3],
    pub codec: Codec,
}

/// Records `spec` into a fresh store at `dir` (durable commit per episode) and writes the same
/// frame bytes to a plain file with one fsync per episode. Returns the store measurement.
pub fn record(dir: &Path, spec: &RecordSpec) -> Result<Measurement> {
    let schema = synth_schema(spec.frame, spec.codec)?;
    let frames = pregenerated_frames(spec.frame, 32);
    let frame_bytes = frames[0].len();
    let bytes = u64::from(spec.episodes) * u64::from(spec.steps + 1) * frame_bytes as u64;

    let store = Store::create(dir.join("store"))?;
    let health = [100i32, 100];
    let start = Instant::now();
    for e in 0..spec.episodes {
        let mut w = store.begin_episode(EpisodeMeta::new("bench", "Synth-v0"), &schema)?;
        let frame = |t: u32| ArrayRef::new(&frames[(t as usize + e as usize) % frames.len()]);
        w.reset(
            &[
                ("obs/frame", frame(0)),
                ("obs/ram/health", ArrayRef::new(&health)),
            ],
            &Info::new(),
        )?;
        for t in 1..=spec.steps {
            let last = t == spec.steps;
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
        w.commit()?;
    }
    let seconds = start.elapsed().as_secs_f64();

    let plain = dir.join("plain.bin");
    let baseline_seconds = plain_write(&plain, &frames, spec)?;
    std::fs::remove_file(&plain).map_err(|e| Error::io(&plain, e))?;
    Ok(Measurement {
        name: match spec.codec {
            Codec::Raw => "record raw (commit/episode)",
            Codec::Lz4 => "record lz4 (commit/episode)",
        },
        bytes,
        seconds,
        baseline: "plain write + fsync/episode",
        baseline_seconds,
    })
}

fn plain_write(path: &Path, frames: &[Vec<u8>], spec: &RecordSpec) -> Result<f64> {
    let io = |e| Error::io(path, e);
    let mut file = File::create(path).map_err(io)?;
    let start = Instant::now();
    for e in 0..spec.episodes {
        // The same bytes, buffered per episode as a recorder must, then one sequential write.
        let mut episode = Vec::with_capacity(frames[0].len() * (spec.steps as usize + 1));
        for t in 0..=spec.steps {
            episode.extend_from_slice(&frames[(t as usize + e as usize) % frames.len()]);
        }
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

/// Touches every byte (sums 8-byte words): a read that runs at memory bandwidth.
pub fn touch(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail: u64 = words.remainder().iter().map(|&b| u64::from(b)).sum();
    words.fold(tail, |acc, w| {
        acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")))
    })
}

/// Reads every value of `field` of every episode of the store at `dir` through trajstore (raw
/// fields as map slices, lz4 decoded into one reused buffer), against the same bytes copied
/// into one plain file and read through a plain memory map. Both are read once to warm the
/// page cache, then timed.
pub fn scan(dir: &Path, field: &str) -> Result<Measurement> {
    let store = Store::open_read_only(dir)?;
    let snapshot = store.snapshot()?;
    let episodes = snapshot.episodes(&Query::default())?;
    let fields = episodes
        .iter()
        .map(|e| snapshot.field(e, field))
        .collect::<Result<Vec<_>>>()?;
    let codec = fields.first().map_or(Codec::Raw, |f| f.spec().codec);

    let mut buffer = Vec::new();
    let mut pass = || -> Result<(u64, u64)> {
        let (mut sum, mut bytes) = (0u64, 0u64);
        for f in &fields {
            match f.contiguous() {
                Some(b) => {
                    sum = sum.wrapping_add(touch(&b));
                    bytes += b.len() as u64;
                }
                None => {
                    buffer.resize(f.len() * f.step_bytes(), 0);
                    f.read_into(0..f.len(), &mut buffer)?;
                    sum = sum.wrapping_add(touch(&buffer));
                    bytes += buffer.len() as u64;
                }
            }
        }
        Ok((sum, bytes))
    };
    let (expected, bytes) = pass()?;
    let start = Instant::now();
    black_box(pass()?);
    let seconds = start.elapsed().as_secs_f64();

    let plain = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    {
        let mut w = std::io::BufWriter::new(plain.as_file());
        for f in &fields {
            w.write_all(&f.to_vec()?)
                .map_err(|e| Error::io(plain.path(), e))?;
        }
        w.flush().map_err(|e| Error::io(plain.path(), e))?;
    }
    // SAFETY: a private temporary file nobody else writes or truncates while mapped.
    let map =
        unsafe { memmap2::Mmap::map(plain.as_file()) }.map_err(|e| Error::io(plain.path(), e))?;
    assert_eq!(touch(&map), expected, "the baseline reads the same bytes");
    let start = Instant::now();
    black_box(touch(&map));
    let baseline_seconds = start.elapsed().as_secs_f64();
    Ok(Measurement {
        name: match codec {
            Codec::Raw => "scan raw (map slices)",
            Codec::Lz4 => "scan lz4 (decode to buffer)",
        },
        bytes,
        seconds,
        baseline: "plain mmap read of the same bytes",
        baseline_seconds,
    })
}
