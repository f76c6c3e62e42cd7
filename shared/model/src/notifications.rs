//! Notifications: the item, its API view, and the store the notifications
//! function serves them from (`Notifications`). The posts function creates
//! them (a comment notifies the post's author, in the comment's own
//! transaction); the stream worker delivers them live and by email.
//!
//! Unread ones also carry `gsi2pk = UNREAD#<recipient>`, a sparse index:
//! counting or listing unread notifications reads only unread ones, and
//! marking read removes those keys.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{CommentId, Name, NotificationId, PostId, UserId},
    error::{Condition, StoreError, dynamo},
    keys::{self, Entity, Index, NOTIFICATION_SK_PREFIX},
    table::{self, Item, Page, Partition, Table, from_item, key},
};

/// The sparse index of unread notifications.
const UNREAD_INDEX: Index = Index::Gsi2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationType {
    Comment,
    System,
}

/// The `data` of a `comment` notification (docs/API.md, Notifications):
/// where the comment is and who wrote it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentNotice {
    pub post_id: PostId,
    pub comment_id: CommentId,
    pub actor_id: UserId,
    pub actor_name: Name,
}

impl CommentNotice {
    /// The notice as the free-form `data` object every notification has.
    pub fn into_data(self) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(data)) => Ok(data),
            Ok(other) => Err(StoreError::internal(
                "writing a notice",
                format!("a notice is an object, not {other}"),
            )),
            Err(err) => Err(StoreError::internal("writing a notice", err)),
        }
    }
}

/// The stored notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: NotificationId,
    pub user_id: UserId,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    pub data: serde_json::Map<String, serde_json::Value>,
    pub read: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
}

impl NotificationItem {
    /// A new, unread notification for `user_id`.
    pub fn new(
        user_id: &UserId,
        kind: NotificationType,
        title: String,
        body: String,
        data: serde_json::Map<String, serde_json::Value>,
        created_at: String,
    ) -> Self {
        let id = NotificationId::new();
        Self {
            pk: keys::user_pk(user_id),
            sk: keys::notification_sk(&id),
            entity: Entity::Notification.as_str().into(),
            user_id: *user_id,
            kind,
            title,
            body,
            data,
            read: false,
            created_at,
            gsi2pk: Some(keys::unread_pk(user_id)),
            gsi2sk: Some(id.to_string()),
            id,
        }
    }

    pub fn to_response(&self) -> Notification {
        Notification {
            id: self.id.to_string(),
            kind: self.kind,
            title: self.title.clone(),
            body: self.body.clone(),
            data: self.data.clone(),
            read: self.read,
            created_at: self.created_at.clone(),
        }
    }
}

/// `Notification` of docs/API.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    pub read: bool,
    pub created_at: String,
}

/// The caller's notifications.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Notifications {
    /// One page of a user's notifications, newest first.
    async fn list_notifications(
        &self,
        user: &UserId,
        page: Page,
    ) -> Result<(Vec<NotificationItem>, Option<Item>), StoreError>;
    /// One page of a user's unread notifications, newest first.
    async fn list_unread(
        &self,
        user: &UserId,
        page: Page,
    ) -> Result<(Vec<NotificationItem>, Option<Item>), StoreError>;
    /// How many unread notifications a user has. A count query still stops
    /// at 1 MB of index data per call, so it follows `LastEvaluatedKey`.
    async fn count_unread(&self, user: &UserId) -> Result<u64, StoreError>;
    /// Marks one read and returns it (idempotent); `NotificationGone`.
    async fn mark_read(
        &self,
        user: &UserId,
        id: &NotificationId,
    ) -> Result<NotificationItem, StoreError>;
    /// A page of the ids of a user's unread notifications (as many as one
    /// Query of the unread index returns), from `start`.
    async fn unread_ids(&self, user: &UserId, start: Option<Item>)
    -> Result<UnreadIds, StoreError>;
    /// Marks every unread one read, from the `first` page of
    /// [`Notifications::unread_ids`] on (a caller reads it alongside its
    /// other checks); how many this call changed.
    async fn mark_all_read(&self, user: &UserId, first: UnreadIds) -> Result<u64, StoreError>;
    /// Deletes one; `NotificationGone`.
    async fn delete_notification(
        &self,
        user: &UserId,
        id: &NotificationId,
    ) -> Result<(), StoreError>;
}

/// One page of unread notification ids, and where the next one starts.
#[derive(Debug, Clone, Default)]
pub struct UnreadIds {
    pub ids: Vec<NotificationId>,
    pub next: Option<Item>,
}

impl Notifications for Table {
    async fn list_notifications(
        &self,
        user: &UserId,
        page: Page,
    ) -> Result<(Vec<NotificationItem>, Option<Item>), StoreError> {
        let partition = Partition {
            index: None,
            key: keys::user_pk(user),
            sort_prefix: Some(NOTIFICATION_SK_PREFIX),
            newest_first: true,
        };
        let (items, next) = self.page_of(&partition, page).await?;
        Ok((into_notifications(items)?, next))
    }

