//! The DynamoDB layer: the table handle, item (de)serialisation through
//! serde_dynamo, and the one place where SDK errors become `AppError`s.
//!
//! ConditionalCheckFailed becomes a 409 here, throttling and an unreachable
//! service a 503 (after the SDK's own retries), anything else a 500 whose
//! cause goes to the log. Handlers never see an SDK error.

use std::{collections::HashMap, error::Error as StdError};

use aws_sdk_dynamodb::{
    Client,
    error::ProvideErrorMetadata,
    types::{
        AttributeValue, DeleteRequest, KeysAndAttributes, Put, PutRequest, TransactWriteItem,
        WriteRequest,
    },
};
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::AppError;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Error codes that mean "try again later", not "you did something wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "SlowDown",
    "TransactionInProgressException",
];

/// Translates any SDK error of `service` into the error table.
pub fn translate<E>(service: &'static str, err: SdkError<E, HttpResponse>) -> AppError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AppError::unavailable(service, err)
        }
        SdkError::ServiceError(inner) => {
            let code = inner.err().code().unwrap_or_default().to_owned();
            let message = inner.err().message().unwrap_or_default().to_owned();
            let status = inner.raw().status().as_u16();
            if code == "ConditionalCheckFailedException" {
                AppError::Conflict("The resource was changed or already exists".into())
            } else if code == "TransactionCanceledException" {
                translate_cancellation(service, &message, err)
            } else if TRANSIENT_CODES.contains(&code.as_str()) || status >= 500 {
                AppError::unavailable(service, err)
            } else {
                AppError::internal(service_context(service), err)
            }
        }
        _ => AppError::internal(service_context(service), err),
    }
}

fn translate_cancellation<E>(
    service: &'static str,
    message: &str,
    err: SdkError<E, HttpResponse>,
) -> AppError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if message.contains("ConditionalCheckFailed") {
        AppError::Conflict("The resource was changed or already exists".into())
    } else if message.contains("TransactionConflict") || message.contains("Throttling") {
        AppError::unavailable(service, err)
    } else {
        AppError::internal(service_context(service), err)
    }
}

fn service_context(service: &'static str) -> &'static str {
    match service {
        "dynamodb" => "calling dynamodb",
        "s3" => "calling s3",
        "ses" => "calling ses",
        _ => "calling an AWS service",
    }
}

/// Translates a DynamoDB SDK error.
pub fn dynamo<E>(err: SdkError<E, HttpResponse>) -> AppError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    translate("dynamodb", err)
}

/// The single table and its client.
#[derive(Debug, Clone)]
pub struct Table {
    pub client: Client,
    pub name: String,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// Whether the table answers: the readiness probe.
    pub async fn ping(&self) -> Result<(), AppError> {
        self.client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo)
    }
}

/// Runs a write transaction. Transactions touching one hot item (a post's
/// comment counter) conflict under concurrency, and the SDK does not retry
/// those; they are retried here with jittered backoff before giving up.
pub async fn transact_write(table: &Table, items: Vec<TransactWriteItem>) -> Result<(), AppError> {
    const ATTEMPTS: u32 = 8;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = table
            .client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let retryable = err.as_service_error().is_some_and(|e| {
            let message = e.message().unwrap_or_default();
            e.is_transaction_in_progress_exception()
                || (e.is_transaction_canceled_exception()
                    && message.contains("TransactionConflict")
                    && !message.contains("ConditionalCheckFailed"))
        });
        if !retryable || attempt == ATTEMPTS {
            return Err(dynamo(err));
        }
        let backoff = 10u64 * 2u64.pow(attempt.min(6)) + rand::random_range(0..20u64);
        tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
    }
}

/// The attributes of `item` named in `key_attributes`: what DynamoDB wants
/// as `ExclusiveStartKey` to resume right after `item`.
pub fn key_of(item: &Item, key_attributes: &[&str]) -> Item {
    key_attributes
        .iter()
        .filter_map(|name| {
            item.get(*name)
                .map(|value| ((*name).to_owned(), value.clone()))
        })
        .collect()
}

/// One page of a query, exactly: reads until it has `limit + 1` items or the
/// partition ends (a filter or the 1 MB cap can make a read come back
/// short), keeps `limit`, and returns the key to resume after the last one
/// kept only when something is left. So `hasNext` is never a lie and the
/// last page is never empty.
///
/// `run(start, limit)` sends one Query; `key_attributes` are the table's and
/// the index's key attributes.
pub async fn query_page<F, Fut>(
    limit: u32,
    start: Option<Item>,
    key_attributes: &[&str],
    mut run: F,
) -> Result<(Vec<Item>, Option<Item>), AppError>
where
    F: FnMut(Option<Item>, i32) -> Fut,
    Fut: Future<Output = Result<aws_sdk_dynamodb::operation::query::QueryOutput, AppError>>,
{
    let wanted = limit as usize + 1;
    let mut items: Vec<Item> = Vec::with_capacity(wanted);
    let mut start = start;
    loop {
        let output = run(start.take(), (wanted - items.len()) as i32).await?;
        items.extend(output.items.unwrap_or_default());
        match output.last_evaluated_key.filter(|key| !key.is_empty()) {
            Some(key) if items.len() < wanted => start = Some(key),
            _ => break,
        }
    }
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items.last().map(|last| key_of(last, key_attributes));
        return Ok((items, next));
    }
    Ok((items, None))
}

