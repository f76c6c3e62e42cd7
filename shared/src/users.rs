//! The user, email-claim and session items, and the API's views of a user
//! (`UserResponse`, `PublicUser`). Several functions read users (auth,
//! users, posts for authors, websocket), so their shape lives here once.
//!
//! Keys (see docs/DATA_MODEL.md):
//! - user:    `pk = USER#<id>`, `sk = PROFILE`, `gsi1pk = USERS`, `gsi1sk = <id>`
//! - email:   `pk = EMAIL#<email>`, `sk = EMAIL` (uniqueness claim)
//! - session: `pk = USER#<id>`, `sk = SESSION#<sid>`, TTL at refresh expiry

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::{
    domain::{Role, UserStatus},
    error::AppError,
    store::{self, Item, Table, from_item},
};

pub const PROFILE_SK: &str = "PROFILE";
pub const USERS_INDEX_PK: &str = "USERS";

pub fn user_pk(id: &str) -> String {
    format!("USER#{id}")
}

pub fn email_pk(email: &str) -> String {
    format!("EMAIL#{email}")
}

pub fn session_sk(sid: &str) -> String {
    format!("SESSION#{sid}")
}

/// The stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserItem {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub entity: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Sessions created before this instant (ms since the epoch) are dead:
    /// revoking every session of a user is one write.
    #[serde(default)]
    pub sessions_valid_after: i64,
}

impl UserItem {
    pub fn key(id: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(user_pk(id))),
            ("sk".to_owned(), AttributeValue::S(PROFILE_SK.to_owned())),
        ])
    }
}

/// The uniqueness claim on an email address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: String,
}

impl EmailItem {
    pub fn new(email: &str, user_id: &str) -> Self {
        Self {
            pk: email_pk(email),
            sk: "EMAIL".into(),
            entity: "email".into(),
            user_id: user_id.to_owned(),
        }
    }

    pub fn key(email: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(email_pk(email))),
            ("sk".to_owned(), AttributeValue::S("EMAIL".to_owned())),
        ])
    }
}

/// One login: the refresh token in force is kept only as its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub sid: String,
    pub user_id: String,
    pub refresh_hash: String,
    pub revoked: bool,
    pub created_at_ms: i64,
    /// Epoch seconds; DynamoDB deletes the item some time after.
    pub ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl SessionItem {
    pub fn key(user_id: &str, sid: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(user_pk(user_id))),
            ("sk".to_owned(), AttributeValue::S(session_sk(sid))),
        ])
    }

    /// Whether this session may still be used by `user`.
    pub fn is_live(&self, user: &UserItem, now_secs: i64) -> bool {
        !self.revoked && self.ttl > now_secs && self.created_at_ms >= user.sessions_valid_after
    }
}

/// The full view of a user, for the user themself and admins.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What anyone signed in may see of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    pub created_at: String,
}

impl UserItem {
    /// The full view; `avatar_url` is resolved by the caller (it may need a
    /// presigned URL, which only functions with S3 access can make).
    pub fn to_response(&self, avatar_url: Option<String>) -> UserResponse {
        UserResponse {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            role: self.role,
            status: self.status,
            email_verified: self.email_verified,
            avatar_url,
            last_login_at: self.last_login_at.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    pub fn to_public(&self, avatar_url: Option<String>) -> PublicUser {
        PublicUser {
            id: self.id.clone(),
            name: self.name.clone(),
            avatar_url,
            created_at: self.created_at.clone(),
        }
    }
}

/// Reads a user by id, strongly consistent.
pub async fn get_user(table: &Table, id: &str) -> Result<Option<UserItem>, AppError> {
    let output = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(UserItem::key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(store::dynamo)?;
    output.item.map(from_item).transpose()
}

/// Reads a user and one of their sessions in one round trip.
pub async fn get_user_and_session(
    table: &Table,
    user_id: &str,
    sid: &str,
) -> Result<(Option<UserItem>, Option<SessionItem>), AppError> {
    let items = store::batch_get(
        table,
        vec![UserItem::key(user_id), SessionItem::key(user_id, sid)],
        true,
    )
    .await?;
    let mut user = None;
    let mut session = None;
    for item in items {
        match item.get("sk") {
            Some(AttributeValue::S(sk)) if sk == PROFILE_SK => user = Some(from_item(item)?),
            Some(AttributeValue::S(_)) => session = Some(from_item(item)?),
            _ => {}
        }
    }
    Ok((user, session))
}

/// Looks up the user id that claimed `email`.
pub async fn user_id_by_email(table: &Table, email: &str) -> Result<Option<String>, AppError> {
    let output = table
        .client
        .get_item()
        .table_name(&table.name)
        .set_key(Some(EmailItem::key(email)))
        .consistent_read(true)
        .send()
        .await
        .map_err(store::dynamo)?;
    Ok(output
        .item
        .map(from_item::<EmailItem>)
        .transpose()?
        .map(|claim| claim.user_id))
}

/// Reads users by id, one round trip per 100; missing ids are simply
/// absent from the map.
pub async fn get_users(
    table: &Table,
    ids: &[String],
) -> Result<HashMap<String, UserItem>, AppError> {
    let mut unique: Vec<&String> = ids.iter().collect();
    unique.sort();
    unique.dedup();
    let keys = unique.into_iter().map(|id| UserItem::key(id)).collect();
    let mut found = HashMap::new();
    for item in store::batch_get(table, keys, false).await? {
        let user: UserItem = from_item(item)?;
        found.insert(user.id.clone(), user);
    }
    Ok(found)
}
