//! Sending the email outbox (`model::outbox`, docs/API.md §8): an outbox
//! item's INSERT record, and the scheduled sweep of the ones still due.
//!
//! Each email is claimed first (a conditional update), so a duplicated
//! record, a retried batch and the sweep never send one twice while its
//! claim lives. A send SES refuses because of our side or a passing state
//! is tried a few times with backoff inside the invocation, bounded by a
//! deadline well inside the function's timeout, then the item is marked
//! `failed` with its attempts and its next attempt time, for the sweep.
//! Only SES refusing the recipient for good ends it as `refused`.
//!
//! An email never fails its record: whatever goes wrong is logged and left
//! on the item, which stays in the due index until settled, so the sweep
//! picks up whatever the stream could not finish, whenever that is.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use model::{
    StoreError, Table,
    clock::{unix_now, unix_now_ms},
    domain::UserStatus,
    outbox::{
        CommentLimits, EmailKind, OUTBOX_SHARDS, Outbox, OutboxItem, OutboxStatus, Settlement,
        ThrottleVerdict,
    },
    users::Users,
};
use platform::{
    config::{ConfigError, Source, positive_or, present},
    email::{Mailer, OutgoingEmail, SEND_TIMEOUT, SendError},
    error::ErrorChain,
};
use serde::{Deserialize, Serialize};

/// How long the email work of one invocation may take: the stream
/// function's timeout is 30 s (template.yaml), and the pushes and
/// settlements need their share of it.
pub const EMAIL_BUDGET: Duration = Duration::from_secs(20);

/// Emails sent at once in one invocation.
const CONCURRENT_SENDS: usize = 8;

/// Due emails the sweep takes per shard and invocation; the next sweep
/// takes the rest.
const SWEEP_PAGE: i32 = 25;

/// The longest wait between two sweeps' attempts at one email.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// How the worker sends the outbox, read once at cold start
/// (docs/CONFIGURATION.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// `EMAIL_SEND_ATTEMPTS`: sends tried per claim before the item is
    /// left `failed` for the sweep.
    pub attempts: u32,
    /// `EMAIL_RETRY_BASE_MS`: the first backoff inside an invocation,
    /// doubling after each attempt.
    pub retry_base: Duration,
    /// `EMAIL_RETRY_AFTER_SECS`: how long a failed email waits for the
    /// sweep, doubling with each failed claim up to an hour.
    pub retry_after: Duration,
    /// `OUTBOX_PENDING_GRACE_SECS`: how old a pending email must be before
    /// the sweep takes it from the stream (0: at once).
    pub pending_grace: Duration,
    /// `COMMENT_EMAIL_INTERVAL_SECS` and `COMMENT_EMAILS_PER_DAY`.
    pub comment_limits: CommentLimits,
}

impl OutboxConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let grace = match present(source, "OUTBOX_PENDING_GRACE_SECS") {
            None => 60,
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid {
                    name: "OUTBOX_PENDING_GRACE_SECS",
                    reason: format!("expected a whole number of seconds (got {raw:?})"),
                })?,
        };
        let interval = positive_or(
            source,
            "COMMENT_EMAIL_INTERVAL_SECS",
            900,
            86_400,
            "seconds",
        )?;
        Ok(Self {
            attempts: positive_or(source, "EMAIL_SEND_ATTEMPTS", 3, 5, "attempts")? as u32,
            retry_base: Duration::from_millis(positive_or(
                source,
                "EMAIL_RETRY_BASE_MS",
                200,
                2_000,
                "milliseconds",
            )?),
            retry_after: Duration::from_secs(positive_or(
                source,
                "EMAIL_RETRY_AFTER_SECS",
                60,
                3_600,
                "seconds",
            )?),
            pending_grace: Duration::from_secs(grace),
            comment_limits: CommentLimits {
                per_post_window_ms: (interval * 1000) as i64,
                per_day: positive_or(source, "COMMENT_EMAILS_PER_DAY", 50, 100_000, "emails")?,
            },
        })
    }
}

