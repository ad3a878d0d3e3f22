//! Gathering one field at explicit `(episode, step)` pairs into one caller-owned buffer
//! ([`Snapshot::gather`]): the random-access read of training code that draws its own
//! indices, without one array per touched episode.
//!
//! Each episode's field is opened (index lookup, chunk headers checked) once per snapshot and
//! kept in a small per-process cache, so a training loop that gathers batch after batch from
//! one snapshot pays the opening once per episode. Raw values are copied from the map, lz4
//! values are decoded straight into the output; nothing else is allocated per value.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, ReadError, Result};
use crate::ids::EpisodeId;
use crate::partition::rng::mix64;
use crate::read::{Episode, Field, Snapshot};
use crate::schema::FieldSpec;

/// Outputs at least this large are gathered in parallel on the library's pool.
const PARALLEL_MIN_BYTES: usize = 1 << 20;
/// Bytes each parallel task gathers (whole values), so tasks outweigh their hand-off cost.
const TASK_BYTES: usize = 256 << 10;
/// Opened fields kept per snapshot before the cache starts over (about 300 bytes each).
const CACHE_MAX_FIELDS: usize = 1 << 16;

/// A hasher for episode ids: one multiply-xorshift mix instead of SipHash, on the per-value
/// path (ids are not attacker-chosen).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 ^= id;
    }
}

type ById<T> = HashMap<u64, T, BuildHasherDefault<IdHasher>>;

/// The fields [`Snapshot::gather`] opened, by field name then episode id, for the process
/// that opened them (a forked child starts its own: see [`FieldCache::for_process`]).
#[derive(Default)]
pub(super) struct FieldCache {
    pid: u32,
    opened: usize,
    by_name: HashMap<String, ById<Arc<Field>>>,
    /// The episode record [`Snapshot::episode_shared`] read last.
    last_episode: Option<Arc<Episode>>,
}

impl FieldCache {
    /// The cache of the calling process: a child after `fork()` drops nothing of the
    /// parent's (the parent's fields stay valid memory but are the parent's), it starts over.
    fn for_process(&mut self) -> &mut Self {
        let pid = crate::process::current();
        if self.pid != pid {
            std::mem::forget(std::mem::take(&mut self.by_name));
            self.last_episode = None; // plain memory: dropping the parent's is fine
            self.pid = pid;
            self.opened = 0;
        }
        self
    }
}

impl Snapshot {
    /// Reads field `field` at the explicit pairs `(episodes[i], steps[i])` into `out`, value
    /// `i` at `out[i * step_bytes..]`, so `out` must be exactly `episodes.len() * step_bytes`
    /// long (`step_bytes`: the field's dtype size times its shape's product). A step indexes
    /// the field's values: `0..=T` for observations, `0..T` for transition fields.
    ///
    /// Raw values are copied out of the segment maps; lz4 values are decoded straight into
    /// `out`. Large outputs are gathered in parallel on the library's thread pool. Reuse one
    /// `out` from call to call: a gather allocates nothing per value, and each episode's field
    /// is opened once per snapshot (then cached), so batch after batch costs the copies.
    ///
    /// Every pair is checked before anything is written: an unknown episode, a step out of
    /// range, a field missing from an episode or of another dtype or shape in some episodes,
    /// or an `out` of the wrong length is an error naming it. Reads are checked like every
    /// read ([`Field`]).
    pub fn gather(
        &self,
        field: &str,
        episodes: &[EpisodeId],
        steps: &[u64],
        out: &mut [u8],
    ) -> Result<()> {
        if episodes.len() != steps.len() {
            return Err(Error::invalid_request(
                "gather",
                format!(
                    "{} episodes but {} steps: give one step per episode entry",
                    episodes.len(),
                    steps.len()
                ),
            ));
        }
        let fields = self.gather_fields(field, episodes, steps, false)?;
        let Some(first) = fields.first() else {
            return check_out_len(field, 0, 0, out.len());
        };
        let n = first.step_bytes();
        check_out_len(field, episodes.len(), n, out.len())?;
        if n == 0 {
            return Ok(());
        }
        let read = |fields: &[Arc<Field>], steps: &[u64], out: &mut [u8]| -> Result<()> {
            for ((f, &s), dst) in fields.iter().zip(steps).zip(out.chunks_exact_mut(n)) {
                let s = s as usize;
                match f.raw_values()? {
                    // In range: every step was checked against its field's length above.
                    Some(values) => dst.copy_from_slice(&values[s * n..(s + 1) * n]),
                    None => f.read_into(s..s + 1, dst)?,
                }
            }
            Ok(())
        };
        if out.len() < PARALLEL_MIN_BYTES {
            return read(&fields, steps, out);
        }
        let per_task = (TASK_BYTES / n).max(1);
        crate::pool::install(|| {
            out.par_chunks_mut(per_task * n)
                .zip(fields.par_chunks(per_task))
                .zip(steps.par_chunks(per_task))
                .try_for_each(|((out, fields), steps)| read(fields, steps, out))
        })?
    }

