//! The handlers of the Uploads section of docs/API.md, one per route, and
//! the request body they parse.

use std::collections::BTreeMap;

use axum::extract::{Path, State, rejection::PathRejection};
use model::{
    Condition,
    clock::{now_rfc3339, unix_now},
    domain::{Charset, FieldErrors, UploadId, UserId, length},
    uploads::{
        DeclaredFile, Purpose, UploadItem, UploadResponse, UploadStatus, Uploads, object_key,
    },
};
use platform::{
    ApiResponse, AppError, FieldCode, FieldError,
    auth::{AuthUser, PendingAuth},
    extract::{Json, JsonInteger, ParseBody, path_id},
};
use serde::{Deserialize, Serialize};

use crate::{
    UploadsState,
    objects::{self, PresignedPut},
};

/// The image types the API stores, as docs/API.md lists them.
pub const ALLOWED_CONTENT_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/// The longest filename accepted, in characters.
pub const FILENAME_MAX: usize = 255;

fn filename_schema() -> utoipa::openapi::schema::Schema {
    platform::openapi::filename_text(FILENAME_MAX)
}

/// The allowed types as a client may spell them (a type outside them is a
/// 415, by the contract).
fn content_type_schema() -> utoipa::openapi::schema::Schema {
    platform::openapi::one_of_any_case(&ALLOWED_CONTENT_TYPES)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = CreateUploadRequest)]
pub struct RawCreateUpload {
    #[schema(required = true, schema_with = filename_schema)]
    filename: Option<String>,
    #[schema(required = true, schema_with = content_type_schema)]
    content_type: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::size)]
    size: Option<JsonInteger>,
    #[schema(required = true, schema_with = platform::openapi::fields::purpose)]
    purpose: Option<String>,
}

/// A well-formed upload request. Whether its type is allowed and its size
/// within the limit is decided by the handler: those are a 415 and a 413,
/// not field errors.
#[derive(Debug)]
pub struct CreateUpload {
    filename: String,
    content_type: String,
    size: u64,
    purpose: Purpose,
}

/// The name of the file without any directory part, for display only.
/// It is one line of visible text like a title (`Charset::SingleLine`):
/// refused rather than cleaned, so what is stored is never a silently
/// different name, and no right-to-left override can make `gpj.exe` read
/// as `exe.jpg`. A name that is only dots (`..`) names no file.
fn filename(field: &str, raw: String) -> Result<String, FieldError> {
    length(field, &raw, 1, FILENAME_MAX)?;
    let invalid = |message: &str| FieldError::new(field, FieldCode::InvalidFormat, message);
    Charset::SingleLine.check(field, &raw)?;
    let base = match raw.rfind(['/', '\\']) {
        Some(index) => &raw[index + 1..],
        None => raw.as_str(),
    }
    .trim();
    if base.is_empty() || base.chars().all(|c| c == '.') {
        return Err(invalid("must name a file"));
    }
    Ok(base.to_owned())
}

/// A media type as compared and signed: trimmed and lower-cased.
fn content_type(field: &str, raw: String) -> Result<String, FieldError> {
    let value = raw.trim().to_ascii_lowercase();
    if value.is_empty() {
        return Err(FieldError::new(field, FieldCode::Required, "is required"));
    }
    Ok(value)
}

fn size(field: &str, raw: Option<JsonInteger>) -> Result<u64, FieldError> {
    match raw.map(JsonInteger::get) {
        None => Err(FieldError::new(field, FieldCode::Required, "is required")),
        Some(value) if value < 1 => Err(FieldError::new(
            field,
            FieldCode::OutOfRange,
            "must be at least 1 byte",
        )),
        // Beyond u64 is beyond any limit: the 413 says so.
        Some(value) => Ok(u64::try_from(value).unwrap_or(u64::MAX)),
    }
}