/// What sends the outbox.
#[derive(Debug)]
pub struct Sender {
    pub table: Table,
    pub mailer: Mailer,
    pub config: OutboxConfig,
}

/// What became of the emails one invocation took on.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Emails claimed and settled: sent, failed or ended otherwise.
    pub sent: u32,
    pub failed: u32,
    pub ended: u32,
    /// Emails another worker had, or that were settled already.
    pub not_claimed: u32,
    /// Emails whose claim or settlement DynamoDB did not take.
    pub errors: u32,
}

impl Tally {
    fn add(mut self, outcome: Outcome) -> Self {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Ended => self.ended += 1,
            Outcome::NotClaimed => self.not_claimed += 1,
            Outcome::Error => self.errors += 1,
        }
        self
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Sent,
    Failed,
    Ended,
    NotClaimed,
    Error,
}

impl Sender {
    /// Sends the emails of new outbox items (their INSERT records), a few
    /// at a time, until `deadline`.
    pub async fn send_new(&self, ids: Vec<ulid::Ulid>, deadline: Instant) -> Tally {
        // The stream is the first to have a new email: any pending one.
        self.send_all(ids, i64::MAX, deadline).await
    }

    /// The scheduled sweep: every unsettled email that is due, shard by
    /// shard from the index, sent as new ones are.
    pub async fn sweep(&self, deadline: Instant) -> Tally {
        let pending_before = self.pending_before();
        let pages = futures::future::join_all(
            (0..OUTBOX_SHARDS)
                .map(|shard| self.table.due_emails(shard, pending_before, SWEEP_PAGE)),
        )
        .await;
        let mut ids = Vec::new();
        let mut tally = Tally::default();
        for page in pages {
            match page {
                Ok(items) => ids.extend(items.into_iter().map(|item| item.id)),
                Err(err) => {
                    tracing::error!(error = %ErrorChain(&err), "reading due emails failed");
                    tally.errors += 1;
                }
            }
        }
        let sent = self.send_all(ids, pending_before, deadline).await;
        Tally {
            errors: tally.errors + sent.errors,
            ..sent
        }
    }

    fn pending_before(&self) -> i64 {
        let grace = i64::try_from(self.config.pending_grace.as_millis()).unwrap_or(i64::MAX);
        unix_now_ms().saturating_sub(grace)
    }

    async fn send_all(
        &self,
        ids: Vec<ulid::Ulid>,
        pending_before: i64,
        deadline: Instant,
    ) -> Tally {
        stream::iter(ids)
            .map(|id| self.send_one(id, pending_before, deadline))
            .buffer_unordered(CONCURRENT_SENDS)
            .fold(Tally::default(), |tally, outcome| async move {
                tally.add(outcome)
            })
            .await
    }

