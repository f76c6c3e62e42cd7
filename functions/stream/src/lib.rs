//! The DynamoDB Streams worker (docs/API.md §7 and §8), which also sends
//! the email outbox. For each change of the table it cares about
//! (`Entity::STREAMED_INSERTS` and `Entity::STREAMED_REMOVES`, which the
//! template's filters let through):
//! - a new notification: pushed to every live connection of its recipient;
//! - a new outbox email: sent (`outbox`), after the batch's other work and
//!   never failing its record, so no email makes a push happen twice;
//! - a presence change: fresh `dashboard.stats` to every subscriber (once
//!   per batch, however many connections came or went);
//! - a removed post: its comments are deleted, which is how deleting a post
//!   stays one small transaction however many comments it had;
//! - a removed pending upload (TTL deletion of one never completed): its
//!   object, if the client ever PUT one, is deleted from the bucket and its
//!   slot freed (`model::uploads`). Both are idempotent, so a redelivered
//!   record changes nothing more. A ready upload's removal is ignored: its
//!   object may be an avatar or a post image;
//! - a session that ended (`Entity::STREAMED_MODIFIES`: a revoked session,
//!   a user whose sessions were cut): its WebSocket connections are closed
//!   (`sessions`).
//!
//! Failures are reported per record (`ReportBatchItemFailures`): the first
//! failing record and everything after it are retried, the records before
//! it are not. Retries are bounded in template.yaml, after which the batch
//! goes to the on-failure queue, so a poison record never blocks the shard.
//! Delivery is at least once: a retried notification may be pushed twice.
//!
//! The same function also runs on a schedule (template.yaml's
//! `OutboxSweep`): each run sends the outbox emails still due, the failed
//! ones whose next attempt came and any the stream never finished.

use std::{sync::Arc, time::Instant};

use aws_config::SdkConfig;
use aws_lambda_events::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use model::{
    Table,
    connections::Connections,
    domain::PostId,
    keys::{ENTITY, Entity},
    notifications::NotificationItem,
    outbox::OutboxItem,
    posts::Posts,
    uploads::{UploadItem, UploadStatus, Uploads},
};
use platform::{
    AppError,
    aws::s3_client,
    config::{ConfigError, Source, StorageConfig},
    email::{EmailConfig, Mailer},
    error::ErrorChain,
    lambda::{EventService, event_service},
    realtime::{OutgoingFrame, Realtime, RealtimeConfig},
};
use serde_dynamo::AttributeValue;
use tracing::Instrument;

pub mod outbox;
pub mod sessions;

pub use outbox::{ScheduledEvent, Tally};

/// What the worker needs, built once per cold start.
#[derive(Debug)]
struct StreamState {
    table: Table,
    realtime: Realtime,
    sender: outbox::Sender,
    /// The uploads bucket, for the objects of abandoned uploads.
    s3: aws_sdk_s3::Client,
    bucket: String,
}

/// The worker's two entry points, built on one state: the table's stream,
/// and the outbox sweep's schedule.
pub struct StreamWorker {
    pub records: EventService<Event, DynamoDbEventResponse>,
    pub sweep: EventService<ScheduledEvent, Tally>,
}

