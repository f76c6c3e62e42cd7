//! Uploads: the stored upload, its API view, and the store of the uploads
//! function (`Uploads`): creating a pending upload, reading one for its
//! owner, marking it ready. Users and posts read uploads too, to check that
//! an `avatarUploadId` / `imageUploadId` names the caller's own finished one.
//!
//! The object lives in the bucket at `uploads/<ownerId>/<id>`; nothing
//! user-supplied (the filename) is ever part of an S3 key. A pending upload
//! carries a `ttl` so that one the client abandons goes away by itself. TTL
//! deletion can lag by days, so an item past its `ttl` is treated as gone.
//!
//! A user holds at most `max` pending uploads. Each one holds a slot: its
//! id in the string set `uploadIds` of the user's `upload-slots` item,
//! added in the transaction that creates the upload, under the condition
//! that the set is not full. A set rather than a count, because removing
//! an id is idempotent: the stream worker frees the slot of a removed
//! pending upload on a stream delivered at least once, and a redelivery
//! must not free a second one. It also tells which uploads hold the slots,
//! so a full set can be checked against them (`reclaim_slots`): an upload
//! that expired frees its slot when it expires, not days later when TTL
//! deletion gets to it, and a slot that ever leaked is found. Uploads
//! created before the slots existed hold none, and releasing one is a
//! no-op.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now,
    domain::{FieldCode, FieldError, UploadId, UserId},
    error::{Condition, StoreError, dynamo},
    keys::{ENTITY, Entity, TTL, UPLOAD_SK, UPLOAD_SLOTS_SK, upload_pk, user_pk},
    table::{Item, Table, batch_get, from_item, key, to_item, transact_put, transact_write},
};

fn upload_key(id: &UploadId) -> Item {
    key(upload_pk(id), UPLOAD_SK.into())
}

fn slots_key(owner: &UserId) -> Item {
    key(user_pk(owner), UPLOAD_SLOTS_SK.into())
}

/// The string set of the slots item: the ids of the pending uploads.
const SLOT_IDS: &str = "uploadIds";

/// Adds the ids to the set (creating the item, named, on first use).
const TAKE_SLOTS: &str = "SET #entity = :entity ADD #ids :ids";
/// Only while the set holds fewer than `:max` ids.
const NOT_FULL: &str = "attribute_not_exists(#ids) OR size(#ids) < :max";
/// Removes the ids; an id not in the set is no change. The entity is set
/// so that an item this creates (a user whose uploads predate the slots)
/// is still a named one.
const RELEASE_SLOTS: &str = "SET #entity = :entity DELETE #ids :ids";

fn slot_names() -> HashMap<String, String> {
    HashMap::from([
        ("#entity".to_owned(), ENTITY.to_owned()),
        ("#ids".to_owned(), SLOT_IDS.to_owned()),
    ])
}

fn slot_values(ids: &[UploadId]) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            ":entity".to_owned(),
            AttributeValue::S(Entity::UploadSlots.as_str().into()),
        ),
        (
            ":ids".to_owned(),
            AttributeValue::Ss(ids.iter().map(UploadId::to_string).collect()),
        ),
    ])
}

/// Takes a slot of `owner` for `id`, unless `max` are held: one item of
/// the transaction that creates the upload.
fn take_slot(
    table: &Table,
    owner: &UserId,
    id: &UploadId,
    max: u64,
) -> Result<TransactWriteItem, StoreError> {
    let mut values = slot_values(&[*id]);
    values.insert(":max".to_owned(), AttributeValue::N(max.to_string()));
    let update = Update::builder()
        .table_name(&table.name)
        .set_key(Some(slots_key(owner)))
        .update_expression(TAKE_SLOTS)
        .condition_expression(NOT_FULL)
        .set_expression_attribute_names(Some(slot_names()))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|err| StoreError::internal("building a transaction", err))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Frees the slot of `upload`: one item of the transaction that