/// BatchGetItem in chunks of 100, retrying keys that come back
/// unprocessed (DynamoDB hands some back under load); missing items are
/// simply absent from the result, which is in no particular order.
pub async fn batch_get(
    table: &Table,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, AppError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(consistent)
            .build()
            .map_err(|err| AppError::internal("building a batch read", err))?;
        let mut pending = std::collections::HashMap::from([(table.name.clone(), request)]);
        let mut attempt = 0u32;
        loop {
            let output = table
                .client
                .batch_get_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(dynamo)?;
            found.extend(output.responses.unwrap_or_default().into_values().flatten());
            match output.unprocessed_keys.filter(|keys| !keys.is_empty()) {
                Some(rest) if attempt < 3 => {
                    pending = rest;
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                    attempt += 1;
                }
                Some(_) => {
                    return Err(AppError::Unavailable {
                        service: "dynamodb",
                        source: Some("batch read left keys unprocessed".into()),
                    });
                }
                None => break,
            }
        }
    }
    Ok(found)
}

/// BatchWriteItem in chunks of 25, retrying what comes back unprocessed.
pub async fn batch_write(table: &Table, requests: Vec<WriteRequest>) -> Result<(), AppError> {
    for chunk in requests.chunks(25) {
        let mut pending = std::collections::HashMap::from([(table.name.clone(), chunk.to_vec())]);
        let mut attempt = 0u32;
        loop {
            let output = table
                .client
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(dynamo)?;
            match output.unprocessed_items.filter(|items| !items.is_empty()) {
                Some(rest) if attempt < 5 => {
                    pending = rest;
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                    attempt += 1;
                }
                Some(_) => {
                    return Err(AppError::Unavailable {
                        service: "dynamodb",
                        source: Some("batch write left items unprocessed".into()),
                    });
                }
                None => break,
            }
        }
    }
    Ok(())
}

pub fn put_request(item: Item) -> Result<WriteRequest, AppError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|err| AppError::internal("building a batch write", err))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub fn delete_request(pk: String, sk: String) -> Result<WriteRequest, AppError> {
    let delete = DeleteRequest::builder()
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .build()
        .map_err(|err| AppError::internal("building a batch write", err))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// A conditional (or not) put, as one item of a write transaction.
pub fn transact_put(
    table: &Table,
    item: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, AppError> {
    let put = Put::builder()
        .table_name(&table.name)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|err| AppError::internal("building a transaction", err))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A typed value as a DynamoDB item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, AppError> {
    serde_dynamo::to_item(value).map_err(|err| AppError::internal("serialising an item", err))
}

/// A DynamoDB item as a typed value.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, AppError> {
    serde_dynamo::from_item(item).map_err(|err| AppError::internal("deserialising an item", err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::{error::ErrorMetadata, operation::put_item::PutItemError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn service_error(
        code: &str,
        message: &str,
        status: u16,
    ) -> SdkError<PutItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let err = PutItemError::generic(meta);
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn conditional_check_failure_is_a_conflict() {
        let err = dynamo(service_error(
            "ConditionalCheckFailedException",
            "nope",
            400,
        ));
        assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
        let err = dynamo(service_error(
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]",
            400,
        ));
        assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
    }

    #[test]
    fn throttling_and_server_failures_are_unavailable() {
        for (code, status) in [
            ("ThrottlingException", 400),
            ("ProvisionedThroughputExceededException", 400),
            ("InternalServerError", 500),
            ("Whatever", 503),
        ] {
            let err = dynamo(service_error(code, "slow down", status));
            assert_eq!(err.status().as_u16(), 503, "{code}");
        }
    }

    #[test]
    fn an_unreachable_service_is_unavailable() {
        let err: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error(std::io::Error::other("timed out"));
        assert_eq!(dynamo(err).status().as_u16(), 503);
    }

    #[test]
    fn anything_else_is_an_opaque_500() {
        let err = dynamo(service_error(
            "ValidationException",
            "One or more parameter values were invalid: table arn:aws:x",
            400,
        ));
        assert_eq!(err.status().as_u16(), 500);
        assert!(!err.public_message().contains("arn"));
    }

    #[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
    struct Thing {
        pk: String,
        count: u32,
    }

    #[test]
    fn items_round_trip() {
        let thing = Thing {
            pk: "A".into(),
            count: 3,
        };
        let item = to_item(&thing).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("A".into()));
        assert_eq!(from_item::<Thing>(item).unwrap(), thing);
    }
}