/// The worker, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local stream poller and scheduler and the tests
/// all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<StreamWorker, ConfigError> {
    let storage = StorageConfig::from_source(source)?;
    let email = EmailConfig::from_source(source)?;
    let realtime = RealtimeConfig::from_source(source)?;
    let outbox = outbox::OutboxConfig::from_source(source)?;
    let table = Table::new(
        aws_sdk_dynamodb::Client::new(sdk),
        storage.table_name.clone(),
    );
    let state = Arc::new(StreamState {
        realtime: Realtime::new(table.clone(), realtime.client(sdk)),
        sender: outbox::Sender {
            table: table.clone(),
            // No SDK retries: the sender backs off itself (`outbox`), within
            // the invocation's deadline, and counts each try as an attempt.
            mailer: Mailer::new(
                aws_sdk_sesv2::Client::from_conf(
                    aws_sdk_sesv2::config::Builder::from(sdk)
                        .retry_config(aws_config::retry::RetryConfig::disabled())
                        .build(),
                ),
                email,
            ),
            config: outbox,
        },
        s3: s3_client(sdk, &storage),
        bucket: storage.bucket_name,
        table,
    });
    let swept = Arc::clone(&state);
    Ok(StreamWorker {
        records: event_service(move |event| {
            let state = Arc::clone(&state);
            // Boxed: the handler's future is deep enough to hit the compiler's
            // type-layout recursion limit when nested inside the runtime's.
            async move { Box::pin(handle(&state, event)).await }
        }),
        sweep: event_service(move |event: ScheduledEvent| {
            let state = Arc::clone(&swept);
            async move { Box::pin(sweep(&state, event)).await }
        }),
    })
}

impl StreamWorker {
    /// The one Lambda handler of both event sources: a stream batch has
    /// `Records`, a schedule's event is EventBridge's `Scheduled Event`.
    pub fn lambda(self) -> EventService<serde_json::Value, serde_json::Value> {
        let StreamWorker { records, sweep } = self;
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
                let (records, sweep) = (records.clone(), sweep.clone());
                async move {
                    let (payload, context) = (event.payload, event.context);
                    if payload.get("Records").is_some() {
                        let batch: Event = serde_json::from_value(payload)?;
                        let answer = tower::ServiceExt::oneshot(
                            records,
                            lambda_runtime::LambdaEvent::new(batch, context),
                        )
                        .await?;
                        return Ok(serde_json::to_value(answer)?);
                    }
                    let scheduled: ScheduledEvent = serde_json::from_value(payload)?;
                    if scheduled.detail_type != ScheduledEvent::DETAIL_TYPE {
                        return Err(format!(
                            "not an event this worker takes: {}",
                            scheduled.detail_type
                        )
                        .into());
                    }
                    let tally = tower::ServiceExt::oneshot(
                        sweep,
                        lambda_runtime::LambdaEvent::new(scheduled, context),
                    )
                    .await?;
                    Ok::<_, lambda_runtime::Error>(serde_json::to_value(tally)?)
                }
            },
        ))
    }
}

/// One run of the schedule: the due outbox emails.
async fn sweep(state: &StreamState, event: ScheduledEvent) -> Tally {
    let span = tracing::info_span!("outbox sweep", time = ?event.time);
    async {
        let tally = state
            .sender
            .sweep(Instant::now() + outbox::EMAIL_BUDGET)
            .await;
        tracing::info!(?tally, "outbox swept");
        tally
    }
    .instrument(span)
    .await
}

/// The kind of item an image is, if it names a known one.
fn entity(image: &serde_dynamo::Item) -> Option<Entity> {
    match image.get(ENTITY) {
        Some(AttributeValue::S(raw)) => Entity::parse(raw),
        _ => None,
    }
}

/// What one record asks of the worker.
#[derive(Debug)]
enum Work {
    Notify(Box<NotificationItem>),
    Email(ulid::Ulid),
    RemoveComments(PostId),
    DiscardUpload(Box<UploadItem>),
    PresenceChanged,
    EndSessions(sessions::SessionsEnded),
    Nothing,
}

