//! Users: the user item, the claim on an email address, and the stores that
//! read and change them (`Users`). The API's views of a user
//! (`UserResponse`, `PublicUser`) live beside the item they are made from.
//!
//! The admin list reads the `gsi1` partition `USERS` (sort key: the user's
//! ULID, so newest first is a reverse query). User writes are single
//! conditional `UpdateItem`s returning the new item: one round trip.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now_ms,
    domain::{Email, Name, Role, SessionId, UserId, UserStatus},
    error::{Condition, StoreError, dynamo},
    keys::{self, EMAIL_SK, Entity, GSI1PK, Index, PROFILE_SK, SK, USERS_INDEX_PK},
    sessions::SessionItem,
    table::{self, Item, Page, Partition, Table, from_item, key},
};

/// The stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserItem {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub entity: String,
    pub id: UserId,
    pub name: Name,
    pub email: Email,
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
    /// A new, active user with the `user` role.
    pub fn new(id: UserId, name: Name, email: Email, password_hash: String, now: String) -> Self {
        Self {
            pk: keys::user_pk(&id),
            sk: PROFILE_SK.into(),
            gsi1pk: USERS_INDEX_PK.into(),
            gsi1sk: id.to_string(),
            entity: Entity::User.as_str().into(),
            id,
            name,
            email,
            password_hash,
            role: Role::User,
            status: UserStatus::Active,
            email_verified: false,
            avatar_key: None,
            last_login_at: None,
            created_at: now.clone(),
            updated_at: now,
            sessions_valid_after: 0,
        }
    }

    pub fn key(id: &UserId) -> Item {
        key(keys::user_pk(id), PROFILE_SK.into())
    }

    /// The full view; `avatar_url` is resolved by the caller (it may need a
    /// presigned URL, which only functions with S3 access can make).
    pub fn to_response(&self, avatar_url: Option<String>) -> UserResponse {
        UserResponse {
            id: self.id.to_string(),
            name: self.name.to_string(),
            email: self.email.to_string(),
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
            id: self.id.to_string(),
            name: self.name.to_string(),
            avatar_url,
            created_at: self.created_at.clone(),
        }
    }
}

/// The uniqueness claim on an email address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: UserId,
}

impl EmailItem {
    pub fn new(email: &Email, user_id: &UserId) -> Self {
        Self {
            pk: keys::email_pk(email),
            sk: EMAIL_SK.into(),
            entity: Entity::Email.as_str().into(),
            user_id: *user_id,
        }
    }

