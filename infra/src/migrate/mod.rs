//! Versioned item migrations of the single table (`make migrate`): each is
//! applied once per table and recorded there (`record`), resumes from its
//! checkpoint after a failure, runs under a lease so that two runners never
//! both apply it, and has a dry run that counts what it would change and
//! writes nothing (`runner`).
//!
//! **Migrations are additive** (expand, then contract in a later release).
//! A migration may add items and attributes, and fill them in; it never
//! removes, renames or re-types what the code of the previous release
//! reads, and the code that ships with it keeps working on items it has
//! not reached yet. So:
//!
//! - the previous release works on a migrated table, and a rollback needs
//!   no down-migration (there is none);
//! - the new code never waits for a migration to finish, and the code that
//!   made the change lazily (on first use) stays until every table has the
//!   migration recorded; only a later release removes it, or removes what
//!   the migration made obsolete (the contract step).
//!
//! Each item change is conditional on the item not being changed yet, so
//! a page redone after a crash, or by a runner that took over an expired
//! lease, changes nothing twice.
//!
//! Adding one: a module of its own implementing [`Migration`] with the next
//! version, listed in [`all`]. Its version and source never change once it
//! has run anywhere (its record would no longer match it).

mod admin_count;
mod claim_hash;
pub mod record;
mod runner;

use std::time::Duration;

use aws_sdk_dynamodb::operation::{
    query::builders::QueryFluentBuilder, scan::builders::ScanFluentBuilder,
};
use futures::{FutureExt, future::BoxFuture};
use model::{Item, StoreError, Table, error::dynamo};
use platform::config::{ConfigError, Source as ConfigSource, http_url, present, required};

pub use admin_count::AdminCount;
pub use claim_hash::ClaimLoginCopies;
pub use record::{Checkpoint, Lease, Position, Record};
pub use runner::{Migrator, Status};

/// Every migration, in the order they apply: by version, ascending.
pub fn all() -> Vec<Box<dyn Migration>> {
    vec![Box::new(AdminCount), Box::new(ClaimLoginCopies)]
}

/// What a migration reads, page by page: the items it may change or
/// count. A read is split into segments that run in parallel, each with
/// its own position in the checkpoint.
pub enum Source {
    /// One Query (of an index partition, say): a single segment.
    Query(QueryFluentBuilder),
    /// A parallel Scan of the whole table in `segments` segments. It also
    /// reads the migration records themselves: skip what is not yours.
    Scan {
        scan: ScanFluentBuilder,
        segments: u32,
    },
}

/// One page as read: the items, and how many there were (with `Select =
/// COUNT` the items are not sent back, only their count).
#[derive(Debug, Default)]
pub struct PageRead {
    pub items: Vec<Item>,
    pub count: u64,
}

/// One page read, and where its segment stands after it.
struct Read {
    page: PageRead,
    next: Position,
}

impl Source {
    pub fn segments(&self) -> u32 {
        match self {
            Source::Query(_) => 1,
            Source::Scan { segments, .. } => *segments,
        }
    }

    /// The page of `segment` after `start`, at most `limit` items read.
    async fn read(
        &self,
        segment: u32,
        start: Option<Item>,
        limit: Option<u32>,
    ) -> Result<Read, StoreError> {
        let limit = limit.map(|limit| i32::try_from(limit).unwrap_or(i32::MAX));
        let (items, count, last) = match self {
            Source::Query(query) => {
                let output = query
                    .clone()
                    .set_limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(dynamo)?;
                (output.items, output.count, output.last_evaluated_key)
            }
            Source::Scan { scan, segments } => {
                let output = scan
                    .clone()
                    .segment(i32::try_from(segment).unwrap_or_default())
                    .total_segments(i32::try_from(*segments).unwrap_or(1))
                    .set_limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(dynamo)?;
                (output.items, output.count, output.last_evaluated_key)
            }
        };
        Ok(Read {
            page: PageRead {
                items: items.unwrap_or_default(),
                count: u64::try_from(count).unwrap_or_default(),
            },
            next: match last.filter(|key| !key.is_empty()) {
                Some(key) => Position::After(key),
                None => Position::Done,
            },
        })
    }
}

/// What one page came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageDone {
    /// Items changed (in a dry run: that would be).
    pub changed: u64,
    /// This page's share of what the migration sums (`Checkpoint::tally`).
    pub tally: u64,
}

/// One migration. Written once per change of the data model, and then
/// never edited: see the module's rules.
pub trait Migration: Send + Sync {
    /// Its number: unique, and the order it applies in.
    fn version(&self) -> u32;
    /// A short name, kebab-case, for the output and the record.
    fn name(&self) -> &'static str;
    /// What it does, in a line.
    fn summary(&self) -> &'static str;
    /// What it reads.
    fn source(&self, table: &Table) -> Source;

