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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PK;

    /// docs/API.md: a key answers for 24 hours.
    const DAY_SECS: i64 = 24 * 60 * 60;

    fn record_key() -> RecordKey {
        RecordKey::new(&UserId::new(), "create-post", "key-1")
    }

    fn record_with_ttl(ttl: i64) -> IdempotencyItem {
        IdempotencyItem {
            ttl,
            ..IdempotencyItem::new(&record_key(), "hash".into(), "{}".into())
        }
    }

    #[test]
    fn a_new_record_expires_24_hours_after_it_was_made() {
        let before = unix_now() as i64;
        let record = IdempotencyItem::new(&record_key(), "hash".into(), "{\"id\":1}".into());
        let after = unix_now() as i64;
        assert!(
            (before + DAY_SECS..=after + DAY_SECS).contains(&record.ttl),
            "ttl {} made between {before} and {after}",
            record.ttl
        );
        assert!(record.is_live());
    }

    #[test]
    fn a_record_past_its_ttl_answers_for_nothing() {
        let now = unix_now() as i64;
        assert!(record_with_ttl(now + 60).is_live());
        assert!(record_with_ttl(now + DAY_SECS).is_live());
        assert!(!record_with_ttl(now - 60).is_live());
        assert!(!record_with_ttl(0).is_live());
    }

    #[test]
    fn the_record_is_written_with_its_ttl_and_may_replace_only_an_expired_one() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let table = Table::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
        let key = record_key();
        let record = IdempotencyItem::new(&key, "hash".into(), "{}".into());
        let before = unix_now();
        let write = record.transact_put(&table).unwrap();
        let after = unix_now();
        let put = write.put().expect("a put");
        assert_eq!(put.table_name(), "t");
        let item = put.item();
        assert_eq!(item[PK].as_s().unwrap(), &key.0);
        assert_eq!(item[TTL].as_n().unwrap(), &record.ttl.to_string());
        let condition = put.condition_expression().expect("a condition");
        assert!(
            condition.contains("attribute_not_exists(pk)"),
            "{condition}"
        );
        assert_eq!(put.expression_attribute_names().unwrap()["#ttl"], TTL);
        let now: u64 = put.expression_attribute_values().unwrap()[":now"]
            .as_n()
            .unwrap()
            .parse()
            .unwrap();
        assert!((before..=after).contains(&now), "{now}");
    }
}
