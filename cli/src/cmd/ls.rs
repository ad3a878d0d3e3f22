use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::filters::EpisodeFilters;
use super::open_shards;
use crate::json::{EpisodeFields, EpisodeLine, Timestamp};

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
    let sharded = stores.len() > 1;
    // One buffered writer for every line: stdout alone flushes (a write call) per line.
    let mut lines = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !json {
        let shard = if sharded { "shard  " } else { "" };
        writeln!(lines, "{shard}{}", header())?;
    }
    for (shard, store) in stores.iter().enumerate() {
        let snapshot = store.snapshot()?;
        if !json {
            // The table needs no metadata map: the compact catalog rows are enough.
            for e in snapshot.catalog_columns(&query)?.rows() {
                if sharded {
                    write!(lines, "{shard:>5}  ")?;
                }
                writeln!(lines, "{}", Line(EpisodeFields::from(&e)))?;
            }
            continue;
        }
        let split = snapshot.split_spec()?;
        let store_path = dirs[shard].display().to_string();
        // Catalog rows and, apart, the metadata maps: no chunk list is decoded. Maps are read
        // a batch at a time, so a million episodes never hold a million maps.
        let catalog = snapshot.catalog_columns(&query)?;
        let mut metadata = trajstore::MetadataMaps::default();
        for e in catalog.rows() {
            let at = e.index() % METADATA_BATCH;
            if at == 0 {
                let ids = catalog.ids();
                let batch = &ids[e.index()..ids.len().min(e.index() + METADATA_BATCH)];
                metadata = snapshot.metadata_maps(batch)?;
            }
            let line = EpisodeLine {
                split: split
                    .as_ref()
                    .map(|spec| spec.label(e.id().get(), e.user())),
                shard: sharded.then_some(shard),
                store: sharded.then_some(store_path.as_str()),
                ..EpisodeLine::of_row(EpisodeFields::from(&e), metadata.get(at))
            };
            line.write(&mut lines)?;
            lines.write_all(b"\n")?;
        }
    }
    lines.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The header of the episode table `ls` prints.
pub(crate) fn header() -> String {
    format!(
        "{:>8}  {:<16} {:<16} {:>7} {:>10}  {:<11} started",
        "episode", "user", "env", "steps", "return", "outcome"
    )
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
    use crate::json::EpisodeFields;

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
                seed: None,
                tags: Vec::new(),
                started_at_us: [0, 1_700_000_000_123_456, -62_167_219_200_000_001][i % 3],
                ended_at_us: 0,
                raw_bytes: 0,
                stored_bytes: 0,
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
}
