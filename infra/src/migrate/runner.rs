//! Running migrations: take the lease, resume from the checkpoint, read
//! the segments in parallel saving each page's position as it goes, then
//! the migration's last step and the record marked applied.
//!
//! A page's item changes come before its checkpoint, and the checkpoint
//! and the page's tally are one write: a crash between the two redoes
//! that page, whose changes are conditional (no item changes twice) and
//! whose tally was never saved (none counts twice).

use std::sync::atomic::{AtomicU32, Ordering};

use futures::future::try_join_all;
use model::{Table, clock::unix_now_ms};

use super::{
    MigrateError, Migration, Outcome, RunOptions, Source,
    record::{Acquired, Checkpoint, Lease, Position, Record, Records},
    rfc3339_ms,
};

/// Runs migrations on one table, as one runner (one lease owner).
pub struct Migrator {
    table: Table,
    owner: String,
}

/// A migration's state, as its record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Never run.
    Pending,
    /// Begun, not finished: it resumes from here.
    Running {
        checkpoint: Checkpoint,
        lease: Option<Lease>,
    },
    Applied {
        applied_at: String,
        changed: u64,
    },
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Pending => write!(f, "not applied"),
            Status::Applied {
                applied_at,
                changed,
            } => write!(
                f,
                "applied at {applied_at}, {} changed",
                super::items(*changed)
            ),
            Status::Running { checkpoint, lease } => {
                write!(
                    f,
                    "in progress: {} of {} segments read, {} changed so far; ",
                    checkpoint.segments_done(),
                    checkpoint.positions.len(),
                    super::items(checkpoint.changed)
                )?;
                match lease {
                    Some(lease) if lease.is_live(unix_now_ms()) => write!(
                        f,
                        "{} holds the lease until {}",
                        lease.owner,
                        rfc3339_ms(lease.expires_at_ms)
                    ),
                    Some(lease) => write!(
                        f,
                        "the lease of {} expired at {}; a run resumes it",
                        lease.owner,
                        rfc3339_ms(lease.expires_at_ms)
                    ),
                    None => write!(f, "a run resumes it"),
                }
            }
        }
    }
}

/// Where a walk of the source saves its positions: nowhere in a dry run.
struct Saving<'a> {
    records: Records<'a>,
    owner: &'a str,
    lease_ms: i64,
}

/// One pass over a migration's source, every segment at once.
struct Walk<'a> {
    table: &'a Table,
    migration: &'a dyn Migration,
    source: Source,
    options: &'a RunOptions,
    saving: Option<Saving<'a>>,
    pages_saved: AtomicU32,
}

/// What a segment's pages came to.
#[derive(Debug, Default)]
struct Walked {
    changed: u64,
    tally: u64,
    stopped: bool,
}

impl Walk<'_> {
    async fn segment(&self, segment: u32, mut position: Position) -> Result<Walked, MigrateError> {
        let mut walked = Walked::default();
        loop {
            let start = match position {
                Position::Done => return Ok(walked),
                Position::Start => None,
                Position::After(key) => Some(key),
            };
            if self.saving.is_some()
                && let Some(limit) = self.options.stop_after_pages
                && self.pages_saved.load(Ordering::SeqCst) >= limit
            {
                walked.stopped = true;
                return Ok(walked);
            }
            let read = self
                .source
                .read(segment, start, self.options.page_size)
                .await?;
            let done = self
                .migration
                .page(self.table, read.page, self.saving.is_none())
                .await?;
            if let Some(saving) = &self.saving {
                saving
                    .records
                    .save(
                        saving.owner,
                        segment,
                        &read.next,
                        done.changed,
                        done.tally,
                        unix_now_ms() + saving.lease_ms,
                    )
                    .await?;
                self.pages_saved.fetch_add(1, Ordering::SeqCst);
            }
            walked.changed += done.changed;
            walked.tally += done.tally;
            position = read.next;
        }
    }

    /// Every segment from its position, in parallel.
    async fn all(&self, positions: Vec<Position>) -> Result<Walked, MigrateError> {
        let segments = positions
            .into_iter()
            .enumerate()
            .map(|(segment, position)| self.segment(segment as u32, position));
        let mut total = Walked::default();
        for walked in try_join_all(segments).await? {
            total.changed += walked.changed;
            total.tally += walked.tally;
            total.stopped |= walked.stopped;
        }
        Ok(total)
    }
}

impl Migrator {
    /// A runner with an owner id of its own.
    pub fn new(table: Table) -> Self {
        Migrator {
            table,
            owner: ulid::Ulid::new().to_string(),
        }
    }