/// completes it.
fn release_slot(table: &Table, upload: &UploadItem) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(&table.name)
        .set_key(Some(slots_key(&upload.owner_id)))
        .update_expression(RELEASE_SLOTS)
        .set_expression_attribute_names(Some(slot_names()))
        .set_expression_attribute_values(Some(slot_values(&[upload.id])))
        .build()
        .map_err(|err| StoreError::internal("building a transaction", err))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Frees the slots of `ids`, as its own write.
async fn release_slots(table: &Table, owner: &UserId, ids: &[UploadId]) -> Result<(), StoreError> {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(slots_key(owner)))
        .update_expression(RELEASE_SLOTS)
        .set_expression_attribute_names(Some(slot_names()))
        .set_expression_attribute_values(Some(slot_values(ids)))
        .send()
        .await
        .map_err(dynamo)?;
    Ok(())
}

/// Names the failure of the creating transaction by position: the slot
/// (0) is the cap, the upload's own put (1) an id collision.
fn name_creation(failed: &[usize], max: u64) -> Option<Condition> {
    match failed {
        [0, ..] => Some(Condition::TooManyPendingUploads { max }),
        [1] => Some(Condition::AlreadyExists),
        _ => None,
    }
}

/// Whether `upload` can still be completed at `now`, as `owned_upload`
/// and the condition of `mark_upload_ready` see it: what holds a slot.
fn holds_slot(upload: &UploadItem, owner: &UserId, now: i64) -> bool {
    upload.owner_id == *owner
        && upload.status == UploadStatus::Pending
        && upload.ttl.is_none_or(|ttl| ttl > now)
}

/// The slots of `held` whose upload no longer holds one: gone, ready, or
/// expired. An expired upload can never be completed, so its slot is free
/// for good even while its item waits for TTL deletion.
fn dead_slots(
    held: &[UploadId],
    uploads: &[UploadItem],
    owner: &UserId,
    now: i64,
) -> Vec<UploadId> {
    held.iter()
        .filter(|id| {
            !uploads
                .iter()
                .any(|upload| upload.id == **id && holds_slot(upload, owner, now))
        })
        .copied()
        .collect()
}