    /// Whether the table still needs it: `false` records it applied
    /// without reading anything (what it makes is already there).
    fn needed<'a>(&'a self, _table: &'a Table) -> BoxFuture<'a, Result<bool, StoreError>> {
        async { Ok(true) }.boxed()
    }

    /// Acts on one page: changes the items that need it, each with a
    /// conditional write that does nothing to an item already changed.
    /// In a dry run, counts them and writes nothing.
    fn page<'a>(
        &'a self,
        table: &'a Table,
        page: PageRead,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<PageDone, StoreError>>;

    /// After the last page: what the sum of every page's tally calls for
    /// (one conditional write, say); the items changed. Runs again if the
    /// run stops after it and before the record says applied, so it must
    /// be idempotent too.
    fn finish<'a>(
        &'a self,
        _table: &'a Table,
        _tally: u64,
        _dry_run: bool,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        async { Ok(0) }.boxed()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Count what would change; write nothing, not even the record.
    pub dry_run: bool,
    /// Items read per page (DynamoDB's `Limit`), and so per checkpoint;
    /// `None`: as many as fit DynamoDB's 1 MB page.
    pub page_size: Option<u32>,
    /// How long the lease excludes other runners after it was taken or
    /// last renewed (every page renews it). Longer than any one page can
    /// take; a runner that crashed holds the migration up this long.
    pub lease: Duration,
    /// Stops after this many pages were saved, as a crash would (the lease
    /// is left to expire): how the tests cut a run midway.
    pub stop_after_pages: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            page_size: None,
            lease: Duration::from_secs(300),
            stop_after_pages: None,
        }
    }
}

/// How running one migration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This run finished it.
    Applied { changed: u64 },
    /// Its record already said applied: nothing was read or written.
    AlreadyApplied,
    /// The dry run's count.
    WouldChange { items: u64 },
    /// `RunOptions::stop_after_pages` stopped it; a rerun resumes.
    Stopped { pages: u32 },
}

fn items(count: u64) -> String {
    match count {
        1 => "1 item".to_owned(),
        count => format!("{count} items"),
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied { changed } => write!(f, "applied, {} changed", items(*changed)),
            Outcome::AlreadyApplied => write!(f, "already applied"),
            Outcome::WouldChange { items: count } => write!(f, "would change {}", items(*count)),
            Outcome::Stopped { pages } => write!(
                f,
                "stopped after {pages} pages; a rerun resumes from its checkpoint"
            ),
        }
    }
}

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum MigrateError {
    #[error("{}", platform::error::ErrorChain(.0))]
    Store(#[from] StoreError),
    #[error(
        "migration {version} is being run by {owner} (its lease runs until {until}); \
         run again after that"
    )]
    LeaseHeld {
        version: u32,
        owner: String,
        until: String,
    },
    #[error(
        "migration {version}: another runner took the lease over (this one stalled past it); \
         it carries on from the last checkpoint"
    )]
    LeaseLost { version: u32 },
    #[error("migration {version}: its record makes no sense: {reason}")]
    Malformed { version: u32, reason: String },
}

impl std::fmt::Debug for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// An instant in ms since the epoch, as the output spells times.
fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

/// The command line: `migrate [--dry-run] [list|status]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Applies every migration not yet applied, in order.
    Apply { dry_run: bool },
    /// The migrations this build knows, without asking the table.
    List,
    /// Each migration's record.
    Status,
}

pub const USAGE: &str = "usage: migrate [--dry-run] [list|status]";

/// A message for the operator: a wrong command line, a failed migration.
/// `Debug` prints it as is, which is what `main` returning it shows.
#[derive(thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Message(pub String);

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Command {
    pub fn parse(args: &[String]) -> Result<Command, Message> {
        let mut dry_run = false;
        let mut command = None;
        for arg in args {
            match arg.as_str() {
                "--dry-run" if !dry_run => dry_run = true,
                "list" | "status" if command.is_none() => command = Some(arg.as_str()),
                other => return Err(Message(format!("unexpected argument {other:?}; {USAGE}"))),
            }
        }
        match (command, dry_run) {
            (None, dry_run) => Ok(Command::Apply { dry_run }),
            (Some(_), true) => Err(Message(format!(
                "--dry-run goes with applying only; {USAGE}"
            ))),
            (Some("list"), false) => Ok(Command::List),
            (Some(_), false) => Ok(Command::Status),
        }
    }
}

