//! What a batch asks for ([`FieldRequest`]) and what it holds ([`Batch`]): per-field
//! contiguous byte buffers, reused from one batch to the next.
//!
//! # What a step is
//!
//! An episode of `T` transitions has `T + 1` observations. Step `t` (for `t` in `0..T`) is
//! `(obs[t], action[t], reward[t], terminated[t], truncated[t])`, and `next_obs` is
//! `obs[t + 1]`: the usual tuple of imitation learning and offline RL. A field is read at
//! value index `t + offset`, so [`FieldRequest::next`] (offset `+1`) gives `next_obs`, and
//! offsets `[-3, -2, -1, 0]` stack the last four frames.
//!
//! # Edges
//!
//! A value index outside the field (`t + offset < 0`, or past the last value) has no
//! recorded value. [`Edge::Clamp`] serves the nearest recorded value instead (the first
//! frame repeated at an episode start, as Gymnasium's `FrameStack` does after a reset);
//! [`Edge::Zero`] serves zeros. Either way [`Column::valid`] is 0 for it, so a model can
//! mask it. Padding rows of padded windows are always zeros with `valid = 0` and
//! [`Batch::mask`] = 0.

use crate::dtype::DType;

/// One field of a batch, read at one or more offsets from each row's step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequest {
    /// The schema field name, e.g. `obs/frame`.
    pub field: String,
    /// The column's name in the batch (the field name unless renamed, `next/<field>` for
    /// [`FieldRequest::next`]).
    pub key: String,
    /// Offsets from the row's step. More than one adds a stacking axis to the column.
    pub offsets: Vec<i64>,
}

impl FieldRequest {
    /// The field at the row's step (offset 0).
    pub fn new(field: &str) -> Self {
        FieldRequest {
            field: field.to_owned(),
            key: field.to_owned(),
            offsets: vec![0],
        }
    }

    /// The observation after the step (`obs[t + 1]`), under the key `next/<field>`.
    pub fn next(field: &str) -> Self {
        FieldRequest {
            field: field.to_owned(),
            key: format!("next/{field}"),
            offsets: vec![1],
        }
    }

    /// Frame stacking: the field at each of `offsets` (e.g. `[-3, -2, -1, 0]`).
    pub fn offsets(mut self, offsets: &[i64]) -> Self {
        self.offsets = offsets.to_vec();
        self
    }

    /// Renames the column.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }
}

/// What to serve for a value index outside its episode; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Edge {
    /// The nearest recorded value of the same episode.
    #[default]
    Clamp,
    /// Zeros.
    Zero,
}

/// One field's values for every row of a batch.
#[derive(Clone, Debug)]
pub struct Column {
    pub key: String,
    pub field: String,
    pub dtype: DType,
    /// `[units, (window length,) (offsets,) ...field shape]`: the window axis only for
    /// windows, the offsets axis only when more than one offset was asked for.
    pub shape: Vec<usize>,
    /// The values, C order, little-endian. Reused (never shrunk) across batches.
    pub data: Vec<u8>,
    /// One byte per row and offset: 1 where the value is the one recorded at that step, 0
    /// where it was clamped, zeroed or is padding.
    pub valid: Vec<u8>,
}

/// A batch: `units` steps or windows, each of `rows_per_unit` rows (1 for steps), with one
/// [`Column`] per requested field. Keep one and pass it to every
/// [`Sampler::next_into`](super::Sampler::next_into): its buffers are reused, so steady-state
/// batching allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub units: usize,
    pub rows_per_unit: usize,
    /// Episode of every row: its id, or over several stores its key (`partition.md` §7).
    pub episode: Vec<u64>,
    /// Step `t` of every row (for padding rows, the step the row would have had).
    pub step: Vec<u32>,
    /// 1 for a real step, 0 for a padding row past the end of an episode.
    pub mask: Vec<u8>,
    pub columns: Vec<Column>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// Rows in the batch: `units * rows_per_unit`.
    pub fn rows(&self) -> usize {
        self.units * self.rows_per_unit
    }

    /// A column by key.
    pub fn column(&self, key: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.key == key)
    }
}
