//! Image uploads (API.md, Uploads table): the client asks for an upload,
//! sends the bytes straight to S3 with a presigned PUT, then says it is
//! done; the function checks the object and marks the upload ready.
//!
//! The bytes never pass through Lambda (its payload limit is 6 MB and its
//! time is billed), so every rule on the file itself is enforced by S3: the
//! PUT URL signs the declared content type and length, and `complete` reads
//! the object's metadata back before trusting it. Using a finished upload as
//! an avatar or post image is the business of those functions, through
//! `shared::uploads`.

use axum::{
    Router,
    extract::FromRef,
    routing::{get, post},
};
use shared::{
    auth::Authenticator,
    config::{ConfigError, JwtConfig, ProcessEnv, Source},
    jwt::JwtKeys,
    store::Table,
    uploads::Presigner,
};

mod objects;
mod routes;
mod store;

/// `UPLOAD_MAX_BYTES` when unset: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The largest object one S3 PUT can carry (5 GiB); a limit above it could
/// never be honoured by a single presigned PUT.
pub const S3_MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Everything the uploads function is configured with beyond storage and JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadsConfig {
    /// `UPLOAD_MAX_BYTES`: the largest declared size accepted.
    pub max_bytes: u64,
}

impl UploadsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        const NAME: &str = "UPLOAD_MAX_BYTES";
        let max_bytes = match source.get(NAME).filter(|v| !v.trim().is_empty()) {
            None => DEFAULT_MAX_BYTES,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(value) if (1..=S3_MAX_PUT_BYTES).contains(&value) => value,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: NAME,
                        reason: format!(
                            "expected a positive number of bytes up to {S3_MAX_PUT_BYTES} (got {raw:?})"
                        ),
                    });
                }
            },
        };
        Ok(Self { max_bytes })
    }
}

/// What the uploads routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct UploadsState {
    authenticator: Authenticator,
    table: Table,
    presigner: Presigner,
    max_bytes: u64,
}

impl FromRef<UploadsState> for Authenticator {
    fn from_ref(state: &UploadsState) -> Self {
        state.authenticator.clone()
    }
}

impl UploadsState {
    pub fn new(
        table: Table,
        s3: aws_sdk_s3::Client,
        bucket: String,
        jwt: &JwtConfig,
        config: &UploadsConfig,
    ) -> Self {
        Self {
            authenticator: Authenticator::new(JwtKeys::new(jwt), table.clone()),
            table,
            presigner: Presigner::new(s3, bucket),
            max_bytes: config.max_bytes,
        }
    }
}

pub fn router(state: UploadsState) -> Router {
    Router::new()
        .route("/api/v1/uploads", post(routes::create))
        .route("/api/v1/uploads/{id}", get(routes::get_one))
        .route("/api/v1/uploads/{id}/complete", post(routes::complete))
        .with_state(state)
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use shared::{
        openapi::{ApiBuilder, Data, Route},
        uploads::UploadResponse,
    };
    use utoipa::openapi::HttpMethod::{Get, Post};
    let mut api = ApiBuilder::new();
    let request = api.schema::<routes::RawCreateUpload>();
    let created = api.schema::<routes::CreatedUpload>();
    let with_url = api.schema::<routes::UploadWithUrl>();
    let upload = api.schema::<UploadResponse>();
    api.route(
        Route::new(
            Post,
            "/api/v1/uploads",
            "Start an upload: a presigned PUT URL",
        )
        .body(request)
        .created()
        .data(Data::One(created)),
    );
    api.route(
        Route::new(
            Post,
            "/api/v1/uploads/{id}/complete",
            "Mark an upload ready once the object is in S3",
        )
        .data(Data::One(upload))
        .errors(&[409]),
    );
    api.route(
        Route::new(
            Get,
            "/api/v1/uploads/{id}",
            "An upload and a presigned download URL",
        )
        .data(Data::One(with_url)),
    );
    api.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<UploadsConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        UploadsConfig::from_source(&move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn the_limit_defaults_to_ten_mebibytes() {
        assert_eq!(config(&[]).unwrap().max_bytes, 10_485_760);
        assert_eq!(
            config(&[("UPLOAD_MAX_BYTES", " ")]).unwrap().max_bytes,
            10_485_760
        );
        assert_eq!(
            config(&[("UPLOAD_MAX_BYTES", "1024")]).unwrap().max_bytes,
            1024
        );
    }

    #[test]
    fn a_bad_limit_is_refused_by_name() {
        for bad in ["0", "-1", "ten", "1.5", "5368709121"] {
            let err = config(&[("UPLOAD_MAX_BYTES", bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "UPLOAD_MAX_BYTES",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("UPLOAD_MAX_BYTES"), "{err}");
        }
    }
}
