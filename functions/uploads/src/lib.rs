//! Image uploads (docs/API.md, Uploads): the client asks for an upload,
//! sends the bytes straight to S3 with a presigned PUT, then says it is
//! done; the function checks the object and marks the upload ready.
//!
//! The bytes never pass through Lambda (its payload limit is 6 MB and its
//! time is billed), so every rule on the file itself is enforced by S3: the
//! PUT URL signs the declared content type and length, and `complete` reads
//! the object's metadata back before trusting it. Using a finished upload as
//! an avatar or post image is the business of those functions, through
//! `platform::uploads`. The upload item and its store are `model::uploads`;
//! the S3 side, which only this function has, is `objects`.
//!
//! A user has at most `UPLOAD_MAX_PENDING` uploads pending, so neither the
//! table nor the bucket grows without bound by uploads never completed:
//! each pending one holds a slot, taken in the transaction that creates it
//! and freed by `complete`, by expiry, or by the stream worker when the
//! expired item is removed (which also deletes its object).

use aws_config::SdkConfig;
use axum::{
    Router,
    routing::{get, post},
};
use model::Table;
use platform::{
    auth::ApiState,
    config::{ConfigError, Source, positive_or},
    function::ApiFunction,
    http::HttpService,
    uploads::Presigner,
};

mod objects;
mod routes;

/// `UPLOAD_MAX_BYTES` when unset: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The largest object one S3 PUT can carry (5 GiB); a limit above it could
/// never be honoured by a single presigned PUT.
pub const S3_MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// `UPLOAD_MAX_PENDING` when unset.
pub const DEFAULT_MAX_PENDING: u64 = 20;

/// The most pending uploads a user may be allowed: each holds a slot, an id
/// in one item (`model::uploads`), and this keeps that item far below
/// DynamoDB's 400 KB and its check to a few `BatchGetItem` calls.
pub const MAX_PENDING_LIMIT: u64 = 1000;

/// Everything the uploads function is configured with beyond storage and JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadsConfig {
    /// `UPLOAD_MAX_BYTES`: the largest declared size accepted.
    pub max_bytes: u64,
    /// `UPLOAD_MAX_PENDING`: how many uploads a user may have pending.
    pub max_pending: u64,
}

impl UploadsConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let max_bytes = positive_or(
            source,
            "UPLOAD_MAX_BYTES",
            DEFAULT_MAX_BYTES,
            S3_MAX_PUT_BYTES,
            "bytes",
        )?;
        let max_pending = positive_or(
            source,
            "UPLOAD_MAX_PENDING",
            DEFAULT_MAX_PENDING,
            MAX_PENDING_LIMIT,
            "uploads",
        )?;
        Ok(Self {
            max_bytes,
            max_pending,
        })
    }
}

/// What the uploads routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    table: Table,
    presigner: Presigner,
    max_bytes: u64,
    max_pending: u64,
}

type UploadsState = ApiState<Deps>;

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk` (S3 path-style when `S3_FORCE_PATH_STYLE` says the endpoint needs
/// it). Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let config = UploadsConfig::from_source(source)?;
    let function = ApiFunction::from_source(source, sdk)?;
    let state = ApiState::new(
        function.authenticator.clone(),
        Deps {
            table: function.table.clone(),
            presigner: function.presigner(sdk),
            max_bytes: config.max_bytes,
            max_pending: config.max_pending,
        },
    );
    Ok(function.serve(router(state)))
}

fn router(state: UploadsState) -> Router {
    Router::new()
        .route("/api/v1/uploads", post(routes::create))
        .route("/api/v1/uploads/{id}", get(routes::get_one))
        .route("/api/v1/uploads/{id}/complete", post(routes::complete))
        .with_state(state)
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use model::uploads::UploadResponse;
    use platform::openapi::{ApiBuilder, Data, Link, Route};
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
        .data(Data::One(created))
        .errors(&[409])
        .link(Link::to(Post, "/api/v1/uploads/{id}/complete").with("id", "/data/upload/id"))
        .link(Link::to(Get, "/api/v1/uploads/{id}").with("id", "/data/upload/id")),
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

    #[test]
    fn the_pending_cap_defaults_to_twenty_and_follows_upload_max_pending() {
        assert_eq!(config(&[]).unwrap().max_pending, 20);
        assert_eq!(
            config(&[("UPLOAD_MAX_PENDING", "3")]).unwrap().max_pending,
            3
        );
        assert_eq!(
            config(&[("UPLOAD_MAX_PENDING", "1000")])
                .unwrap()
                .max_pending,
            1000
        );
    }

    #[test]
    fn a_bad_pending_cap_is_refused_by_name() {
        for bad in ["0", "-1", "many", "2.5", "1001"] {
            let err = config(&[("UPLOAD_MAX_PENDING", bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "UPLOAD_MAX_PENDING",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }
}
