//! Parquet exports: read back equal to the store, the same bytes twice, whole or absent.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use trajstore::{Codec, Query, Store};
use trajstore_export::{ExportError, ExportRequest, ParquetWriter, Progress, export};
use trajstore_testkit::synth::{SynthConfig, record};

struct Silent;
impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

fn store(dir: &std::path::Path) -> Store {
    let store = Store::create(dir.join("store")).unwrap();
    for (user, codec) in [("alice", Codec::Raw), ("bob", Codec::Lz4)] {
        let config = SynthConfig {
            user: user.into(),
            episodes: 3,
            min_steps: 4,
            max_steps: 12,
            frame: [8, 8, 3],
            codec,
            seed: 11,
            ..SynthConfig::default()
        };
        record(&store, &config, |_| {}).unwrap();
    }
    store
}

fn request(out: std::path::PathBuf) -> ExportRequest {
    ExportRequest {
        query: Query::default(),
        fields: None,
        out,
    }
}

/// Exports `request` from `store` with `writer`, reporting no progress.
fn export_silently(
    store: &Store,
    request: &ExportRequest,
    writer: &mut ParquetWriter,
) -> trajstore_export::Result<trajstore_export::Manifest> {
    export(store, request, writer, Arc::new(Silent))
}

fn read_rows(path: &std::path::Path) -> Vec<arrow_array::RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_export_reads_back_with_every_row_of_the_selection() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut req = request(dir.path().join("out"));
    req.query = Query::default().user("bob");
    let manifest = export_silently(&store, &req, &mut ParquetWriter::default()).unwrap();
    assert_eq!(manifest.episodes, 3);
    let snap = store.snapshot().unwrap();
    let bob = snap.episodes(&Query::default().user("bob")).unwrap();
    let want_rows: u64 = bob.iter().map(|e| u64::from(e.steps()) + 1).sum();
    let batches = read_rows(&dir.path().join("out/steps/part-00000.parquet"));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, want_rows);
    let episode_ids: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("episode")
                .unwrap()
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        })
        .collect();
    let mut seen = episode_ids.clone();
    seen.dedup();
    assert_eq!(seen, bob.iter().map(|e| e.id().get()).collect::<Vec<_>>());
    // Frames of bob's (lz4) episodes come back decoded, equal to the store's.
    let first = &bob[0];
    let stored = snap.field(first, "obs/frame").unwrap().to_vec().unwrap();
    let frames = batches[0]
        .column_by_name("obs/frame")
        .unwrap()
        .as_fixed_size_binary();
    for row in 0..=first.steps() as usize {
        assert_eq!(frames.value(row), &stored[row * 192..(row + 1) * 192]);
    }
    let manifest_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest_json["episodes"], 3);
    assert_eq!(manifest_json["step_rows"], want_rows);
    assert_eq!(manifest_json["selection"]["users"][0], "bob");
    assert_eq!(
        manifest_json["store"]["cutoff"],
        snap.cutoff().unwrap().get()
    );
    assert_eq!(
        manifest_json["max_episode_id"],
        bob.last().unwrap().id().get()
    );
}

#[test]
fn two_exports_of_one_snapshot_are_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // Small thresholds, so files and row groups are cut several times.
    let mut writer = ParquetWriter {
        row_group_bytes: 500,
        file_bytes: 3_000,
        ..ParquetWriter::default()
    };
    let a = export_silently(&store, &request(dir.path().join("a")), &mut writer).unwrap();
    let b = export_silently(&store, &request(dir.path().join("b")), &mut writer).unwrap();
    assert!(a.step_files.len() > 1, "the steps table is cut into files");
    assert_eq!(a.step_files, b.step_files);
    for f in a
        .episode_files
        .iter()
        .chain(&a.step_files)
        .map(|f| f.path.clone())
        .chain(["manifest.json".into()])
    {
        let x = std::fs::read(dir.path().join("a").join(&f)).unwrap();
        let y = std::fs::read(dir.path().join("b").join(&f)).unwrap();
        assert!(x == y, "{f} differs between two exports");
    }
    let rows: u64 = a.step_files.iter().map(|f| f.rows).sum();
    assert_eq!(rows, a.transitions + a.episodes);
}

#[test]
fn an_existing_output_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"mine").unwrap();
    let err =
        export_silently(&store, &request(out.clone()), &mut ParquetWriter::default()).unwrap_err();
    assert!(matches!(err, ExportError::OutputExists { .. }), "{err}");
    assert_eq!(std::fs::read(out.join("keep")).unwrap(), b"mine");
}

#[test]
fn a_failed_export_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let out = dir.path().join("out");
    // Damage a frame chunk: the read fails partway through the steps table.
    let snap = store.snapshot().unwrap();
    let last = snap.episodes(&Query::default()).unwrap().pop().unwrap();
    let extent = snap.field(&last, "obs/frame").unwrap().extents().remove(0);
    trajstore_testkit::fixtures::flip_bit(&extent.path, extent.payload_offset + 3);
    drop(snap);
    // A fresh handle: nothing of the damaged chunk is remembered as checked.
    let store = Store::open_read_only(store.path()).unwrap();
    let err =
        export_silently(&store, &request(out.clone()), &mut ParquetWriter::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::Store(e) if e.kind() == trajstore::ErrorKind::Corruption),
        "{err}"
    );
    assert!(!out.exists(), "no output appears");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("store")],
        "no staging directory is left"
    );
}
