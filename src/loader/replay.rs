//! A replay env: recorded episodes served through the Gymnasium `reset`/`step` interface,
//! for imitation learning. It replaces DIAMBRA Arena's `ImitationLearning` env and fixes its
//! faults (see `schema/replay.md`):
//!
//! * the episodes are this rank's (and worker's) share of a deterministic, step-balanced,
//!   seeded partition ([`Loader`]), not every K-th file of a directory listing;
//! * the end of the data is explicit: [`ReplayEnv::reset`] fails with [`ReadError::EndOfData`]
//!   (or, with cycling, starts the next epoch in a new order); never a blank observation or a
//!   stale replay of the last episode;
//! * `step` before `reset`, or after the episode's last step, is an error, not a replay;
//! * an interrupted recording (neither flag on its last step) ends with `truncated = true` and
//!   `info["replay/interrupted"] = true`, so an agent loop always sees the end of an episode.
//!
//! Step `t` of a replay returns observation `t + 1`, reward `t`, terminated `t`, truncated `t`
//! and info `t + 1` (the one recorded with that step), plus the recorded action: exactly as
//! [`Transition::action`] (bytes, dtype, shape), and for compatibility as
//! `info["action"]` (an `Int`/`Float` for a scalar, `Ints`/`Floats` otherwise; bools as
//! 0/1; a `u64` above `i64::MAX` wraps: use [`Transition::action`] for exact values).

use crate::dtype::DType;
use crate::error::{Error, ReadError, Result};
use crate::loader::dataset::{Loader, Selection};
use crate::loader::players::{P2View, p2_view};
use crate::read::{Episode, Field};
use crate::schema::{FieldKind, REWARD, TERMINATED, TRUNCATED};
use crate::store::Store;
use crate::value::{Info, Value};

/// Info key of the recorded action.
pub const ACTION_INFO_KEY: &str = "action";
/// Info key set on the last step of an episode recorded without terminated nor truncated.
pub const INTERRUPTED_INFO_KEY: &str = "replay/interrupted";
/// The transition field replayed as the action.
pub const ACTION_FIELD: &str = "action";

/// Which seat an episode is replayed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seat {
    /// As recorded.
    P1,
    /// The second player's view of a two-player episode (reward negated, per-agent fields
    /// swapped); see `src/loader/players.rs`.
    P2,
}

/// One value: its bytes (little-endian, C order), dtype and shape. Reused across steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Array {
    /// The elements as a typed vector (copied: a `Vec<u8>` is not aligned for wider types).
    pub fn to_vec<T: crate::dtype::PlainElement>(&self) -> Option<Vec<T>> {
        (T::DTYPE == self.dtype).then(|| bytemuck::pod_collect_to_vec(&self.data))
    }
}

/// Every observation field of one step, in schema order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub arrays: Vec<Array>,
}

impl Observation {
    /// An observation field by name.
    pub fn get(&self, name: &str) -> Option<&Array> {
        self.arrays.iter().find(|a| a.name == name)
    }
}

/// What [`ReplayEnv::reset`] returns.
#[derive(Debug)]
pub struct Reset<'a> {
    pub observation: &'a Observation,
    pub info: &'a Info,
    pub episode: crate::EpisodeId,
    pub seat: Seat,
}

/// What [`ReplayEnv::step`] returns.
#[derive(Debug)]
pub struct Transition<'a> {
    pub observation: &'a Observation,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    /// The info recorded with the step, plus `"action"` (and `"replay/interrupted"`).
    pub info: &'a Info,
    /// The recorded action (the imitation target), exactly as stored. `None` when the schema
    /// has no `action` field.
    pub action: Option<&'a Array>,
    /// Every recorded action field at this step, through the seat's mapping, in schema order:
    /// `action` itself, or the `action/...` leaves of a Dict or Tuple action space (which have
    /// no single `action` field).
    pub action_fields: &'a Observation,
}

/// The episode being replayed.
struct Playing {
    episode: Episode,
    seat: Seat,
    fields: Vec<Field>,
    /// `source[i]`: the field whose data field `i` shows (the identity for P1).
    source: Vec<usize>,
    negate_reward: bool,
    infos: Vec<Info>,
    /// Transitions served so far.
    t: usize,
}

/// Options of a replay env.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayOptions {
    /// At the end of an epoch, go on with the next one (a new, reshuffled share) instead of
    /// failing with [`ReadError::EndOfData`].
    pub cycle: bool,
}

/// Replays this rank's share of recorded episodes; see the module docs.
pub struct ReplayEnv {
    loader: Loader,
    options: ReplayOptions,
    /// Index in the loader's share of the next episode to start.
    next: usize,
    /// The P2 view still owed for the episode just replayed from P1.
    pending_p2: Option<(Episode, P2View)>,
    playing: Option<Playing>,
    observation: Observation,
    action: Option<Array>,
    action_fields: Observation,
    info: Info,
}

impl ReplayEnv {
    /// A replay env over `selection`'s share.
    pub fn new(store: &Store, selection: &Selection, options: ReplayOptions) -> Result<Self> {
        Ok(Self::from_loader(Loader::new(store, selection)?, options))
    }

