//! `--mode curate`: delete, restore and relabel of a tenth of a large store's episodes, each
//! one index transaction, against listing every episode from the index in the same run
//! (the cheapest thing a user does with the index; curation should cost the same order).

use std::path::Path;
use std::time::Instant;

use trajstore::{
    ArrayRef, CurateOptions, DType, EpisodeId, EpisodeMeta, Info, Query, Relabel, Restore, Schema,
    Store, Target,
};

use super::Result;

/// What was measured (seconds).
#[derive(Clone, Debug)]
pub struct CurateCost {
    pub episodes: u64,
    pub touched: u64,
    pub record_seconds: f64,
    /// Baseline: `Snapshot::episodes` of every episode (best of 3).
    pub list_seconds: f64,
    pub delete_seconds: f64,
    pub restore_seconds: f64,
    pub relabel_seconds: f64,
}

/// Records `episodes` one-step episodes (8 users, 8 recorder threads) into a new store at
/// `dir`, then times deleting, restoring and relabelling every tenth one.
pub fn curate(dir: &Path, episodes: u64) -> Result<CurateCost> {
    let schema = Schema::builder()
        .observation("obs", DType::F32, &[4], trajstore::Codec::Raw)
        .transition("action", DType::I64, &[])
        .build()?;
    let store = Store::create(dir)?;
    let writers = 8u64;
    let start = Instant::now();
    crate::threads::on_threads(writers as usize, |w| -> Result<()> {
        let w = w as u64;
        let user = format!("u{w}");
        for _ in (w..episodes).step_by(writers as usize) {
            let mut ep = store.begin_episode(EpisodeMeta::new(&user, "Bench-v0"), &schema)?;
            ep.reset(&[("obs", ArrayRef::new(&[0f32; 4]))], &Info::new())?;
            ep.step(
                &[
                    ("obs", ArrayRef::new(&[1f32; 4])),
                    ("action", ArrayRef::scalar(&1i64)),
                    ("reward", ArrayRef::scalar(&1f32)),
                    ("terminated", ArrayRef::scalar(&true)),
                    ("truncated", ArrayRef::scalar(&false)),
                ],
                &Info::new(),
            )?;
            ep.commit()?;
        }
        Ok(())
    })?;
    let record_seconds = start.elapsed().as_secs_f64();

    let mut list_seconds = f64::INFINITY;
    let mut ids: Vec<EpisodeId> = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let listed = store.snapshot()?.episodes(&Query::default())?;
        list_seconds = list_seconds.min(t.elapsed().as_secs_f64());
        ids = listed.iter().map(|e| e.id()).collect();
    }
    let touched: Vec<EpisodeId> = ids.iter().copied().step_by(10).collect();
    let opts = CurateOptions {
        dry_run: false,
        by: Some("bench".into()),
    };
    let target = Target::ids(touched.clone());
    let timed = |f: &dyn Fn() -> trajstore::Result<trajstore::Curated>| -> Result<f64> {
        let t = Instant::now();
        let done = f()?;
        assert_eq!(
            done.changed.len(),
            touched.len(),
            "every selected episode changed"
        );
        Ok(t.elapsed().as_secs_f64())
    };
    let delete_seconds = timed(&|| store.delete(&target, &opts))?;
    let restore_seconds = timed(&|| store.restore(&Restore::Ids(touched.clone()), &opts))?;
    let relabel_seconds =
        timed(&|| store.relabel(&target, &Relabel::default().add_tag("reviewed"), &opts))?;
    Ok(CurateCost {
        episodes: ids.len() as u64,
        touched: touched.len() as u64,
        record_seconds,
        list_seconds,
        delete_seconds,
        restore_seconds,
        relabel_seconds,
    })
}
