//! The local stand-in for Lambda's DynamoDB Streams event source mapping:
//! polls the table's stream on the emulator, turns the records into the
//! event Lambda would deliver, and runs the stream worker in process.
//!
//! Like the real mapping it applies the template's `FilterCriteria` (see
//! `crate::filter`): a record no filter selects never reaches the worker, a batch
//! left empty by them invokes nothing, and the stream position moves past
//! them all the same. And it honours `batchItemFailures`: the batch is
//! retried from the first failed record, at most `MAX_RETRIES` times, after
//! which the records are dropped with an error in the log (the deployed
//! stack sends them to its on-failure queue instead).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use crate::{filter::FilterCriteria, functions::StreamService, template::Template};

const POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_RETRIES: u32 = 3;
/// What the call recorder names the worker's invocations by (it serves no
/// route).
pub const STREAM_ROUTE: &str = "DynamoDB stream";
const BATCH_SIZE: i32 = 100;

#[derive(Debug, thiserror::Error)]
#[error("stream poller: {0}")]
pub struct PollerError(String);

fn error(context: &str, err: impl std::fmt::Display) -> PollerError {
    PollerError(format!("{context}: {err}"))
}

/// DynamoDB JSON (`{"S": "x"}`) of a stream attribute value, as Lambda
/// hands it to a function.
pub fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::B(b) => json!({"B": STANDARD.encode(b.as_ref())}),
        AttributeValue::Ss(values) => json!({"SS": values}),
        AttributeValue::Ns(values) => json!({"NS": values}),
        AttributeValue::Bs(values) => {
            json!({"BS": values.iter().map(|b| STANDARD.encode(b.as_ref())).collect::<Vec<_>>()})
        }
        AttributeValue::L(values) => {
            json!({"L": values.iter().map(attribute_json).collect::<Vec<_>>()})
        }
        AttributeValue::M(map) => json!({"M": image_json(map)}),
        _ => json!({"NULL": true}),
    }
}

fn image_json(image: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// One record as Lambda's DynamoDB event shows it, which is also what its
/// filters read.
pub fn record_json(record: &Record, stream_arn: &str, region: &str) -> Value {
    let change = record.dynamodb();
    let mut json = json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region().unwrap_or(region),
        "eventSourceARN": stream_arn,
        "dynamodb": {
            // Whole seconds, as in AWS's samples: typed readers take no fraction.
            "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time()).map(|t| t.secs()),
            "SequenceNumber": change.and_then(|c| c.sequence_number()),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
            "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
        },
    });
    // Absent, not null, as AWS leaves them out (an INSERT has no OldImage):
    // `{"exists": false}` and `null` patterns tell the two apart.
    for (name, image) in [
        ("Keys", change.and_then(|c| c.keys.as_ref())),
        ("NewImage", change.and_then(|c| c.new_image.as_ref())),
        ("OldImage", change.and_then(|c| c.old_image.as_ref())),
    ] {
        if let Some(image) = image {
            json["dynamodb"][name] = image_json(image);
        }
    }
    // Only a change the stream attributes to someone (a TTL deletion, by
    // the DynamoDB service) carries it, as in AWS's sample event.
    if let Some(identity) = record.user_identity() {
        json["userIdentity"] = json!({
            "type": identity.r#type(),
            "principalId": identity.principal_id(),
        });
    }
    json
}

/// The stream of `table` and an iterator on each of its shards, positioned
/// at `position`.
pub async fn shard_iterators(
    sdk: &SdkConfig,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    position: ShardIteratorType,
) -> Result<(String, Vec<String>), PollerError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| error("describing the table", e))?;
    let stream_arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| PollerError(format!("table {table} has no stream")))?
        .to_owned();
    let stream = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .map_err(|e| error("describing the stream", e))?;
    let mut iterators = Vec::new();
    for shard in stream
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default()
    {
        let Some(shard_id) = shard.shard_id() else {
            continue;
        };
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(position.clone())
            .send()
            .await
            .map_err(|e| error("positioning on a shard", e))?;
        if let Some(iterator) = iterator.shard_iterator {
            iterators.push(iterator);
        }
    }
    Ok((stream_arn, iterators))
}

/// Starts polling `table`'s stream from now on, with the filters of the
/// template's stream event. Returns once the poller is positioned, so
/// nothing written after this call is missed.
///
/// `sdk` finds the stream (CloudFormation's part: the template hands Lambda
/// the table's `StreamArn`); `role` reads it, as Lambda's event source
/// mapping reads with the function's execution role.
pub async fn start(
    sdk: &SdkConfig,
    role: &SdkConfig,
    table: &str,
    template: &Template,
    worker: StreamService,
) -> Result<tokio::task::JoinHandle<()>, PollerError> {
    let filters = template
        .table_stream()
        .map_err(|e| error("the stream's event source", e))?
        .filters
        .clone();
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let streams = aws_sdk_dynamodbstreams::Client::new(role);
    let (stream_arn, iterators) =
        shard_iterators(sdk, &streams, table, ShardIteratorType::Latest).await?;
    Ok(tokio::spawn(poll(
        streams, stream_arn, region, iterators, filters, worker,
    )))
}