    /// Field `name` of episode `episode`, opened once per snapshot and kept (the cache
    /// [`Snapshot::gather`] uses). The episode's index record read last is kept too, so
    /// reading several fields of one episode after another decodes its record once
    /// ([`Snapshot::episode_shared`]).
    pub fn open_field(&self, episode: EpisodeId, name: &str) -> Result<Arc<Field>> {
        if let Some(f) = self.cached_field(episode, name) {
            return Ok(f);
        }
        let e = self.episode_shared(episode)?;
        let field = Arc::new(self.field(&e, name)?);
        let mut cache = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.for_process();
        if cache.opened >= CACHE_MAX_FIELDS {
            cache.by_name.values_mut().for_each(HashMap::clear);
            cache.opened = 0;
        }
        let by_id = match cache.by_name.get_mut(name) {
            Some(by_id) => by_id,
            None => cache.by_name.entry(name.to_owned()).or_default(),
        };
        by_id.insert(episode.get(), field.clone());
        cache.opened += 1;
        Ok(field)
    }

    fn cached_field(&self, episode: EpisodeId, name: &str) -> Option<Arc<Field>> {
        let mut cache = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.for_process();
        cache.by_name.get(name)?.get(&episode.get()).cloned()
    }

    /// One episode's metadata, like [`Snapshot::episode`], shared: the record read last is
    /// kept, so asking again for the same episode (its metadata, then its fields) does not
    /// decode it again.
    pub fn episode_shared(&self, id: EpisodeId) -> Result<Arc<Episode>> {
        {
            let mut cache = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = cache
                .for_process()
                .last_episode
                .as_ref()
                .filter(|e| e.id() == id)
            {
                return Ok(e.clone());
            }
        }
        let e = Arc::new(self.episode(id)?);
        let mut cache = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        cache.for_process().last_episode = Some(e.clone());
        Ok(e)
    }

    /// The dtype, shape and codec of `field` in episode `episode`: what [`Snapshot::gather`]
    /// reads from it (to size an output before gathering). Opens the field into the same cache.
    pub fn gather_spec(&self, field: &str, episode: EpisodeId) -> Result<FieldSpec> {
        let fields = self.gather_fields(field, &[episode], &[0], true)?;
        Ok(fields[0].spec.clone())
    }

    /// The opened field of every pair (one `Arc` clone per pair), every step checked in range
    /// (unless `any_step`: an empty field is fine) and every field of one dtype and shape.
    fn gather_fields(
        &self,
        name: &str,
        episodes: &[EpisodeId],
        steps: &[u64],
        any_step: bool,
    ) -> Result<Vec<Arc<Field>>> {
        let mut out: Vec<Arc<Field>> = Vec::with_capacity(episodes.len());
        let mut cache = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.for_process();
        if cache.opened >= CACHE_MAX_FIELDS {
            cache.by_name.values_mut().for_each(HashMap::clear);
            cache.opened = 0;
        }
        if !cache.by_name.contains_key(name) {
            cache.by_name.insert(name.to_owned(), ById::default());
        }
        // The name's map, looked up once per call, not per pair.
        let FieldCache {
            opened, by_name, ..
        } = cache;
        let by_id = by_name.get_mut(name).expect("inserted above");
        for (&id, &step) in episodes.iter().zip(steps) {
            let same = out.last().filter(|f| f.episode == id).cloned();
            let field = match same {
                Some(f) => f,
                None => {
                    let f = match by_id.get(&id.get()) {
                        Some(f) => f.clone(),
                        None => {
                            let f = Arc::new(self.field(&self.episode(id)?, name)?);
                            *opened += 1;
                            by_id.insert(id.get(), f.clone());
                            f
                        }
                    };
                    if let Some(first) = out.first()
                        && (first.spec.dtype != f.spec.dtype || first.spec.shape != f.spec.shape)
                    {
                        return Err(Error::invalid_request(
                            "gather",
                            format!(
                                "field {name:?} is {} {:?} in episode {} but {} {:?} in episode {}: \
                                 gather from episodes of one schema",
                                f.spec.dtype,
                                f.spec.shape,
                                id,
                                first.spec.dtype,
                                first.spec.shape,
                                first.episode
                            ),
                        ));
                    }
                    f
                }
            };
            if !any_step && step >= field.len() as u64 {
                return Err(ReadError::StepOutOfRange {
                    episode: id,
                    field: name.to_owned(),
                    start: step as usize,
                    end: step as usize + 1,
                    len: field.len(),
                }
                .into());
            }
            out.push(field);
        }
        Ok(out)
    }
}

fn check_out_len(field: &str, values: usize, step_bytes: usize, got: usize) -> Result<()> {
    if values * step_bytes == got {
        return Ok(());
    }
    Err(Error::invalid_request(
        "gather",
        format!(
            "field {field:?}: {values} values of {step_bytes} bytes need a {}-byte output, got {got} bytes",
            values * step_bytes
        ),
    ))
}