/// Which table a run changes, from the environment as every infra binary
/// reads it: `TABLE_NAME` and `AWS_REGION` must be set (a migration run
/// against a default region could change another stack's table), and
/// `AWS_ENDPOINT_URL`, when set, points it at an emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub table_name: String,
    pub region: String,
    pub endpoint: Option<String>,
}

impl Target {
    pub fn from_source(source: &dyn ConfigSource) -> Result<Target, ConfigError> {
        Ok(Target {
            table_name: platform::config::StorageConfig::table_name(source)?,
            region: required(source, "AWS_REGION")?,
            endpoint: match present(source, "AWS_ENDPOINT_URL") {
                Some(_) => Some(http_url(source, "AWS_ENDPOINT_URL", None)?),
                None => None,
            },
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "table {} in {}", self.table_name, self.region)?;
        match &self.endpoint {
            Some(endpoint) => write!(f, " at {endpoint}"),
            None => write!(f, " (AWS)"),
        }
    }
}

/// The line the output gives a migration.
pub fn line(migration: &dyn Migration, what: impl std::fmt::Display) -> String {
    format!(
        "migration {} ({}): {what}",
        migration.version(),
        migration.name()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn versions_are_unique_and_ascending_and_names_unique() {
        let migrations = all();
        let versions: Vec<u32> = migrations.iter().map(|m| m.version()).collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{versions:?}"
        );
        assert!(versions.iter().all(|version| *version > 0));
        let names: HashSet<&str> = migrations.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), migrations.len());
        for name in names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
        }
    }

    #[test]
    fn the_command_line_is_apply_list_or_status() {
        let cases = [
            (vec![], Ok(Command::Apply { dry_run: false })),
            (vec!["--dry-run"], Ok(Command::Apply { dry_run: true })),
            (vec!["list"], Ok(Command::List)),
            (vec!["status"], Ok(Command::Status)),
        ];
        for (given, expected) in cases {
            assert_eq!(Command::parse(&args(&given)), expected, "{given:?}");
        }
        for wrong in [
            vec!["apply"],
            vec!["--dry-run", "--dry-run"],
            vec!["list", "status"],
            vec!["--dry-run", "status"],
            vec!["status", "--force"],
        ] {
            let err = Command::parse(&args(&wrong)).unwrap_err();
            assert!(err.0.contains(USAGE), "{wrong:?}: {err}");
            assert_eq!(format!("{err:?}"), err.0, "shown as is");
        }
    }

    #[test]
    fn the_target_names_a_missing_variable() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let full = env(&[
            ("TABLE_NAME", "t"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/"),
        ]);
        let target = Target::from_source(&|name: &str| full.get(name).cloned()).unwrap();
        assert_eq!(
            target,
            Target {
                table_name: "t".into(),
                region: "eu-west-1".into(),
                endpoint: Some("http://127.0.0.1:4566".into()),
            }
        );
        assert_eq!(
            target.to_string(),
            "table t in eu-west-1 at http://127.0.0.1:4566"
        );
        for missing in ["TABLE_NAME", "AWS_REGION"] {
            let mut partial = full.clone();
            partial.remove(missing);
            let err = Target::from_source(&|name: &str| partial.get(name).cloned()).unwrap_err();
            assert_eq!(err, ConfigError::Missing { name: missing });
        }
        let mut aws = full.clone();
        aws.remove("AWS_ENDPOINT_URL");
        let target = Target::from_source(&|name: &str| aws.get(name).cloned()).unwrap();
        assert_eq!(target.endpoint, None);
        assert_eq!(target.to_string(), "table t in eu-west-1 (AWS)");
        let mut bad = full;
        bad.insert("AWS_ENDPOINT_URL".into(), "localhost:4566".into());
        let err = Target::from_source(&|name: &str| bad.get(name).cloned()).unwrap_err();
        assert!(
            err.to_string().contains("AWS_ENDPOINT_URL is invalid"),
            "{err}"
        );
    }

    #[test]
    fn outcomes_read_as_the_output_says_them() {
        let cases = [
            (Outcome::Applied { changed: 1 }, "applied, 1 item changed"),
            (Outcome::Applied { changed: 0 }, "applied, 0 items changed"),
            (Outcome::AlreadyApplied, "already applied"),
            (Outcome::WouldChange { items: 3 }, "would change 3 items"),
            (Outcome::WouldChange { items: 1 }, "would change 1 item"),
        ];
        for (outcome, text) in cases {
            assert_eq!(outcome.to_string(), text);
        }
        assert_eq!(
            line(&AdminCount, Outcome::AlreadyApplied),
            "migration 1 (admin-count): already applied"
        );
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
