//! The record a migration keeps in the table: one item per version
//! (`MIGRATION#<version>` / `MIGRATION`), which says whether it was applied
//! and, while it runs, who holds its lease and where each segment of its
//! read stopped.
//!
//! Every write here is conditional on the record's state, so the record is
//! the one arbiter between runners: taking the lease is a single
//! conditional `UpdateItem`, and a checkpoint or the final "applied" is
//! written only by the lease holder. A runner whose lease was taken over
//! (it stalled past the expiry) finds its next write refused and stops.
//!
//! The record carries no `entity` attribute: it is bookkeeping of the
//! tool, no item of the application, and the stream filters never select
//! it (as with rate-limit windows).

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};
use model::{
    Item, Table,
    error::dynamo,
    keys::{MIGRATION_SK, migration_pk},
    table::key,
};

use super::MigrateError;

const VERSION: &str = "version";
const NAME: &str = "name";
const STATUS: &str = "status";
const STARTED_AT: &str = "startedAt";
const APPLIED_AT: &str = "appliedAt";
const LEASE_OWNER: &str = "leaseOwner";
const LEASE_EXPIRES_AT: &str = "leaseExpiresAt";
const CHECKPOINT: &str = "checkpoint";
const CHANGED: &str = "changed";
const TALLY: &str = "tally";

const RUNNING: &str = "running";
const APPLIED: &str = "applied";

/// Where one segment of a migration's read stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// Nothing read yet.
    Start,
    /// Read up to and including this key (DynamoDB's `LastEvaluatedKey`):
    /// the next read starts after it.
    After(Item),
    /// Read to the end.
    Done,
}

const START: &str = "start";
const DONE: &str = "done";

impl Position {
    fn to_attribute(&self) -> AttributeValue {
        match self {
            Position::Start => AttributeValue::S(START.into()),
            Position::After(key) => AttributeValue::M(key.clone()),
            Position::Done => AttributeValue::S(DONE.into()),
        }
    }

    fn from_attribute(value: &AttributeValue) -> Result<Position, String> {
        match value {
            AttributeValue::S(text) if text == START => Ok(Position::Start),
            AttributeValue::S(text) if text == DONE => Ok(Position::Done),
            AttributeValue::M(key) if !key.is_empty() => Ok(Position::After(key.clone())),
            other => Err(format!("a segment position is {other:?}")),
        }
    }
}

/// What a migration has done so far, saved with every page.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// One per segment of the migration's read, by segment number.
    pub positions: Vec<Position>,
    /// Items changed so far.
    pub changed: u64,
    /// What an aggregating migration has summed over the pages read so far
    /// (the admins counted): saved in the same write as the positions, so
    /// a resumed run neither loses a page's share nor adds it twice.
    pub tally: u64,
}

impl Checkpoint {
    /// The checkpoint of a migration not yet begun, over `segments`.
    pub fn fresh(segments: u32) -> Self {
        Checkpoint {
            positions: vec![Position::Start; segments as usize],
            changed: 0,
            tally: 0,
        }
    }

    /// How many segments were read to the end.
    pub fn segments_done(&self) -> usize {
        self.positions
            .iter()
            .filter(|position| **position == Position::Done)
            .count()
    }

    fn positions_attribute(&self) -> AttributeValue {
        AttributeValue::M(
            self.positions
                .iter()
                .enumerate()
                .map(|(segment, position)| (segment.to_string(), position.to_attribute()))
                .collect(),
        )
    }

    fn positions_from(value: &AttributeValue) -> Result<Vec<Position>, String> {
        let AttributeValue::M(map) = value else {
            return Err(format!("{CHECKPOINT} is {value:?}, not a map"));
        };
        (0..map.len())
            .map(|segment| {
                map.get(&segment.to_string())
                    .ok_or_else(|| format!("{CHECKPOINT} has no segment {segment}"))
                    .and_then(Position::from_attribute)
            })
            .collect()
    }
}

/// Who may run a migration, and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at_ms: i64,
}

impl Lease {
    /// Whether the lease still excludes other runners at `now_ms`: the
    /// same comparison the conditional take-over makes.
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms <= self.expires_at_ms
    }
}

