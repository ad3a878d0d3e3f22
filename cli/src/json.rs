//! The JSON the commands and the viewer print: episodes, infos, values, UTC timestamps. Its
//! own module so `cmd` and `serve` both use it without importing each other.

pub fn value_json(v: &trajstore::Value) -> serde_json::Value {
    use trajstore::Value::*;
    match v {
        Bool(b) => (*b).into(),
        Int(i) => (*i).into(),
        Float(f) => (*f).into(),
        Str(s) => s.clone().into(),
        Ints(v) => v.clone().into(),
        Floats(v) => v.clone().into(),
    }
}

pub fn info_json(info: &trajstore::Info) -> serde_json::Value {
    info.iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The JSON object `ls --json` prints for an episode (and `show --json` extends).
pub fn episode_json(e: &trajstore::Episode) -> serde_json::Value {
    serde_json::json!({
        "episode": e.id(),
        "user": e.user(),
        "env": e.env(),
        "steps": e.steps(),
        "return": e.total_return(),
        "outcome": e.outcome().name(),
        "seed": e.seed(),
        "tags": e.tags(),
        "metadata": info_json(e.metadata()),
        "started_at": timestamp(e.started_at_us()),
        "ended_at": timestamp(e.ended_at_us()),
        "raw_bytes": e.raw_bytes(),
        "stored_bytes": e.stored_bytes(),
    })
}

/// The object `ls --json` prints for an episode, written straight to the output: the keys
/// and values of [`episode_json`] (plus `split`, `shard` and `store` when set), in the same
/// (sorted) key order, without building a `serde_json::Value` per episode.
pub struct EpisodeLine<'a> {
    pub episode: EpisodeFields<'a>,
    pub metadata: trajstore::MetadataRef<'a>,
    pub split: Option<&'a str>,
    pub shard: Option<usize>,
    pub store: Option<&'a str>,
}

impl<'a> EpisodeLine<'a> {
    /// An episode's catalog fields with its metadata map (read apart: the catalog has none).
    pub fn of_row(episode: EpisodeFields<'a>, metadata: trajstore::MetadataRef<'a>) -> Self {
        EpisodeLine {
            episode,
            metadata,
            split: None,
            shard: None,
            store: None,
        }
    }

    pub fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let e = &self.episode;
        let mut object = JsonObject::new(w)?;
        object.key("ended_at")?.timestamp(e.ended_at_us)?;
        object.key("env")?.string(e.env)?;
        object.key("episode")?.number(e.id)?;
        object.key("metadata")?.metadata(self.metadata)?;
        object.key("outcome")?.string(e.outcome)?;
        object.key("raw_bytes")?.number(e.raw_bytes)?;
        object.key("return")?.number(e.total_return)?;
        object.key("seed")?.number(e.seed)?;
        if let Some(shard) = self.shard {
            object.key("shard")?.number(shard)?;
        }
        if let Some(split) = self.split {
            object.key("split")?.string(split)?;
        }
        object.key("started_at")?.timestamp(e.started_at_us)?;
        object.key("steps")?.number(e.steps)?;
        if let Some(store) = self.store {
            object.key("store")?.string(store)?;
        }
        object.key("stored_bytes")?.number(e.stored_bytes)?;
        object.key("tags")?.strings(&e.tags)?;
        object.key("user")?.string(e.user)?;
        object.end()
    }
}

/// The catalog fields of an episode, borrowed from a full episode or a catalog row: what the
/// `ls` table and `ls --json` print of it.
pub struct EpisodeFields<'a> {
    pub id: u64,
    pub user: &'a str,
    pub env: &'a str,
    pub steps: u32,
    pub total_return: f64,
    pub outcome: &'static str,
    pub seed: Option<u64>,
    pub tags: Vec<&'a str>,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl<'a> From<&trajstore::CatalogRow<'a>> for EpisodeFields<'a> {
    fn from(e: &trajstore::CatalogRow<'a>) -> Self {
        EpisodeFields {
            id: e.id().get(),
            user: e.user(),
            env: e.env(),
            steps: e.steps(),
            total_return: e.total_return(),
            outcome: e.outcome().name(),
            seed: e.seed(),
            tags: e.tags().collect(),
            started_at_us: e.started_at_us(),
            ended_at_us: e.ended_at_us(),
            raw_bytes: e.raw_bytes(),
            stored_bytes: e.stored_bytes(),
        }
    }
}

/// A JSON object written member by member (keys in the order given).
struct JsonObject<'w, W: std::io::Write> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: std::io::Write> JsonObject<'w, W> {
    fn new(w: &'w mut W) -> std::io::Result<Self> {
        w.write_all(b"{")?;
        Ok(JsonObject { w, first: true })
    }