/// Frees the slots of `owner` that no live pending upload holds; how many.
/// Run only when the set is full, so it costs the common path nothing.
async fn reclaim_slots(table: &Table, owner: &UserId, now: i64) -> Result<usize, StoreError> {
    let output = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(slots_key(owner)))
        .consistent_read(true)
        .send()
        .await
        .map_err(dynamo)?;
    let held: Vec<UploadId> = match output.item.as_ref().and_then(|item| item.get(SLOT_IDS)) {
        Some(AttributeValue::Ss(ids)) => ids
            .iter()
            .map(|id| id.parse())
            .collect::<Result<_, _>>()
            .map_err(|err| StoreError::internal("reading upload slots", err))?,
        _ => return Ok(0),
    };
    let keys = held.iter().map(upload_key).collect();
    let uploads: Vec<UploadItem> = batch_get(table, keys, true)
        .await?
        .into_iter()
        .map(from_item)
        .collect::<Result<_, _>>()?;
    let dead = dead_slots(&held, &uploads, owner, now);
    if !dead.is_empty() {
        release_slots(table, owner, &dead).await?;
    }
    Ok(dead.len())
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
    /// Stores a new pending upload with the slot it takes, of the `max` its
    /// owner has; all taken is `TooManyPendingUploads`, once the slots of
    /// uploads that expired meanwhile are freed (`reclaim_slots`). Its id is
    /// fresh; the put's condition only guards against overwriting one
    /// should that ever not hold.
    async fn put_pending_upload(&self, upload: &UploadItem, max: u64) -> Result<(), StoreError>;
    /// `owner`'s upload `id`, unless expired; another user's reads as none.
    async fn owned_upload(
        &self,
        id: &UploadId,
        owner: &UserId,
        now: i64,
    ) -> Result<Option<UploadItem>, StoreError>;
    /// Marks an upload ready and drops its `ttl`, freeing its slot in the
    /// same transaction. The condition repeats the checks of
    /// `owned_upload`, so an upload that expired or vanished in between is
    /// `UploadGone` rather than being brought back. Two completions at
    /// once both succeed, and free the one slot once.
    async fn mark_upload_ready(
        &self,
        upload: &UploadItem,
        now: i64,
    ) -> Result<UploadItem, StoreError>;
    /// Frees the slot of a pending upload whose item was removed (the
    /// stream worker, on its `REMOVE`). Idempotent: a redelivered record,
    /// or an upload that held no slot, changes nothing.
    async fn release_upload_slot(&self, upload: &UploadItem) -> Result<(), StoreError>;
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

    async fn put_pending_upload(&self, upload: &UploadItem, max: u64) -> Result<(), StoreError> {
        let items = vec![
            take_slot(self, &upload.owner_id, &upload.id, max)?,
            transact_put(self, to_item(upload)?, Some("attribute_not_exists(pk)"))?,
        ];
        let name = |failed: &[usize]| name_creation(failed, max);
        let full = match transact_write(self, items.clone()).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure.named(name),
        };
        if !full.is(Condition::TooManyPendingUploads { max })
            || reclaim_slots(self, &upload.owner_id, unix_now() as i64).await? == 0
        {
            return Err(full);
        }
        transact_write(self, items)
            .await
            .map_err(|failure| failure.named(name))
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
        let ready = Update::builder()
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
            .build()
            .map_err(|err| StoreError::internal("building a transaction", err))?;
        let items = vec![
            TransactWriteItem::builder().update(ready).build(),
            release_slot(self, upload)?,
        ];
        transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| (failed == [0]).then_some(Condition::UploadGone))
        })?;
        // A transaction returns no item; the condition held, so the stored
        // one is the one read with these two changes.
        Ok(UploadItem {
            status: UploadStatus::Ready,
            ttl: None,
            ..upload.clone()
        })
    }

    async fn release_upload_slot(&self, upload: &UploadItem) -> Result<(), StoreError> {
        release_slots(self, &upload.owner_id, &[upload.id]).await
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
    fn a_failed_creation_is_named_by_the_item_that_failed() {
        let full = Some(Condition::TooManyPendingUploads { max: 20 });
        assert_eq!(name_creation(&[0], 20), full);
        assert_eq!(name_creation(&[0, 1], 20), full);
        assert_eq!(name_creation(&[1], 20), Some(Condition::AlreadyExists));
        assert_eq!(name_creation(&[2], 20), None);
    }

    #[test]
    fn only_a_live_pending_upload_of_its_owner_holds_a_slot() {
        let owner: UserId = "01J0000000000000000000000A".parse().unwrap();
        let file = DeclaredFile {
            filename: "cat.png".into(),
            content_type: "image/png".into(),
            size: 3,
            purpose: Purpose::Avatar,
        };
        let upload = |ttl: i64, status: UploadStatus| UploadItem {
            ttl: Some(ttl),
            status,
            ..UploadItem::pending(UploadId::new(), owner, file.clone(), "t".into())
        };
        let now = 1_000;
        let live = upload(now + 1, UploadStatus::Pending);
        let expired = upload(now, UploadStatus::Pending);
        let ready = upload(now + 1, UploadStatus::Ready);
        let others = UploadItem {
            owner_id: UserId::new(),
            ..upload(now + 1, UploadStatus::Pending)
        };
        let gone = UploadId::new();
        let held = [live.id, expired.id, ready.id, others.id, gone];
        let found = [live.clone(), expired.clone(), ready.clone(), others.clone()];
        assert_eq!(
            dead_slots(&held, &found, &owner, now),
            [expired.id, ready.id, others.id, gone]
        );
        assert!(dead_slots(&[live.id], &found, &owner, now).is_empty());
    }

    #[test]
    fn ready_is_stored_as_serde_spells_it() {
        assert_eq!(serde_json::to_value(UploadStatus::Ready).unwrap(), READY);
    }
}
