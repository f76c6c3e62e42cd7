//! `Idempotency-Key` for creating requests (API.md, Posts): the same key
//! with the same body within 24 hours returns the first response again and
//! creates nothing; with another body it is a 409.
//!
//! The record (`pk = IDEMP#<user>#<scope>#<key>`, `sk = IDEMP`) is written
//! in the same transaction as what the request creates, conditional on not
//! existing: of two concurrent requests with one key, exactly one creates.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::AppError,
    jwt::unix_now,
    store::{self, Table, from_item, to_item},
};

pub const HEADER: &str = "idempotency-key";
const RETENTION_SECS: u64 = 24 * 3600;

/// A validated `Idempotency-Key` header value: 1–128 printable ASCII
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a request, if it sent one; a malformed one is a 400.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, AppError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let bad = || {
            AppError::BadRequest(
                "Idempotency-Key must be 1 to 128 printable ASCII characters".into(),
            )
        };
        let value = value.to_str().map_err(|_| bad())?;
        Self::parse(value).map(Some).ok_or_else(bad)
    }

    pub fn parse(value: &str) -> Option<Self> {
        let ok = (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| IdempotencyKey(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdempotencyItem {
    pk: String,
    sk: String,
    entity: String,
    request_hash: String,
    /// The `data` of the first response, as JSON text.
    response: String,
    ttl: i64,
}

/// Where a keyed request stands.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pk: String,
    request_hash: String,
}

/// What to do with a keyed request.
pub enum Replay {
    /// First time: go ahead, and add `record` to the creating transaction.
    Proceed,
    /// Seen with the same body: answer this `data` again.
    Replay(serde_json::Value),
}

/// Hash of the parsed request, so that formatting differences do not count
/// as "another body".
pub fn request_hash<T: Serialize>(request: &T) -> Result<String, AppError> {
    let bytes =
        serde_json::to_vec(request).map_err(|err| AppError::internal("hashing a request", err))?;
    Ok(Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Idempotency {
    pub fn new(user_id: &str, scope: &str, key: &IdempotencyKey, request_hash: String) -> Self {
        Self {
            pk: format!("IDEMP#{user_id}#{scope}#{}", key.as_str()),
            request_hash,
        }
    }

    /// Looks the key up: a replay, a 409 for another body, or go ahead.
    pub async fn check(&self, table: &Table) -> Result<Replay, AppError> {
        let output = table
            .client
            .get_item()
            .table_name(&table.name)
            .key("pk", AttributeValue::S(self.pk.clone()))
            .key("sk", AttributeValue::S("IDEMP".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store::dynamo)?;
        let Some(item) = output.item else {
            return Ok(Replay::Proceed);
        };
        let record: IdempotencyItem = from_item(item)?;
        if record.ttl < unix_now() as i64 {
            return Ok(Replay::Proceed);
        }
        if record.request_hash != self.request_hash {
            return Err(AppError::Conflict(
                "Idempotency-Key was already used with a different request body".into(),
            ));
        }
        let data = serde_json::from_str(&record.response)
            .map_err(|err| AppError::internal("reading a stored response", err))?;
        Ok(Replay::Replay(data))
    }

    /// The record to write with what the request creates.
    pub fn record<T: Serialize>(
        &self,
        table: &Table,
        response: &T,
    ) -> Result<TransactWriteItem, AppError> {
        let response = serde_json::to_string(response)
            .map_err(|err| AppError::internal("storing a response", err))?;
        let item = IdempotencyItem {
            pk: self.pk.clone(),
            sk: "IDEMP".into(),
            entity: "idempotency".into(),
            request_hash: self.request_hash.clone(),
            response,
            ttl: (unix_now() + RETENTION_SECS) as i64,
        };
        let put = Put::builder()
            .table_name(&table.name)
            .set_item(Some(to_item(&item)?))
            // An expired record (TTL not yet applied) may be replaced.
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
            .build()
            .map_err(|err| AppError::internal("building a transaction", err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_follow_the_contract() {
        assert!(IdempotencyKey::parse("a").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_some());
        for bad in ["", " ", "has space", "tab\tkey", "ü", &"k".repeat(129)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        assert!(IdempotencyKey::from_headers(&headers).unwrap().is_none());
        headers.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(
            IdempotencyKey::from_headers(&headers)
                .unwrap()
                .unwrap()
                .as_str(),
            "abc-123"
        );
        headers.insert(HEADER, HeaderValue::from_bytes(b"bad\xff").unwrap());
        assert!(matches!(
            IdempotencyKey::from_headers(&headers),
            Err(AppError::BadRequest(_))
        ));
    }

    #[test]
    fn hashes_depend_on_content_only() {
        let a = request_hash(&("t", "b")).unwrap();
        assert_eq!(a, request_hash(&("t", "b")).unwrap());
        assert_ne!(a, request_hash(&("t", "c")).unwrap());
    }
}