    fn key(&mut self, key: &str) -> std::io::Result<&mut Self> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        self.string(key)?;
        self.w.write_all(b":")?;
        Ok(self)
    }

    fn string(&mut self, s: &str) -> std::io::Result<()> {
        serde_json::to_writer(&mut *self.w, s).map_err(std::io::Error::from)
    }

    /// A number (`null` for `None` and for non-finite floats, as `serde_json::Value` has it).
    fn number<T: Into<serde_json::Value> + Copy>(&mut self, n: T) -> std::io::Result<()> {
        serde_json::to_writer(&mut *self.w, &n.into()).map_err(std::io::Error::from)
    }

    /// A timestamp's text needs no escaping: digits, `-`, `:`, `T` and `Z`.
    fn timestamp(&mut self, us: i64) -> std::io::Result<()> {
        write!(self.w, "\"{}\"", Timestamp(us))
    }

    fn strings(&mut self, items: &[&str]) -> std::io::Result<()> {
        serde_json::to_writer(&mut *self.w, items).map_err(std::io::Error::from)
    }

    fn metadata(&mut self, map: trajstore::MetadataRef<'_>) -> std::io::Result<()> {
        if map.is_empty() {
            return self.w.write_all(b"{}");
        }
        let mut object = JsonObject::new(&mut *self.w)?;
        for (k, v) in map.iter() {
            object.key(k)?.value(v)?;
        }
        object.end()
    }

    /// A metadata value as [`value_json`] has it (serde_json writes a non-finite float as
    /// `null`, as its `Value` does), without building that `Value`.
    fn value(&mut self, v: trajstore::ValueRef<'_>) -> std::io::Result<()> {
        use trajstore::ValueRef::*;
        let w = &mut *self.w;
        match v {
            Bool(b) => serde_json::to_writer(w, &b),
            Int(i) => serde_json::to_writer(w, &i),
            Float(f) => serde_json::to_writer(w, &f),
            Str(s) => serde_json::to_writer(w, s),
            Ints(v) => serde_json::to_writer(w, v),
            Floats(v) => serde_json::to_writer(w, v),
        }
        .map_err(std::io::Error::from)
    }

    fn end(self) -> std::io::Result<()> {
        self.w.write_all(b"}")
    }
}

/// One entry of an episode's curation history: `{"at", "by", "changes": [...]}`, each change
/// an object naming what changed (`{"user": {"from", "to"}}`, `{"add_tag": T}`, ...).
pub fn history_json(h: &trajstore::HistoryEntry) -> serde_json::Value {
    use trajstore::LabelChange::*;
    let changes: Vec<serde_json::Value> = h
        .changes
        .iter()
        .map(|c| match c {
            User { from, to } => serde_json::json!({"user": {"from": from, "to": to}}),
            Outcome { from, to } => {
                serde_json::json!({"outcome": {"from": from.name(), "to": to.name()}})
            }
            AddTag(t) => serde_json::json!({"add_tag": t}),
            RemoveTag(t) => serde_json::json!({"remove_tag": t}),
            SetMeta { key, from, to } => serde_json::json!({"set_meta": {
                "key": key, "from": from.as_ref().map(value_json), "to": value_json(to)}}),
            UnsetMeta { key, from } => {
                serde_json::json!({"unset_meta": {"key": key, "from": value_json(from)}})
            }
            Deleted => serde_json::json!("deleted"),
            Restored => serde_json::json!("restored"),
        })
        .collect();
    serde_json::json!({"at": timestamp(h.at_us), "by": h.by, "changes": changes})
}

/// Microseconds since the epoch as RFC 3339 UTC (second precision).
pub fn timestamp(us: i64) -> String {
    let (y, m, d, h, mi, sec) = civil(us);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z")
}

/// [`timestamp`] for a writer, built in place for years 0..=9999 (listings print one or two
/// per episode).
pub struct Timestamp(pub i64);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match timestamp_in(self.0, &mut [0; 20]) {
            Some(text) => f.write_str(text),
            None => f.write_str(&timestamp(self.0)),
        }
    }
}

/// [`timestamp`] into a caller's buffer, without the formatting machinery (`ls --json` prints
/// two per episode): `None` for a year outside 0..=9999, which [`timestamp`] prints.
fn timestamp_in(us: i64, out: &mut [u8; 20]) -> Option<&str> {
    let (y, m, d, h, mi, sec) = civil(us);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut put = |at: usize, value: i64, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, h, 2);
    put(14, mi, 2);
    put(17, sec, 2);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        out[at] = c;
    }
    std::str::from_utf8(&out[..]).ok()
}

