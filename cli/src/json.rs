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
pub(crate) fn timestamp_in(us: i64, out: &mut [u8; 20]) -> Option<&str> {
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
