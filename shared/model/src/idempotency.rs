//! The idempotency record: the first answer to a keyed creating request,
//! kept for 24 hours under the user, the scope and the key. The posts
//! function decides what a key means (header, body fingerprint, replay);
//! this module only stores and reads the record, and writes it in the
//! creating transaction so that the record and what it records commit
//! together.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now,
    domain::UserId,
    error::{StoreError, dynamo},
    keys::{self, Entity, IDEMPOTENCY_SK, TTL},
    table::{Table, from_item, key, to_item},
};

/// How long a record answers for its key.
pub const RETENTION_SECS: u64 = 24 * 3600;

/// What names a record: the user, the scope of the operation, the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey(String);

impl RecordKey {
    /// `key` is the client's `Idempotency-Key`, already checked.
    pub fn new(user: &UserId, scope: &str, key: &str) -> Self {
        Self(keys::idempotency_pk(user, scope, key))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub request_hash: String,
    /// The `data` of the first response, as JSON text.
    pub response: String,
    pub ttl: i64,
}

impl IdempotencyItem {
    pub fn new(key: &RecordKey, request_hash: String, response: String) -> Self {
        Self {
            pk: key.0.clone(),
            sk: IDEMPOTENCY_SK.into(),
            entity: Entity::Idempotency.as_str().into(),
            request_hash,
            response,
            ttl: (unix_now() + RETENTION_SECS) as i64,
        }
    }

    /// Whether the record still answers for its key (TTL deletion lags).
    pub fn is_live(&self) -> bool {
        self.ttl >= unix_now() as i64
    }

    /// The record as one item of the creating transaction: it may replace
    /// only an expired record, so a concurrent request with the same key
    /// fails this item's condition.
    pub(crate) fn transact_put(&self, table: &Table) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&table.name)
            .set_item(Some(to_item(self)?))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
            .build()
            .map_err(|err| StoreError::internal("building a transaction", err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Reading idempotency records.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait IdempotencyRecords {
    /// The live record under `key`, if any.
    async fn idempotency_record(
        &self,
        key: &RecordKey,
    ) -> Result<Option<IdempotencyItem>, StoreError>;
}

impl IdempotencyRecords for Table {
    async fn idempotency_record(
        &self,
        record: &RecordKey,
    ) -> Result<Option<IdempotencyItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(record.0.clone(), IDEMPOTENCY_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        let record = output.item.map(from_item::<IdempotencyItem>).transpose()?;
        Ok(record.filter(IdempotencyItem::is_live))
    }
}
