//! The email outbox: every email the API sends is first an item of the
//! table, written in the same transaction as what causes it (register's,
//! forgot-password's, a comment's), so an email exists exactly when its
//! cause committed, and it is sent later by the stream worker, off the
//! request path (`Outbox`).
//!
//! An item moves `pending` → `sending` (claimed, under a lease) → one of
//! `sent`, `failed` (to be retried), `refused` (the recipient is refused
//! for good), `throttled`, `skipped` (no active, verified recipient) or
//! `expired` (its token died first). Every claim is a conditional update,
//! so of two workers (a duplicated stream record, the sweep) one sends.
//!
//! While an item is unsettled (`pending`, `sending`, `failed`) it carries
//! the keys of a sparse index (`Index::OUTBOX`): `OUTBOXDUE#<shard>` /
//! `<dueMs>#<id>`, where the due time is its creation while pending, the
//! end of its lease while sending and its next attempt once failed. The
//! sweep reads the due ones from there, never scanning the table; settling
//! an item removes the keys, so the index holds only the work left.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue},
};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now_ms,
    domain::{Email, PostId, UserId},
    error::{StoreError, TransactionFailure, dynamo},
    keys::{self, ENTITY, Entity, GSI1PK, GSI1SK, Index, OUTBOX_SK, TTL},
    notifications::NotificationItem,
    sessions::TokenItem,
    table::{self, Item, Table, from_item, key, transact_update_named},
};

/// The index partitions unsettled emails are spread over: each one is a
/// write to its index partition when made, claimed and settled, and four
/// keys take four times the email rate one would. The sweep reads them all.
pub const OUTBOX_SHARDS: u8 = 4;

/// How long a claim holds an item: longer than the stream function's
/// timeout (template.yaml, 30 s), so a worker that is still running never
/// loses its item to another, and one that died frees it this long after.
pub const CLAIM_LEASE_MS: i64 = 60_000;

/// How long a settled comment email (or one never sent) stays, as the
/// record of what was sent or why not.
const COMMENT_EMAIL_KEPT_SECS: i64 = 7 * 24 * 3600;

/// Which email an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmailKind {
    Verification,
    PasswordReset,
    Comment,
}

/// Where an item is in its life (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Failed,
    Refused,
    Throttled,
    Skipped,
    Expired,
}

impl OutboxStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Refused => "refused",
            OutboxStatus::Throttled => "throttled",
            OutboxStatus::Skipped => "skipped",
            OutboxStatus::Expired => "expired",
        }
    }
}

/// One email to send.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: ulid::Ulid,
    pub kind: EmailKind,
    pub status: OutboxStatus,
    pub recipient_id: UserId,
    /// The address, for the token emails; a comment email is addressed to
    /// the recipient as they are when it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub subject: String,
    /// The whole text of a token email (it holds the token), or the
    /// notification's body of a comment email. Removed when the item
    /// settles: a token must not outlive its one use in the table either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<PostId>,
    pub created_at_ms: i64,
    /// Sends tried so far, over every claim.
    #[serde(default)]
    pub attempts: u32,
    /// When it is next due (epoch ms), while unsettled; also the index
    /// sort key's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<i64>,
    /// The next attempt of a failed item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<i64>,
    /// The holder of the current claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    /// A comment email whose throttle slots it already took: a retry does
    /// not take them again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttle_passed: bool,
    /// Why it failed (the last SES error code), was refused, throttled or
    /// skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    /// Epoch seconds. A token email's is its token's expiry, never later:
    /// the item holds the token until it is sent, and an email whose token
    /// died is worth nothing, so neither it nor its text outlives the token.
    pub ttl: i64,
}

// Its text may hold a one-time token.
impl std::fmt::Debug for OutboxItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxItem")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

fn shard_of(id: &ulid::Ulid) -> u8 {
    let last = id.to_string().as_bytes().last().copied().unwrap_or(0);
    last % OUTBOX_SHARDS
}

impl OutboxItem {
    fn pending(
        id: ulid::Ulid,
        kind: EmailKind,
        recipient_id: UserId,
        subject: String,
        ttl: i64,
    ) -> Self {
        let now = unix_now_ms();
        Self {
            pk: keys::outbox_pk(id),
            sk: OUTBOX_SK.into(),
            entity: Entity::Outbox.as_str().into(),
            id,
            kind,
            status: OutboxStatus::Pending,
            recipient_id,
            to: None,
            subject,
            text: None,
            post_id: None,
            created_at_ms: now,
            attempts: 0,
            due_at_ms: Some(now),
            next_attempt_at_ms: None,
            claim_id: None,
            throttle_passed: false,
            status_reason: None,
            settled_at_ms: None,
            gsi1pk: Some(keys::outbox_due_pk(shard_of(&id))),
            gsi1sk: Some(keys::outbox_due_sk(now, id)),
            ttl,
        }
    }