/// Year, month, day, hour, minute, second (UTC) of a time in microseconds since the epoch.
fn civil(us: i64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use trajstore::{ArrayRef, Codec, EpisodeMeta, Info, Store, Value};

    /// A store of one committed episode with every kind of metadata value and escapes.
    fn one_episode_store() -> (tempfile::TempDir, Store, trajstore::EpisodeId) {
        use trajstore_testkit::fixtures::{small_frame, small_schema};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let meta = EpisodeMeta::new("ann", "Env-v0")
            .seed(7)
            .tag("a")
            .tag("b\u{e9}\"")
            .meta("level", 2i64)
            .meta("nan", Value::Float(f64::NAN))
            .meta("name", "x\ny")
            .meta("xs", Value::Floats(vec![0.5, -1.0]));
        let mut w = store
            .begin_episode(meta, &small_schema(Codec::Raw))
            .unwrap();
        let none = Info::new();
        w.reset(&[("obs/frame", ArrayRef::new(&small_frame(0, 0)))], &none)
            .unwrap();
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&small_frame(0, 1))),
                ("action", ArrayRef::scalar(&3i64)),
                ("reward", ArrayRef::scalar(&f32::NAN)),
                ("terminated", ArrayRef::scalar(&true)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &none,
        )
        .unwrap();
        let id = w.commit().unwrap();
        (dir, store, id)
    }

    #[test]
    fn a_streamed_ls_line_is_the_episode_json_byte_for_byte() {
        let (_dir, store, id) = one_episode_store();
        let snapshot = store.snapshot().unwrap();
        let e = snapshot.episode(id).unwrap();
        // What ls --json prints: the catalog row and, apart, the metadata map.
        let catalog = snapshot.catalog_of(&[id.get()]).unwrap();
        let row = catalog.row(0);
        let metadata = snapshot.metadata_maps(&[id.get()]).unwrap();
        let mut plain = Vec::new();
        super::EpisodeLine::of_row((&row).into(), metadata.get(0))
            .write(&mut plain)
            .unwrap();
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            super::episode_json(&e).to_string()
        );
        let mut extended = Vec::new();
        let line = super::EpisodeLine {
            split: Some("val"),
            shard: Some(3),
            store: Some("/a/b"),
            ..super::EpisodeLine::of_row((&row).into(), metadata.get(0))
        };
        line.write(&mut extended).unwrap();
        let mut expected = super::episode_json(&e);
        expected["split"] = "val".into();
        expected["shard"] = 3.into();
        expected["store"] = "/a/b".into();
        assert_eq!(String::from_utf8(extended).unwrap(), expected.to_string());
    }

    /// Stdout closed by its reader (`ls --json | head -1`) at any byte of a line: the error
    /// must stay a BrokenPipe, which the CLI ends on quietly, whether the failing write was
    /// our own or one inside serde_json (once wrapped as "other", printed, exit status 2).
    #[test]
    fn a_pipe_closed_at_any_byte_of_a_line_is_a_broken_pipe() {
        struct ClosesAfter(usize);
        impl std::io::Write for ClosesAfter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (_dir, store, id) = one_episode_store();
        let snapshot = store.snapshot().unwrap();
        let catalog = snapshot.catalog_of(&[id.get()]).unwrap();
        let row = catalog.row(0);
        let metadata = snapshot.metadata_maps(&[id.get()]).unwrap();
        let line = super::EpisodeLine::of_row((&row).into(), metadata.get(0));
        let mut whole = Vec::new();
        line.write(&mut whole).unwrap();
        for open_bytes in 0..whole.len() {
            let err = line.write(&mut ClosesAfter(open_bytes)).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::BrokenPipe,
                "closed after {open_bytes} bytes"
            );
        }
    }

    #[test]
    fn a_timestamp_written_in_place_is_the_formatted_one() {
        for us in [
            0,
            -1,
            1_700_000_000_123_456,
            951_782_400_000_000,
            253_402_300_799_999_999,
        ] {
            assert_eq!(
                super::timestamp_in(us, &mut [0; 20]),
                Some(super::timestamp(us).as_str())
            );
        }
        assert_eq!(
            super::timestamp_in(-62_167_219_200_000_001, &mut [0; 20]),
            None
        );
        assert_eq!(
            super::timestamp_in(253_402_300_800_000_000, &mut [0; 20]),
            None
        );
    }

    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::timestamp(1_700_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            super::timestamp(951_782_400_000_000),
            "2000-02-29T00:00:00Z"
        );
    }
}
