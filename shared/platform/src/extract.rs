//! Request body extraction with the contract's statuses: wrong content type
//! 415, over 64 KiB 413, bad JSON or a wrong JSON type 400, and a broken rule
//! 422 naming every failing field.
//!
//! A body type declares its wire shape (`Raw`, all fields optional so that a
//! missing field is a 422 `REQUIRED` rather than a 400) and how it is parsed
//! into domain values; handlers only ever see the parsed value.

use axum::{
    body::{Body, to_bytes},
    extract::{FromRequest, Request},
};
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldError};

/// Parses an id in a path; anything but an id cannot name a resource, so
/// it is a 404 rather than a validation error.
pub fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound("Resource not found".into()))
}

/// A JSON integer, however it is written: JSON has one number type, so
/// `3`, `3.0` and `3e0` are the same integer (as JSON Schema's `integer`
/// says); a fraction or a string is a wrong type, a 400. Beyond 64 bits it
/// still parses (up to what a double holds; `1e400` is not JSON serde_json
/// reads, a 400), so that a huge size is a 413 and a huge version a 409
/// rather than a type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonInteger(i128);

impl JsonInteger {
    pub fn get(self) -> i128 {
        self.0
    }

    /// The value, clamped to `i64`.
    pub fn saturating_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(if self.0 < 0 { i64::MIN } else { i64::MAX })
    }
}

impl<'de> serde::Deserialize<'de> for JsonInteger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de;
        struct IntegerVisitor;
        impl de::Visitor<'_> for IntegerVisitor {
            type Value = JsonInteger;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonInteger, E> {
                Ok(JsonInteger(value.into()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonInteger, E> {
                Ok(JsonInteger(value.into()))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonInteger, E> {
                if value.is_finite() && value.fract() == 0.0 {
                    // `as` saturates beyond i128, where every use refuses
                    // the value anyway.
                    Ok(JsonInteger(value as i128))
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(value), &self))
                }
            }
        }
        deserializer.deserialize_any(IntegerVisitor)
    }
}

/// The largest JSON body the API accepts.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// A request body parsed from its wire shape into domain values.
pub trait ParseBody: Sized {
    type Raw: DeserializeOwned;
    fn parse(raw: Self::Raw) -> Result<Self, Vec<FieldError>>;
}

/// Extracts and parses a JSON body; see the module doc for the statuses.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: ParseBody,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&request) {
            return Err(AppError::UnsupportedMediaType(
                "Expected a body with Content-Type: application/json".into(),
            ));
        }
        let raw: T::Raw = read_json(request.into_body()).await?;
        T::parse(raw).map(Json).map_err(AppError::Validation)
    }
}