    async fn send_one(&self, id: ulid::Ulid, pending_before: i64, deadline: Instant) -> Outcome {
        let item = match self.table.claim_email(&id, pending_before).await {
            Ok(Some(item)) => item,
            Ok(None) => {
                tracing::debug!(outboxId = %id, "email claimed by another or settled");
                return Outcome::NotClaimed;
            }
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), outboxId = %id, "claiming an email failed; the sweep will");
                return Outcome::Error;
            }
        };
        let (attempts, settlement) = match self.attempt(&item, deadline).await {
            Ok(Some(done)) => done,
            Ok(None) => return Outcome::NotClaimed,
            Err(err) => {
                // The claim's lease runs out and the sweep takes it again.
                tracing::error!(error = %ErrorChain(&err), outboxId = %id, "preparing an email failed; the sweep will");
                return Outcome::Error;
            }
        };
        let outcome = match &settlement {
            Settlement::Sent => Outcome::Sent,
            Settlement::Failed { .. } => Outcome::Failed,
            Settlement::Ended { .. } => Outcome::Ended,
        };
        match self.table.settle_email(&item, attempts, &settlement).await {
            Ok(true) => {
                log_settled(&item, attempts, &settlement);
                outcome
            }
            Ok(false) => {
                tracing::warn!(outboxId = %id, "email claim lost before it was settled");
                Outcome::NotClaimed
            }
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), outboxId = %id, "settling an email failed");
                Outcome::Error
            }
        }
    }

    /// What to do with a claimed item, and how many sends it has had:
    /// `None` when it turned out another worker holds it.
    async fn attempt(
        &self,
        item: &OutboxItem,
        deadline: Instant,
    ) -> Result<Option<(u32, Settlement)>, StoreError> {
        let ended = |status, reason: &str| {
            Some((
                item.attempts,
                Settlement::Ended {
                    status,
                    reason: reason.to_owned(),
                },
            ))
        };
        if item.ttl <= unix_now() as i64 {
            return Ok(ended(OutboxStatus::Expired, "expired before it was sent"));
        }
        let email = match self.compose(item).await? {
            Ok(email) => email,
            Err(reason) => return Ok(ended(OutboxStatus::Skipped, reason)),
        };
        if item.kind == EmailKind::Comment && !item.throttle_passed {
            match self
                .table
                .take_comment_throttle(item, self.config.comment_limits)
                .await?
            {
                ThrottleVerdict::Passed => {}
                ThrottleVerdict::LostClaim => return Ok(None),
                verdict => return Ok(ended(OutboxStatus::Throttled, verdict.reason())),
            }
        }
        Ok(Some(self.send_with_retries(item, &email, deadline).await))
    }

    /// The email an item stands for, or why there is none to send.
    async fn compose(
        &self,
        item: &OutboxItem,
    ) -> Result<Result<OutgoingEmail, &'static str>, StoreError> {
        let Some(text) = item.text.clone() else {
            return Ok(Err("no text"));
        };
        if item.kind != EmailKind::Comment {
            return Ok(match item.to.clone() {
                Some(to) => Ok(OutgoingEmail {
                    to,
                    subject: item.subject.clone(),
                    text,
                }),
                None => Err("no address"),
            });
        }
        // As the recipient is now: a comment email goes only to an active
        // account whose address is verified.
        let Some(user) = self.table.user(&item.recipient_id).await? else {
            return Ok(Err("the recipient is gone"));
        };
        if user.status != UserStatus::Active {
            return Ok(Err("the recipient is not active"));
        }
        if !user.email_verified {
            return Ok(Err("the recipient's email is not verified"));
        }
        Ok(Ok(OutgoingEmail {
            to: user.email.to_string(),
            subject: item.subject.clone(),
            text: comment_email_text(self.mailer.app_url(), &user.name, &text, item),
        }))
    }

    async fn send_with_retries(
        &self,
        item: &OutboxItem,
        email: &OutgoingEmail,
        deadline: Instant,
    ) -> (u32, Settlement) {
        let mut attempts = item.attempts;
        let mut backoff = self.config.retry_base;
        let mut last = String::from("no time left in this invocation");
        for tried in 1..=self.config.attempts {
            if Instant::now() + SEND_TIMEOUT > deadline {
                break;
            }
            attempts += 1;
            match self.mailer.send(email).await {
                Ok(()) => return (attempts, Settlement::Sent),
                Err(SendError::Refused { code }) => {
                    return (
                        attempts,
                        Settlement::Ended {
                            status: OutboxStatus::Refused,
                            reason: code,
                        },
                    );
                }
                Err(SendError::Retry { code }) => {
                    tracing::warn!(outboxId = %item.id, attempt = attempts, code = %code, "email not sent; retrying");
                    last = code;
                }
            }
            if tried == self.config.attempts || Instant::now() + backoff + SEND_TIMEOUT > deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let next = unix_now_ms() + retry_delay(&self.config, attempts).as_millis() as i64;
        (
            attempts,
            Settlement::Failed {
                reason: last,
                next_attempt_at_ms: next,
            },
        )
    }
}

/// The sweep's wait before the next claim of an email sent `attempts`
/// times: `retry_after`, doubled for each claim already failed, at most an
/// hour.
fn retry_delay(config: &OutboxConfig, attempts: u32) -> Duration {
    let claims = attempts.div_ceil(config.attempts.max(1)).max(1);
    let doubled = config
        .retry_after
        .saturating_mul(2u32.saturating_pow(claims.saturating_sub(1).min(12)));
    doubled.min(MAX_RETRY_DELAY)
}

