//! Notification items. The posts function creates them (a comment notifies
//! the post's author, in the comment's own transaction); the notifications
//! function serves them; the stream worker delivers them live and by email.
//!
//! Key: `pk = USER#<recipient>`, `sk = NOTIF#<id>`. Unread ones also carry
//! `gsi2pk = UNREAD#<recipient>`, a sparse index: counting or listing unread
//! notifications reads only unread ones, and marking read removes the keys.

use serde::{Deserialize, Serialize};

use crate::users::user_pk;

pub const NOTIFICATION_PREFIX: &str = "NOTIF#";

pub fn notification_sk(id: &str) -> String {
    format!("{NOTIFICATION_PREFIX}{id}")
}

pub fn unread_pk(user_id: &str) -> String {
    format!("UNREAD#{user_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationType {
    Comment,
    System,
}

/// The stored notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub id: String,
    pub user_id: String,
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
        user_id: &str,
        kind: NotificationType,
        title: String,
        body: String,
        data: serde_json::Map<String, serde_json::Value>,
        created_at: String,
    ) -> Self {
        let id = ulid::Ulid::new().to_string();
        Self {
            pk: user_pk(user_id),
            sk: notification_sk(&id),
            entity: "notification".into(),
            user_id: user_id.to_owned(),
            kind,
            title,
            body,
            data,
            read: false,
            created_at,
            gsi2pk: Some(unread_pk(user_id)),
            gsi2sk: Some(id.clone()),
            id,
        }
    }

    pub fn to_response(&self) -> Notification {
        Notification {
            id: self.id.clone(),
            kind: self.kind,
            title: self.title.clone(),
            body: self.body.clone(),
            data: self.data.clone(),
            read: self.read,
            created_at: self.created_at.clone(),
        }
    }
}

/// `Notification` of API.md.
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
