//! Opaque, signed pagination cursors.
//!
//! A cursor carries DynamoDB's `LastEvaluatedKey` and the name of the list it
//! belongs to, HMAC-signed so that a client can neither forge a key nor carry
//! a cursor over to another list: either is a 400, never a 500.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::AppError;

type HmacSha256 = Hmac<Sha256>;

/// The longest cursor accepted; keys are small, so anything longer is junk.
pub const MAX_CURSOR_LEN: usize = 2048;

/// What `encode` writes: the base64url payload, a dot, and the base64url
/// HMAC-SHA256 tag (32 bytes, 43 characters), as the OpenAPI document
/// states it.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}(?![\\s\\S])";

/// Signs and checks cursors; built once from a server-side secret.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

/// Key attributes are strings or numbers; nothing else is ever a key.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
enum KeyValue {
    S(String),
    N(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The list this cursor belongs to.
    l: String,
    /// The last evaluated key.
    k: BTreeMap<String, KeyValue>,
}

/// A decoded cursor: the key to resume a query from.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor(pub HashMap<String, AttributeValue>);

impl CursorCodec {
    /// `secret` is derived from the JWT secret so that no extra variable is
    /// needed; domain separation keeps a cursor MAC from being a token MAC.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(b"pagination-cursor-v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    /// Encodes `last_key` for `list`; `None` when there is no next page.
    pub fn encode(
        &self,
        list: &str,
        last_key: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<Option<String>, AppError> {
        let Some(last_key) = last_key.filter(|key| !key.is_empty()) else {
            return Ok(None);
        };
        let mut k = BTreeMap::new();
        for (name, value) in last_key {
            let value = match value {
                AttributeValue::S(s) => KeyValue::S(s.clone()),
                AttributeValue::N(n) => KeyValue::N(n.clone()),
                _ => {
                    return Err(AppError::Internal {
                        context: "a key attribute is neither S nor N",
                        source: None,
                    });
                }
            };
            k.insert(name.clone(), value);
        }
        let payload = serde_json::to_vec(&Payload {
            l: list.to_owned(),
            k,
        })
        .map_err(|err| AppError::internal("encoding a cursor", err))?;
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        Ok(Some(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )))
    }

    /// Checks and decodes a cursor of `list`.
    pub fn decode(&self, list: &str, cursor: &str) -> Result<Cursor, AppError> {
        let bad = || AppError::BadRequest("Invalid cursor".into());
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let (payload, tag) = cursor.split_once('.').ok_or_else(bad)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad())?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| bad())?;
        let payload: Payload = serde_json::from_slice(&payload).map_err(|_| bad())?;
        if payload.l != list {
            return Err(bad());
        }
        Ok(Cursor(
            payload
                .k
                .into_iter()
                .map(|(name, value)| {
                    let value = match value {
                        KeyValue::S(s) => AttributeValue::S(s),
                        KeyValue::N(n) => AttributeValue::N(n),
                    };
                    (name, value)
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> CursorCodec {
        CursorCodec::new(b"0123456789abcdef0123456789abcdef")
    }

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S("posts-3".into())),
            ("sk".to_owned(), AttributeValue::S("post-01J".into())),
            ("n".to_owned(), AttributeValue::N("42".into())),
        ])
    }

    fn is_bad_request(result: Result<Cursor, AppError>) -> bool {
        matches!(result, Err(AppError::BadRequest(_)))
    }

    #[test]
    fn a_cursor_round_trips_within_its_list() {
        let cursor = codec().encode("posts", Some(&key())).unwrap().unwrap();
        assert_eq!(codec().decode("posts", &cursor).unwrap(), Cursor(key()));
    }

    #[test]
    fn no_last_key_means_no_cursor() {
        assert_eq!(codec().encode("posts", None).unwrap(), None);
        assert_eq!(
            codec().encode("posts", Some(&HashMap::new())).unwrap(),
            None
        );
    }

    #[test]
    fn a_cursor_from_another_list_is_refused() {
        let cursor = codec().encode("posts", Some(&key())).unwrap().unwrap();
        assert!(is_bad_request(codec().decode("comments:01J", &cursor)));
    }

    #[test]
    fn any_tampering_is_refused() {
        let cursor = codec().encode("posts", Some(&key())).unwrap().unwrap();
        let (payload, tag) = cursor.split_once('.').unwrap();
        let mut forged = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let last = forged.len() - 3;
        forged[last] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged));
        assert!(is_bad_request(codec().decode("posts", &forged)));
        for junk in [
            "",
            ".",
            "abc",
            "abc.def",
            &"a".repeat(5000),
            "!!!.???",
            &format!("{payload}."),
        ] {
            assert!(is_bad_request(codec().decode("posts", junk)), "{junk}");
        }
        let other = CursorCodec::new(b"another secret entirely, 32 bytes")
            .encode("posts", Some(&key()))
            .unwrap()
            .unwrap();
        assert!(is_bad_request(codec().decode("posts", &other)));
    }

    /// A genuine cursor whose length is the first reachable one at least
    /// `len` (base64 skips some lengths), padded through a key value.
    fn signed_cursor_of_len_at_least(len: usize) -> (String, HashMap<String, AttributeValue>) {
        (0..2 * len)
            .map(|pad| {
                let key = HashMap::from([("pk".to_owned(), AttributeValue::S("p".repeat(pad)))]);
                (codec().encode("posts", Some(&key)).unwrap().unwrap(), key)
            })
            .find(|(cursor, _)| cursor.len() >= len)
            .unwrap()
    }

    #[test]
    fn a_signed_cursor_is_accepted_up_to_the_length_bound_and_refused_past_it() {
        let (at_bound, key) = signed_cursor_of_len_at_least(MAX_CURSOR_LEN);
        assert_eq!(at_bound.len(), MAX_CURSOR_LEN);
        assert_eq!(codec().decode("posts", &at_bound).unwrap(), Cursor(key));
        let (over, _) = signed_cursor_of_len_at_least(MAX_CURSOR_LEN + 1);
        assert!(over.len() > MAX_CURSOR_LEN);
        assert!(
            is_bad_request(codec().decode("posts", &over)),
            "{}",
            over.len()
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let codec = codec();
        let printed = format!("{codec:?}");
        assert!(printed.starts_with("CursorCodec"), "{printed}");
        let bytes = format!("{:?}", codec.key);
        let hex: String = codec.key.iter().map(|b| format!("{b:02x}")).collect();
        for key in [
            bytes.trim_matches(['[', ']']),
            &hex,
            &URL_SAFE_NO_PAD.encode(&codec.key),
        ] {
            assert!(!printed.contains(key), "{printed}");
        }
    }
}
