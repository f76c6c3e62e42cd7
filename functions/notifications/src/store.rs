//! The DynamoDB reads and writes of the notifications function.
//!
//! All notifications are read from the recipient's partition (sort key
//! `NOTIF#<ulid>`, so newest first is a reverse query); unread ones from the
//! sparse `gsi2` partition `UNREAD#<recipient>`, which holds nothing else, so
//! listing or counting unread ones never reads a read one. Marking read
//! removes the index keys, which takes the item out of that partition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use futures::{StreamExt, TryStreamExt, stream};
use shared::{
    AppError,
    notifications::{NOTIFICATION_PREFIX, NotificationItem, notification_sk, unread_pk},
    query::PageRequest,
    store::{self, Item, Table, from_item},
    users::user_pk,
};

/// The sparse index of unread notifications.
const UNREAD_INDEX: &str = "gsi2";

/// How many updates read-all keeps in flight at once: enough to finish a
/// large backlog quickly, few enough not to burst into throttling.
const READ_ALL_CONCURRENCY: usize = 16;

/// `SET read = true` plus dropping the index keys, shared by both ways of
/// marking read so that they cannot drift apart. `read` is a reserved word.
const MARK_READ: &str = "SET #read = :true REMOVE gsi2pk, gsi2sk";

fn key(user_id: &str, id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(user_pk(user_id))),
        ("sk".to_owned(), AttributeValue::S(notification_sk(id))),
    ])
}

fn not_found(err: AppError) -> AppError {
    match err {
        AppError::Conflict(_) => AppError::NotFound("Notification not found".into()),
        other => other,
    }
}

fn into_notifications(items: Vec<Item>) -> Result<Vec<NotificationItem>, AppError> {
    items.into_iter().map(from_item).collect()
}

/// One page of the caller's notifications, newest first.
pub async fn list_all(
    table: &Table,
    user_id: &str,
    page: &PageRequest,
) -> Result<(Vec<NotificationItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        &["pk", "sk"],
        |start, limit| async move {
            table
                .client
                .query()
                .table_name(&table.name)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(user_pk(user_id)))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(NOTIFICATION_PREFIX.into()),
                )
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store::dynamo)
        },
    )
    .await?;
    Ok((into_notifications(items)?, next))
}

/// One page of the caller's unread notifications, newest first.
pub async fn list_unread(
    table: &Table,
    user_id: &str,
    page: &PageRequest,
) -> Result<(Vec<NotificationItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        &["pk", "sk", "gsi2pk", "gsi2sk"],
        |start, limit| async move {
            table
                .client
                .query()
                .table_name(&table.name)
                .index_name(UNREAD_INDEX)
                .key_condition_expression("gsi2pk = :unread")
                .expression_attribute_values(":unread", AttributeValue::S(unread_pk(user_id)))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store::dynamo)
        },
    )
    .await?;
    Ok((into_notifications(items)?, next))
}

/// How many unread notifications the caller has. A count query still stops
/// at 1 MB of index data per call, so it follows `LastEvaluatedKey`.
pub async fn count_unread(table: &Table, user_id: &str) -> Result<u64, AppError> {
    let mut count = 0u64;
    let mut start: Option<Item> = None;
    loop {
        let output = table
            .client
            .query()
            .table_name(&table.name)
            .index_name(UNREAD_INDEX)
            .key_condition_expression("gsi2pk = :unread")
            .expression_attribute_values(":unread", AttributeValue::S(unread_pk(user_id)))
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store::dynamo)?;
        count += u64::try_from(output.count).unwrap_or_default();
        match output.last_evaluated_key.filter(|key| !key.is_empty()) {
            Some(key) => start = Some(key),
            None => return Ok(count),
        }
    }
}

/// Marks one of the caller's notifications read and returns it; a missing
/// one is a 404. Already read is fine: the update is idempotent.
pub async fn mark_read(
    table: &Table,
    user_id: &str,
    id: &str,
) -> Result<NotificationItem, AppError> {
    let output = table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(key(user_id, id)))
        .update_expression(MARK_READ)
        // Without it, an update of a missing key would create a stub item.
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#read", "read")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .map_err(|err| not_found(store::dynamo(err)))?;
    from_item(output.attributes.unwrap_or_default())
}

/// Marks every unread notification of the caller read; returns how many
/// this call changed.
pub async fn mark_all_read(table: &Table, user_id: &str) -> Result<u64, AppError> {
    let mut updated = 0u64;
    let mut start: Option<Item> = None;
    loop {
        let output = table
            .client
            .query()
            .table_name(&table.name)
            .index_name(UNREAD_INDEX)
            .key_condition_expression("gsi2pk = :unread")
            .expression_attribute_values(":unread", AttributeValue::S(unread_pk(user_id)))
            .projection_expression("gsi2sk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store::dynamo)?;
        // The key is rebuilt from the caller's id, so nothing but their own
        // partition can be written whatever the index holds.
        let ids = output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| match item.get("gsi2sk") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            });
        // One conditional UpdateItem per notification, run concurrently,
        // rather than TransactWriteItems in chunks of 100: the notifications
        // are independent, so a transaction's all-or-nothing buys nothing,
        // costs twice the write capacity, and one notification read or
        // deleted meanwhile would cancel its whole chunk and force a retry.
        // Here such a notification just fails its own condition and is not
        // counted, so `updated` is exactly what this call changed.
        updated += stream::iter(ids)
            .map(|id| async move { mark_read_if_unread(table, user_id, &id).await })
            .buffer_unordered(READ_ALL_CONCURRENCY)
            .try_fold(
                0u64,
                |sum, changed| async move { Ok(sum + u64::from(changed)) },
            )
            .await?;
        match output.last_evaluated_key.filter(|key| !key.is_empty()) {
            Some(key) => start = Some(key),
            None => return Ok(updated),
        }
    }
}

/// Whether this call turned the notification from unread to read.
async fn mark_read_if_unread(table: &Table, user_id: &str, id: &str) -> Result<bool, AppError> {
    let result = table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(key(user_id, id)))
        .update_expression(MARK_READ)
        // Read or deleted since the index was read: not ours to count, and
        // a deleted one must not come back as a stub.
        .condition_expression("attribute_exists(gsi2pk)")
        .expression_attribute_names("#read", "read")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .send()
        .await
        .map_err(store::dynamo);
    match result {
        Ok(_) => Ok(true),
        Err(AppError::Conflict(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Deletes one of the caller's notifications; a missing one is a 404.
pub async fn delete(table: &Table, user_id: &str, id: &str) -> Result<(), AppError> {
    table
        .client
        .delete_item()
        .table_name(&table.name)
        .set_key(Some(key(user_id, id)))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .map_err(|err| not_found(store::dynamo(err)))?;
    Ok(())
}