fn classify(record: &EventRecord) -> Result<Work, AppError> {
    let change = &record.change;
    match record.event_name.as_str() {
        "INSERT" => match entity(&change.new_image) {
            Some(Entity::Notification) => {
                let item: NotificationItem = serde_dynamo::from_item(change.new_image.clone())
                    .map_err(|err| AppError::internal("reading a notification record", err))?;
                Ok(Work::Notify(Box::new(item)))
            }
            Some(Entity::Presence) => Ok(Work::PresenceChanged),
            Some(Entity::Outbox) => {
                let item: OutboxItem = serde_dynamo::from_item(change.new_image.clone())
                    .map_err(|err| AppError::internal("reading an outbox record", err))?;
                Ok(Work::Email(item.id))
            }
            _ => Ok(Work::Nothing),
        },
        "REMOVE" => match entity(&change.old_image) {
            Some(Entity::Post) => match change.old_image.get("id") {
                Some(AttributeValue::S(id)) => id
                    .parse()
                    .map(Work::RemoveComments)
                    .map_err(|err| AppError::internal("reading a removed post's id", err)),
                _ => Ok(Work::Nothing),
            },
            Some(Entity::Upload) => {
                let upload: UploadItem = serde_dynamo::from_item(change.old_image.clone())
                    .map_err(|err| AppError::internal("reading a removed upload", err))?;
                Ok(match upload.status {
                    UploadStatus::Pending => Work::DiscardUpload(Box::new(upload)),
                    UploadStatus::Ready => Work::Nothing,
                })
            }
            Some(Entity::Presence) => Ok(Work::PresenceChanged),
            _ => Ok(Work::Nothing),
        },
        "MODIFY" => match entity(&change.new_image) {
            Some(streamed) if Entity::STREAMED_MODIFIES.contains(&streamed) => {
                Ok(sessions::ended_by(streamed, record)?.map_or(Work::Nothing, Work::EndSessions))
            }
            _ => Ok(Work::Nothing),
        },
        _ => Ok(Work::Nothing),
    }
}

