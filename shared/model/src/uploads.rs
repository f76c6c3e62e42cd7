//! Uploads: the stored upload, its API view, and the store of the uploads
//! function (`Uploads`): creating a pending upload, reading one for its
//! owner, marking it ready. Users and posts read uploads too, to check that
//! an `avatarUploadId` / `imageUploadId` names the caller's own finished one.
//!
//! The object lives in the bucket at `uploads/<ownerId>/<id>`; nothing
//! user-supplied (the filename) is ever part of an S3 key. A pending upload
//! carries a `ttl` so that one the client abandons goes away by itself. TTL
//! deletion can lag by days, so an item past its `ttl` is treated as gone.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now,
    domain::{FieldCode, FieldError, UploadId, UserId},
    error::{Condition, StoreError, dynamo},
    keys::{Entity, TTL, UPLOAD_SK, upload_pk},
    table::{Item, Table, from_item, key, to_item},
};

fn upload_key(id: &UploadId) -> Item {
    key(upload_pk(id), UPLOAD_SK.into())
}

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

/// The S3 key of an upload: derived from ids only.
pub fn object_key(owner_id: &UserId, upload_id: &UploadId) -> String {
    format!("uploads/{owner_id}/{upload_id}")
}

/// The stored upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UploadItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: UploadId,
    pub owner_id: UserId,
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

/// What a client declares of the file it is about to upload, checked by
/// the uploads function before an upload is made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredFile {
    /// Sanitised, for display only.
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub purpose: Purpose,
}

impl UploadItem {
    /// A new pending upload `id` of `owner_id`, its object at
    /// `object_key(owner_id, id)`, expiring `PENDING_TTL_SECS` from now.
    pub fn pending(id: UploadId, owner_id: UserId, file: DeclaredFile, now: String) -> Self {
        Self {
            pk: upload_pk(&id),
            sk: UPLOAD_SK.into(),
            entity: Entity::Upload.as_str().into(),
            key: object_key(&owner_id, &id),
            id,
            owner_id,
            purpose: file.purpose,
            content_type: file.content_type,
            size: file.size,
            status: UploadStatus::Pending,
            filename: file.filename,
            created_at: now,
            ttl: Some(unix_now() as i64 + PENDING_TTL_SECS),
        }
    }
}

/// `Upload` of docs/API.md.
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
            id: item.id.to_string(),
            purpose: item.purpose,
            content_type: item.content_type.clone(),
            size: item.size,
            status: item.status,
            created_at: item.created_at.clone(),
        }
    }
}

/// Uploads as their owners see them.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Uploads {
    /// Any upload by id.
    async fn upload(&self, id: &UploadId) -> Result<Option<UploadItem>, StoreError>;
    /// Stores a new pending upload; its id is fresh, and the condition only
    /// guards against overwriting one should that ever not hold.
    async fn put_pending_upload(&self, upload: &UploadItem) -> Result<(), StoreError>;
    /// `owner`'s upload `id`, unless expired; another user's reads as none.
    async fn owned_upload(
        &self,
        id: &UploadId,
        owner: &UserId,
        now: i64,
    ) -> Result<Option<UploadItem>, StoreError>;
    /// Marks an upload ready and drops its `ttl`. The condition repeats the
    /// checks of `owned_upload`, so an upload that expired or vanished in
    /// between is `UploadGone` rather than being brought back.
    async fn mark_upload_ready(
        &self,
        upload: &UploadItem,
        now: i64,
    ) -> Result<UploadItem, StoreError>;
}

impl Uploads for Table {
    async fn upload(&self, id: &UploadId) -> Result<Option<UploadItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(upload_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        output.item.map(from_item).transpose()
    }

    async fn put_pending_upload(&self, upload: &UploadItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(upload)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    async fn owned_upload(
        &self,
        id: &UploadId,
        owner: &UserId,
        now: i64,
    ) -> Result<Option<UploadItem>, StoreError> {
        Ok(self
            .upload(id)
            .await?
            .filter(|upload| upload.owner_id == *owner)
            .filter(|upload| upload.ttl.is_none_or(|ttl| ttl > now)))
    }

    async fn mark_upload_ready(
        &self,
        upload: &UploadItem,
        now: i64,
    ) -> Result<UploadItem, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(upload_key(&upload.id)))
            .update_expression("SET #status = :ready REMOVE #ttl")
            .condition_expression(
                "#ownerId = :owner AND (attribute_not_exists(#ttl) OR #ttl > :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#ownerId", "ownerId")
            .expression_attribute_values(":ready", AttributeValue::S(READY.into()))
            .expression_attribute_values(":owner", AttributeValue::S(upload.owner_id.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| dynamo(err).on_condition(Condition::UploadGone))?;
        let item = output.attributes.ok_or_else(|| {
            StoreError::internal(
                "marking an upload ready",
                "UpdateItem with ALL_NEW returned no attributes",
            )
        })?;
        from_item(item)
    }
}

/// How long a pending upload is kept: far beyond the life of its URL, so a
/// slow upload can still be completed.
pub const PENDING_TTL_SECS: i64 = 24 * 3600;

/// `UploadStatus::Ready` as stored: serde's spelling, which a test pins.
const READY: &str = "ready";

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
        let owner: UserId = "01J0000000000000000000000A".parse().unwrap();
        let id: UploadId = "01J0000000000000000000000B".parse().unwrap();
        assert_eq!(
            object_key(&owner, &id),
            "uploads/01J0000000000000000000000A/01J0000000000000000000000B"
        );
    }

    #[test]
    fn a_pending_upload_has_its_keys_object_and_ttl() {
        let owner: UserId = "01J0000000000000000000000A".parse().unwrap();
        let id: UploadId = "01J0000000000000000000000B".parse().unwrap();
        let file = DeclaredFile {
            filename: "cat.png".into(),
            content_type: "image/png".into(),
            size: 3,
            purpose: Purpose::Avatar,
        };
        let before = unix_now() as i64;
        let upload = UploadItem::pending(id, owner, file, "2024-01-01T00:00:00.000Z".into());
        assert_eq!(upload.pk, upload_pk(&id));
        assert_eq!(upload.sk, UPLOAD_SK);
        assert_eq!(upload.entity, Entity::Upload.as_str());
        assert_eq!(upload.key, object_key(&owner, &id));
        assert_eq!(upload.status, UploadStatus::Pending);
        let ttl = upload.ttl.unwrap() - before;
        assert!(
            (PENDING_TTL_SECS..=PENDING_TTL_SECS + 1).contains(&ttl),
            "{ttl}"
        );
    }

    #[test]
    fn ready_is_stored_as_serde_spells_it() {
        assert_eq!(serde_json::to_value(UploadStatus::Ready).unwrap(), READY);
    }
}
