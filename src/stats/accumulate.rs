//! Gathering statistics from field values as they are recorded (or read back, for episodes
//! recorded without them).
//!
//! The per-step cost is a copy of the step's bytes into a small staging buffer; every
//! [`STAGE_STEPS`] steps the buffer is converted to `f64` in one pass (one dtype dispatch for
//! all of them, not one per step) and folded per element with a two-pass mean and `M2` (no
//! division per value, and more accurate than a running update), then merged into the
//! episode's running figures with Chan's formula.

use super::sketch::KeyMapping;
use super::{ElementStats, has_stats};
use crate::dtype::DType;
use crate::schema::FieldSpec;
use crate::stats::record::{ElementStatsV1, EpisodeStatsV1, FieldStatsV1};
use crate::value::ArrayRef;

/// Steps staged before a fold (64 elements x 128 steps x 8 bytes = 64 KiB at most, and as
/// much again for their `f64` values).
const STAGE_STEPS: usize = 128;

/// One field's running statistics.
pub(crate) struct FieldAccumulator {
    /// Position in the schema.
    field: u32,
    dtype: DType,
    elements: usize,
    /// Raw little-endian bytes of the steps not folded yet.
    staged: Vec<u8>,
    /// `staged` as `f64`, converted at a fold (kept to reuse its memory).
    values: Vec<f64>,
    stats: Vec<ElementStats>,
    mapping: KeyMapping,
}

impl FieldAccumulator {
    pub fn new(field: u32, dtype: DType, elements: usize) -> Self {
        FieldAccumulator {
            field,
            dtype,
            elements,
            staged: Vec::with_capacity(STAGE_STEPS * elements * dtype.size()),
            values: Vec::new(),
            stats: vec![ElementStats::default(); elements],
            mapping: KeyMapping::default(),
        }
    }

    /// Adds the values of whole steps (`bytes` holds a multiple of one step's bytes, little
    /// endian, of this field's dtype).
    #[inline]
    pub fn push(&mut self, mut bytes: &[u8]) {
        let stage_bytes = STAGE_STEPS * self.elements * self.dtype.size();
        while !bytes.is_empty() {
            // Folds fall every STAGE_STEPS steps however the values come (one step per call
            // while recording, whole chunks when read back), so both give the same figures.
            let room = stage_bytes - self.staged.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.staged.extend_from_slice(now);
            if self.staged.len() == stage_bytes {
                self.fold();
            }
            bytes = rest;
        }
    }

    /// Folds the staged values into the running figures.
    fn fold(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        self.values.clear();
        stage(self.dtype, &self.staged, &mut self.values);
        self.staged.clear();
        let floats = matches!(self.dtype, DType::F16 | DType::F32 | DType::F64);
        for (e, stats) in self.stats.iter_mut().enumerate() {
            let column = self.values[e..].iter().step_by(self.elements);
            let (mut n, mut sum, mut min, mut max) =
                (0u64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
            let mut non_finite = 0u64;
            // Runs of equal values go to the sketch at once: recorded fields repeat a lot
            // (flags, constant rewards, held actions), and a key costs a logarithm.
            let mut run = (0.0f64, 0u64);
            for &x in column.clone() {
                if floats && !x.is_finite() {
                    non_finite += 1;
                    continue;
                }
                n += 1;
                sum += x;
                min = min.min(x);
                max = max.max(x);
                if x == run.0 && run.1 > 0 {
                    run.1 += 1;
                } else {
                    if run.1 > 0 {
                        stats.sketch.add(&self.mapping, run.0, run.1);
                    }
                    run = (x, 1);
                }
            }
            if run.1 > 0 {
                stats.sketch.add(&self.mapping, run.0, run.1);
            }
            stats.non_finite += non_finite;
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            let m2: f64 = column
                .filter(|x| x.is_finite())
                .map(|&x| (x - mean) * (x - mean))
                .sum();
            stats.merge_moments(n, mean, m2, min, max);
        }
    }

    pub fn finish(mut self) -> (u32, Vec<ElementStats>) {
        self.fold();
        (self.field, self.stats)
    }
}

/// Appends the elements of `bytes` (whole elements of `dtype`, little endian), as `f64`, to
/// `out`.
fn stage(dtype: DType, bytes: &[u8], out: &mut Vec<f64>) {
    macro_rules! le {
        ($t:ty, $n:literal) => {
            out.extend(
                bytes
                    .chunks_exact($n)
                    .map(|b| <$t>::from_le_bytes(b.try_into().expect("exact chunk")) as f64),
            )
        };
    }
    match dtype {
        DType::Bool => out.extend(bytes.iter().map(|&b| f64::from(u8::from(b != 0)))),
        DType::U8 => out.extend(bytes.iter().map(|&b| f64::from(b))),
        DType::I8 => out.extend(bytes.iter().map(|&b| f64::from(b as i8))),
        DType::U16 => le!(u16, 2),
        DType::I16 => le!(i16, 2),
        DType::U32 => le!(u32, 4),
        DType::I32 => le!(i32, 4),
        DType::U64 => le!(u64, 8),
        DType::I64 => le!(i64, 8),
        DType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f64::from(half::f16::from_le_bytes(b.try_into().expect("exact chunk")))),
        ),
        DType::F32 => le!(f32, 4),
        DType::F64 => le!(f64, 8),
    }
}

/// The statistics of one episode being recorded: one accumulator per field that gets them.
#[derive(Default)]
pub(crate) struct EpisodeStatsBuilder {
    /// Accumulators, with the schema position of their field.
    fields: Vec<(usize, FieldAccumulator)>,
}

impl EpisodeStatsBuilder {
    pub fn new(fields: &[FieldSpec]) -> Self {
        let fields = fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let elements = f.shape.iter().map(|&d| d as usize).product();
                has_stats(elements).then(|| (i, FieldAccumulator::new(i as u32, f.dtype, elements)))
            })
            .collect();
        EpisodeStatsBuilder { fields }
    }

    /// Adds one step's values: `value(i)` is the value of the field at schema position `i`,
    /// `None` when absent at this step.
    #[inline]
    pub fn push<'v>(&mut self, value: impl Fn(usize) -> Option<ArrayRef<'v>>) {
        for (i, acc) in &mut self.fields {
            if let Some(value) = value(*i) {
                acc.push(value.bytes);
            }
        }
    }

    /// Adds the values of whole steps of the field at schema position `field`.
    pub fn push_field(&mut self, field: usize, bytes: &[u8]) {
        if let Some((_, acc)) = self.fields.iter_mut().find(|(i, _)| *i == field) {
            acc.push(bytes);
        }
    }

    /// Schema positions of the fields that get statistics.
    pub fn field_positions(&self) -> Vec<usize> {
        self.fields.iter().map(|(i, _)| *i).collect()
    }

    /// The figures per field, in memory (for combining without an encode/decode round trip).
    pub fn finish(self) -> Vec<(u32, Vec<ElementStats>)> {
        self.fields
            .into_iter()
            .map(|(_, acc)| acc.finish())
            .collect()
    }

    /// The record stored in `episode_stats`.
    pub fn finish_record(self) -> EpisodeStatsV1 {
        EpisodeStatsV1 {
            fields: self
                .finish()
                .into_iter()
                .map(|(field, elements)| FieldStatsV1 {
                    field,
                    elements: elements.iter().map(ElementStatsV1::from_stats).collect(),
                })
                .collect(),
        }
    }
}