/// Handles one batch of stream records.
async fn handle(state: &StreamState, event: Event) -> DynamoDbEventResponse {
    let span = tracing::info_span!("stream", records = event.records.len());
    async {
        let started = Instant::now();
        let mut presence_changed = false;
        let mut emails = Vec::new();
        let mut failures = Vec::new();
        for record in &event.records {
            let result = match classify(record) {
                Ok(Work::Notify(notification)) => deliver(state, &notification).await,
                Ok(Work::Email(id)) => {
                    emails.push(id);
                    Ok(())
                }
                Ok(Work::RemoveComments(post_id)) => remove_comments(state, &post_id).await,
                Ok(Work::DiscardUpload(upload)) => discard_upload(state, &upload).await,
                Ok(Work::PresenceChanged) => {
                    presence_changed = true;
                    Ok(())
                }
                Ok(Work::EndSessions(ended)) => end_sessions(state, &ended).await,
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
        if !emails.is_empty() {
            let tally = state
                .sender
                .send_new(emails, started + outbox::EMAIL_BUDGET)
                .await;
            tracing::info!(?tally, "outbox emails of the batch");
        }
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failures;
        response
    }
    .instrument(span)
    .await
}

/// Pushes a notification to its recipient's sockets. Its email, if any,
/// is an outbox item of its own, sent apart (`outbox`).
async fn deliver(state: &StreamState, notification: &NotificationItem) -> Result<(), AppError> {
    let connections = state.table.user_connections(&notification.user_id).await?;
    let frame = OutgoingFrame::Notification {
        notification: notification.to_response(),
    };
    let pushed = state.realtime.fan_out(&connections, &frame).await;
    tracing::info!(notificationId = %notification.id, connections = pushed.len(), "notification pushed");
    Ok(())
}

/// Closes the WebSocket connections of sessions that ended.
async fn end_sessions(
    state: &StreamState,
    ended: &sessions::SessionsEnded,
) -> Result<(), AppError> {
    let closed = sessions::close(&state.table, &state.realtime, ended).await?;
    tracing::info!(closed, "connections of ended sessions closed");
    Ok(())
}

/// Deletes every comment left under a removed post.
async fn remove_comments(state: &StreamState, post_id: &PostId) -> Result<(), AppError> {
    let removed = state.table.remove_comments(post_id).await?;
    tracing::info!(postId = %post_id, removed, "comments of a deleted post removed");
    Ok(())
}

/// Deletes the object of a removed pending upload and frees its slot, at
/// once: both are idempotent, so a record retried after one of them failed
/// does both again harmlessly. S3 answers a delete of a key never written
/// with success, so an upload whose bytes were never sent goes the same way.
async fn discard_upload(state: &StreamState, upload: &UploadItem) -> Result<(), AppError> {
    let deleted = async {
        state
            .s3
            .delete_object()
            .bucket(&state.bucket)
            .key(&upload.key)
            .send()
            .await
            .map_err(|err| AppError::from(model::error::translate("s3", err)))
    };
    let released = async { Ok::<_, AppError>(state.table.release_upload_slot(upload).await?) };
    tokio::try_join!(deleted, released)?;
    tracing::info!(uploadId = %upload.id, userId = %upload.owner_id, "abandoned upload discarded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use model::{domain::UserId, notifications::NotificationType};

    const POST: &str = "01J0000000000000000000000B";

    fn image(entity: Entity) -> serde_dynamo::Item {
        HashMap::from([
            (ENTITY.to_owned(), AttributeValue::S(entity.as_str().into())),
            ("id".to_owned(), AttributeValue::S(POST.into())),
        ])
        .into()
    }

    fn notification() -> NotificationItem {
        let mut data = serde_json::Map::new();
        data.insert("postId".into(), POST.into());
        NotificationItem::new(
            &UserId::new(),
            NotificationType::Comment,
            "New comment on your post".into(),
            "Bob: nice one".into(),
            data,
            "2025-01-02T03:04:05.678Z".into(),
        )
    }

    fn upload(status: UploadStatus) -> UploadItem {
        let file = model::uploads::DeclaredFile {
            filename: "cat.png".into(),
            content_type: "image/png".into(),
            size: 3,
            purpose: model::uploads::Purpose::Avatar,
        };
        let pending = UploadItem::pending(
            model::domain::UploadId::new(),
            UserId::new(),
            file,
            "2025-01-02T03:04:05.678Z".into(),
        );
        UploadItem { status, ..pending }
    }

    fn record(event_name: &str, entity: Entity) -> EventRecord {
        let mut record = EventRecord::default();
        record.event_name = event_name.into();
        let image = match entity {
            Entity::Notification => serde_dynamo::to_item(notification()).unwrap(),
            Entity::Upload => serde_dynamo::to_item(upload(UploadStatus::Pending)).unwrap(),
            Entity::Outbox => {
                serde_dynamo::to_item(OutboxItem::comment(&notification()).unwrap()).unwrap()
            }
            _ => image(entity),
        };
        match event_name {
            "REMOVE" => record.change.old_image = image,
            _ => record.change.new_image = image,
        }
        record
    }

    fn reacts(record: &EventRecord) -> bool {
        !matches!(classify(record), Ok(Work::Nothing))
    }

    #[test]
    fn the_worker_reacts_to_exactly_the_streamed_entities() {
        for entity in Entity::ALL {
            assert_eq!(
                reacts(&record("INSERT", entity)),
                Entity::STREAMED_INSERTS.contains(&entity),
                "INSERT {entity:?}"
            );
            assert_eq!(
                reacts(&record("REMOVE", entity)),
                Entity::STREAMED_REMOVES.contains(&entity),
                "REMOVE {entity:?}"
            );
            // A streamed entity's record is read (this one, without its
            // fields, fails to); every other is ignored unread.
            assert_eq!(
                reacts(&record("MODIFY", entity)),
                Entity::STREAMED_MODIFIES.contains(&entity),
                "MODIFY {entity:?}"
            );
        }
    }

    #[test]
    fn records_are_classified_into_their_work() {
        let item = notification();
        let mut insert = EventRecord::default();
        insert.event_name = "INSERT".into();
        insert.change.new_image = serde_dynamo::to_item(&item).unwrap();
        assert!(matches!(classify(&insert), Ok(Work::Notify(n)) if *n == item));

        assert!(matches!(
            classify(&record("REMOVE", Entity::Post)),
            Ok(Work::RemoveComments(id)) if id.to_string() == POST
        ));
        assert!(matches!(
            classify(&record("INSERT", Entity::Presence)),
            Ok(Work::PresenceChanged)
        ));
        let email = OutboxItem::comment(&item).unwrap();
        let mut inserted = EventRecord::default();
        inserted.event_name = "INSERT".into();
        inserted.change.new_image = serde_dynamo::to_item(&email).unwrap();
        assert!(matches!(classify(&inserted), Ok(Work::Email(id)) if id == email.id));
        assert!(matches!(
            classify(&record("REMOVE", Entity::Presence)),
            Ok(Work::PresenceChanged)
        ));
    }

    #[test]
    fn only_a_pending_upload_is_discarded_when_removed() {
        let removed = |upload: &UploadItem| {
            let mut record = EventRecord::default();
            record.event_name = "REMOVE".into();
            record.change.old_image = serde_dynamo::to_item(upload).unwrap();
            classify(&record)
        };
        let pending = upload(UploadStatus::Pending);
        assert!(matches!(
            removed(&pending),
            Ok(Work::DiscardUpload(discarded)) if *discarded == pending
        ));
        // A ready upload's object may be an avatar or a post image.
        assert!(matches!(
            removed(&upload(UploadStatus::Ready)),
            Ok(Work::Nothing)
        ));
        let mut broken = record("REMOVE", Entity::Upload);
        broken.change.old_image = image(Entity::Upload);
        assert!(
            classify(&broken).is_err(),
            "an upload without its fields is retried, not ignored"
        );
    }

    #[test]
    fn unknown_or_missing_entities_are_ignored() {
        let mut record = EventRecord::default();
        record.event_name = "INSERT".into();
        assert!(!reacts(&record));
        record.change.new_image =
            HashMap::from([(ENTITY.to_owned(), AttributeValue::S("nope".into()))]).into();
        assert!(!reacts(&record));
    }

    #[test]
    fn a_malformed_record_fails_so_it_is_retried() {
        let mut broken = record("INSERT", Entity::Presence);
        broken.change.new_image = image(Entity::Notification);
        assert!(
            classify(&broken).is_err(),
            "a notification without its fields"
        );
        let mut broken = record("REMOVE", Entity::Post);
        broken.change.old_image = HashMap::from([
            (
                ENTITY.to_owned(),
                AttributeValue::S(Entity::Post.as_str().into()),
            ),
            ("id".to_owned(), AttributeValue::S("not-a-ulid".into())),
        ])
        .into();
        assert!(classify(&broken).is_err(), "a post whose id is not one");
    }

    #[test]
    fn build_reads_its_configuration() {
        let config = |skip: &'static str| {
            move |name: &str| {
                let value = match name {
                    "TABLE_NAME" => "t",
                    "BUCKET_NAME" => "b",
                    "EMAIL_FROM" => "noreply@example.com",
                    "WS_MANAGEMENT_ENDPOINT" => "http://127.0.0.1:3001/local",
                    _ => return None,
                };
                (name != skip).then(|| value.to_owned())
            }
        };
        let sdk = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        assert!(build(&config(""), &sdk).is_ok());
        for name in [
            "TABLE_NAME",
            "BUCKET_NAME",
            "EMAIL_FROM",
            "WS_MANAGEMENT_ENDPOINT",
        ] {
            assert_eq!(
                build(&config(name), &sdk).err(),
                Some(ConfigError::Missing { name })
            );
        }
    }

    #[test]
    fn the_comment_email_links_to_the_post() {
        let item = OutboxItem::comment(&notification()).unwrap();
        let text =
            outbox::comment_email_text("https://app.example", &"Alice", "Bob: nice one", &item);
        assert_eq!(
            text,
            format!("Hi Alice,\n\nBob: nice one\n\nhttps://app.example/posts/{POST}\n")
        );
        let without = OutboxItem {
            post_id: None,
            ..item
        };
        assert_eq!(
            outbox::comment_email_text("https://app.example", &"Alice", "Bob: nice one", &without),
            "Hi Alice,\n\nBob: nice one\n"
        );
    }
}