/// A migration's record, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Applied {
        applied_at: String,
        changed: u64,
    },
    Running {
        checkpoint: Checkpoint,
        lease: Option<Lease>,
    },
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(raw)) => raw
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} is {raw:?}, not a count")),
        Some(other) => Err(format!("{name} is {other:?}, not a number")),
    }
}

impl Record {
    /// The record as stored; `Err` says what about it makes no sense.
    pub fn parse(item: &Item) -> Result<Record, String> {
        let changed = number(item, CHANGED)?.unwrap_or(0);
        match text(item, STATUS) {
            Some(APPLIED) => Ok(Record::Applied {
                applied_at: text(item, APPLIED_AT)
                    .ok_or_else(|| format!("an applied record without {APPLIED_AT}"))?
                    .to_owned(),
                changed,
            }),
            Some(RUNNING) => {
                let positions = item
                    .get(CHECKPOINT)
                    .ok_or_else(|| format!("a running record without {CHECKPOINT}"))
                    .and_then(Checkpoint::positions_from)?;
                let lease = match (text(item, LEASE_OWNER), number(item, LEASE_EXPIRES_AT)?) {
                    (Some(owner), Some(expires_at_ms)) => Some(Lease {
                        owner: owner.to_owned(),
                        expires_at_ms,
                    }),
                    (None, None) => None,
                    _ => return Err(format!("half a lease: {LEASE_OWNER} or {LEASE_EXPIRES_AT}")),
                };
                Ok(Record::Running {
                    checkpoint: Checkpoint {
                        positions,
                        changed,
                        tally: number(item, TALLY)?.unwrap_or(0),
                    },
                    lease,
                })
            }
            other => Err(format!("{STATUS} is {other:?}")),
        }
    }
}

/// What trying to take a migration's lease found.
#[derive(Debug)]
pub enum Acquired {
    /// The lease is ours; the run continues from this checkpoint.
    Held(Checkpoint),
    AlreadyApplied,
    /// Another runner holds it.
    Busy(Lease),
}

/// The record of one migration version, in one table.
pub struct Records<'a> {
    table: &'a Table,
    version: u32,
}

