//! The table handle and the few request shapes every store is built from:
//! exact query pages, batch reads and writes that retry what DynamoDB hands
//! back unprocessed, write transactions that retry conflicts, and item
//! (de)serialisation through serde_dynamo.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
        TransactWriteItem, Update, WriteRequest,
    },
};
use futures::TryFutureExt;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::{StoreError, TransactionFailure, decode_cancellation, dynamo},
    keys::{Index, PK, SK, TABLE_PAGE_KEY},
};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// One page to read: how many items, and the key to resume after.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: u32,
    pub start: Option<Item>,
}

/// The primary key of an item.
pub fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
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
    pub async fn ping(&self) -> Result<(), StoreError> {
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
/// A failure comes back decoded from the cancellation reasons, for the
/// caller to name by the position of the item whose condition failed.
pub async fn transact_write(
    table: &Table,
    items: Vec<TransactWriteItem>,
) -> Result<(), TransactionFailure> {
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
        let failure = match result {
            Ok(_) => return Ok(()),
            Err(err) => decode_cancellation(err),
        };
        if !matches!(failure, TransactionFailure::Busy(_)) || attempt == ATTEMPTS {
            return Err(failure);
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
) -> Result<(Vec<Item>, Option<Item>), StoreError>
where
    F: FnMut(Option<Item>, i32) -> Fut,
    Fut: Future<Output = Result<aws_sdk_dynamodb::operation::query::QueryOutput, StoreError>>,
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

/// One partition to read in order, of the table or of an index: most of
/// the stores' lists are one of these.
#[derive(Debug, Clone)]
pub struct Partition<'a> {
    /// `None`: the table itself.
    pub index: Option<Index>,
    /// The partition key's value.
    pub key: String,
    /// Only sort keys that start with this (table partitions only).
    pub sort_prefix: Option<&'a str>,
    pub newest_first: bool,
}

impl Table {
    /// One exact page of `partition` (`query_page`), resuming after
    /// `page.start`.
    pub async fn page_of(
        &self,
        partition: &Partition<'_>,
        page: Page,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let (key_attribute, page_key) = match partition.index {
            Some(index) => (index.partition_key(), index.page_key()),
            None => (PK, TABLE_PAGE_KEY),
        };
        let mut values =
            HashMap::from([(":pk".to_owned(), AttributeValue::S(partition.key.clone()))]);
        let condition = match partition.sort_prefix {
            Some(prefix) => {
                values.insert(":prefix".to_owned(), AttributeValue::S(prefix.to_owned()));
                format!("{key_attribute} = :pk AND begins_with({SK}, :prefix)")
            }
            None => format!("{key_attribute} = :pk"),
        };
        query_page(page.limit, page.start, page_key, |start, limit| {
            self.client
                .query()
                .table_name(&self.name)
                .set_index_name(partition.index.map(|index| index.name().to_owned()))
                .key_condition_expression(condition.clone())
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!partition.newest_first)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .map_err(dynamo)
        })
        .await
    }
}

/// How many items `query` selects, over every page of it: `Select::Count`
/// reads nothing back but the count, and a page ends at 1 MB of items
/// examined, so a large partition takes one call per megabyte.
pub async fn count_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<u64, StoreError> {
    let mut count = 0u64;
    let mut start: Option<Item> = None;
    loop {
        let output = query
            .clone()
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(dynamo)?;
        count += u64::try_from(output.count).unwrap_or_default();
        match output.last_evaluated_key.filter(|key| !key.is_empty()) {
            Some(key) => start = Some(key),
            None => return Ok(count),
        }
    }
}

/// BatchGetItem in chunks of 100, retrying keys that come back
/// unprocessed (DynamoDB hands some back under load); missing items are
/// simply absent from the result, which is in no particular order.
pub async fn batch_get(
    table: &Table,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(consistent)
            .build()
            .map_err(|err| StoreError::internal("building a batch read", err))?;
        let mut pending = HashMap::from([(table.name.clone(), request)]);
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
                    return Err(StoreError::Throttled {
                        service: "dynamodb",
                        source: "batch read left keys unprocessed".into(),
                    });
                }
                None => break,
            }
        }
    }
    Ok(found)
}

/// BatchWriteItem in chunks of 25, retrying what comes back unprocessed.
pub async fn batch_write(table: &Table, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
    for chunk in requests.chunks(25) {
        let mut pending = HashMap::from([(table.name.clone(), chunk.to_vec())]);
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
                    return Err(StoreError::Throttled {
                        service: "dynamodb",
                        source: "batch write left items unprocessed".into(),
                    });
                }
                None => break,
            }
        }
    }
    Ok(())
}

pub fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|err| StoreError::internal("building a batch write", err))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub fn delete_request(pk: String, sk: String) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key(pk, sk)))
        .build()
        .map_err(|err| StoreError::internal("building a batch write", err))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

fn build_error(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::internal("building a transaction", err)
}

/// A conditional (or not) delete, as one item of a write transaction.
pub fn transact_delete(
    table: &Table,
    key: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(&table.name)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// An update, as one item of a write transaction.
pub fn transact_update(
    table: &Table,
    key: Item,
    expression: &str,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let values = values
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    transact_update_named(table, key, expression, condition, HashMap::new(), values)
}

/// An update whose expressions name attributes through `#placeholders`
/// (`names`), as one item of a write transaction: what an update of a
/// reserved word (`role`, `status`) needs.
pub fn transact_update_named(
    table: &Table,
    key: Item,
    expression: &str,
    condition: &str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(&table.name)
        .set_key(Some(key))
        .update_expression(expression)
        .condition_expression(condition)
        .set_expression_attribute_names((!names.is_empty()).then_some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// A condition on an item the transaction does not write: the writes
/// happen only while it holds.
pub fn transact_check(
    table: &Table,
    key: Item,
    condition: &str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(&table.name)
        .set_key(Some(key))
        .condition_expression(condition)
        .set_expression_attribute_names((!names.is_empty()).then_some(names))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// A conditional (or not) put, as one item of a write transaction.
pub fn transact_put(
    table: &Table,
    item: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(&table.name)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A typed value as a DynamoDB item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|err| StoreError::internal("serialising an item", err))
}

/// A DynamoDB item as a typed value.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|err| StoreError::internal("deserialising an item", err))
}
