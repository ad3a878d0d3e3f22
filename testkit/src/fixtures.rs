//! Small episodes the tests of the library and of the CLI record and check. Helpers of
//! tests: they panic (with the failing call) instead of returning errors.

use std::path::Path;

use trajstore::{ArrayRef, Codec, DType, EpisodeId, EpisodeMeta, Info, Schema, Store};

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

/// The segment file holding an episode's `obs/frame`, and the offset of its first chunk's
/// record (its 64-byte header, schema/format.md, then the payload) in it.
pub fn frame_record(dir: &Path, id: EpisodeId) -> (std::path::PathBuf, u64) {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let field = snap.field(&snap.episode(id).unwrap(), "obs/frame").unwrap();
    let extent = field.extents().remove(0);
    (extent.path, extent.payload_offset - 64)
}