async fn poll(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    mut iterators: Vec<String>,
    filters: FilterCriteria,
    worker: StreamService,
) {
    loop {
        let mut next_iterators = Vec::with_capacity(iterators.len());
        for iterator in iterators {
            match streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(BATCH_SIZE)
                .send()
                .await
            {
                Ok(output) => {
                    let records = output
                        .records()
                        .iter()
                        .map(|r| record_json(r, &stream_arn, &region));
                    forward(&worker, &filters, records).await;
                    // Past the filtered-out records too, as on AWS.
                    next_iterators.push(output.next_shard_iterator.unwrap_or(iterator));
                }
                Err(err) => {
                    tracing::warn!(error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err), "reading the stream failed; retrying");
                    next_iterators.push(iterator);
                }
            }
        }
        iterators = next_iterators;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Hands the worker the records `filters` selects, if there are any: the
/// event source mapping invokes no function for a batch it filtered empty.
async fn forward(
    worker: &StreamService,
    filters: &FilterCriteria,
    records: impl IntoIterator<Item = Value>,
) {
    let (selected, skipped): (Vec<Value>, Vec<Value>) =
        records.into_iter().partition(|r| filters.selects(r));
    if !skipped.is_empty() {
        tracing::debug!(
            skipped = skipped.len(),
            "stream records no filter selects: not delivered, as on AWS"
        );
    }
    if !selected.is_empty() {
        deliver(worker, selected).await;
    }
}

/// Invokes the worker with a batch, retrying from the first reported
/// failure as Lambda does.
async fn deliver(worker: &StreamService, mut records: Vec<Value>) {
    let mut attempts = 0;
    while !records.is_empty() {
        let event: Event = match serde_json::from_value(json!({"Records": records})) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(error = %err, "stream event rejected by its own type; batch dropped");
                return;
            }
        };
        let response = match crate::calls::serving(
            STREAM_ROUTE.to_owned(),
            platform::lambda::invoke(worker, event),
        )
        .await
        {
            Ok(response) => response,
            Err(err) => {
                // As Lambda would: a failed invocation retries the whole batch.
                tracing::error!(error = %err, "stream worker failed; retrying the batch");
                attempts += 1;
                if attempts > MAX_RETRIES {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * attempts as u64)).await;
                continue;
            }
        };
        let Some(failed) = response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
        else {
            return;
        };
        attempts += 1;
        if attempts > MAX_RETRIES {
            tracing::error!(sequenceNumber = %failed, "stream records failed {MAX_RETRIES} retries; dropped (on AWS: the on-failure queue)");
            return;
        }
        let position = records
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(failed.as_str()))
            .unwrap_or(0);
        records.drain(..position);
        tokio::time::sleep(Duration::from_millis(200 * attempts as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_become_dynamodb_json_that_lambda_events_reads() {
        let image = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S("user-1".into())),
            ("read".to_owned(), AttributeValue::Bool(false)),
            ("n".to_owned(), AttributeValue::N("3".into())),
            (
                "data".to_owned(),
                AttributeValue::M(std::collections::HashMap::from([(
                    "postId".to_owned(),
                    AttributeValue::S("p".into()),
                )])),
            ),
            (
                "tags".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("a".into())]),
            ),
        ]);
        let event = json!({"Records": [{
            "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"ApproximateCreationDateTime": 1.0, "Keys": image_json(&image), "NewImage": image_json(&image),
                         "OldImage": Value::Null, "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }]});
        let event: Event = serde_json::from_value(event).unwrap();
        let image = &event.records[0].change.new_image;
        assert_eq!(
            image.get("pk"),
            Some(&serde_dynamo::AttributeValue::S("user-1".into()))
        );
        assert!(event.records[0].change.old_image.is_empty());
    }

    /// The converter is written out rather than taken from serde_dynamo's
    /// stream conversion, which panics on a type this SDK does not know
    /// (and a panic would end the poller); its output must still be
    /// serde_dynamo's, the DynamoDB JSON that `aws_lambda_events` reads.
    #[test]
    fn attributes_are_the_dynamodb_json_serde_dynamo_writes() {
        use aws_sdk_dynamodbstreams::primitives::Blob;
        use serde_dynamo::AttributeValue as Dynamo;
        let pairs = [
            (AttributeValue::S("s".into()), Dynamo::S("s".into())),
            (AttributeValue::N("1.5".into()), Dynamo::N("1.5".into())),
            (AttributeValue::Bool(true), Dynamo::Bool(true)),
            (AttributeValue::Null(true), Dynamo::Null(true)),
            (
                AttributeValue::B(Blob::new(*b"\x00bytes")),
                Dynamo::B(b"\x00bytes".to_vec()),
            ),
            (
                AttributeValue::Ss(vec!["a".into()]),
                Dynamo::Ss(vec!["a".into()]),
            ),
            (
                AttributeValue::Ns(vec!["2".into()]),
                Dynamo::Ns(vec!["2".into()]),
            ),
            (
                AttributeValue::Bs(vec![Blob::new(*b"a"), Blob::new(*b"b")]),
                Dynamo::Bs(vec![b"a".to_vec(), b"b".to_vec()]),
            ),
            (
                AttributeValue::L(vec![AttributeValue::Bool(false)]),
                Dynamo::L(vec![Dynamo::Bool(false)]),
            ),
            (
                AttributeValue::M([("k".to_owned(), AttributeValue::N("3".into()))].into()),
                Dynamo::M([("k".to_owned(), Dynamo::N("3".into()))].into()),
            ),
        ];
        for (stream, dynamo) in pairs {
            assert_eq!(
                attribute_json(&stream),
                serde_json::to_value(&dynamo).unwrap(),
                "{stream:?}"
            );
        }
    }

    mod filtering {
        use std::{
            collections::HashMap,
            sync::{Arc, Mutex},
        };

        use aws_lambda_events::streams::DynamoDbEventResponse;
        use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord, StreamViewType};
        use model::keys::{self, Entity};

        use super::*;

        const REPO_TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

        /// The filters the poller applies: the template's.
        fn template_filters() -> FilterCriteria {
            Template::load(REPO_TEMPLATE)
                .unwrap()
                .table_stream()
                .unwrap()
                .filters
                .clone()
        }

        fn s(text: &str) -> AttributeValue {
            AttributeValue::S(text.into())
        }

        type Image<'a> = &'a [(&'a str, AttributeValue)];

        fn entity(of: Entity) -> (&'static str, AttributeValue) {
            (keys::ENTITY, s(of.as_str()))
        }

        /// A record as the poller turns it into JSON, from the SDK's types.
        fn record(id: &str, name: OperationType, new: Option<Image>, old: Option<Image>) -> Value {
            let image = |attributes: Image| -> HashMap<String, AttributeValue> {
                attributes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect()
            };
            let record = Record::builder()
                .event_id(id)
                .event_name(name)
                .dynamodb(
                    StreamRecord::builder()
                        .approximate_creation_date_time(
                            aws_sdk_dynamodbstreams::primitives::DateTime::from_secs(1_767_225_600),
                        )
                        .set_keys(Some(image(&[("pk", s("PK")), ("sk", s(id))])))
                        .set_new_image(new.map(image))
                        .set_old_image(old.map(image))
                        .sequence_number(id)
                        .size_bytes(10)
                        .stream_view_type(StreamViewType::NewAndOldImages)
                        .build(),
                )
                .build();
            record_json(
                &record,
                "arn:aws:dynamodb:us-east-1:1:table/t/stream/s",
                "us-east-1",
            )
        }

        fn insert(image: Image) -> Value {
            record("1", OperationType::Insert, Some(image), None)
        }

        fn modify(old: Image, new: Image) -> Value {
            record("1", OperationType::Modify, Some(new), Some(old))
        }

        fn remove(image: Image) -> Value {
            record("1", OperationType::Remove, None, Some(image))
        }

        #[test]
        fn absent_images_are_left_out_as_aws_leaves_them_out() {
            let inserted = insert(&[entity(Entity::Post)]);
            assert!(inserted["dynamodb"].get("OldImage").is_none(), "{inserted}");
            assert_eq!(
                inserted["dynamodb"]["NewImage"]["entity"],
                json!({"S": "post"})
            );
            let removed = remove(&[entity(Entity::Post)]);
            assert!(removed["dynamodb"].get("NewImage").is_none(), "{removed}");
            let only_old =
                FilterCriteria::parse([r#"{"dynamodb": {"NewImage": [{"exists": false}]}}"#])
                    .unwrap();
            assert!(only_old.selects(&removed));
        }

        #[test]
        fn the_template_lets_through_inserts_of_notifications_and_presence_only() {
            let filters = template_filters();
            for selected in [Entity::Notification, Entity::Presence] {
                assert!(
                    filters.selects(&insert(&[entity(selected)])),
                    "{selected:?}"
                );
            }
            for skipped in [Entity::Post, Entity::Comment, Entity::Session, Entity::User] {
                assert!(!filters.selects(&insert(&[entity(skipped)])), "{skipped:?}");
            }
            let notification = [
                entity(Entity::Notification),
                ("read", AttributeValue::Bool(false)),
            ];
            let read = [
                entity(Entity::Notification),
                ("read", AttributeValue::Bool(true)),
            ];
            assert!(
                !filters.selects(&modify(&notification, &read)),
                "marked read"
            );
            assert!(!filters.selects(&remove(&notification)));
        }

        #[test]
        fn the_template_lets_through_removes_of_posts_uploads_and_presence_only() {
            let filters = template_filters();
            for selected in [Entity::Post, Entity::Upload, Entity::Presence] {
                assert!(
                    filters.selects(&remove(&[entity(selected)])),
                    "{selected:?}"
                );
            }
            for skipped in [Entity::Comment, Entity::Session, Entity::Notification] {
                assert!(!filters.selects(&remove(&[entity(skipped)])), "{skipped:?}");
            }
            let post = [entity(Entity::Post), ("title", s("a"))];
            let edited = [entity(Entity::Post), ("title", s("b"))];
            assert!(!filters.selects(&modify(&post, &edited)), "an edit");
        }

        #[test]
        fn the_template_lets_through_a_session_only_once_it_is_revoked() {
            let filters = template_filters();
            let live = [
                entity(Entity::Session),
                ("revoked", AttributeValue::Bool(false)),
            ];
            let revoked = [
                entity(Entity::Session),
                ("revoked", AttributeValue::Bool(true)),
            ];
            assert!(filters.selects(&modify(&live, &revoked)), "logout");
            assert!(!filters.selects(&modify(&live, &live)), "a refresh");
            assert!(!filters.selects(&insert(&live)));
            assert!(!filters.selects(&modify(&live, &[entity(Entity::Session)])));
            let as_text = [entity(Entity::Session), ("revoked", s("true"))];
            assert!(!filters.selects(&modify(&live, &as_text)), "BOOL, not S");
        }

        /// The worker must see a user whose sessions were cut (a reset, a
        /// suspension, a deletion move `sessionsValidAfter`), and needs no
        /// other user change.
        #[test]
        fn the_template_lets_through_a_user_only_once_their_sessions_were_cut() {
            let filters = template_filters();
            let never_cut = [
                entity(Entity::User),
                ("sessionsValidAfter", AttributeValue::N("0".into())),
            ];
            let cut = [
                entity(Entity::User),
                (
                    "sessionsValidAfter",
                    AttributeValue::N("1767225600000".into()),
                ),
            ];
            assert!(
                !filters.selects(&modify(&never_cut, &never_cut)),
                "a profile edit"
            );
            assert!(!filters.selects(&insert(&never_cut)), "a registration");
            assert!(!filters.selects(&modify(&never_cut, &[entity(Entity::User)])));
            assert!(
                filters.selects(&modify(&never_cut, &cut)),
                "a reset, suspension or deletion must reach the worker; \
                 a `numeric` rule never matches an N value, which is a string"
            );
        }

        #[tokio::test]
        async fn only_selected_records_reach_the_worker_and_an_empty_batch_invokes_nothing() {
            let invocations: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
            let seen = invocations.clone();
            let worker = platform::lambda::event_service(move |event: Event| {
                let seen = seen.clone();
                async move {
                    let ids = event.records.iter().map(|r| r.event_id.clone()).collect();
                    seen.lock().unwrap().push(ids);
                    DynamoDbEventResponse::default()
                }
            });
            let filters = FilterCriteria::parse([r#"{"eventName": ["REMOVE"]}"#]).unwrap();
            let post: Image = &[entity(Entity::Post)];
            let batch = |names: &[(&str, OperationType)]| -> Vec<Value> {
                names
                    .iter()
                    .map(|(id, name)| match name {
                        OperationType::Remove => record(id, name.clone(), None, Some(post)),
                        _ => record(id, name.clone(), Some(post), None),
                    })
                    .collect()
            };

            forward(
                &worker,
                &filters,
                batch(&[("1", OperationType::Insert), ("2", OperationType::Modify)]),
            )
            .await;
            assert!(invocations.lock().unwrap().is_empty());

            forward(
                &worker,
                &filters,
                batch(&[
                    ("3", OperationType::Insert),
                    ("4", OperationType::Remove),
                    ("5", OperationType::Modify),
                    ("6", OperationType::Remove),
                ]),
            )
            .await;
            assert_eq!(*invocations.lock().unwrap(), [["4", "6"]]);
        }
    }
}
