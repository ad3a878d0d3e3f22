//! The viewer's routes as plain functions: `(store, method, raw URL) -> Reply`. Routing parses
//! the path strictly into known segments; ids, steps and field names are checked against a
//! fresh snapshot. Nothing here opens a file by a name taken from a request.
//!
//! | route | answer |
//! |---|---|
//! | `/`, `/episode/ID` | the viewer page (one page, two views) |
//! | `/app.js`, `/app.css` | its script and style |
//! | `/api/status` | `{"cutoff", "episodes"}`: polled to follow new commits |
//! | `/api/episodes?user=&env=&outcome=&tag=&min_return=` | matching episodes and the filter choices |
//! | `/api/episode/ID` | metadata, fields, numeric series, infos |
//! | `/api/episode/ID/frame/STEP.png?field=NAME` | one frame, PNG-encoded on the fly |

use std::collections::BTreeSet;

use serde_json::{Value, json};
use trajstore::preview::{self, ImageShape};
use trajstore::{ErrorKind, Outcome, Query, Snapshot, Store};

use crate::json::{episode_json, info_json, timestamp};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Numeric fields with at most this many elements a step are sent as series for plots.
const MAX_SERIES_ELEMENTS: usize = 8;
/// Longest URL accepted.
const MAX_URL: usize = 4096;

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    fn json(v: &Value) -> Reply {
        Reply::ok("application/json", v.to_string())
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: json!({"error": message.into(), "status": status})
                .to_string()
                .into_bytes(),
        }
    }
}

/// Answers one request. Never panics on any input; errors of the request are 4xx, errors
/// reading the store (a damaged file) 500.
pub fn handle(store: &Store, method: &str, url: &str) -> Reply {
    if method != "GET" && method != "HEAD" {
        return Reply::error(405, "read-only viewer: only GET");
    }
    match route(store, url) {
        Ok(reply) => reply,
        Err(reply) => reply,
    }
}

type Answer = std::result::Result<Reply, Reply>;

fn route(store: &Store, url: &str) -> Answer {
    if url.len() > MAX_URL {
        return Err(Reply::error(414, "URL too long"));
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    // Origin-form only, plain segments: no dot segments, no escapes, no empty segments.
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Reply::error(400, "expected a path starting with /"));
    };
    if path.contains('%') || path.contains('\\') {
        return Err(Reply::error(400, "escapes are not accepted in paths"));
    }
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(Reply::error(400, "empty or dot segments are not accepted"));
    }
    let params = parse_query(query)?;
    match segments.as_slice() {
        [] => Ok(Reply::ok("text/html; charset=utf-8", INDEX_HTML)),
        ["episode", id] => {
            parse_id(id)?;
            Ok(Reply::ok("text/html; charset=utf-8", INDEX_HTML))
        }
        ["app.js"] => Ok(Reply::ok("text/javascript; charset=utf-8", APP_JS)),
        ["app.css"] => Ok(Reply::ok("text/css; charset=utf-8", APP_CSS)),
        ["api", "status"] => status(&snapshot(store)?).map(|v| Reply::json(&v)),
        ["api", "episodes"] => episodes(&snapshot(store)?, &params).map(|v| Reply::json(&v)),
        ["api", "episode", id] => {
            episode(&snapshot(store)?, parse_id(id)?).map(|v| Reply::json(&v))
        }
        ["api", "episode", id, "frame", step] => {
            let step = step
                .strip_suffix(".png")
                .ok_or_else(|| Reply::error(404, "frames are STEP.png"))?;
            let field = param(&params, "field");
            frame(&snapshot(store)?, parse_id(id)?, parse_step(step)?, field)
                .map(|png| Reply::ok("image/png", png))
        }
        _ => Err(Reply::error(404, "no such page")),
    }
}

fn snapshot(store: &Store) -> std::result::Result<Snapshot, Reply> {
    store.snapshot().map_err(store_error)
}

/// A library error as a reply: bad input 400, missing 404, anything else (a damaged or
/// unreadable store) 500.
fn store_error(e: trajstore::Error) -> Reply {
    let status = match e.kind() {
        ErrorKind::Input => 400,
        ErrorKind::NotFound => 404,
        _ => 500,
    };
    Reply::error(status, e.to_string())
}

/// Decimal digits only, at most 20 of them, fitting a u64.
fn parse_id(text: &str) -> std::result::Result<u64, Reply> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reply::error(
            400,
            format!("episode id {text:?}: expected a number"),
        ));
    }
    text.parse()
        .map_err(|_| Reply::error(400, format!("episode id {text:?} is out of range")))
}