    /// The id this runner's leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn status(&self, migration: &dyn Migration) -> Result<Status, MigrateError> {
        Ok(
            match Records::new(&self.table, migration.version())
                .read()
                .await?
            {
                None => Status::Pending,
                Some(Record::Running { checkpoint, lease }) => {
                    Status::Running { checkpoint, lease }
                }
                Some(Record::Applied {
                    applied_at,
                    changed,
                }) => Status::Applied {
                    applied_at,
                    changed,
                },
            },
        )
    }

    /// Applies `migration` unless its record says it was (or, in a dry
    /// run, counts what applying it would change).
    pub async fn run(
        &self,
        migration: &dyn Migration,
        options: &RunOptions,
    ) -> Result<Outcome, MigrateError> {
        let records = Records::new(&self.table, migration.version());
        if let Some(Record::Applied { .. }) = records.read().await? {
            return Ok(Outcome::AlreadyApplied);
        }
        if options.dry_run {
            return self.dry_run(migration, options).await;
        }
        let source = migration.source(&self.table);
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
        let now = unix_now_ms();
        let checkpoint = match records
            .acquire(
                migration.name(),
                &self.owner,
                source.segments(),
                now,
                now.saturating_add(lease_ms),
            )
            .await?
        {
            Acquired::Held(checkpoint) => checkpoint,
            Acquired::AlreadyApplied => return Ok(Outcome::AlreadyApplied),
            Acquired::Busy(lease) => {
                return Err(MigrateError::LeaseHeld {
                    version: migration.version(),
                    owner: lease.owner,
                    until: rfc3339_ms(lease.expires_at_ms),
                });
            }
        };
        let saving = Saving {
            records,
            owner: &self.owner,
            lease_ms,
        };
        let walk = Walk {
            table: &self.table,
            migration,
            source,
            options,
            saving: Some(saving),
            pages_saved: AtomicU32::new(0),
        };
        let result = self.apply(&walk, checkpoint).await;
        if let Err(err) = &result
            && !matches!(err, MigrateError::LeaseLost { .. })
            && let Some(saving) = &walk.saving
        {
            // A failed run gives the lease back, so the rerun that follows
            // the fix need not wait it out; if that fails too, it expires.
            let _ = saving.records.release(&self.owner).await;
        }
        result
    }

    async fn apply(
        &self,
        walk: &Walk<'_>,
        checkpoint: Checkpoint,
    ) -> Result<Outcome, MigrateError> {
        let Some(saving) = &walk.saving else {
            unreachable!("an applying walk saves");
        };
        if !walk.migration.needed(&self.table).await? {
            saving.records.complete(&self.owner, 0).await?;
            return Ok(Outcome::Applied {
                changed: checkpoint.changed,
            });
        }
        let walked = walk.all(checkpoint.positions).await?;
        if walked.stopped {
            return Ok(Outcome::Stopped {
                pages: walk.pages_saved.load(Ordering::SeqCst),
            });
        }
        let tally = checkpoint.tally + walked.tally;
        let finished = walk.migration.finish(&self.table, tally, false).await?;
        saving.records.complete(&self.owner, finished).await?;
        Ok(Outcome::Applied {
            changed: checkpoint.changed + walked.changed + finished,
        })
    }

    /// Reads the whole source from the start (an item a stopped run
    /// already changed no longer needs changing, so it is not counted),
    /// writing nothing.
    async fn dry_run(
        &self,
        migration: &dyn Migration,
        options: &RunOptions,
    ) -> Result<Outcome, MigrateError> {
        if !migration.needed(&self.table).await? {
            return Ok(Outcome::WouldChange { items: 0 });
        }
        let source = migration.source(&self.table);
        let positions = Checkpoint::fresh(source.segments()).positions;
        let walk = Walk {
            table: &self.table,
            migration,
            source,
            options,
            saving: None,
            pages_saved: AtomicU32::new(0),
        };
        let walked = walk.all(positions).await?;
        let finished = migration.finish(&self.table, walked.tally, true).await?;
        Ok(Outcome::WouldChange {
            items: walked.changed + finished,
        })
    }

    /// Runs `migrations` in order, up to the first that does not end
    /// applied (an error, or a stop): a later one may build on it. One
    /// result per migration run.
    pub async fn run_all<'m>(
        &self,
        migrations: &'m [Box<dyn Migration>],
        options: &RunOptions,
    ) -> Vec<(&'m dyn Migration, Result<Outcome, MigrateError>)> {
        let mut results = Vec::new();
        for migration in migrations {
            let result = self.run(migration.as_ref(), options).await;
            let go_on = matches!(
                result,
                Ok(Outcome::Applied { .. } | Outcome::AlreadyApplied | Outcome::WouldChange { .. })
            );
            results.push((migration.as_ref(), result));
            if !go_on {
                break;
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_says_where_a_migration_stands() {
        assert_eq!(Status::Pending.to_string(), "not applied");
        assert_eq!(
            Status::Applied {
                applied_at: "2026-01-01T00:00:00.000Z".into(),
                changed: 1
            }
            .to_string(),
            "applied at 2026-01-01T00:00:00.000Z, 1 item changed"
        );
        let checkpoint = Checkpoint {
            positions: vec![Position::Done, Position::Start],
            changed: 5,
            tally: 0,
        };
        let running = |lease| {
            Status::Running {
                checkpoint: checkpoint.clone(),
                lease,
            }
            .to_string()
        };
        let held = running(Some(Lease {
            owner: "A".into(),
            expires_at_ms: i64::MAX / 2,
        }));
        assert!(
            held.starts_with("in progress: 1 of 2 segments read, 5 items changed so far; A holds the lease until "),
            "{held}"
        );
        assert_eq!(
            running(Some(Lease {
                owner: "A".into(),
                expires_at_ms: 0
            })),
            "in progress: 1 of 2 segments read, 5 items changed so far; \
             the lease of A expired at 1970-01-01T00:00:00.000Z; a run resumes it"
        );
        assert!(running(None).ends_with("so far; a run resumes it"));
    }
}
