//! The episode selector flags, one clap `Args` struct shared by every command that selects
//! episodes (ls, rm, relabel, partition, ...), and its one conversion to the library's
//! [`Query`].

use anyhow::Result;
use trajstore::{EpisodeId, Outcome, Query};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct EpisodeFilters {
    /// Only episodes of this user (repeat: any of them).
    #[arg(long)]
    pub user: Vec<String>,
    /// Only episodes of this env id (repeat: any of them).
    #[arg(long)]
    pub env: Vec<String>,
    /// Only episodes carrying this tag (repeat: all of them).
    #[arg(long)]
    pub tag: Vec<String>,
    /// terminated, truncated or interrupted (repeat: any of them).
    #[arg(long)]
    pub outcome: Vec<String>,
    /// Only episodes of this split (`trajstore split`; repeat: any of them).
    #[arg(long)]
    pub split: Vec<String>,
    /// Only episodes whose return is at least this.
    #[arg(long, allow_negative_numbers = true)]
    pub min_return: Option<f64>,
    /// Only episodes whose return is at most this.
    #[arg(long, allow_negative_numbers = true)]
    pub max_return: Option<f64>,
    /// Only episodes of at least this many steps.
    #[arg(long)]
    pub min_steps: Option<u32>,
    /// Only episodes committed before this id (a snapshot cutoff shared by a job's ranks).
    #[arg(long)]
    pub before_id: Option<u64>,
}

impl EpisodeFilters {
    /// The library query these flags mean.
    pub fn query(&self) -> Result<Query> {
        let outcomes = self
            .outcome
            .iter()
            .map(|o| o.parse::<Outcome>())
            .collect::<Result<_, _>>()?;
        Ok(Query {
            users: self.user.clone(),
            envs: self.env.clone(),
            tags: self.tag.clone(),
            outcomes,
            splits: self.split.clone(),
            min_return: self.min_return,
            max_return: self.max_return,
            min_steps: self.min_steps,
            before_id: self.before_id.map(EpisodeId),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        filters: EpisodeFilters,
    }

    #[test]
    fn flags_become_the_query_they_name() {
        let cli = Cli::parse_from([
            "t",
            "--user",
            "ana",
            "--user",
            "bo",
            "--outcome",
            "truncated",
            "--split",
            "val",
            "--min-return",
            "-1.5",
            "--before-id",
            "9",
        ]);
        let q = cli.filters.query().unwrap();
        assert_eq!(q.users, ["ana", "bo"]);
        assert_eq!(q.outcomes, [Outcome::Truncated]);
        assert_eq!(q.splits, ["val"]);
        assert_eq!(q.min_return, Some(-1.5));
        assert_eq!(q.before_id, Some(EpisodeId(9)));
        assert!(q.has_filter());
    }

    #[test]
    fn a_bad_outcome_is_refused_naming_the_valid_ones() {
        let cli = Cli::parse_from(["t", "--outcome", "won"]);
        let err = cli.filters.query().unwrap_err().to_string();
        assert!(
            err.contains("\"won\"") && err.contains("terminated"),
            "{err}"
        );
    }
}
