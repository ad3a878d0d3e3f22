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

use crate::cmd::{episode_json, info_json, timestamp};

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
    let e = snap.episode(id).map_err(store_error)?;
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
    let e = snap.episode(id).map_err(store_error)?;
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