fn parse_step(text: &str) -> std::result::Result<usize, Reply> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reply::error(
            400,
            format!("step {text:?}: expected a number"),
        ));
    }
    text.parse()
        .map_err(|_| Reply::error(400, format!("step {text:?} is out of range")))
}

/// `a=1&b=x%2Fy` into pairs, percent-decoded ('+' is a space). Malformed escapes or text
/// that is not UTF-8 are a 400.
fn parse_query(query: &str) -> std::result::Result<Vec<(String, String)>, Reply> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> std::result::Result<String, Reply> {
    let bad = || Reply::error(400, format!("malformed query text {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// What the pages poll: the commit cutoff grows with every new episode.
pub fn status(snap: &Snapshot) -> std::result::Result<Value, Reply> {
    let users = snap.users().map_err(store_error)?;
    Ok(json!({
        "cutoff": snap.cutoff().map_err(store_error)?,
        "episodes": users.iter().map(|u| u.episodes).sum::<u64>(),
    }))
}

/// The table: episodes matching the filters, newest first, and the values each filter can
/// take (from the whole index).
pub fn episodes(snap: &Snapshot, params: &[(String, String)]) -> std::result::Result<Value, Reply> {
    let mut query = Query::default();
    for (key, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        match key.as_str() {
            "user" => query.users.push(value.clone()),
            "env" => query.envs.push(value.clone()),
            "tag" => query.tags.push(value.clone()),
            "outcome" => query.outcomes.push(
                value
                    .parse::<Outcome>()
                    .map_err(|e| Reply::error(400, e.to_string()))?,
            ),
            "min_return" => {
                let r: f64 = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| !r.is_nan())
                    .ok_or_else(|| {
                        Reply::error(400, format!("min_return {value:?}: expected a number"))
                    })?;
                query.min_return = Some(r);
            }
            _ => return Err(Reply::error(400, format!("unknown filter {key:?}"))),
        }
    }
    let all = snap.episodes(&Query::default()).map_err(store_error)?;
    let (mut envs, mut tags) = (BTreeSet::new(), BTreeSet::new());
    for e in &all {
        envs.insert(e.env().to_owned());
        tags.extend(e.tags().iter().cloned());
    }
    let users: Vec<String> = snap
        .users()
        .map_err(store_error)?
        .into_iter()
        .map(|u| u.name)
        .collect();
    let outcomes = [
        Outcome::Terminated,
        Outcome::Truncated,
        Outcome::Interrupted,
    ]
    .map(Outcome::name);
    let mut rows = snap.episodes(&query).map_err(store_error)?;
    rows.reverse();
    Ok(json!({
        "cutoff": snap.cutoff().map_err(store_error)?,
        "total": all.len(),
        "episodes": rows.iter().map(|e| {
            let mut v = episode_json(e);
            v["committed_at"] = timestamp(e.committed_at_us()).into();
            v
        }).collect::<Vec<_>>(),
        "filters": {
            "user": users,
            "env": envs,
            "tag": tags,
            "outcome": outcomes,
        },
    }))
}

/// One episode: metadata, every field (image fields flagged), numeric series for plots, and
/// the info of every observation step.
pub fn episode(snap: &Snapshot, id: u64) -> std::result::Result<Value, Reply> {
    let e = snap
        .episode(trajstore::EpisodeId(id))
        .map_err(store_error)?;
    let fields = snap.fields(&e).map_err(store_error)?;
    let infos = snap.infos(&e).map_err(store_error)?;
    let mut series = serde_json::Map::new();
    let mut field_rows = Vec::new();
    for f in &fields {
        let s = f.spec();
        let image = ImageShape::of(s).is_some();
        let elements = s.shape.iter().map(|&d| d as usize).product::<usize>();
        if !image && elements <= MAX_SERIES_ELEMENTS {
            let values = preview::numeric_series(f).map_err(store_error)?;
            let values: Vec<Value> = values
                .values
                .iter()
                .map(|v| if v.is_finite() { json!(v) } else { Value::Null })
                .collect();
            series.insert(
                s.name.clone(),
                json!({"components": elements, "values": values}),
            );
        }
        field_rows.push(json!({
            "name": s.name, "dtype": s.dtype.name(), "shape": s.shape, "kind": s.kind.name(),
            "codec": s.codec.name(), "values": f.len(), "image": image,
        }));
    }
    let mut v = episode_json(&e);
    v["committed_at"] = timestamp(e.committed_at_us()).into();
    v["fields"] = field_rows.into();
    v["series"] = series.into();
    v["infos"] = infos.iter().map(info_json).collect();
    Ok(v)
}

/// One frame of an image field as PNG, read and encoded now (raw or lz4).
pub fn frame(
    snap: &Snapshot,
    id: u64,
    step: usize,
    field: Option<&str>,
) -> std::result::Result<Vec<u8>, Reply> {
    let e = snap
        .episode(trajstore::EpisodeId(id))
        .map_err(store_error)?;
    let schema = snap.schema(e.schema_id()).map_err(store_error)?;
    let name = match field {
        Some(name) => name.to_owned(),
        None => preview::image_fields(&schema)
            .into_iter()
            .next()
            .ok_or_else(|| Reply::error(404, format!("episode {id} has no image field")))?,
    };
    let shape = preview::image_shape(&schema, &name).map_err(|e| match e.kind() {
        ErrorKind::Input => Reply::error(404, e.to_string()),
        _ => store_error(e),
    })?;
    let data = snap.field(&e, &name).map_err(store_error)?;
    if step >= data.len() {
        return Err(Reply::error(
            404,
            format!(
                "step {step}: {name} of episode {id} has {} frames",
                data.len()
            ),
        ));
    }
    let mut pixels = vec![0u8; shape.frame_bytes()];
    data.read_into(step..step + 1, &mut pixels)
        .map_err(store_error)?;
    preview::frame_png(&shape, &pixels).map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trajstore_testkit::synth::{SynthConfig, record};

    /// A store with two users: ann (3 raw 8x8x3 episodes), bob (2 lz4 6x4x1 episodes).
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s")).unwrap();
        for (user, frame, codec, episodes) in [
            ("ann", [8, 8, 3], trajstore::Codec::Raw, 3),
            ("bob", [6, 4, 1], trajstore::Codec::Lz4, 2),
        ] {
            let config = SynthConfig {
                user: user.into(),
                episodes,
                min_steps: 5,
                max_steps: 9,
                frame,
                codec,
                ..Default::default()
            };
            record(&store, &config, |_| {}).unwrap();
        }
        (dir, store)
    }

    fn get(store: &Store, url: &str) -> Reply {
        handle(store, "GET", url)
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn pages_and_assets_come_from_memory() {
        let (_dir, store) = store();
        for (url, kind) in [
            ("/", "text/html; charset=utf-8"),
            ("/episode/1", "text/html; charset=utf-8"),
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/app.css", "text/css; charset=utf-8"),
        ] {
            let r = get(&store, url);
            assert_eq!((r.status, r.content_type), (200, kind), "{url}");
        }
        assert_eq!(get(&store, "/").body, INDEX_HTML.as_bytes());
    }

    #[test]
    fn table_filters_come_from_the_index() {
        let (_dir, store) = store();
        let all = body(&get(&store, "/api/episodes"));
        assert_eq!(all["total"], 5);
        assert_eq!(all["episodes"].as_array().unwrap().len(), 5);
        assert_eq!(all["filters"]["user"], json!(["ann", "bob"]));
        assert_eq!(all["filters"]["env"], json!(["Synth-v0"]));
        assert_eq!(all["filters"]["tag"], json!(["synthetic"]));
        let bob = body(&get(&store, "/api/episodes?user=bob&tag=synthetic"));
        let rows = bob["episodes"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r["user"] == "bob"));
        assert!(
            rows[0]["episode"].as_u64() > rows[1]["episode"].as_u64(),
            "newest first"
        );
        let high = body(&get(&store, "/api/episodes?min_return=1e9"));
        assert_eq!(high["episodes"].as_array().unwrap().len(), 0);
        for bad in [
            "/api/episodes?outcome=won",
            "/api/episodes?min_return=abc",
            "/api/episodes?min_return=NaN",
            "/api/episodes?colour=red",
            "/api/episodes?user=%zz",
            "/api/episodes?user=%ff",
        ] {
            assert_eq!(get(&store, bad).status, 400, "{bad}");
        }
    }

    #[test]
    fn episode_json_has_fields_series_and_infos() {
        let (_dir, store) = store();
        let snap = store.snapshot().unwrap();
        let e = &snap.episodes(&Query::default().user("ann")).unwrap()[0];
        let v = body(&get(&store, &format!("/api/episode/{}", e.id())));
        assert_eq!(v["episode"], e.id().get());
        assert_eq!(v["steps"], e.steps());
        let fields = v["fields"].as_array().unwrap();
        let frame = fields.iter().find(|f| f["name"] == "obs/frame").unwrap();
        assert_eq!(frame["image"], true);
        assert_eq!(
            v["series"]["reward"]["values"].as_array().unwrap().len(),
            e.steps() as usize
        );
        assert_eq!(v["series"]["obs/ram/health"]["components"], 2);
        assert!(v["series"].get("obs/frame").is_none());
        let infos = v["infos"].as_array().unwrap();
        assert_eq!(infos.len(), e.steps() as usize + 1);
        assert_eq!(infos[0]["stage"], 1);
        let rewards: f64 = v["series"]["reward"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .sum();
        assert!((rewards - e.total_return()).abs() < 1e-9);
    }

    #[test]
    fn frames_decode_to_the_stored_pixels_raw_and_lz4() {
        let (_dir, store) = store();
        let snap = store.snapshot().unwrap();
        for e in snap.episodes(&Query::default()).unwrap() {
            let field = snap.field(&e, "obs/frame").unwrap();
            let stored = field.to_vec().unwrap();
            let n = field.step_bytes();
            for step in [0, e.steps() as usize] {
                let r = get(
                    &store,
                    &format!("/api/episode/{}/frame/{step}.png?field=obs%2Fframe", e.id()),
                );
                assert_eq!((r.status, r.content_type), (200, "image/png"));
                let mut reader = png::Decoder::new(std::io::Cursor::new(&r.body))
                    .read_info()
                    .unwrap();
                let mut buf = vec![0; reader.output_buffer_size().unwrap()];
                let info = reader.next_frame(&mut buf).unwrap();
                assert_eq!(
                    &buf[..info.buffer_size()],
                    &stored[step * n..(step + 1) * n]
                );
            }
            // The default field is the image observation.
            assert_eq!(
                get(&store, &format!("/api/episode/{}/frame/0.png", e.id())).status,
                200
            );
        }
    }

    #[test]
    fn traversal_bad_ids_and_writes_are_4xx() {
        let (_dir, store) = store();
        let cases = [
            "/../Cargo.toml",
            "/..",
            "/./app.js",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/app.js/../../index.redb",
            "/api%2Fepisodes",
            "/api/episode/1%2F..%2F..",
            "//etc/passwd",
            "/etc/passwd",
            "/index.redb",
            "/segments",
            "http://127.0.0.1/api/status",
            "api/status",
            "",
            "/api\\status",
            "/api/episode/abc",
            "/api/episode/-1",
            "/api/episode/1.5",
            "/api/episode/0x10",
            "/api/episode/99999999999999999999999999",
            "/api/episode/18446744073709551616",
            "/api/episode/18446744073709551615",
            "/api/episode/424242",
            "/api/episode/",
            "/episode/abc",
            "/episode/1/..",
            "/api/episode/1/frame/abc.png",
            "/api/episode/1/frame/3",
            "/api/episode/1/frame/99999.png",
            "/api/episode/1/frame/99999999999999999999.png",
            "/api/episode/1/frame/0.png?field=obs%2Fram%2Fhealth",
            "/api/episode/1/frame/0.png?field=../../etc/passwd",
            "/api/episode/1/frame/0.png?field=nope",
            "/api/episode/1/frame/0.png?field=%",
        ];
        for url in cases {
            let r = get(&store, url);
            assert!((400..500).contains(&r.status), "{url}: {}", r.status);
            let v = body(&r);
            assert!(v["error"].is_string(), "{url}");
        }
        let long = format!("/api/episodes?user={}", "a".repeat(10_000));
        assert_eq!(get(&store, &long).status, 414);
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(handle(&store, method, "/api/status").status, 405);
        }
    }

    #[test]
    fn status_follows_new_commits() {
        let (_dir, store) = store();
        let before = body(&get(&store, "/api/status"));
        assert_eq!(before["episodes"], 5);
        let config = SynthConfig {
            user: "cid".into(),
            episodes: 1,
            min_steps: 2,
            max_steps: 2,
            frame: [4, 4, 3],
            ..Default::default()
        };
        record(&store, &config, |_| {}).unwrap();
        let after = body(&get(&store, "/api/status"));
        assert_eq!(after["episodes"], 6);
        assert!(after["cutoff"].as_u64() > before["cutoff"].as_u64());
    }
}