/// Builds an `UpdateItem` expression's `#name` placeholders for `names`.
fn names(names: &[&str]) -> HashMap<String, String> {
    names
        .iter()
        .map(|name| (format!("#{name}"), (*name).to_owned()))
        .collect()
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A conditional update's outcome: the item after it, or (`Err`) the item
/// as it was when the condition failed (`None`: there was none).
type Conditional = Result<Item, Option<Item>>;

impl<'a> Records<'a> {
    pub fn new(table: &'a Table, version: u32) -> Self {
        Records { table, version }
    }

    fn key(&self) -> Item {
        key(migration_pk(self.version), MIGRATION_SK.into())
    }

    fn malformed(&self, reason: String) -> MigrateError {
        MigrateError::Malformed {
            version: self.version,
            reason,
        }
    }

    /// The record, strongly consistent; `None` before the first run.
    pub async fn read(&self) -> Result<Option<Record>, MigrateError> {
        let output = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(self.key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        output
            .item
            .map(|item| Record::parse(&item).map_err(|reason| self.malformed(reason)))
            .transpose()
    }

    async fn update(
        &self,
        expression: &str,
        condition: &str,
        attribute_names: HashMap<String, String>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Conditional, MigrateError> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(self.key()))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(attribute_names))
            .set_expression_attribute_values(Some(
                values
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
            ))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Ok(output.attributes.unwrap_or_default())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Err(failed.item().cloned()))
                }
                _ => Err(dynamo(err).into()),
            },
        }
    }

    /// Takes the lease for `owner` until `until_ms`, creating the record on
    /// the first run: only if the migration is not applied and nobody
    /// holds a live lease at `now_ms`. A run that resumes gets the saved
    /// checkpoint, which must be over `segments`.
    pub async fn acquire(
        &self,
        name: &str,
        owner: &str,
        segments: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Acquired, MigrateError> {
        let fresh = Checkpoint::fresh(segments);
        let outcome = self
            .update(
                "SET #version = :version, #name = :name, \
                 #status = if_not_exists(#status, :running), \
                 #startedAt = if_not_exists(#startedAt, :now), \
                 #leaseOwner = :owner, #leaseExpiresAt = :until, \
                 #checkpoint = if_not_exists(#checkpoint, :fresh), \
                 #changed = if_not_exists(#changed, :zero), #tally = if_not_exists(#tally, :zero)",
                "attribute_not_exists(pk) OR (#status = :running AND \
                 (attribute_not_exists(#leaseOwner) OR #leaseExpiresAt < :nowMs))",
                names(&[
                    VERSION,
                    NAME,
                    STATUS,
                    STARTED_AT,
                    LEASE_OWNER,
                    LEASE_EXPIRES_AT,
                    CHECKPOINT,
                    CHANGED,
                    TALLY,
                ]),
                vec![
                    (":version", n(self.version)),
                    (":name", s(name)),
                    (":running", s(RUNNING)),
                    (":now", s(model::clock::now_rfc3339())),
                    (":owner", s(owner)),
                    (":until", n(until_ms)),
                    (":nowMs", n(now_ms)),
                    (":fresh", fresh.positions_attribute()),
                    (":zero", n(0)),
                ],
            )
            .await?;
        let parse = |item: &Item| Record::parse(item).map_err(|reason| self.malformed(reason));
        match outcome {
            Ok(item) => match parse(&item)? {
                Record::Running { checkpoint, .. }
                    if checkpoint.positions.len() == segments as usize =>
                {
                    Ok(Acquired::Held(checkpoint))
                }
                Record::Running { checkpoint, .. } => Err(self.malformed(format!(
                    "its checkpoint has {} segments; the migration now reads {segments} \
                     (a migration's source must not change between runs)",
                    checkpoint.positions.len()
                ))),
                Record::Applied { .. } => {
                    Err(self.malformed("the lease was granted on an applied record".to_owned()))
                }
            },
            Err(Some(item)) => match parse(&item)? {
                Record::Applied { .. } => Ok(Acquired::AlreadyApplied),
                Record::Running {
                    lease: Some(lease), ..
                } => Ok(Acquired::Busy(lease)),
                Record::Running { lease: None, .. } => Err(self
                    .malformed("the lease was refused, yet the record names no holder".to_owned())),
            },
            Err(None) => Err(self.malformed("the lease was refused on no record".to_owned())),
        }
    }

    /// Saves `segment`'s new position with what its page changed and
    /// tallied, and moves the lease on to `until_ms`: all in one write,
    /// which only the holder can make.
    pub async fn save(
        &self,
        owner: &str,
        segment: u32,
        position: &Position,
        changed: u64,
        tally: u64,
        until_ms: i64,
    ) -> Result<(), MigrateError> {
        let mut attribute_names = names(&[CHECKPOINT, LEASE_EXPIRES_AT, LEASE_OWNER, STATUS]);
        attribute_names.extend(names(&[CHANGED, TALLY]));
        attribute_names.insert("#segment".into(), segment.to_string());
        let outcome = self
            .update(
                "SET #checkpoint.#segment = :position, #leaseExpiresAt = :until \
                 ADD #changed :changed, #tally :tally",
                "#leaseOwner = :owner AND #status = :running",
                attribute_names,
                vec![
                    (":position", position.to_attribute()),
                    (":until", n(until_ms)),
                    (":changed", n(changed)),
                    (":tally", n(tally)),
                    (":owner", s(owner)),
                    (":running", s(RUNNING)),
                ],
            )
            .await?;
        outcome.map(drop).map_err(|_| self.lease_lost())
    }

    /// Marks the migration applied, adding the `changed` of its last step
    /// and dropping the lease and the checkpoint; only the holder can.
    pub async fn complete(&self, owner: &str, changed: u64) -> Result<(), MigrateError> {
        let outcome = self
            .update(
                "SET #status = :applied, #appliedAt = :now ADD #changed :changed \
                 REMOVE #leaseOwner, #leaseExpiresAt, #checkpoint",
                "#leaseOwner = :owner AND #status = :running",
                names(&[
                    STATUS,
                    APPLIED_AT,
                    CHANGED,
                    LEASE_OWNER,
                    LEASE_EXPIRES_AT,
                    CHECKPOINT,
                ]),
                vec![
                    (":applied", s(APPLIED)),
                    (":now", s(model::clock::now_rfc3339())),
                    (":changed", n(changed)),
                    (":owner", s(owner)),
                    (":running", s(RUNNING)),
                ],
            )
            .await?;
        outcome.map(drop).map_err(|_| self.lease_lost())
    }

    /// Gives the lease up, if `owner` still holds it, so that a rerun need
    /// not wait for it to expire: after an error, not after a crash.
    pub async fn release(&self, owner: &str) -> Result<(), MigrateError> {
        self.update(
            "REMOVE #leaseOwner, #leaseExpiresAt",
            "#leaseOwner = :owner",
            names(&[LEASE_OWNER, LEASE_EXPIRES_AT]),
            vec![(":owner", s(owner))],
        )
        .await
        .map(drop)
    }

    fn lease_lost(&self) -> MigrateError {
        MigrateError::LeaseLost {
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    fn a_key() -> Item {
        item(&[("pk", s("USERS")), ("sk", s("x"))])
    }

    #[test]
    fn positions_round_trip_through_their_attribute() {
        for position in [Position::Start, Position::After(a_key()), Position::Done] {
            assert_eq!(
                Position::from_attribute(&position.to_attribute()),
                Ok(position)
            );
        }
        for malformed in [s("middle"), AttributeValue::M(Item::new()), n(3)] {
            assert!(
                Position::from_attribute(&malformed).is_err(),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn a_checkpoint_keeps_each_segment_in_its_place() {
        let checkpoint = Checkpoint {
            positions: vec![Position::Done, Position::After(a_key()), Position::Start],
            changed: 0,
            tally: 0,
        };
        assert_eq!(
            Checkpoint::positions_from(&checkpoint.positions_attribute()),
            Ok(checkpoint.positions.clone())
        );
        assert_eq!(checkpoint.segments_done(), 1);
        assert_eq!(
            Checkpoint::fresh(2).positions,
            [Position::Start, Position::Start]
        );
        assert_eq!(Checkpoint::fresh(2).segments_done(), 0);
        let gap = AttributeValue::M(item(&[("0", s(DONE)), ("2", s(DONE))]));
        assert!(
            Checkpoint::positions_from(&gap)
                .unwrap_err()
                .contains("segment 1")
        );
        assert!(Checkpoint::positions_from(&s(DONE)).is_err());
    }

    #[test]
    fn records_parse_by_status() {
        let applied = item(&[
            (STATUS, s(APPLIED)),
            (APPLIED_AT, s("2026-01-01T00:00:00.000Z")),
            (CHANGED, n(1)),
        ]);
        assert_eq!(
            Record::parse(&applied),
            Ok(Record::Applied {
                applied_at: "2026-01-01T00:00:00.000Z".into(),
                changed: 1
            })
        );
        let running = item(&[
            (STATUS, s(RUNNING)),
            (CHECKPOINT, Checkpoint::fresh(1).positions_attribute()),
            (CHANGED, n(4)),
            (TALLY, n(7)),
            (LEASE_OWNER, s("me")),
            (LEASE_EXPIRES_AT, n(1000)),
        ]);
        assert_eq!(
            Record::parse(&running),
            Ok(Record::Running {
                checkpoint: Checkpoint {
                    positions: vec![Position::Start],
                    changed: 4,
                    tally: 7
                },
                lease: Some(Lease {
                    owner: "me".into(),
                    expires_at_ms: 1000
                }),
            })
        );
        let mut released = running.clone();
        released.remove(LEASE_OWNER);
        released.remove(LEASE_EXPIRES_AT);
        assert!(matches!(
            Record::parse(&released),
            Ok(Record::Running { lease: None, .. })
        ));
        let mut half = running.clone();
        half.remove(LEASE_EXPIRES_AT);
        assert!(Record::parse(&half).unwrap_err().contains("half a lease"));
        let mut uncounted = running.clone();
        uncounted.insert(TALLY.into(), s("many"));
        assert!(Record::parse(&uncounted).is_err());
        let mut no_checkpoint = running;
        no_checkpoint.remove(CHECKPOINT);
        assert!(Record::parse(&no_checkpoint).is_err());
        assert!(Record::parse(&item(&[(STATUS, s("paused"))])).is_err());
        assert!(Record::parse(&item(&[(STATUS, s(APPLIED))])).is_err());
    }

    #[test]
    fn a_lease_excludes_others_up_to_its_expiry() {
        let lease = Lease {
            owner: "me".into(),
            expires_at_ms: 1000,
        };
        assert!(lease.is_live(999) && lease.is_live(1000));
        assert!(!lease.is_live(1001));
    }
}
