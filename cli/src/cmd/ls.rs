use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::filters::EpisodeFilters;
use super::open_shards;
use crate::json::Timestamp;
use crate::json_rows::{Extras, JsonRows, Shard};

/// Episodes whose metadata maps `ls --json` reads at once.
const METADATA_BATCH: usize = 4096;

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// One store, or several shards of one dataset (listed in this order, with a shard column).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    filters: EpisodeFilters,
    #[arg(long)]
    json: bool,
}

pub fn run(args: LsArgs) -> Result<ExitCode> {
    let LsArgs {
        dirs,
        filters,
        json,
    } = args;
    let query = filters.query()?;
    let stores = open_shards(&dirs)?;
    if json {
        // The rows are buffered in 64 KiB blocks already: stdout takes them as they are.
        let mut stdout = std::io::stdout().lock();
        write_json(&stores, &dirs, &query, &mut stdout)?;
        stdout.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let sharded = stores.len() > 1;
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let shard = if sharded { "shard  " } else { "" };
    writeln!(lines, "{shard}{}", header())?;
    for (shard, store) in stores.iter().enumerate() {
        // The table needs no metadata map: the compact catalog rows are enough.
        for e in store.snapshot()?.catalog_columns(&query)?.rows() {
            if sharded {
                write!(lines, "{shard:>5}  ")?;
            }
            writeln!(lines, "{}", Line(EpisodeFields::from(&e)))?;
        }
    }
    lines.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The episodes `query` selects in `stores` (shards of one dataset, opened from `dirs`) as
/// `ls --json` prints them, one JSON object a line, into `w` (left unflushed).
pub(crate) fn write_json(
    stores: &[trajstore::Store],
    dirs: &[PathBuf],
    query: &trajstore::Query,
    w: &mut impl Write,
) -> Result<()> {
    let sharded = stores.len() > 1;
    let mut rows = JsonRows::new();
    for (number, store) in stores.iter().enumerate() {
        let snapshot = store.snapshot()?;
        let split = snapshot.split_spec()?;
        let shard = sharded.then(|| Shard::new(number, &dirs[number].display().to_string()));
        // Catalog rows and, apart, the metadata maps: no chunk list is decoded. Maps are read
        // a batch at a time, so a million episodes never hold a million maps.
        let catalog = snapshot.catalog_columns(query)?;
        let mut metadata = trajstore::MetadataMaps::default();
        for e in catalog.rows() {
            let at = e.index() % METADATA_BATCH;
            if at == 0 {
                let ids = catalog.ids();
                let batch = &ids[e.index()..ids.len().min(e.index() + METADATA_BATCH)];
                metadata = snapshot.metadata_maps(batch)?;
            }
            let extras = Extras {
                split: split
                    .as_ref()
                    .map(|spec| spec.label(e.id().get(), e.user())),
                shard: shard.as_ref(),
            };
            rows.push(&e, metadata.get(at), &extras, w)?;
        }
    }
    rows.write_out(w)?;
    Ok(())
}

/// The header of the episode table `ls` prints.
pub(crate) fn header() -> String {
    format!(
        "{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} started",
        "episode", "user", "env", "steps", "return", "outcome"
    )
}

/// The catalog fields of an episode the `ls` table prints, borrowed from a catalog row.
pub(crate) struct EpisodeFields<'a> {
    pub id: u64,
    pub user: &'a str,
    pub env: &'a str,
    pub steps: u32,
    pub total_return: f64,
    pub outcome: &'static str,
    pub started_at_us: i64,
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
            started_at_us: e.started_at_us(),
        }
    }
}

/// One episode as a row of the table `ls` prints.
pub(crate) struct Line<'a>(pub EpisodeFields<'a>);

impl std::fmt::Display for Line<'_> {
    /// `"{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}"` of id, user, env, steps, return,
    /// outcome and start, with the integers and padding by hand: through `write!` they were
    /// two thirds of listing 100k episodes (the return keeps std's exact rounding).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        let mut digits = itoa::Buffer::new();
        pad(f, digits.format(e.id), 8, Align::Right)?;
        f.write_str("  ")?;
        pad(f, e.user, 16, Align::Left)?;
        f.write_str(" ")?;
        pad(f, e.env, 16, Align::Left)?;
        f.write_str(" ")?;
        pad(f, digits.format(e.steps), 7, Align::Right)?;
        write!(f, " {:>10.3}  ", e.total_return)?;
        pad(f, e.outcome, 11, Align::Left)?;
        write!(f, " {}", Timestamp(e.started_at_us))
    }
}

enum Align {
    Left,
    Right,
}