    /// The email carrying the one-time token `token` was issued with: it
    /// lives no longer than the token (`ttl`).
    pub fn with_token(
        kind: EmailKind,
        to: &Email,
        token: &TokenItem,
        subject: &str,
        text: String,
    ) -> Self {
        Self {
            to: Some(to.to_string()),
            text: Some(text),
            ..Self::pending(
                ulid::Ulid::new(),
                kind,
                token.user_id,
                subject.to_owned(),
                token.expires_at,
            )
        }
    }

    /// The email of a comment notification, under the notification's own
    /// id: one notification, one email.
    pub fn comment(notification: &NotificationItem) -> Result<Self, StoreError> {
        let id: ulid::Ulid = notification
            .id
            .to_string()
            .parse()
            .map_err(|err| StoreError::internal("a notification id as an email's", err))?;
        let post_id = notification
            .data
            .get("postId")
            .and_then(|v| v.as_str())
            .and_then(|raw| raw.parse().ok());
        let ttl = unix_now_ms() / 1000 + COMMENT_EMAIL_KEPT_SECS;
        Ok(Self {
            text: Some(notification.body.clone()),
            post_id,
            ..Self::pending(
                id,
                EmailKind::Comment,
                notification.user_id,
                notification.title.clone(),
                ttl,
            )
        })
    }

    pub fn key_of(id: &ulid::Ulid) -> Item {
        key(keys::outbox_pk(id), OUTBOX_SK.into())
    }
}

/// How a claimed item ends its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Sent,
    /// To be tried again at `next_attempt_at_ms`; stays in the index.
    Failed {
        reason: String,
        next_attempt_at_ms: i64,
    },
    /// One of the statuses that end the item, with why.
    Ended {
        status: OutboxStatus,
        reason: String,
    },
}

/// The comment-email limits of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentLimits {
    /// At most one email per post in this window.
    pub per_post_window_ms: i64,
    /// At most this many per UTC day.
    pub per_day: u64,
}

/// What the throttle said of a comment email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    Passed,
    /// The recipient had an email about this post within the window.
    PerPost,
    /// The recipient had their emails of the day.
    PerDay,
    /// Another worker holds the item now.
    LostClaim,
}

impl ThrottleVerdict {
    /// The reason recorded on a throttled item.
    pub const fn reason(self) -> &'static str {
        match self {
            ThrottleVerdict::PerPost => "one comment email per post per window",
            ThrottleVerdict::PerDay => "daily comment email limit",
            ThrottleVerdict::Passed | ThrottleVerdict::LostClaim => "",
        }
    }
}

/// Claiming, settling and finding outbox emails.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Outbox {
    /// Claims item `id` under a new lease, if it is unsettled and free: a
    /// pending one made at or before `pending_before_ms` (the stream takes
    /// any, the sweep only those the stream had its chance at), or one
    /// whose due time passed (a failed one's next attempt, a dead claim's
    /// lease). `None` when another has it or it is settled.
    async fn claim_email(
        &self,
        id: &ulid::Ulid,
        pending_before_ms: i64,
    ) -> Result<Option<OutboxItem>, StoreError>;
    /// Ends the claim `item` holds; `false` when it no longer held it.
    async fn settle_email(
        &self,
        item: &OutboxItem,
        attempts: u32,
        settlement: &Settlement,
    ) -> Result<bool, StoreError>;
    /// Takes the comment email's throttle slots, with the mark on the item
    /// that it has them, in one transaction.
    async fn take_comment_throttle(
        &self,
        item: &OutboxItem,
        limits: CommentLimits,
    ) -> Result<ThrottleVerdict, StoreError>;
    /// Up to `limit` unsettled emails of one shard due by now, oldest
    /// first, leaving out pending ones made after `pending_before_ms`.
    async fn due_emails(
        &self,
        shard: u8,
        pending_before_ms: i64,
        limit: i32,
    ) -> Result<Vec<OutboxItem>, StoreError>;
}

const STATUS: &str = "status";

