//! `Idempotency-Key` for creating requests (docs/API.md, Posts): the same
//! key with the same body within 24 hours returns the first response again
//! and creates nothing; with another body it is a 409.
//!
//! The record (`model::idempotency`) is written in the same transaction as
//! what the request creates, conditional on not existing: of two concurrent
//! requests with one key, exactly one creates, and the other's transaction
//! fails with `Condition::Replayed`, after which it answers as the winner.

use http::HeaderMap;
use model::{
    Table,
    domain::UserId,
    idempotency::{IdempotencyItem, IdempotencyRecords, RecordKey},
};
use platform::AppError;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";

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

/// Where a keyed request stands.
#[derive(Debug, Clone)]
pub struct Idempotency {
    key: RecordKey,
    request_hash: String,
}

/// What to do with a keyed request.
pub enum NextAction {
    /// First time: go ahead, and write `record` with what it creates.
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
    /// The idempotency of a creating request in `scope`, if it sent a key.
    pub fn of_request<T: Serialize>(
        headers: &HeaderMap,
        user: &UserId,
        scope: &str,
        request: &T,
    ) -> Result<Option<Self>, AppError> {
        IdempotencyKey::from_headers(headers)?
            .map(|key| {
                Ok(Self {
                    key: RecordKey::new(user, scope, key.as_str()),
                    request_hash: request_hash(request)?,
                })
            })
            .transpose()
    }

    /// Looks the key up: a replay, a 409 for another body, or go ahead.
    pub async fn next_action(&self, table: &Table) -> Result<NextAction, AppError> {
        let Some(record) = table.idempotency_record(&self.key).await? else {
            return Ok(NextAction::Proceed);
        };
        if record.request_hash != self.request_hash {
            return Err(AppError::Conflict(
                "Idempotency-Key was already used with a different request body".into(),
            ));
        }
        let data = serde_json::from_str(&record.response)
            .map_err(|err| AppError::internal("reading a stored response", err))?;
        Ok(NextAction::Replay(data))
    }

    /// The record to write with what the request creates.
    pub fn record<T: Serialize>(&self, response: &T) -> Result<IdempotencyItem, AppError> {
        let response = serde_json::to_string(response)
            .map_err(|err| AppError::internal("storing a response", err))?;
        Ok(IdempotencyItem::new(
            &self.key,
            self.request_hash.clone(),
            response,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

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

    fn keyed(key: &'static str) -> HeaderMap {
        HeaderMap::from_iter([(
            http::HeaderName::from_static(HEADER),
            HeaderValue::from_static(key),
        )])
    }

    #[test]
    fn a_keyed_request_is_recorded_under_its_user_scope_and_key() {
        let user = UserId::new();
        let body = ("title", "body");
        assert!(
            Idempotency::of_request(&HeaderMap::new(), &user, "create-post", &body)
                .unwrap()
                .is_none()
        );
        let bad = Idempotency::of_request(&keyed("has space"), &user, "create-post", &body);
        assert!(matches!(bad, Err(AppError::BadRequest(_))));

        let idempotency = Idempotency::of_request(&keyed("k-1"), &user, "create-post", &body)
            .unwrap()
            .expect("a keyed request");
        let response = serde_json::json!({ "id": "01J", "title": "title" });
        let record = idempotency.record(&response).unwrap();
        let expected = IdempotencyItem::new(
            &RecordKey::new(&user, "create-post", "k-1"),
            request_hash(&body).unwrap(),
            response.to_string(),
        );
        assert_eq!(record.pk, expected.pk);
        assert_eq!(record.request_hash, expected.request_hash);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&record.response).unwrap(),
            response
        );
        for (other_user, scope, key) in [
            (UserId::new(), "create-post", "k-1"),
            (user, "create-comment", "k-1"),
            (user, "create-post", "k-2"),
        ] {
            assert_ne!(
                IdempotencyItem::new(
                    &RecordKey::new(&other_user, scope, key),
                    "h".into(),
                    "{}".into()
                )
                .pk,
                record.pk,
                "{scope} {key}"
            );
        }
    }

    /// docs/API.md: an `Idempotency-Key` is 1–128 characters; the code reads
    /// "printable" as visible ASCII, 0x21 to 0x7E (no space, no control).
    fn is_contract_idempotency_key(value: &str) -> bool {
        (1..=128).contains(&value.len()) && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
    }

    fn header_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[!-~]{0,130}",
            "[ -~]{0,130}",
            "[\\x00-\\x7f]{0,130}",
            any::<String>(),
            (1usize..=140).prop_map(|n| "k".repeat(n)),
        ]
    }

    proptest! {
        #[test]
        fn idempotency_keys_are_exactly_1_to_128_visible_ascii(value in header_like()) {
            let parsed = IdempotencyKey::parse(&value);
            prop_assert_eq!(parsed.is_some(), is_contract_idempotency_key(&value), "{:?}", value);
            if let Some(key) = parsed {
                prop_assert_eq!(key.as_str(), value.as_str());
            }
        }
    }
}
