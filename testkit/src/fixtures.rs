//! Small episodes the tests of the library and of the CLI record and check. Helpers of
//! tests: they panic (with the failing call) instead of returning errors.

use std::path::Path;

use trajstore::{
    ArrayRef, Codec, DType, EpisodeId, EpisodeMeta, EpisodeWriter, Info, RepairReport, Schema,
    Store,
};

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
    begin_small(store, user, seed, steps, codec)
        .commit()
        .unwrap()
}

/// The episode [`record_small`] records, written but not yet committed.
pub fn begin_small(
    store: &Store,
    user: &str,
    seed: u64,
    steps: u32,
    codec: Codec,
) -> EpisodeWriter {
    let meta = EpisodeMeta::new(user, "Test-v0").seed(seed);
    write_small(store, meta, codec, seed, steps, |t| {
        (i64::from(t), 1.0, t == steps)
    })
}

/// Writes `steps` transitions of a [`small_schema`] episode (frames seeded `seed`, action 0,
/// reward 0, never terminated) and abandons it uncommitted: a recorder that died before
/// commit. Its chunks stay in the segment when the store spills them.
pub fn abandon_small(store: &Store, user: &str, seed: u64, steps: u32, codec: Codec) {
    let meta = EpisodeMeta::new(user, "Test-v0");
    let w = write_small(store, meta, codec, seed, steps, |_| (0, 0.0, false));
    drop(w);
}

/// Begins a [`small_schema`] episode and writes its reset and `steps` transitions, with the
/// frames of `seed`; `transition(t)` gives step `t`'s action, reward and `terminated`.
fn write_small(
    store: &Store,
    meta: EpisodeMeta,
    codec: Codec,
    seed: u64,
    steps: u32,
    transition: impl Fn(u32) -> (i64, f32, bool),
) -> EpisodeWriter {
    let mut w = store.begin_episode(meta, &small_schema(codec)).unwrap();
    w.reset(
        &[("obs/frame", ArrayRef::new(&small_frame(seed, 0)))],
        &Info::new(),
    )
    .unwrap();
    for t in 1..=steps {
        let (action, reward, terminated) = transition(t);
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&small_frame(seed, t))),
                ("action", ArrayRef::scalar(&action)),
                ("reward", ArrayRef::scalar(&reward)),
                ("terminated", ArrayRef::scalar(&terminated)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )
        .unwrap();
    }
    w
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

/// Copies the checked-in format-1 store (tests/fixtures/v1-store) to `to`: the fixture itself
/// is never opened in place.
pub fn copy_v1_fixture(to: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v1-store");
    std::fs::create_dir_all(to.join("segments")).unwrap();
    std::fs::copy(fixture.join("index.redb"), to.join("index.redb")).unwrap();
    for entry in std::fs::read_dir(fixture.join("segments")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("segments").join(entry.file_name())).unwrap();
    }
}

/// Stamps the index of the store at `dir` with `format_version`, as a later build that wrote
/// a newer format would.
pub fn set_format_version(dir: &Path, format_version: u64) {
    let db = redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .open(dir.join(trajstore::INDEX_FILE))
        .unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap()
        .insert("format_version", format_version)
        .unwrap();
    txn.commit().unwrap();
}

/// Deletes the index of the store at `dir` and rebuilds it from the segments with `repair`.
pub fn rebuild_index(dir: &Path) -> RepairReport {
    std::fs::remove_file(dir.join(trajstore::INDEX_FILE)).unwrap();
    trajstore::repair(dir).unwrap()
}
