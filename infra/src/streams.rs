//! The local stand-in for Lambda's DynamoDB Streams event source mapping:
//! polls the table's stream on the emulator, turns the records into the
//! event Lambda would deliver, and runs the stream worker in process.
//!
//! Like the real mapping it honours `batchItemFailures`: the batch is
//! retried from the first failed record, at most `MAX_RETRIES` times, after
//! which the records are dropped with an error in the log (the deployed
//! stack sends them to its on-failure queue instead).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use crate::functions::StreamService;

const POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_RETRIES: u32 = 3;
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
        AttributeValue::M(map) => json!({"M": image_json(Some(map))}),
        _ => json!({"NULL": true}),
    }
}

fn image_json(image: Option<&std::collections::HashMap<String, AttributeValue>>) -> Value {
    let Some(image) = image else {
        return Value::Null;
    };
    Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// One record as Lambda's DynamoDB event shows it.
pub fn record_json(record: &Record, stream_arn: &str, region: &str) -> Value {
    let change = record.dynamodb();
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region().unwrap_or(region),
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change.and_then(|c| c.approximate_creation_date_time()).map(|t| t.as_secs_f64()),
            "Keys": image_json(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image_json(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image_json(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
            "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
        },
    })
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

/// Starts polling `table`'s stream from now on. Returns once the poller is
/// positioned, so nothing written after this call is missed.
pub async fn start(
    sdk: &SdkConfig,
    table: &str,
    worker: StreamService,
) -> Result<tokio::task::JoinHandle<()>, PollerError> {
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let (stream_arn, iterators) =
        shard_iterators(sdk, &streams, table, ShardIteratorType::Latest).await?;
    Ok(tokio::spawn(poll(
        streams, stream_arn, region, iterators, worker,
    )))
}

async fn poll(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    mut iterators: Vec<String>,
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
                    let records: Vec<Value> = output
                        .records()
                        .iter()
                        .map(|r| record_json(r, &stream_arn, &region))
                        .collect();
                    if !records.is_empty() {
                        deliver(&worker, records).await;
                    }
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
        let response = match platform::lambda::invoke(worker, event).await {
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
            "dynamodb": {"ApproximateCreationDateTime": 1.0, "Keys": image_json(Some(&image)), "NewImage": image_json(Some(&image)),
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
}