fn log_settled(item: &OutboxItem, attempts: u32, settlement: &Settlement) {
    match settlement {
        Settlement::Sent => {
            tracing::info!(outboxId = %item.id, kind = ?item.kind, attempts, "email sent");
        }
        Settlement::Failed {
            reason,
            next_attempt_at_ms,
        } => {
            tracing::warn!(outboxId = %item.id, kind = ?item.kind, attempts, code = %reason, nextAttemptAtMs = next_attempt_at_ms, "email failed; the sweep retries it");
        }
        Settlement::Ended { status, reason } => {
            tracing::info!(outboxId = %item.id, kind = ?item.kind, attempts, status = status.as_str(), reason = %reason, "email not sent");
        }
    }
}

/// The text of a comment's email: the notification, and a link to the post
/// when it names one.
pub fn comment_email_text(
    app_url: &str,
    name: &impl std::fmt::Display,
    body: &str,
    item: &OutboxItem,
) -> String {
    let post_link = item
        .post_id
        .map(|id| format!("\n\n{app_url}/posts/{id}"))
        .unwrap_or_default();
    format!("Hi {name},\n\n{body}{post_link}\n")
}

/// The EventBridge event of the sweep's schedule (template.yaml), as much
/// of it as the worker reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScheduledEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub time: Option<String>,
}

impl ScheduledEvent {
    /// What EventBridge names a schedule's events.
    pub const DETAIL_TYPE: &'static str = "Scheduled Event";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&'static str, &'static str)]) -> Result<OutboxConfig, ConfigError> {
        let pairs = pairs.to_vec();
        OutboxConfig::from_source(&move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.attempts, 3);
        assert_eq!(defaults.retry_base, Duration::from_millis(200));
        assert_eq!(defaults.retry_after, Duration::from_secs(60));
        assert_eq!(defaults.pending_grace, Duration::from_secs(60));
        assert_eq!(
            defaults.comment_limits,
            CommentLimits {
                per_post_window_ms: 900_000,
                per_day: 50
            }
        );
        let lowered = config(&[
            ("COMMENT_EMAILS_PER_DAY", "2"),
            ("COMMENT_EMAIL_INTERVAL_SECS", "1"),
            ("OUTBOX_PENDING_GRACE_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(lowered.comment_limits.per_day, 2);
        assert_eq!(lowered.comment_limits.per_post_window_ms, 1000);
        assert_eq!(lowered.pending_grace, Duration::ZERO);
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_variable() {
        for (name, value) in [
            ("COMMENT_EMAILS_PER_DAY", "0"),
            ("COMMENT_EMAILS_PER_DAY", "many"),
            ("COMMENT_EMAIL_INTERVAL_SECS", "-1"),
            ("EMAIL_SEND_ATTEMPTS", "9"),
            ("EMAIL_RETRY_BASE_MS", "0"),
            ("EMAIL_RETRY_AFTER_SECS", "1e3"),
            ("OUTBOX_PENDING_GRACE_SECS", "soon"),
        ] {
            match config(&[(name, value)]) {
                Err(ConfigError::Invalid { name: named, .. }) => assert_eq!(named, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_sweep_waits_longer_after_each_failed_claim() {
        let config = config(&[("EMAIL_SEND_ATTEMPTS", "3")]).unwrap();
        assert_eq!(retry_delay(&config, 0), Duration::from_secs(60));
        assert_eq!(retry_delay(&config, 3), Duration::from_secs(60));
        assert_eq!(retry_delay(&config, 4), Duration::from_secs(120));
        assert_eq!(retry_delay(&config, 6), Duration::from_secs(120));
        assert_eq!(retry_delay(&config, 9), Duration::from_secs(240));
        assert_eq!(retry_delay(&config, 300), MAX_RETRY_DELAY);
    }
}