fn has_json_content_type(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Reads at most `MAX_JSON_BODY_BYTES` and deserialises them.
pub async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, AppError> {
    let bytes = to_bytes(body, MAX_JSON_BODY_BYTES).await.map_err(|_| {
        AppError::PayloadTooLarge(format!("Body exceeds {} KiB", MAX_JSON_BODY_BYTES / 1024))
    })?;
    parse_json(&bytes)
}

/// Deserialises a JSON object with the contract's 400 messages. Every body
/// of the API is an object; serde would otherwise also fill a struct from an
/// array of its fields in order, so anything but an object is refused first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(AppError::BadRequest(
                "Request body is empty; expected a JSON object".into(),
            ));
        }
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(AppError::BadRequest(
                "Request body has the wrong JSON type: expected a JSON object".into(),
            ));
        }
        Some(_) => {
            return Err(AppError::BadRequest(
                "Request body is not valid JSON".into(),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|err| {
        use serde_json::error::Category;
        let message = match err.classify() {
            Category::Data => format!(
                "Request body does not match the expected shape: {}",
                strip_position(&err)
            ),
            Category::Syntax | Category::Eof | Category::Io => {
                "Request body is not valid JSON".to_owned()
            }
        };
        AppError::BadRequest(message)
    })
}

/// serde's message without "at line 1 column 9", which says nothing useful.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_integer_is_any_whole_number_however_written() {
        let read = |raw: &str| serde_json::from_str::<JsonInteger>(raw).map(JsonInteger::get);
        for (raw, value) in [
            ("3", 3),
            ("-3", -3),
            ("3.0", 3),
            ("3e0", 3),
            ("1E3", 1000),
            ("-0.0", 0),
            ("18446744073709551616", 18_446_744_073_709_551_616),
        ] {
            assert_eq!(read(raw).unwrap(), value, "{raw}");
        }
        for bad in ["3.5", "1e-3", "\"3\"", "true", "null", "[3]", "1e400"] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let refusal = read("3.5").unwrap_err().to_string();
        assert!(refusal.contains("expected an integer"), "{refusal}");
        let huge = serde_json::from_str::<JsonInteger>("1e30").unwrap();
        assert_eq!(huge.saturating_i64(), i64::MAX);
        let low = serde_json::from_str::<JsonInteger>("-1e30").unwrap();
        assert_eq!(low.saturating_i64(), i64::MIN);
        assert_eq!(JsonInteger(7).saturating_i64(), 7);
    }
    use crate::error::FieldCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawName {
        name: Option<String>,
    }

    #[derive(Debug)]
    struct Name(String);

    impl ParseBody for Name {
        type Raw = RawName;
        fn parse(raw: RawName) -> Result<Self, Vec<FieldError>> {
            match raw.name {
                Some(name) if !name.is_empty() => Ok(Name(name)),
                Some(_) => Err(vec![FieldError::new(
                    "name",
                    FieldCode::TooShort,
                    "must not be empty",
                )]),
                None => Err(vec![FieldError::new(
                    "name",
                    FieldCode::Required,
                    "is required",
                )]),
            }
        }
    }

    async fn extract(
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Result<Json<Name>, AppError> {
        let mut builder = http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        Json::<Name>::from_request(builder.body(body.into()).unwrap(), &()).await
    }

    #[tokio::test]
    async fn a_good_body_parses() {
        let Json(name) = extract(Some("application/json; charset=utf-8"), r#"{"name":"ok"}"#)
            .await
            .unwrap();
        assert_eq!(name.0, "ok");
    }

    #[tokio::test]
    async fn each_failure_has_its_status() {
        let cases: Vec<(Option<&str>, Body, u16)> = vec![
            (None, Body::from(r#"{"name":"x"}"#), 415),
            (Some("text/plain"), Body::from(r#"{"name":"x"}"#), 415),
            // A `+json` suffix counts only under `application/`.
            (Some("application/xml"), Body::from(r#"{"name":"x"}"#), 415),
            (Some("text/vnd.x+json"), Body::from(r#"{"name":"x"}"#), 415),
            (Some("application/json"), Body::from("{not json"), 400),
            (Some("application/json"), Body::from(""), 400),
            (Some("application/json"), Body::from(r#"{"name": 5}"#), 400),
            (Some("application/json"), Body::from(r#"["name"]"#), 400),
            (
                Some("application/json"),
                Body::from(vec![0xff, 0xfe, b'{']),
                400,
            ),
            (
                Some("application/json"),
                Body::from(format!(
                    r#"{{"name":"{}"}}"#,
                    "x".repeat(MAX_JSON_BODY_BYTES)
                )),
                413,
            ),
            (Some("application/json"), Body::from(r#"{}"#), 422),
            (Some("application/json"), Body::from(r#"{"name":""}"#), 422),
        ];
        for (content_type, body, status) in cases {
            let err = extract(content_type, body).await.unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{content_type:?}: {err}");
        }
    }

    #[tokio::test]
    async fn a_body_of_exactly_64_kib_is_read_and_one_byte_more_is_not() {
        let body = |bytes: usize| {
            let filler = bytes - r#"{"name":""}"#.len();
            format!(r#"{{"name":"{}"}}"#, "x".repeat(filler))
        };
        let Json(name) = extract(Some("application/problem+json"), body(64 * 1024))
            .await
            .unwrap();
        assert_eq!(name.0.len(), 64 * 1024 - 11);
        let err = extract(Some("application/json"), body(64 * 1024 + 1))
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 413, "{err}");
    }

    #[test]
    fn each_malformed_body_says_what_is_wrong() {
        let message = |raw: &[u8]| parse_json::<RawName>(raw).unwrap_err().to_string();
        assert!(
            message(b"[1]").contains("wrong JSON type"),
            "{}",
            message(b"[1]")
        );
        assert!(
            message(b"nope").contains("not valid JSON"),
            "{}",
            message(b"nope")
        );
        assert!(message(b"  ").contains("empty"), "{}", message(b"  "));
        assert!(message(b"{\"name\":").contains("not valid JSON"));
    }

    #[tokio::test]
    async fn a_missing_field_is_named() {
        let err = extract(Some("application/json"), "{}").await.unwrap_err();
        let AppError::Validation(errors) = err else {
            panic!("expected 422")
        };
        assert_eq!(errors[0].field, "name");
        assert_eq!(errors[0].code, FieldCode::Required);
    }

    #[test]
    fn wrong_type_messages_do_not_carry_positions() {
        let err = parse_json::<RawName>(br#"{"name": 5}"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("expected shape: invalid type: integer `5`, expected a string"),
            "{text}"
        );
        assert!(!text.contains("line"), "{text}");
    }
}