impl ParseBody for CreateUpload {
    type Raw = RawCreateUpload;
    fn parse(raw: RawCreateUpload) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let filename = errors.required("filename", raw.filename, filename);
        let content_type = errors.required("contentType", raw.content_type, content_type);
        let size = errors.check(size("size", raw.size));
        let purpose = errors.required("purpose", raw.purpose, Purpose::parse);
        let parsed = match (filename, content_type, size, purpose) {
            (Some(filename), Some(content_type), Some(size), Some(purpose)) => Some(CreateUpload {
                filename,
                content_type,
                size,
                purpose,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUpload {
    upload: UploadResponse,
    upload_url: String,
    #[schema(value_type = String, example = "PUT")]
    upload_method: &'static str,
    upload_headers: BTreeMap<String, String>,
    expires_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadWithUrl {
    upload: UploadResponse,
    download_url: String,
}

/// The upload id of the path. An id that is not even valid UTF-8 names no
/// upload either, so it too is a 404 rather than axum's plain-text 400.
fn upload_id(path: Result<Path<String>, PathRejection>) -> Result<UploadId, AppError> {
    let Path(raw) = path.map_err(|_| Condition::UploadGone)?;
    path_id(&raw)
}

/// `user`'s upload `id`, unless it had expired at `now`: a missing one,
/// another user's and an expired one are all the same 404.
async fn owned(
    state: &UploadsState,
    user: &UserId,
    id: &UploadId,
    now: i64,
) -> Result<UploadItem, AppError> {
    state
        .table
        .owned_upload(id, user, now)
        .await?
        .ok_or_else(|| Condition::UploadGone.into())
}

/// POST /api/v1/uploads
pub async fn create(
    State(state): State<UploadsState>,
    user: AuthUser,
    Json(body): Json<CreateUpload>,
) -> Result<ApiResponse<CreatedUpload>, AppError> {
    if !ALLOWED_CONTENT_TYPES.contains(&body.content_type.as_str()) {
        return Err(AppError::UnsupportedMediaType(format!(
            "contentType must be one of: {}",
            ALLOWED_CONTENT_TYPES.join(", ")
        )));
    }
    if body.size > state.max_bytes {
        return Err(AppError::PayloadTooLarge(format!(
            "size must be at most {} bytes",
            state.max_bytes
        )));
    }
    let file = DeclaredFile {
        filename: body.filename,
        content_type: body.content_type,
        size: body.size,
        purpose: body.purpose,
    };
    let upload = UploadItem::pending(UploadId::new(), *user.id(), file, now_rfc3339());
    let PresignedPut {
        url,
        headers,
        expires_at,
    } = objects::presign_put(
        &state.presigner,
        &upload.key,
        &upload.content_type,
        upload.size,
    )
    .await?;
    state
        .table
        .put_pending_upload(&upload, state.max_pending)
        .await?;
    tracing::info!(uploadId = %upload.id, userId = %upload.owner_id, size = upload.size, "upload created");
    Ok(ApiResponse::created(
        "Upload created successfully",
        CreatedUpload {
            upload: UploadResponse::from(&upload),
            upload_url: url,
            upload_method: "PUT",
            upload_headers: headers,
            expires_at,
        },
    ))
}

/// POST /api/v1/uploads/{id}/complete
pub async fn complete(
    State(state): State<UploadsState>,
    auth: PendingAuth,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiResponse<UploadResponse>, AppError> {
    let caller = *auth.user_id();
    let reads = async {
        let id = upload_id(path)?;
        let now = unix_now() as i64;
        // The object is looked at while its record is read, with the rate
        // limit and the session check: its key is the caller's own
        // (`object_key`), whatever the record says.
        let key = object_key(&caller, &id);
        let (upload, object) = tokio::join!(
            owned(&state, &caller, &id, now),
            objects::stored_object(&state.presigner, &key)
        );
        Ok((now, upload?, object))
    };
    let (_user, (now, upload, object)) = auth.alongside(reads).await?;
    if upload.status == UploadStatus::Ready {
        return Ok(ApiResponse::ok(
            "Upload already completed",
            UploadResponse::from(&upload),
        ));
    }
    objects::check_object(object?.as_ref(), upload.size, &upload.content_type)?;
    let upload = state.table.mark_upload_ready(&upload, now).await?;
    tracing::info!(uploadId = %upload.id, "upload completed");
    Ok(ApiResponse::ok(
        "Upload completed successfully",
        UploadResponse::from(&upload),
    ))
}

/// GET /api/v1/uploads/{id}
pub async fn get_one(
    State(state): State<UploadsState>,
    auth: PendingAuth,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiResponse<UploadWithUrl>, AppError> {
    let caller = *auth.user_id();
    // Keyed by the caller's own id: read with the session check.
    let read = async { owned(&state, &caller, &upload_id(path)?, unix_now() as i64).await };
    let (_user, upload) = auth.alongside(read).await?;
    let download_url = state.presigner.download_url(&upload.key).await?;
    Ok(ApiResponse::ok(
        "Upload retrieved successfully",
        UploadWithUrl {
            upload: UploadResponse::from(&upload),
            download_url,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: serde_json::Value) -> Result<CreateUpload, Vec<(String, FieldCode)>> {
        let raw: RawCreateUpload = serde_json::from_value(body).expect("a well-formed body");
        CreateUpload::parse(raw)
            .map_err(|errors| errors.into_iter().map(|e| (e.field, e.code)).collect())
    }

    /// The body as the extractor reads it, from raw JSON text.
    fn read(size: &str) -> Result<CreateUpload, AppError> {
        let text = format!(
            r#"{{"filename":"a.png","contentType":"image/png","size":{size},"purpose":"avatar"}}"#
        );
        let raw: RawCreateUpload = platform::extract::parse_json(text.as_bytes())?;
        CreateUpload::parse(raw).map_err(AppError::Validation)
    }

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "filename": "cat.png",
            "contentType": "image/png",
            "size": 1024,
            "purpose": "avatar",
        })
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = valid();
        body[field] = value;
        body
    }

    #[test]
    fn a_valid_body_parses() {
        let body = parse(with("contentType", " IMAGE/PNG ".into())).unwrap();
        assert_eq!(body.filename, "cat.png");
        assert_eq!(body.content_type, "image/png");
        assert_eq!(body.size, 1024);
        assert_eq!(body.purpose, Purpose::Avatar);
    }

    #[test]
    fn every_missing_field_is_named() {
        let errors = parse(serde_json::json!({})).unwrap_err();
        assert_eq!(
            errors,
            ["filename", "contentType", "size", "purpose"]
                .map(|field| (field.to_owned(), FieldCode::Required))
        );
    }

    #[test]
    fn sizes_below_one_are_out_of_range() {
        for bad in ["0", "-1", "-100000000000000000000"] {
            let Err(AppError::Validation(errors)) = read(bad) else {
                panic!("{bad} should be a 422");
            };
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(
                (errors[0].field.as_str(), errors[0].code),
                ("size", FieldCode::OutOfRange)
            );
        }
    }

    #[test]
    fn a_size_beyond_any_limit_parses_to_be_refused_as_too_large() {
        assert_eq!(read("18446744073709551615").unwrap().size, u64::MAX);
        assert_eq!(read("100000000000000000000000").unwrap().size, u64::MAX);
    }

    #[test]
    fn a_size_that_is_not_an_integer_is_a_bad_request() {
        for bad in ["\"10\"", "1.5", "1e-3", "true", "[1]", "{}"] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.status().as_u16(), 400, "{bad}: {err}");
            assert!(err.to_string().contains("expected shape"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_whole_number_in_any_notation_is_an_integer() {
        for (raw, size) in [
            ("1000", 1000),
            ("1000.0", 1000),
            ("1e3", 1000),
            ("1E3", 1000),
        ] {
            assert_eq!(read(raw).unwrap().size, size, "{raw}");
        }
    }

    #[test]
    fn unknown_purposes_are_not_allowed() {
        let errors = parse(with("purpose", "banner".into())).unwrap_err();
        assert_eq!(errors, [("purpose".to_owned(), FieldCode::NotAllowed)]);
    }

    #[test]
    fn filenames_lose_their_directories() {
        let name = |raw: &str| filename("filename", raw.to_owned());
        assert_eq!(name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(name("a/b\\c.png").unwrap(), "c.png");
        assert_eq!(name("C:\\fakepath\\photo 1.jpg").unwrap(), "photo 1.jpg");
        assert_eq!(name("  cat.png ").unwrap(), "cat.png");
        assert_eq!(
            name(&"é".repeat(FILENAME_MAX)).unwrap().chars().count(),
            FILENAME_MAX
        );
    }

    #[test]
    fn the_documented_filename_pattern_takes_what_the_parser_takes() {
        let pattern = regex_lite::Regex::new(&model::patterns::in_rust_dialect(
            &model::patterns::file_name(),
        ))
        .unwrap();
        let pieces = [
            "", "a", ".", "..", "/", "\\", " ", "\t", "\u{a0}", "\u{202e}", "\u{200b}", "é", "png",
            "\n",
        ];
        let mut cases = 0;
        for first in pieces {
            for second in pieces {
                for third in pieces {
                    let raw = format!("{first}{second}{third}");
                    let documented =
                        pattern.is_match(&raw) && (1..=FILENAME_MAX).contains(&raw.chars().count());
                    assert_eq!(
                        documented,
                        filename("filename", raw.clone()).is_ok(),
                        "{raw:?}"
                    );
                    cases += 1;
                }
            }
        }
        assert!(cases > 2000);
    }

    #[test]
    fn the_documented_media_types_are_those_allowed() {
        let pattern = regex_lite::Regex::new(&model::patterns::in_rust_dialect(
            &model::patterns::trimmed_ascii_choice(&ALLOWED_CONTENT_TYPES),
        ))
        .unwrap();
        for raw in [
            "image/png",
            " IMAGE/JPEG ",
            "Image/WebP",
            "image/gif\n",
            "image/svg+xml",
            "image/pn",
            "text/plain",
            "image/png; charset=x",
            "",
        ] {
            let allowed = content_type("contentType", raw.to_owned())
                .is_ok_and(|value| ALLOWED_CONTENT_TYPES.contains(&value.as_str()));
            assert_eq!(pattern.is_match(raw), allowed, "{raw:?}");
        }
    }

    #[test]
    fn filenames_that_name_no_file_are_refused() {
        let code = |raw: &str| filename("filename", raw.to_owned()).unwrap_err().code;
        for bad in [
            "..",
            ".",
            "../..",
            "a/..",
            "dir/",
            "a\\",
            "   ",
            "cat\0.png",
            "a\nb.png",
            "x\u{7f}",
            "cat\tphoto.png",
            "photo\u{202e}gpj.exe",
            "photo\u{2066}.png",
            "zero\u{200b}width.png",
        ] {
            assert_eq!(code(bad), FieldCode::InvalidFormat, "{bad:?}");
        }
        assert_eq!(code(""), FieldCode::TooShort);
        assert_eq!(code(&"a".repeat(FILENAME_MAX + 1)), FieldCode::TooLong);
    }
}
