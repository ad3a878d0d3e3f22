//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod sim_io;

use std::path::Path;
use std::process::{Command, Output};

use trajstore::{ArrayRef, Codec, DType, EpisodeId, EpisodeMeta, Info, Schema, Store};

/// The `trajstore` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trajstore"))
}

/// Runs the CLI, returning its output (not asserting success).
pub fn cli(args: &[&str]) -> Output {
    bin().args(args).output().expect("run trajstore")
}

/// Runs the CLI and asserts it succeeded; returns stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "trajstore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// A small schema: an 8x8x3 u8 frame (codec chosen), an i64 action.
pub fn small_schema(codec: Codec) -> Schema {
    Schema::builder()
        .observation("obs/frame", DType::U8, &[8, 8, 3], codec)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap()
}

/// The frame of step `t` of an episode seeded `seed`.
pub fn small_frame(seed: u64, t: u32) -> Vec<u8> {
    (0..192u32)
        .map(|i| (seed as u32).wrapping_mul(31).wrapping_add(t * 7 + i / 8) as u8)
        .collect()
}

/// Records one episode of `steps` transitions into `store` with [`small_schema`].
pub fn record_small(store: &Store, user: &str, seed: u64, steps: u32, codec: Codec) -> EpisodeId {
    let schema = small_schema(codec);
    let mut w = store
        .begin_episode(EpisodeMeta::new(user, "Test-v0").seed(seed), &schema)
        .unwrap();
    w.reset(
        &[("obs/frame", ArrayRef::new(&small_frame(seed, 0)))],
        &Info::new(),
    )
    .unwrap();
    for t in 1..=steps {
        let last = t == steps;
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&small_frame(seed, t))),
                ("action", ArrayRef::scalar(&i64::from(t))),
                ("reward", ArrayRef::scalar(&1.0f32)),
                ("terminated", ArrayRef::scalar(&last)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )
        .unwrap();
    }
    w.commit().unwrap()
}

/// The segment file holding an episode's frames, and the offset of the frames' record (its
/// 64-byte header, schema/format.md, then the payload) in it.
pub fn frame_record(store_dir: &Path, id: EpisodeId) -> (std::path::PathBuf, u64) {
    let store = Store::open_read_only(store_dir).unwrap();
    let snap = store.snapshot().unwrap();
    let field = snap.field(&snap.episode(id).unwrap(), "obs/frame").unwrap();
    let extent = field.extents().remove(0);
    (extent.path, extent.payload_offset - 64)
}

/// Reads back an episode recorded by [`record_small`] and checks every value.
pub fn check_small(store_dir: &Path, id: EpisodeId, seed: u64, steps: u32) {
    let store = Store::open_read_only(store_dir).unwrap();
    let snap = store.snapshot().unwrap();
    let e = snap.episode(id).unwrap();
    assert_eq!(e.steps(), steps);
    let frames = snap.field(&e, "obs/frame").unwrap().to_vec().unwrap();
    let want: Vec<u8> = (0..=steps).flat_map(|t| small_frame(seed, t)).collect();
    assert_eq!(frames, want, "frames of episode {id}");
}

/// Flips one bit (0x40) of the byte at `at` in the file at `path`, in place.
pub fn flip_bit(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}
