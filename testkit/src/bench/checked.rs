//! Checked reads (issue 8) against `verify_reads: false` on the same bytes.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use trajstore::loader::{Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection};
use trajstore::{Field, Query, Store, StoreOptions};

use super::read::scan_fields;
use super::{BenchError, Measurement, Result};

/// Rounds of [`checked`]: more than [`ROUNDS`], its passes are short.
const CHECKED_ROUNDS: usize = 5;

/// Checked reads against unchecked ones (`verify_reads: false`), on the same bytes with a
/// warm page cache, in four measurements:
///
/// - a full scan of `field` (as [`scan`]) on a fresh store handle, so every chunk's checksum
///   is verified on its first read ("first scan");
/// - the same scan again on new fields of that handle, the checks already remembered
///   ("later epochs");
/// - one epoch of the loader's shuffled batches of 256 steps on a fresh handle, and a second
///   epoch on a new loader of the same handle.
///
/// Each is timed in alternating rounds against the same read with `verify_reads: false`; the
/// best round of each counts.
pub fn checked(dir: &Path, field: &str) -> Result<Vec<Measurement>> {
    let open = |verify_reads: bool| {
        Store::open_read_only_with(
            dir,
            StoreOptions {
                verify_reads,
                ..StoreOptions::default()
            },
        )
    };
    let fields_of = |store: &Store| -> Result<Vec<Field>> {
        let snapshot = store.snapshot()?;
        snapshot
            .episodes(&Query::default())?
            .iter()
            .map(|e| Ok(snapshot.field(e, field)?))
            .collect()
    };
    let mut buffer = Vec::new();
    let mut scan_pass =
        |fields: &[Field]| -> Result<(f64, u64, u64)> { scan_fields(fields.iter(), &mut buffer) };
    let mut batch = Batch::new();
    let mut epoch_pass = |store: &Store| -> Result<(f64, u64, u64)> {
        let loader = Loader::new(store, &Selection::new(Query::default(), 1, 0, 0))?;
        let spec = SamplerSpec::steps(vec![FieldRequest::new(field)], 256, Order::Shuffle);
        let mut sampler = Sampler::new(&loader, spec)?;
        let (mut sum, mut bytes) = (0u64, 0u64);
        let start = Instant::now();
        while sampler.next_into(&mut batch)? {
            bytes += batch.columns[0].data.len() as u64;
            sum = sum.wrapping_add(black_box(batch.columns[0].data[0]) as u64);
        }
        Ok((start.elapsed().as_secs_f64(), sum, bytes))
    };

    // Warm the page cache (and learn the expected bytes) without checks.
    let (_, expected, bytes) = scan_pass(&fields_of(&open(false)?)?)?;
    let (_, epoch_sum, epoch_bytes) = epoch_pass(&open(false)?)?;
    let mismatch = || BenchError::Mismatch("checked and unchecked reads saw different bytes");
    // best[verify_reads][first scan, later scan, first epoch, later epoch]. Each round opens
    // fresh handles on both sides, so both map the segments anew (same page-table work) and
    // the checked side starts with no chunk verified.
    let mut best = [[f64::MAX; 4]; 2];
    for _ in 0..CHECKED_ROUNDS {
        for verify_reads in [false, true] {
            let b = &mut best[usize::from(verify_reads)];
            let store = open(verify_reads)?;
            for slot in &mut b[0..2] {
                let (t, sum, _) = scan_pass(&fields_of(&store)?)?;
                if sum != expected {
                    return Err(mismatch());
                }
                *slot = slot.min(t);
            }
            let store = open(verify_reads)?;
            for slot in &mut b[2..4] {
                let (t, sum, _) = epoch_pass(&store)?;
                if sum != epoch_sum {
                    return Err(mismatch());
                }
                *slot = slot.min(t);
            }
        }
    }
    let [plain, best] = best;
    let m = |name, bytes, seconds, baseline, baseline_seconds| Measurement {
        name,
        bytes,
        seconds,
        baseline,
        baseline_seconds,
    };
    Ok(vec![
        m(
            "1st scan, checked",
            bytes,
            best[0],
            "1st scan, unchecked",
            plain[0],
        ),
        m(
            "2nd scan, checks remembered",
            bytes,
            best[1],
            "2nd scan, unchecked",
            plain[1],
        ),
        m(
            "1st epoch (batches of 256), checked",
            epoch_bytes,
            best[2],
            "1st epoch, unchecked",
            plain[2],
        ),
        m(
            "2nd epoch, checks remembered",
            epoch_bytes,
            best[3],
            "2nd epoch, unchecked",
            plain[3],
        ),
    ])
}