    /// A replay env over an existing loader's (possibly resumed) share.
    pub fn from_loader(loader: Loader, options: ReplayOptions) -> Self {
        ReplayEnv {
            loader,
            options,
            next: 0,
            pending_p2: None,
            playing: None,
            observation: Observation::default(),
            action: None,
            action_fields: Observation::default(),
            info: Info::new(),
        }
    }

    /// The loader whose share is replayed (its epoch, imbalance, cutoff, ...).
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The cursor to checkpoint: resuming from it ([`Loader::resume`], then
    /// [`ReplayEnv::from_loader`]) restarts the episode in progress (both of its views, if it
    /// has a P2 view still to come) and serves everything after it.
    pub fn cursor(&self) -> crate::loader::Cursor {
        let unfinished = self.pending_p2.is_some()
            || self
                .playing
                .as_ref()
                .is_some_and(|p| p.t < p.episode.steps() as usize);
        let started = self.next - usize::from(unfinished);
        self.loader.cursor().advanced(started as u64)
    }

    /// Starts the next episode (or the P2 view of the one just replayed) and returns its
    /// first observation and reset info. [`ReadError::EndOfData`] once the share is exhausted,
    /// unless cycling.
    pub fn reset(&mut self) -> Result<Reset<'_>> {
        let playing = if let Some((episode, view)) = self.pending_p2.take() {
            self.start(episode, Seat::P2, Some(view))?
        } else {
            if self.next >= self.loader.len() {
                self.playing = None;
                self.advance_epoch()?;
            }
            let episode = self.loader.episode(self.next)?;
            self.next += 1;
            let schema = self.loader.snapshot().schema(episode.schema_id())?;
            if let Some(view) = p2_view(&episode, &schema)? {
                self.pending_p2 = Some((episode.clone(), view));
            }
            self.start(episode, Seat::P1, None)?
        };
        self.playing = Some(playing);
        let playing = self.playing.as_ref().expect("just set");
        read_observation(playing, 0, &mut self.observation)?;
        self.info.clone_from(&playing.infos[0]);
        Ok(Reset {
            observation: &self.observation,
            info: &self.info,
            episode: playing.episode.id(),
            seat: playing.seat,
        })
    }

    /// Moves to the next epoch when cycling, or reports the end of the data.
    fn advance_epoch(&mut self) -> Result<()> {
        let cursor = self.loader.cursor();
        let end = ReadError::EndOfData {
            epoch: cursor.epoch,
            rank: cursor.rank,
            worker: cursor.worker,
        }
        .into();
        if !self.options.cycle {
            return Err(end);
        }
        // An empty share would cycle forever: report the end instead.
        let next = self.loader.next_epoch()?;
        if next.is_empty() {
            return Err(end);
        }
        self.loader = next;
        self.next = 0;
        Ok(())
    }

    fn start(&self, episode: Episode, seat: Seat, view: Option<P2View>) -> Result<Playing> {
        let snapshot = self.loader.snapshot();
        let fields = snapshot.fields(&episode)?;
        let (source, negate_reward) = match view {
            Some(v) => (v.source, v.negate_reward),
            None => ((0..fields.len()).collect(), false),
        };
        Ok(Playing {
            infos: snapshot.infos(&episode)?,
            episode,
            seat,
            fields,
            source,
            negate_reward,
            t: 0,
        })
    }

    /// Replays the next recorded step. The action passed in is ignored (this is a replay);
    /// the recorded one is in [`Transition::action`] and `info["action"]`.
    pub fn step<A: ?Sized>(&mut self, _action: &A) -> Result<Transition<'_>> {
        let Some(playing) = self.playing.as_mut() else {
            return Err(Error::invalid_request(
                "replay call",
                "step() before reset(): call reset() to start an episode",
            ));
        };
        let steps = playing.episode.steps() as usize;
        if playing.t >= steps {
            return Err(Error::invalid_request(
                "replay call",
                format!(
                    "step() after the last step of episode {} ({steps} steps): call reset() for the next one",
                    playing.episode.id()
                ),
            ));
        }
        let t = playing.t;
        playing.t += 1;
        let playing = self.playing.as_ref().expect("checked above");
        read_observation(playing, t + 1, &mut self.observation)?;
        let mut reward = read_scalar(playing, REWARD, t)?;
        if playing.negate_reward {
            reward = -reward;
        }
        let terminated = read_scalar(playing, TERMINATED, t)? != 0.0;
        let mut truncated = read_scalar(playing, TRUNCATED, t)? != 0.0;
        self.info.clone_from(&playing.infos[t + 1]);
        if t + 1 == steps && !terminated && !truncated {
            truncated = true;
            self.info
                .insert(INTERRUPTED_INFO_KEY.to_owned(), Value::Bool(true));
        }
        read_action(playing, t, &mut self.action)?;
        read_fields(playing, t, &mut self.action_fields, |spec| {
            spec.kind == FieldKind::Transition && is_action_field(&spec.name)
        })?;
        if let Some(action) = &self.action {
            self.info
                .insert(ACTION_INFO_KEY.to_owned(), action_value(action));
        }
        Ok(Transition {
            observation: &self.observation,
            reward,
            terminated,
            truncated,
            info: &self.info,
            action: self.action.as_ref(),
            action_fields: &self.action_fields,
        })
    }
}