impl Outbox for Table {
    async fn claim_email(
        &self,
        id: &ulid::Ulid,
        pending_before_ms: i64,
    ) -> Result<Option<OutboxItem>, StoreError> {
        let now = unix_now_ms();
        let lease_end = now + CLAIM_LEASE_MS;
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(OutboxItem::key_of(id)))
            .update_expression(
                "SET #status = :sending, claimId = :claim, dueAtMs = :lease, #gsk = :gsk",
            )
            .condition_expression(
                "attribute_exists(#gpk) AND ((#status = :pending AND createdAtMs <= :pendingBefore) OR (#status <> :pending AND dueAtMs <= :now))",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#gpk", GSI1PK)
            .expression_attribute_names("#gsk", GSI1SK)
            .expression_attribute_values(":sending", s(OutboxStatus::Sending.as_str()))
            .expression_attribute_values(":pending", s(OutboxStatus::Pending.as_str()))
            .expression_attribute_values(":claim", s(&ulid::Ulid::new().to_string()))
            .expression_attribute_values(":lease", n(lease_end))
            .expression_attribute_values(":gsk", s(&keys::outbox_due_sk(lease_end, id)))
            .expression_attribute_values(":pendingBefore", n(pending_before_ms))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(from_item(output.attributes.unwrap_or_default())?)),
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(dynamo(err)),
        }
    }

    async fn settle_email(
        &self,
        item: &OutboxItem,
        attempts: u32,
        settlement: &Settlement,
    ) -> Result<bool, StoreError> {
        let now = unix_now_ms();
        let mut values = HashMap::from([
            (
                ":claim".to_owned(),
                s(item.claim_id.as_deref().unwrap_or_default()),
            ),
            (":attempts".to_owned(), n(i64::from(attempts))),
        ]);
        let expression = match settlement {
            Settlement::Failed {
                reason,
                next_attempt_at_ms,
            } => {
                values.insert(":status".into(), s(OutboxStatus::Failed.as_str()));
                values.insert(":reason".into(), s(reason));
                values.insert(":next".into(), n(*next_attempt_at_ms));
                values.insert(
                    ":gsk".into(),
                    s(&keys::outbox_due_sk(*next_attempt_at_ms, item.id)),
                );
                "SET #status = :status, attempts = :attempts, statusReason = :reason, nextAttemptAtMs = :next, dueAtMs = :next, #gsk = :gsk REMOVE claimId"
            }
            Settlement::Sent => {
                values.insert(":status".into(), s(OutboxStatus::Sent.as_str()));
                values.insert(":now".into(), n(now));
                "SET #status = :status, attempts = :attempts, settledAtMs = :now REMOVE #text, claimId, dueAtMs, nextAttemptAtMs, statusReason, #gpk, #gsk"
            }
            Settlement::Ended { status, reason } => {
                values.insert(":status".into(), s(status.as_str()));
                values.insert(":reason".into(), s(reason));
                values.insert(":now".into(), n(now));
                "SET #status = :status, attempts = :attempts, statusReason = :reason, settledAtMs = :now REMOVE #text, claimId, dueAtMs, nextAttemptAtMs, #gpk, #gsk"
            }
        };
        let mut names = HashMap::from([
            ("#status".to_owned(), STATUS.to_owned()),
            ("#gsk".to_owned(), GSI1SK.to_owned()),
        ]);
        if !matches!(settlement, Settlement::Failed { .. }) {
            names.insert("#text".into(), "text".into());
            names.insert("#gpk".into(), GSI1PK.into());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(OutboxItem::key_of(&item.id)))
            .update_expression(expression)
            .condition_expression("claimId = :claim")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(dynamo(err)),
        }
    }

    async fn take_comment_throttle(
        &self,
        item: &OutboxItem,
        limits: CommentLimits,
    ) -> Result<ThrottleVerdict, StoreError> {
        let now = unix_now_ms();
        let day = now / 86_400_000;
        let user = keys::user_pk(&item.recipient_id);
        let entity = s(Entity::EmailThrottle.as_str());
        let names = |extra: &[(&str, &str)]| {
            let mut names = HashMap::from([
                ("#entity".to_owned(), ENTITY.to_owned()),
                ("#ttl".to_owned(), TTL.to_owned()),
            ]);
            names.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            names
        };
        let mut items = Vec::with_capacity(3);
        let per_post_at = item.post_id.map(|post| {
            let window_end = (now + limits.per_post_window_ms) / 1000 + 60;
            transact_update_named(
                self,
                key(user.clone(), keys::mailed_post_sk(&post)),
                "SET lastMailedAtMs = :now, #entity = :entity, #ttl = :ttl",
                "attribute_not_exists(lastMailedAtMs) OR lastMailedAtMs <= :cutoff",
                names(&[]),
                HashMap::from([
                    (":now".to_owned(), n(now)),
                    (":cutoff".to_owned(), n(now - limits.per_post_window_ms)),
                    (":entity".to_owned(), entity.clone()),
                    (":ttl".to_owned(), n(window_end)),
                ]),
            )
        });
        if let Some(per_post) = per_post_at {
            items.push(per_post?);
        }
        let per_day_at = items.len();
        items.push(transact_update_named(
            self,
            key(user, keys::mail_day_sk(day)),
            "ADD #count :one SET #entity = :entity, #ttl = :ttl",
            "attribute_not_exists(#count) OR #count < :max",
            names(&[("#count", "count")]),
            HashMap::from([
                (":one".to_owned(), n(1)),
                (
                    ":max".to_owned(),
                    n(i64::try_from(limits.per_day).unwrap_or(i64::MAX)),
                ),
                (":entity".to_owned(), entity),
                (":ttl".to_owned(), n((day + 2) * 86_400)),
            ]),
        )?);
        let claim_at = items.len();
        items.push(transact_update_named(
            self,
            OutboxItem::key_of(&item.id),
            "SET throttlePassed = :true",
            "claimId = :claim",
            HashMap::new(),
            HashMap::from([
                (":true".to_owned(), AttributeValue::Bool(true)),
                (
                    ":claim".to_owned(),
                    s(item.claim_id.as_deref().unwrap_or_default()),
                ),
            ]),
        )?);
        match table::transact_write(self, items).await {
            Ok(()) => Ok(ThrottleVerdict::Passed),
            // The claim first: a worker that lost it must not record a
            // verdict on an item another holds.
            Err(TransactionFailure::Conditions(failed)) if failed.contains(&claim_at) => {
                Ok(ThrottleVerdict::LostClaim)
            }
            Err(TransactionFailure::Conditions(failed)) if failed.contains(&per_day_at) => {
                Ok(if per_day_at > 0 && failed.contains(&0) {
                    ThrottleVerdict::PerPost
                } else {
                    ThrottleVerdict::PerDay
                })
            }
            Err(TransactionFailure::Conditions(_)) => Ok(ThrottleVerdict::PerPost),
            Err(other) => Err(other.named(|_| None)),
        }
    }

    async fn due_emails(
        &self,
        shard: u8,
        pending_before_ms: i64,
        limit: i32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(Index::OUTBOX.name())
            .key_condition_expression("#gpk = :pk AND #gsk <= :until")
            .filter_expression("NOT (#status = :pending AND createdAtMs > :pendingBefore)")
            .expression_attribute_names("#gpk", GSI1PK)
            .expression_attribute_names("#gsk", GSI1SK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":pk", s(&keys::outbox_due_pk(shard)))
            .expression_attribute_values(":until", s(&keys::outbox_due_until(unix_now_ms())))
            .expression_attribute_values(":pending", s(OutboxStatus::Pending.as_str()))
            .expression_attribute_values(":pendingBefore", n(pending_before_ms))
            .limit(limit)
            .send()
            .await
            .map_err(dynamo)?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn is_condition_failure(
    err: &aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    matches!(
        err.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{notifications::NotificationType, sessions::TokenKind};

    fn notification() -> NotificationItem {
        let mut data = serde_json::Map::new();
        data.insert("postId".into(), "01J0000000000000000000000B".into());
        NotificationItem::new(
            &UserId::new(),
            NotificationType::Comment,
            "New comment on your post".into(),
            "Bob: nice one".into(),
            data,
            "2025-01-02T03:04:05.678Z".into(),
        )
    }

    #[test]
    fn a_token_email_lives_no_longer_than_its_token() {
        let token = TokenItem::new("secret", TokenKind::Reset, &UserId::new(), 3600);
        let to = Email::parse("email", "a@b.test".into()).unwrap();
        let item = OutboxItem::with_token(
            EmailKind::PasswordReset,
            &to,
            &token,
            "Reset",
            "token=secret".into(),
        );
        assert_eq!(item.ttl, token.expires_at);
        assert_eq!(item.recipient_id, token.user_id);
        assert_eq!(item.status, OutboxStatus::Pending);
        // Pending from its creation: the sweep can find it at once.
        assert_eq!(item.due_at_ms, Some(item.created_at_ms));
        assert_eq!(
            item.gsi1sk.as_deref(),
            Some(keys::outbox_due_sk(item.created_at_ms, item.id).as_str())
        );
        assert!(!format!("{item:?}").contains("secret"));
    }

    #[test]
    fn a_comment_email_is_the_notifications_own() {
        let notification = notification();
        let item = OutboxItem::comment(&notification).unwrap();
        assert_eq!(item.id.to_string(), notification.id.to_string());
        assert_eq!(item.recipient_id, notification.user_id);
        assert_eq!(
            item.post_id.map(|p| p.to_string()).as_deref(),
            Some("01J0000000000000000000000B")
        );
        assert_eq!(item.text.as_deref(), Some("Bob: nice one"));
        assert_eq!(item.to, None);
        let stored = crate::table::to_item(&item).unwrap();
        assert_eq!(
            stored.get(ENTITY),
            Some(&AttributeValue::S("outbox".into()))
        );
        assert_eq!(from_item::<OutboxItem>(stored).unwrap(), item);
    }

    #[test]
    fn items_spread_over_every_shard() {
        let shards: std::collections::BTreeSet<u8> =
            (0..200).map(|_| shard_of(&ulid::Ulid::new())).collect();
        assert_eq!(shards.len(), usize::from(OUTBOX_SHARDS));
    }
}