/// `text` padded with spaces to `width` characters, as `{:<width}` / `{:>width}` pad it.
fn pad(
    f: &mut std::fmt::Formatter<'_>,
    text: &str,
    width: usize,
    align: Align,
) -> std::fmt::Result {
    const SPACES: &str = "                ";
    let mut fill = width.saturating_sub(text.chars().count());
    let mut spaces = |f: &mut std::fmt::Formatter<'_>| {
        while fill > 0 {
            let n = fill.min(SPACES.len());
            f.write_str(&SPACES[..n])?;
            fill -= n;
        }
        Ok(())
    };
    match align {
        Align::Left => {
            f.write_str(text)?;
            spaces(f)
        }
        Align::Right => {
            spaces(f)?;
            f.write_str(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EpisodeFields;

    /// The row by hand is the row `format!` printed, for names wider than their column,
    /// multi-byte names (padded by characters), and returns std rounds and spells.
    #[test]
    fn a_row_by_hand_is_the_formatted_row() {
        let names = [
            "",
            "ann",
            "ünïcødé-ǖser",
            "a-user-name-longer-than-16",
            "x\u{1F600}",
        ];
        let returns = [0.0, -0.0, 2.0005, -1e12, 1e300, f64::NAN, f64::NEG_INFINITY];
        for (i, (&name, &ret)) in names.iter().cycle().zip(&returns).enumerate() {
            let e = EpisodeFields {
                id: [1, 99_999_999, 123_456_789_012, u64::MAX][i % 4],
                user: name,
                env: names[(i + 2) % names.len()],
                steps: [0, 50, u32::MAX][i % 3],
                total_return: ret,
                outcome: ["terminated", "interrupted", "truncated"][i % 3],
                started_at_us: [0, 1_700_000_000_123_456, -62_167_219_200_000_001][i % 3],
            };
            let formatted = format!(
                "{:>8}  {:<16} {:<16} {:>7} {:>10.3}  {:<11} {}",
                e.id,
                e.user,
                e.env,
                e.steps,
                e.total_return,
                e.outcome,
                crate::json::timestamp(e.started_at_us)
            );
            assert_eq!(super::Line(e).to_string(), formatted);
        }
    }

    mod json {
        use std::path::PathBuf;

        use trajstore::{
            ArrayRef, Codec, CurateOptions, EpisodeId, EpisodeMeta, Info, Query, SplitKey,
            SplitRequest, Store, Target, Value,
        };
        use trajstore_testkit::fixtures::{small_frame, small_schema};

        /// Every control character, quotes, a backslash, DEL and non-ASCII.
        fn awkward_text() -> String {
            (0u8..0x20)
                .map(char::from)
                .chain("\"\\/\u{7f}é\u{2028}😀".chars())
                .collect()
        }

        /// Metadata map `kind` of four: empty, every kind of value (non-finite floats,
        /// extreme integers, escapes), thousands of entries (past one 64 KiB write), one.
        fn metadata(kind: usize, meta: EpisodeMeta) -> EpisodeMeta {
            match kind {
                0 => meta,
                1 => meta
                    .meta("bool", true)
                    .meta("int", i64::MIN)
                    .meta("nan", Value::Float(f64::NAN))
                    .meta("inf", Value::Float(f64::INFINITY))
                    .meta("neg_zero", Value::Float(-0.0))
                    .meta("tiny", Value::Float(5e-324))
                    .meta("text", awkward_text())
                    .meta("empty", "")
                    .meta("no_ints", Value::Ints(vec![]))
                    .meta("ints", Value::Ints(vec![i64::MIN, 0, i64::MAX]))
                    .meta(
                        "floats",
                        Value::Floats(vec![0.5, f64::NAN, f64::NEG_INFINITY, 1e300]),
                    )
                    .meta("ké\"y\\", false),
                2 => (0..2000).fold(meta, |meta, i| {
                    meta.meta(format!("key-{i:04}-\"ü\""), Value::Int(i))
                }),
                _ => meta.meta("level", 3i64),
            }
        }

        /// Records 8 two-step episodes whose labels, returns and outcomes cover what JSON
        /// spells out or escapes.
        fn record_awkward(store: &Store) {
            let users = ["ann", "b\"o\\b", "ünïcødé ǖser", "x😀"];
            let rewards = [
                1.0,
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
                f32::MAX,
            ];
            for i in 0..8 {
                let mut meta = EpisodeMeta::new(users[i % 4], ["Env-v0", "E\\nv\"1"][i % 2]);
                if i % 3 != 0 {
                    meta = meta.seed([7, u64::MAX][i % 2]);
                }
                let tags: &[&str] = [&[][..], &["a"], &["b\u{e9}\"", "c\\d", "😀"]][i % 3];
                for tag in tags {
                    meta = meta.tag(*tag);
                }
                let meta = metadata(i % 4, meta);
                let mut w = store
                    .begin_episode(meta, &small_schema(Codec::Raw))
                    .unwrap();
                let none = Info::new();
                w.reset(&[("obs/frame", ArrayRef::new(&small_frame(0, 0)))], &none)
                    .unwrap();
                for t in 1..=2 {
                    // Ends terminated, truncated or neither (interrupted), in turn.
                    let last = t == 2;
                    w.step(
                        &[
                            ("obs/frame", ArrayRef::new(&small_frame(0, t))),
                            ("action", ArrayRef::scalar(&3i64)),
                            ("reward", ArrayRef::scalar(&rewards[i % rewards.len()])),
                            ("terminated", ArrayRef::scalar(&(last && i % 3 == 0))),
                            ("truncated", ArrayRef::scalar(&(last && i % 3 == 1))),
                        ],
                        &none,
                    )
                    .unwrap();
                }
                w.commit().unwrap();
            }
        }

        /// What `ls --json` printed through serde_json: the full records `query` selects
        /// (deleted ones a cutoff still sees included), one `episode_json` a line, with the
        /// split and, for several shards, shard and store members.
        fn serde_lines(stores: &[Store], dirs: &[PathBuf], query: &Query) -> String {
            let mut text = String::new();
            for (shard, store) in stores.iter().enumerate() {
                let snapshot = store.snapshot().unwrap();
                let split = snapshot.split_spec().unwrap();
                for e in snapshot.episodes(query).unwrap() {
                    let mut line = crate::json::episode_json(&e);
                    if let Some(spec) = &split {
                        line["split"] = spec.label(e.id().get(), e.user()).into();
                    }
                    if stores.len() > 1 {
                        line["shard"] = shard.into();
                        line["store"] = dirs[shard].display().to_string().into();
                    }
                    text.push_str(&line.to_string());
                    text.push('\n');
                }
            }
            text
        }

        fn listed(stores: &[Store], dirs: &[PathBuf], query: &Query) -> String {
            let mut out = Vec::new();
            super::super::write_json(stores, dirs, query, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        }

        /// The lines written by hand are serde_json's byte for byte, for awkward strings,
        /// non-finite returns and values, empty and large maps, every outcome, a deleted
        /// episode an older cutoff still lists, a split, and shards with awkward paths.
        #[test]
        fn every_line_is_serde_json_s_byte_for_byte() {
            let root = tempfile::tempdir().unwrap();
            let dirs: Vec<PathBuf> = ["one", "two \"\\ ü"]
                .iter()
                .map(|name| root.path().join(name))
                .collect();
            let stores: Vec<Store> = dirs.iter().map(|d| Store::create(d).unwrap()).collect();
            for store in &stores {
                record_awkward(store);
            }
            let options = CurateOptions::default();
            stores[0]
                .delete(&Target::ids([EpisodeId(3)]), &options)
                .unwrap();
            let split = SplitRequest {
                fractions: vec![("train".into(), 0.5), ("v\"al".into(), 0.5)],
                seed: 1,
                by: SplitKey::Episode,
            };
            stores[1].set_split(&split, &options).unwrap();
            let before_deletion = Query {
                before_id: Some(EpisodeId(8)),
                ..Query::default()
            };
            let queries = [Query::default(), before_deletion];
            for (stores, dirs) in [
                (&stores[..1], &dirs[..1]),
                (&stores[1..], &dirs[1..]),
                (&stores[..], &dirs[..]),
            ] {
                for query in &queries {
                    let by_hand = listed(stores, dirs, query);
                    assert_eq!(by_hand, serde_lines(stores, dirs, query));
                    for line in by_hand.lines() {
                        serde_json::from_str::<serde_json::Value>(line).unwrap();
                    }
                }
            }
            // What the comparison covered: a write past 64 KiB, the deleted episode, every
            // outcome, a null return.
            let everything = listed(&stores, &dirs, &queries[1]);
            assert!(everything.len() > 2 << 16, "{} bytes", everything.len());
            assert!(everything.contains(r#""episode":3,"#));
            assert!(!listed(&stores[..1], &dirs[..1], &queries[0]).contains(r#""episode":3,"#));
            for needle in [
                r#""outcome":"terminated""#,
                r#""outcome":"truncated""#,
                r#""outcome":"interrupted""#,
                r#""return":null"#,
                r#""split":"v\"al""#,
            ] {
                assert!(everything.contains(needle), "{needle}");
            }
        }

        /// Stdout closed by its reader (`ls --json | head -1`) at any byte of a line: the
        /// error must stay a BrokenPipe, which the CLI ends on quietly (once wrapped as
        /// "other", it was printed with exit status 2).
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
            let dir = tempfile::tempdir().unwrap();
            let store = Store::create(dir.path()).unwrap();
            record_awkward(&store);
            let (stores, dirs) = ([store], [dir.path().to_owned()]);
            // Episode 2: every kind of metadata value.
            let query = Query {
                before_id: Some(EpisodeId(3)),
                ..Query::default()
            };
            let whole = listed(&stores, &dirs, &query);
            for open_bytes in 0..whole.len() {
                let err =
                    super::super::write_json(&stores, &dirs, &query, &mut ClosesAfter(open_bytes))
                        .unwrap_err();
                assert!(
                    crate::io_kinds(&err).any(|k| k == std::io::ErrorKind::BrokenPipe),
                    "closed after {open_bytes} bytes: {err:#}"
                );
            }
        }
    }
}
