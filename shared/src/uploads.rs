//! Uploads as other functions see them: the stored item, the check that an
//! `avatarUploadId` / `imageUploadId` names the caller's own finished upload
//! of the right purpose, and presigned download URLs.
//!
//! Key: `pk = UPLOAD#<id>`, `sk = UPLOAD`. The object lives in the bucket at
//! `uploads/<ownerId>/<id>`; nothing user-supplied (the filename) is ever
//! part of an S3 key.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::presigning::PresigningConfig;
use serde::{Deserialize, Serialize};

use crate::{
    domain::Id,
    error::{AppError, FieldCode, FieldError},
    store::{self, Table, from_item},
};

/// How long a presigned download URL works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Purpose {
    #[serde(rename = "avatar")]
    Avatar,
    #[serde(rename = "post-image")]
    PostImage,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Avatar => "avatar",
            Purpose::PostImage => "post-image",
        }
    }

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        match raw.as_str() {
            "avatar" => Ok(Purpose::Avatar),
            "post-image" => Ok(Purpose::PostImage),
            _ => Err(FieldError::new(
                field,
                FieldCode::NotAllowed,
                "must be one of: avatar, post-image",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    Pending,
    Ready,
}

pub fn upload_pk(id: &str) -> String {
    format!("UPLOAD#{id}")
}

pub const UPLOAD_SK: &str = "UPLOAD";

/// The S3 key of an upload: derived from ids only.
pub fn object_key(owner_id: &str, upload_id: &str) -> String {
    format!("uploads/{owner_id}/{upload_id}")
}

/// The stored upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UploadItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: String,
    pub owner_id: String,
    pub purpose: Purpose,
    pub content_type: String,
    pub size: u64,
    pub status: UploadStatus,
    /// The S3 object key.
    pub key: String,
    /// The client's filename, sanitised, for display only.
    pub filename: String,
    pub created_at: String,
    /// Pending uploads expire; a finished one has no TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

/// `Upload` of API.md.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    pub id: String,
    pub purpose: Purpose,
    pub content_type: String,
    pub size: u64,
    pub status: UploadStatus,
    pub created_at: String,
}

impl From<&UploadItem> for UploadResponse {
    fn from(item: &UploadItem) -> Self {
        Self {
            id: item.id.clone(),
            purpose: item.purpose,
            content_type: item.content_type.clone(),
            size: item.size,
            status: item.status,
            created_at: item.created_at.clone(),
        }
    }
}

pub async fn get_upload(table: &Table, id: &str) -> Result<Option<UploadItem>, AppError> {
    let output = table
        .client
        .get_item()
        .table_name(&table.name)
        .key("pk", AttributeValue::S(upload_pk(id)))
        .key("sk", AttributeValue::S(UPLOAD_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(store::dynamo)?;
    output.item.map(from_item).transpose()
}

/// The upload named by `field` if it is `owner_id`'s, finished, and for
/// `purpose`; otherwise a 422 on that field. Another user's upload reads
/// exactly like a missing one.
pub async fn ready_upload(
    table: &Table,
    field: &str,
    id: Id,
    owner_id: &str,
    purpose: Purpose,
) -> Result<UploadItem, AppError> {
    let refuse = |message: &str| {
        AppError::Validation(vec![FieldError::new(field, FieldCode::NotAllowed, message)])
    };
    let upload = get_upload(table, &id.to_string())
        .await?
        .filter(|upload| upload.owner_id == owner_id)
        .ok_or_else(|| refuse("must name one of your uploads"))?;
    if upload.status != UploadStatus::Ready {
        return Err(refuse("upload is not complete yet"));
    }
    if upload.purpose != purpose {
        return Err(refuse(&format!(
            "upload must have purpose {}",
            purpose.as_str()
        )));
    }
    Ok(upload)
}

/// Makes presigned URLs for objects of the uploads bucket. Presigning is
/// local computation: no request leaves the function.
#[derive(Debug, Clone)]
pub struct Presigner {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Presigner {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    /// A GET URL for `key`, valid for 15 minutes.
    pub async fn download_url(&self, key: &str) -> Result<String, AppError> {
        let config = PresigningConfig::expires_in(DOWNLOAD_URL_TTL)
            .map_err(|err| AppError::internal("building a presigning config", err))?;
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|err| AppError::internal("presigning a download", err))?;
        Ok(request.uri().to_owned())
    }

    /// `download_url` for an optional key.
    pub async fn maybe_download_url(&self, key: Option<&str>) -> Result<Option<String>, AppError> {
        match key {
            Some(key) => self.download_url(key).await.map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_use_the_contract_spelling() {
        assert_eq!(
            serde_json::to_value(Purpose::PostImage).unwrap(),
            "post-image"
        );
        assert_eq!(
            Purpose::parse("purpose", "avatar".into()).unwrap(),
            Purpose::Avatar
        );
        assert_eq!(
            Purpose::parse("purpose", "banner".into()).unwrap_err().code,
            FieldCode::NotAllowed
        );
    }

    #[test]
    fn object_keys_come_from_ids_only() {
        assert_eq!(object_key("01A", "01B"), "uploads/01A/01B");
    }
}