    async fn list_unread(
        &self,
        user: &UserId,
        page: Page,
    ) -> Result<(Vec<NotificationItem>, Option<Item>), StoreError> {
        let partition = Partition {
            index: Some(UNREAD_INDEX),
            key: keys::unread_pk(user),
            sort_prefix: None,
            newest_first: true,
        };
        let (items, next) = self.page_of(&partition, page).await?;
        Ok((into_notifications(items)?, next))
    }

    async fn count_unread(&self, user: &UserId) -> Result<u64, StoreError> {
        table::count_all(
            self.client
                .query()
                .table_name(&self.name)
                .index_name(UNREAD_INDEX.name())
                .key_condition_expression("gsi2pk = :unread")
                .expression_attribute_values(":unread", AttributeValue::S(keys::unread_pk(user))),
        )
        .await
    }

    async fn mark_read(
        &self,
        user: &UserId,
        id: &NotificationId,
    ) -> Result<NotificationItem, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(notification_key(user, id)))
            .update_expression(MARK_READ)
            // Without it, an update of a missing key would create a stub item.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#read", "read")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| dynamo(err).on_condition(Condition::NotificationGone))?;
        from_item(output.attributes.unwrap_or_default())
    }

    async fn unread_ids(
        &self,
        user: &UserId,
        start: Option<Item>,
    ) -> Result<UnreadIds, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(UNREAD_INDEX.name())
            .key_condition_expression("gsi2pk = :unread")
            .expression_attribute_values(":unread", AttributeValue::S(keys::unread_pk(user)))
            .projection_expression("gsi2sk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo)?;
        // The key is rebuilt from the caller's id, so nothing but their own
        // partition can be written whatever the index holds.
        let ids = output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| match item.get("gsi2sk") {
                Some(AttributeValue::S(id)) => id.parse::<NotificationId>().ok(),
                _ => None,
            })
            .collect();
        Ok(UnreadIds {
            ids,
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    async fn mark_all_read(&self, user: &UserId, first: UnreadIds) -> Result<u64, StoreError> {
        let mut updated = 0u64;
        let mut page = first;
        loop {
            // One conditional UpdateItem per notification, run concurrently,
            // rather than TransactWriteItems in chunks of 100: the notifications
            // are independent, so a transaction's all-or-nothing buys nothing,
            // costs twice the write capacity, and one notification read or
            // deleted meanwhile would cancel its whole chunk and force a retry.
            // Here such a notification just fails its own condition and is not
            // counted, so `updated` is exactly what this call changed.
            updated += stream::iter(page.ids)
                .map(|id| async move { mark_read_if_unread(self, user, &id).await })
                .buffer_unordered(READ_ALL_CONCURRENCY)
                .try_fold(
                    0u64,
                    |sum, changed| async move { Ok(sum + u64::from(changed)) },
                )
                .await?;
            match page.next {
                Some(key) => page = self.unread_ids(user, Some(key)).await?,
                None => return Ok(updated),
            }
        }
    }

    async fn delete_notification(
        &self,
        user: &UserId,
        id: &NotificationId,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(notification_key(user, id)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|err| dynamo(err).on_condition(Condition::NotificationGone))?;
        Ok(())
    }
}

/// How many updates read-all keeps in flight at once: enough to finish a
/// large backlog quickly, few enough not to burst into throttling.
const READ_ALL_CONCURRENCY: usize = 16;

/// `SET read = true` plus dropping the index keys, shared by both ways of
/// marking read so that they cannot drift apart. `read` is a reserved word.
const MARK_READ: &str = "SET #read = :true REMOVE gsi2pk, gsi2sk";

fn notification_key(user_id: &UserId, id: &NotificationId) -> Item {
    key(keys::user_pk(user_id), keys::notification_sk(id))
}

fn into_notifications(items: Vec<Item>) -> Result<Vec<NotificationItem>, StoreError> {
    items.into_iter().map(from_item).collect()
}

/// Whether this call turned the notification from unread to read.
async fn mark_read_if_unread(
    table: &Table,
    user_id: &UserId,
    id: &NotificationId,
) -> Result<bool, StoreError> {
    let result = table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(notification_key(user_id, id)))
        .update_expression(MARK_READ)
        // Read or deleted since the index was read: not ours to count, and
        // a deleted one must not come back as a stub.
        .condition_expression("attribute_exists(gsi2pk)")
        .expression_attribute_names("#read", "read")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .send()
        .await
        .map_err(dynamo);
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::Condition(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_notice_has_the_documented_data() {
        let post: PostId = "01JCZ5H0000000000000000000".parse().unwrap();
        let comment: CommentId = "01JCZ5H0000000000000000001".parse().unwrap();
        let actor: UserId = "01JCZ5H0000000000000000002".parse().unwrap();
        let data = CommentNotice {
            post_id: post,
            comment_id: comment,
            actor_id: actor,
            actor_name: Name::parse("name", "Bob".into()).unwrap(),
        }
        .into_data()
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(data),
            serde_json::json!({
                "postId": "01JCZ5H0000000000000000000",
                "commentId": "01JCZ5H0000000000000000001",
                "actorId": "01JCZ5H0000000000000000002",
                "actorName": "Bob",
            })
        );
    }
}
