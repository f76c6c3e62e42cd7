//! The S3 side of an upload: the presigned PUT a client sends its bytes
//! with, and the object's metadata read back before an upload is trusted.
//!
//! Presigning is local computation; only `stored_object` talks to S3.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use platform::{AppError, uploads::Presigner};

/// How long a presigned upload URL works.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// A presigned PUT and what the client must send along with it.
#[derive(Debug, Clone)]
pub struct PresignedPut {
    pub url: String,
    /// Every header the signature covers besides `Host`, in the usual
    /// capitalisation; a request without exactly these values is refused.
    pub headers: BTreeMap<String, String>,
    /// RFC 3339 UTC, to the second as in the signature.
    pub expires_at: String,
}

/// Signs a PUT of exactly `size` bytes of `content_type` to `key`. Both go
/// into the signed headers, so S3 refuses another type or another length:
/// the limits checked at creation cannot be bypassed on the way up.
pub async fn presign_put(
    presigner: &Presigner,
    key: &str,
    content_type: &str,
    size: u64,
) -> Result<PresignedPut, AppError> {
    let content_length = i64::try_from(size)
        .map_err(|err| AppError::internal("presigning an upload of a checked size", err))?;
    // The start time is fixed here so that `expiresAt` is exactly the expiry
    // that was signed.
    let start = SystemTime::now();
    let config = PresigningConfig::builder()
        .start_time(start)
        .expires_in(UPLOAD_URL_TTL)
        .build()
        .map_err(|err| AppError::internal("building a presigning config", err))?;
    let request = presigner
        .s3
        .put_object()
        .bucket(&presigner.bucket)
        .key(key)
        .content_type(content_type)
        .content_length(content_length)
        .presigned(config)
        .await
        .map_err(|err| AppError::internal("presigning an upload", err))?;
    let headers = request
        .headers()
        .map(|(name, value)| (header_case(name), value.to_owned()))
        .collect();
    let expires_at = DateTime::<Utc>::from(start + UPLOAD_URL_TTL);
    Ok(PresignedPut {
        url: request.uri().to_owned(),
        headers,
        expires_at: expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// `content-type` → `Content-Type`: the SDK hands headers over lower-cased,
/// and clients read `uploadHeaders` as written in docs/API.md.
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// What S3 says of an uploaded object: its size and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: Option<u64>,
    pub content_type: String,
}

/// The object at `key`, or `None` when nothing was uploaded there. The key
/// is built from the caller's own id (`model::uploads::object_key`), so
/// this can go out before the upload's record has been read: the route
/// then costs one round trip less.
pub async fn stored_object(
    presigner: &Presigner,
    key: &str,
) -> Result<Option<StoredObject>, AppError> {
    let head = presigner
        .s3
        .head_object()
        .bucket(&presigner.bucket)
        .key(key)
        .send()
        .await;
    match head {
        Ok(head) => Ok(Some(StoredObject {
            size: head.content_length().and_then(|n| u64::try_from(n).ok()),
            content_type: head
                .content_type()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned(),
        })),
        // HeadObject has no body to carry an error code: a missing object
        // is known only by its 404.
        Err(err) if err.raw_response().map(|raw| raw.status().as_u16()) == Some(404) => Ok(None),
        Err(err) => Err(model::error::translate("s3", err).into()),
    }
}

/// Whether the object matches what was declared: a 409 saying what is
/// wrong when it is missing or differs in size or type. The presigned PUT
/// already enforces both, but the object is what the upload will be used
/// for, and nothing stops a holder of other credentials from writing it.
pub fn check_object(
    object: Option<&StoredObject>,
    size: u64,
    content_type: &str,
) -> Result<(), AppError> {
    let Some(object) = object else {
        return Err(AppError::Conflict(
            "The file has not been uploaded yet; PUT it to the uploadUrl first".into(),
        ));
    };
    if object.size != Some(size) {
        let actual = object
            .size
            .map_or_else(|| "of unknown size".to_owned(), |n| format!("{n} bytes"));
        return Err(AppError::Conflict(format!(
            "The uploaded file is {actual}, but {size} bytes were declared"
        )));
    }
    let actual_type = &object.content_type;
    if !actual_type.eq_ignore_ascii_case(content_type) {
        return Err(AppError::Conflict(format!(
            "The uploaded file has content type {actual_type:?}, but {content_type:?} was declared"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

    fn presigner() -> Presigner {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
            .build();
        Presigner::new(aws_sdk_s3::Client::from_conf(config), "bucket")
    }

    fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
        url.split_once('?')?
            .1
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    #[tokio::test]
    async fn the_put_url_signs_type_and_length() {
        let put = presign_put(&presigner(), "uploads/u/1", "image/png", 1234)
            .await
            .unwrap();
        let signed = query_param(&put.url, "X-Amz-SignedHeaders").unwrap();
        let signed: Vec<&str> = signed.split("%3B").collect();
        assert!(signed.contains(&"content-length"), "{signed:?}");
        assert!(signed.contains(&"content-type"), "{signed:?}");
        assert_eq!(query_param(&put.url, "X-Amz-Expires"), Some("900"));
        assert_eq!(
            put.headers.get("Content-Type").map(String::as_str),
            Some("image/png")
        );
        assert_eq!(
            put.headers.get("Content-Length").map(String::as_str),
            Some("1234")
        );
        // Every header handed to the client is one the signature covers.
        for name in put.headers.keys() {
            assert!(
                signed.contains(&name.to_ascii_lowercase().as_str()),
                "{name} unsigned"
            );
        }
    }

    #[tokio::test]
    async fn expires_at_is_fifteen_minutes_out() {
        let before = Utc::now();
        let put = presign_put(&presigner(), "k", "image/gif", 1)
            .await
            .unwrap();
        let expires = DateTime::parse_from_rfc3339(&put.expires_at).unwrap();
        let ahead = expires.with_timezone(&Utc) - before;
        assert!((899..=900).contains(&ahead.num_seconds()), "{ahead}");
        assert!(put.expires_at.ends_with('Z'), "{}", put.expires_at);
    }

    #[test]
    fn an_object_must_be_there_with_the_declared_size_and_type() {
        let png = |size| StoredObject {
            size,
            content_type: "image/png".into(),
        };
        assert!(check_object(Some(&png(Some(10))), 10, "image/png").is_ok());
        assert!(check_object(Some(&png(Some(10))), 10, "IMAGE/PNG").is_ok());
        for (object, why) in [
            (None, "not been uploaded"),
            (Some(png(Some(11))), "11 bytes, but 10"),
            (Some(png(None)), "of unknown size"),
            (
                Some(StoredObject {
                    size: Some(10),
                    content_type: "image/gif".into(),
                }),
                "\"image/gif\", but \"image/png\"",
            ),
        ] {
            match check_object(object.as_ref(), 10, "image/png") {
                Err(AppError::Conflict(message)) => assert!(message.contains(why), "{message}"),
                other => panic!("{object:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn headers_are_capitalised_per_word() {
        assert_eq!(header_case("content-type"), "Content-Type");
        assert_eq!(header_case("x-amz-acl"), "X-Amz-Acl");
        assert_eq!(header_case("host"), "Host");
    }
}