/// `action`, or a leaf of a structured action space (`action/...`).
fn is_action_field(name: &str) -> bool {
    name == ACTION_FIELD
        || name
            .strip_prefix(ACTION_FIELD)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Fills `out` with every observation field at value index `index`, reusing its buffers.
fn read_observation(playing: &Playing, index: usize, out: &mut Observation) -> Result<()> {
    read_fields(playing, index, out, |spec| {
        spec.kind == FieldKind::Observation
    })
}

/// Fills `out` with the fields `keep` selects at value index `index`, through the seat's
/// mapping, reusing its buffers.
fn read_fields(
    playing: &Playing,
    index: usize,
    out: &mut Observation,
    keep: impl Fn(&crate::schema::FieldSpec) -> bool,
) -> Result<()> {
    let observed = playing
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| keep(f.spec()));
    let mut n = 0;
    for (i, f) in observed {
        let spec = f.spec();
        if out.arrays.len() <= n {
            out.arrays.push(Array {
                name: String::new(),
                dtype: spec.dtype,
                shape: Vec::new(),
                data: Vec::new(),
            });
        }
        let a = &mut out.arrays[n];
        if a.name != spec.name {
            a.name.clone_from(&spec.name);
        }
        a.dtype = spec.dtype;
        a.shape.clear();
        a.shape.extend(spec.shape.iter().map(|&d| d as usize));
        a.data.resize(spec.step_bytes(), 0);
        playing.fields[playing.source[i]].read_into(index..index + 1, &mut a.data)?;
        n += 1;
    }
    out.arrays.truncate(n);
    Ok(())
}

/// A scalar transition field (reward, terminated, truncated) at step `t`, as f64, read
/// through the seat's mapping.
fn read_scalar(playing: &Playing, name: &str, t: usize) -> Result<f64> {
    let i = playing
        .fields
        .iter()
        .position(|f| f.spec().name == name)
        .ok_or_else(|| {
            Error::invalid_request("replay", format!("the episode has no field {name:?}"))
        })?;
    let f = &playing.fields[playing.source[i]];
    let mut buf = [0u8; 8];
    let n = f.step_bytes();
    f.read_into(t..t + 1, &mut buf[..n])?;
    Ok(match f.spec().dtype {
        DType::F64 => f64::from_le_bytes(buf),
        DType::F32 => f64::from(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        _ => f64::from(buf[0]),
    })
}

/// The recorded action at step `t` (through the seat's mapping) into `out`, or `None` when the
/// schema has no action field.
fn read_action(playing: &Playing, t: usize, out: &mut Option<Array>) -> Result<()> {
    let Some(i) = playing
        .fields
        .iter()
        .position(|f| f.spec().name == ACTION_FIELD)
    else {
        *out = None;
        return Ok(());
    };
    let f = &playing.fields[playing.source[i]];
    let spec = f.spec();
    let a = out.get_or_insert_with(|| Array {
        name: ACTION_FIELD.to_owned(),
        dtype: spec.dtype,
        shape: Vec::new(),
        data: Vec::new(),
    });
    a.dtype = spec.dtype;
    a.shape.clear();
    a.shape.extend(spec.shape.iter().map(|&d| d as usize));
    a.data.resize(spec.step_bytes(), 0);
    f.read_into(t..t + 1, &mut a.data)
}

/// One element of an action, widened.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn int(self) -> i64 {
        match self {
            Num::Int(i) => i,
            Num::Float(f) => f as i64,
        }
    }
    fn float(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The action as an info value (DIAMBRA's `info["action"]`).
fn action_value(a: &Array) -> Value {
    let size = a.dtype.size();
    let element = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..size].copy_from_slice(b);
        let u = u64::from_le_bytes(w);
        match a.dtype {
            DType::Bool | DType::U8 | DType::U16 | DType::U32 | DType::U64 => Num::Int(u as i64),
            DType::I8 => Num::Int(i64::from(b[0] as i8)),
            DType::I16 => Num::Int(i64::from(i16::from_le_bytes([b[0], b[1]]))),
            DType::I32 => Num::Int(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            DType::I64 => Num::Int(u as i64),
            DType::F16 => Num::Float(f64::from(half::f16::from_le_bytes([b[0], b[1]]))),
            DType::F32 => Num::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            DType::F64 => Num::Float(f64::from_le_bytes(w)),
        }
    };
    let values = a.data.chunks_exact(size).map(element);
    let float = matches!(a.dtype, DType::F16 | DType::F32 | DType::F64);
    match (a.shape.is_empty(), float) {
        (true, false) => Value::Int(values.map(Num::int).next().unwrap_or(0)),
        (true, true) => Value::Float(values.map(Num::float).next().unwrap_or(0.0)),
        (false, false) => Value::Ints(values.map(Num::int).collect()),
        (false, true) => Value::Floats(values.map(Num::float).collect()),
    }
}
