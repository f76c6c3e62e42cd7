//! The DynamoDB side of uploads, one round trip each: creating a pending
//! upload, reading one for its owner, and marking it ready.
//!
//! A pending upload carries a `ttl` so that one the client abandons goes
//! away by itself. TTL deletion can lag by days, so an item past its `ttl`
//! is treated as gone here too.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use shared::{
    AppError,
    store::{self, Table, from_item, to_item},
    uploads::{self, UPLOAD_SK, UploadItem, upload_pk},
};

/// How long a pending upload is kept: far beyond the life of its URL, so a
/// slow upload can still be completed.
pub const PENDING_TTL_SECS: i64 = 24 * 3600;

/// `UploadStatus::Ready` as stored: serde's spelling, which a test pins.
const READY: &str = "ready";

fn not_found() -> AppError {
    AppError::NotFound("Upload not found".into())
}

/// Stores a new pending upload; its id is fresh, and the condition only
/// guards against overwriting one should that ever not hold.
pub async fn put_pending(table: &Table, upload: &UploadItem) -> Result<(), AppError> {
    table
        .client
        .put_item()
        .table_name(&table.name)
        .set_item(Some(to_item(upload)?))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(store::dynamo)?;
    Ok(())
}

/// `owner_id`'s upload `id`. Another user's upload, and an expired pending
/// one, read exactly like a missing one: the caller may not know it exists.
pub async fn owned_upload(
    table: &Table,
    id: &str,
    owner_id: &str,
    now: i64,
) -> Result<UploadItem, AppError> {
    uploads::get_upload(table, id)
        .await?
        .filter(|upload| upload.owner_id == owner_id)
        .filter(|upload| upload.ttl.is_none_or(|ttl| ttl > now))
        .ok_or_else(not_found)
}

/// Marks `upload` ready and drops its `ttl`, returning the stored item. The
/// condition repeats the checks of `owned_upload`, so an item that expired
/// or vanished in between is a 404 rather than being brought back.
pub async fn mark_ready(
    table: &Table,
    upload: &UploadItem,
    now: i64,
) -> Result<UploadItem, AppError> {
    let output = table
        .client
        .update_item()
        .table_name(&table.name)
        .key("pk", AttributeValue::S(upload_pk(&upload.id)))
        .key("sk", AttributeValue::S(UPLOAD_SK.into()))
        .update_expression("SET #status = :ready REMOVE #ttl")
        .condition_expression("#ownerId = :owner AND (attribute_not_exists(#ttl) OR #ttl > :now)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_names("#ownerId", "ownerId")
        .expression_attribute_values(":ready", AttributeValue::S(READY.into()))
        .expression_attribute_values(":owner", AttributeValue::S(upload.owner_id.clone()))
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .map_err(|err| match store::dynamo(err) {
            AppError::Conflict(_) => not_found(),
            other => other,
        })?;
    let item = output.attributes.ok_or_else(|| AppError::Internal {
        context: "UpdateItem with ALL_NEW returned no attributes",
        source: None,
    })?;
    from_item(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::uploads::UploadStatus;

    #[test]
    fn ready_is_stored_as_serde_spells_it() {
        assert_eq!(serde_json::to_value(UploadStatus::Ready).unwrap(), READY);
    }
}
