//! What every function behind `/api/` builds first, once per cold start:
//! its storage and JWT configuration, the SDK clients, the table, the
//! authenticator its extractors use, its cursor codec, and the HTTP options
//! with the default rate limit. Each function's `build` starts here and
//! adds only what is its own.

use aws_config::SdkConfig;
use axum::Router;
use model::Table;

use crate::{
    auth::Authenticator,
    aws::s3_client,
    config::{ConfigError, JwtConfig, Source, StorageConfig},
    cursor::CursorCodec,
    http::{HttpOptions, HttpService, http_service},
    jwt::JwtKeys,
    uploads::Presigner,
};

/// The common half of an `/api/` function, read from one configuration.
#[derive(Debug, Clone)]
pub struct ApiFunction {
    pub storage: StorageConfig,
    pub jwt: JwtConfig,
    pub table: Table,
    pub authenticator: Authenticator,
    options: HttpOptions,
}

impl ApiFunction {
    /// Reads `TABLE_NAME`, `BUCKET_NAME`, the JWT settings, CORS and the
    /// default rate limit from `source`; builds the DynamoDB client from
    /// `sdk` (no network I/O).
    pub fn from_source(source: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        let storage = StorageConfig::from_source(source)?;
        let jwt = JwtConfig::from_source(source)?;
        let table = Table::new(
            aws_sdk_dynamodb::Client::new(sdk),
            storage.table_name.clone(),
        );
        let keys = JwtKeys::new(&jwt);
        let options = HttpOptions::api(source, table.clone(), keys.clone())?;
        Ok(Self {
            authenticator: Authenticator::new(keys, table.clone()),
            storage,
            jwt,
            table,
            options,
        })
    }

    /// Signs the cursors of this function's lists.
    pub fn cursors(&self) -> CursorCodec {
        CursorCodec::new(self.jwt.secret_bytes())
    }

    /// The S3 client, for the functions that use the bucket; only they pay
    /// for building it at cold start.
    pub fn s3(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        s3_client(sdk, &self.storage)
    }

    /// Presigned downloads from the uploads bucket.
    pub fn presigner(&self, sdk: &SdkConfig) -> Presigner {
        Presigner::new(self.s3(sdk), self.storage.bucket_name.clone())
    }

    /// The function's routes with the cross-cutting layers around them.
    pub fn serve(self, routes: Router) -> HttpService {
        http_service(routes, self.options)
    }
}