    pub fn key(email: &Email) -> Item {
        key(keys::email_pk(email), EMAIL_SK.into())
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

impl PublicUser {
    /// An author whose item is gone; their content still shows.
    pub fn deleted(id: &UserId) -> Self {
        PublicUser {
            id: id.to_string(),
            name: "Deleted user".into(),
            avatar_url: None,
            created_at: String::new(),
        }
    }
}

/// What an admin may change of a user at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminChange {
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

/// Reading and changing users.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Users {
    /// A user by id, strongly consistent.
    async fn user(&self, id: &UserId) -> Result<Option<UserItem>, StoreError>;
    /// A user and one of their sessions in one round trip.
    async fn user_and_session(
        &self,
        id: &UserId,
        sid: &SessionId,
    ) -> Result<(Option<UserItem>, Option<SessionItem>), StoreError>;
    /// The user id that claimed `email`.
    async fn user_id_by_email(&self, email: &Email) -> Result<Option<UserId>, StoreError>;
    /// Users by id, one round trip per 100; missing ids are absent.
    async fn users(&self, ids: &[UserId]) -> Result<HashMap<UserId, UserItem>, StoreError>;
    /// Sets the name and avatar given; the user must exist (`UserGone`).
    async fn update_profile(
        &self,
        id: &UserId,
        name: Option<&Name>,
        avatar_key: Option<&str>,
        now: &str,
    ) -> Result<UserItem, StoreError>;
    /// Sets role and status; leaving `active` also ends every session.
    async fn admin_update(
        &self,
        id: &UserId,
        change: AdminChange,
        now: &str,
    ) -> Result<UserItem, StoreError>;
    /// `LastAdmin` when no active admin other than `except` exists.
    async fn ensure_another_admin(&self, except: &UserId) -> Result<(), StoreError>;
    /// One page of users, newest first.
    async fn list_users(&self, page: Page) -> Result<(Vec<UserItem>, Option<Item>), StoreError>;
}

/// Builds `SET a = :a, …` from the given assignments, all or nothing.
struct Assignments {
    sets: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Assignments {
    fn new() -> Self {
        Self {
            sets: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = format!("#{attribute}");
        let placeholder = format!(":{attribute}");
        self.sets.push(format!("{name} = {placeholder}"));
        self.names.insert(name, attribute.to_owned());
        self.values.insert(placeholder, value);
    }

    async fn apply(self, table: &Table, id: &UserId) -> Result<UserItem, StoreError> {
        let output = table
            .client
            .update_item()
            .table_name(&table.name)
            .set_key(Some(UserItem::key(id)))
            .update_expression(format!("SET {}", self.sets.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| dynamo(err).on_condition(Condition::UserGone))?;
        from_item(output.attributes.unwrap_or_default())
    }
}

impl Users for Table {
    async fn user(&self, id: &UserId) -> Result<Option<UserItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(UserItem::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        output.item.map(from_item).transpose()
    }

    async fn user_and_session(
        &self,
        id: &UserId,
        sid: &SessionId,
    ) -> Result<(Option<UserItem>, Option<SessionItem>), StoreError> {
        let items = table::batch_get(
            self,
            vec![UserItem::key(id), SessionItem::key(id, sid)],
            true,
        )
        .await?;
        let mut user = None;
        let mut session = None;
        for item in items {
            match item.get(SK) {
                Some(AttributeValue::S(sk)) if sk == PROFILE_SK => user = Some(from_item(item)?),
                Some(AttributeValue::S(_)) => session = Some(from_item(item)?),
                _ => {}
            }
        }
        Ok((user, session))
    }

    async fn user_id_by_email(&self, email: &Email) -> Result<Option<UserId>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(EmailItem::key(email)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(output
            .item
            .map(from_item::<EmailItem>)
            .transpose()?
            .map(|claim| claim.user_id))
    }

    async fn users(&self, ids: &[UserId]) -> Result<HashMap<UserId, UserItem>, StoreError> {
        let mut unique: Vec<&UserId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique.into_iter().map(UserItem::key).collect();
        let mut found = HashMap::new();
        for item in table::batch_get(self, keys, false).await? {
            let user: UserItem = from_item(item)?;
            found.insert(user.id, user);
        }
        Ok(found)
    }

    async fn update_profile(
        &self,
        id: &UserId,
        name: Option<&Name>,
        avatar_key: Option<&str>,
        now: &str,
    ) -> Result<UserItem, StoreError> {
        let mut assignments = Assignments::new();
        if let Some(name) = name {
            assignments.set("name", AttributeValue::S(name.to_string()));
        }
        if let Some(key) = avatar_key {
            assignments.set("avatarKey", AttributeValue::S(key.to_owned()));
        }
        assignments.set("updatedAt", AttributeValue::S(now.to_owned()));
        assignments.apply(self, id).await
    }

    async fn admin_update(
        &self,
        id: &UserId,
        change: AdminChange,
        now: &str,
    ) -> Result<UserItem, StoreError> {
        let mut assignments = Assignments::new();
        if let Some(role) = change.role {
            assignments.set("role", AttributeValue::S(role.as_str().to_owned()));
        }
        if let Some(status) = change.status {
            assignments.set("status", AttributeValue::S(status.as_str().to_owned()));
            if status != UserStatus::Active {
                let after = unix_now_ms() + 1;
                assignments.set("sessionsValidAfter", AttributeValue::N(after.to_string()));
            }
        }
        assignments.set("updatedAt", AttributeValue::S(now.to_owned()));
        assignments.apply(self, id).await
    }

    async fn ensure_another_admin(&self, except: &UserId) -> Result<(), StoreError> {
        // Admin changes are rare, so reading the users partition with a
        // filter is fine.
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.name)
                .index_name(Index::Gsi1.name())
                .key_condition_expression(format!("{GSI1PK} = :users"))
                .filter_expression("#role = :admin AND #status = :active AND id <> :me")
                .expression_attribute_names("#role", "role")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":users", AttributeValue::S(USERS_INDEX_PK.into()))
                .expression_attribute_values(
                    ":admin",
                    AttributeValue::S(Role::Admin.as_str().into()),
                )
                .expression_attribute_values(
                    ":active",
                    AttributeValue::S(UserStatus::Active.as_str().into()),
                )
                .expression_attribute_values(":me", AttributeValue::S(except.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            if output.count > 0 {
                return Ok(());
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Err(StoreError::Condition(Condition::LastAdmin)),
            }
        }
    }

    async fn list_users(&self, page: Page) -> Result<(Vec<UserItem>, Option<Item>), StoreError> {
        let partition = Partition {
            index: Some(Index::Gsi1),
            key: USERS_INDEX_PK.to_owned(),
            sort_prefix: None,
            newest_first: true,
        };
        let (items, next) = self.page_of(&partition, page).await?;
        let users = items
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<UserItem>, _>>()?;
        Ok((users, next))
    }
}
