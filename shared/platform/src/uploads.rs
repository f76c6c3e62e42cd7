//! Uploads as the functions that use them see them: the check that an
//! `avatarUploadId` / `imageUploadId` names the caller's own finished upload
//! of the right purpose, and presigned download URLs. The upload item and
//! its store are `model::uploads`.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use model::{
    Table,
    domain::{UploadId, UserId},
    uploads::{Purpose, UploadItem, UploadStatus, Uploads},
};

use crate::error::{AppError, FieldCode, FieldError};

/// How long a presigned download URL works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// Why an upload cannot be used where a request names it.
fn refusal(upload: Option<&UploadItem>, owner: &UserId, purpose: Purpose) -> Option<String> {
    match upload.filter(|upload| upload.owner_id == *owner) {
        None => Some("must name one of your uploads".into()),
        Some(upload) if upload.status != UploadStatus::Ready => {
            Some("upload is not complete yet".into())
        }
        Some(upload) if upload.purpose != purpose => {
            Some(format!("upload must have purpose {}", purpose.as_str()))
        }
        Some(_) => None,
    }
}

/// The upload named by `field` if it is `owner`'s, finished, and for
/// `purpose`; otherwise a 422 on that field. Another user's upload reads
/// exactly like a missing one.
pub async fn ready_upload(
    table: &Table,
    field: &str,
    id: &UploadId,
    owner: &UserId,
    purpose: Purpose,
) -> Result<UploadItem, AppError> {
    let upload = table.upload(id).await?;
    if let Some(message) = refusal(upload.as_ref(), owner, purpose) {
        return Err(AppError::Validation(vec![FieldError::new(
            field,
            FieldCode::NotAllowed,
            message,
        )]));
    }
    upload.ok_or_else(|| AppError::internal("checking an upload", "refused none"))
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
    use model::{domain::UploadId, keys::Entity};

    fn upload(owner: UserId, status: UploadStatus, purpose: Purpose) -> UploadItem {
        let id = UploadId::new();
        UploadItem {
            pk: String::new(),
            sk: String::new(),
            entity: Entity::Upload.as_str().into(),
            id,
            owner_id: owner,
            purpose,
            content_type: "image/png".into(),
            size: 1,
            status,
            key: model::uploads::object_key(&owner, &id),
            filename: "a.png".into(),
            created_at: String::new(),
            ttl: None,
        }
    }

    #[test]
    fn only_the_owners_finished_upload_of_the_purpose_is_usable() {
        let me = UserId::new();
        let ready = upload(me, UploadStatus::Ready, Purpose::Avatar);
        assert_eq!(refusal(Some(&ready), &me, Purpose::Avatar), None);
        assert!(
            refusal(Some(&ready), &UserId::new(), Purpose::Avatar)
                .unwrap()
                .contains("your")
        );
        assert!(
            refusal(None, &me, Purpose::Avatar)
                .unwrap()
                .contains("your")
        );
        let pending = upload(me, UploadStatus::Pending, Purpose::Avatar);
        assert!(
            refusal(Some(&pending), &me, Purpose::Avatar)
                .unwrap()
                .contains("complete")
        );
        assert!(
            refusal(Some(&ready), &me, Purpose::PostImage)
                .unwrap()
                .contains("post-image")
        );
    }
}
