//! The DynamoDB Streams worker (API.md sections 7 and 8). For each change of
//! the table it cares about:
//! - a new notification: pushed to every live connection of its recipient,
//!   and for a `comment` to a verified address, emailed;
//! - a presence change: fresh `dashboard.stats` to every subscriber (once
//!   per batch, however many connections came or went);
//! - a removed post: its comments are deleted, which is how deleting a post
//!   stays one small transaction however many comments it had.
//!
//! Failures are reported per record (`ReportBatchItemFailures`): the first
//! failing record and everything after it are retried, the records before
//! it are not. Retries are bounded in template.yaml, after which the batch
//! goes to the on-failure queue, so a poison record never blocks the shard.
//! Delivery is at least once: a retried notification may be pushed twice.

use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::{
    AppError,
    domain::UserStatus,
    email::{Mailer, OutgoingEmail},
    error::ErrorChain,
    notifications::{NotificationItem, NotificationType},
    realtime::Realtime,
    store::{self, Item, Table, delete_request},
    users,
};
use tracing::Instrument;

/// What the worker needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct StreamState {
    pub table: Table,
    pub realtime: Realtime,
    pub mailer: Mailer,
}

fn entity(image: &serde_dynamo::Item) -> Option<&str> {
    match image.get("entity") {
        Some(serde_dynamo::AttributeValue::S(entity)) => Some(entity.as_str()),
        _ => None,
    }
}

/// What one record asks of the worker.
enum Work {
    Notify(Box<NotificationItem>),
    RemoveComments(String),
    PresenceChanged,
    Nothing,
}

fn classify(record: &EventRecord) -> Result<Work, AppError> {
    let change = &record.change;
    match (
        record.event_name.as_str(),
        entity(&change.new_image),
        entity(&change.old_image),
    ) {
        ("INSERT", Some("notification"), _) => {
            let item: NotificationItem = serde_dynamo::from_item(change.new_image.clone())
                .map_err(|err| AppError::internal("reading a notification record", err))?;
            Ok(Work::Notify(Box::new(item)))
        }
        ("REMOVE", _, Some("post")) => match change.old_image.get("id") {
            Some(serde_dynamo::AttributeValue::S(id)) => Ok(Work::RemoveComments(id.clone())),
            _ => Ok(Work::Nothing),
        },
        ("INSERT", Some("presence"), _) | ("REMOVE", _, Some("presence")) => {
            Ok(Work::PresenceChanged)
        }
        _ => Ok(Work::Nothing),
    }
}

/// Handles one batch of stream records.
pub async fn handle(state: &StreamState, event: Event) -> DynamoDbEventResponse {
    let span = tracing::info_span!("stream", records = event.records.len());
    async {
        let mut presence_changed = false;
        let mut failures = Vec::new();
        for record in &event.records {
            let result = match classify(record) {
                Ok(Work::Notify(notification)) => deliver(state, &notification).await,
                Ok(Work::RemoveComments(post_id)) => remove_comments(&state.table, &post_id).await,
                Ok(Work::PresenceChanged) => {
                    presence_changed = true;
                    Ok(())
                }
                Ok(Work::Nothing) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                let sequence = record.change.sequence_number.clone();
                tracing::error!(error = %ErrorChain(&err), eventId = %record.event_id, sequenceNumber = ?sequence, "record failed; retrying from here");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence;
                failures.push(failure);
                break;
            }
        }
        if presence_changed && let Err(err) = state.realtime.broadcast_stats().await {
            tracing::warn!(error = %ErrorChain(&err), "dashboard stats not pushed");
        }
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failures;
        response
    }
    .instrument(span)
    .await
}

/// Pushes a notification to its recipient's sockets and, for a comment to
/// a verified address, emails it.
async fn deliver(state: &StreamState, notification: &NotificationItem) -> Result<(), AppError> {
    let connections = state
        .realtime
        .user_connections(&notification.user_id)
        .await?;
    let frame = json!({"type": "notification", "notification": notification.to_response()});
    let pushed = state.realtime.fan_out(&connections, &frame).await;
    tracing::info!(notificationId = %notification.id, connections = pushed.len(), "notification pushed");

    if notification.kind != NotificationType::Comment {
        return Ok(());
    }
    let Some(user) = users::get_user(&state.table, &notification.user_id).await? else {
        return Ok(());
    };
    if !user.email_verified || user.status != UserStatus::Active {
        return Ok(());
    }
    let post_link = notification
        .data
        .get("postId")
        .and_then(|v| v.as_str())
        .map(|id| format!("\n\n{}/posts/{id}", state.mailer.app_url()))
        .unwrap_or_default();
    state
        .mailer
        .send(&OutgoingEmail {
            to: user.email,
            subject: notification.title.clone(),
            text: format!("Hi {},\n\n{}{post_link}\n", user.name, notification.body),
        })
        .await
}

/// Deletes every comment left under a removed post.
pub async fn remove_comments(table: &Table, post_id: &str) -> Result<(), AppError> {
    let pk = format!("POST#{post_id}");
    let mut start: Option<Item> = None;
    let mut removed = 0usize;
    loop {
        let output = table
            .client
            .query()
            .table_name(&table.name)
            .key_condition_expression("pk = :pk AND begins_with(sk, :comment)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":comment", AttributeValue::S("COMMENT#".into()))
            .projection_expression("pk, sk")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(store::dynamo)?;
        let requests = output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| match (item.get("pk"), item.get("sk")) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    Some(delete_request(pk.clone(), sk.clone()))
                }
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        removed += requests.len();
        store::batch_write(table, requests).await?;
        match output.last_evaluated_key.filter(|k| !k.is_empty()) {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    tracing::info!(postId = %post_id, removed, "comments of a deleted post removed");
    Ok(())
}
