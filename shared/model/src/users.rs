//! Users: the user item, the claim on an email address, and the stores that
//! read and change them (`Users`). The API's views of a user
//! (`UserResponse`, `PublicUser`) live beside the item they are made from.
//!
//! The admin list reads the `gsi1` partition `USERS` (sort key: the user's
//! ULID, so newest first is a reverse query). User writes are single
//! conditional `UpdateItem`s returning the new item: one round trip.
//!
//! There is always an admin: the active admins are counted in one item
//! (`ADMINS`/`COUNT`), changed in the same transaction as every write that
//! makes a user an active admin or stops one being it, and never below one.
//! So two admins demoting each other at the same moment cannot leave none:
//! the second transaction finds the count at one. A table whose admins
//! predate the counter has them counted, once, by the `admin-count`
//! migration (`make migrate`) or else by the first such change.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::{query::builders::QueryFluentBuilder, update_item::UpdateItemError},
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now_ms,
    domain::{Email, Name, Role, SessionId, UserId, UserStatus},
    error::{Condition, StoreError, TransactionFailure, dynamo},
    keys::{
        self, ADMIN_COUNT_PK, ADMIN_COUNT_SK, EMAIL_SK, Entity, GSI1PK, Index, PROFILE_SK, SK,
        USERS_INDEX_PK,
    },
    sessions::SessionItem,
    table::{
        self, Item, Page, Partition, Table, from_item, key, transact_update, transact_update_named,
    },
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
            created_at: Some(self.created_at.clone()),
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
    /// A copy of the user's password hash, so that login checks the
    /// password from the one item it can find by email and then writes:
    /// two round trips, not three. Written with the user (register, reset)
    /// and by migration 2 for older claims, which lack it until then
    /// (login reads the user for those). Never trusted alone: the login
    /// write is conditional on the user's own hash being the one checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The role the tokens of a login are signed with before the user is
    /// read: the role at registration. A login whose user turns out to
    /// have another role (an admin) re-signs its refresh token (one more
    /// round trip), so no token carries a stale role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl EmailItem {
    /// The claim of `user`'s address, with the copies login reads.
    pub fn new(user: &UserItem) -> Self {
        Self {
            pk: keys::email_pk(&user.email),
            sk: EMAIL_SK.into(),
            entity: Entity::Email.as_str().into(),
            user_id: user.id,
            password_hash: Some(user.password_hash.clone()),
            role: Some(user.role),
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
    #[schema(nullable = false)]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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
    #[schema(nullable = false)]
    pub avatar_url: Option<String>,
    /// When the account was created; absent on the deleted-user placeholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub created_at: Option<String>,
}

impl PublicUser {
    /// The author of a deleted account's posts and comments, or of an
    /// author whose item is gone: their content still shows, they do not.
    /// No `createdAt`, rather than an empty string that is no RFC 3339
    /// time.
    pub fn deleted(id: &UserId) -> Self {
        PublicUser {
            id: id.to_string(),
            name: "Deleted user".into(),
            avatar_url: None,
            created_at: None,
        }
    }
}

/// What an admin may change of a user at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminChange {
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

/// Whether a user with `role` and `status` is one the admin counter counts.
fn is_active_admin(role: Role, status: UserStatus) -> bool {
    role == Role::Admin && status == UserStatus::Active
}

/// Every role and status a user can have, for `AdminChange::counted_states`.
const ROLES: [Role; 2] = [Role::User, Role::Admin];
const STATUSES: [UserStatus; 3] = [
    UserStatus::Active,
    UserStatus::Suspended,
    UserStatus::Deleted,
];

impl AdminChange {
    /// Whether applying this to a user with `role` and `status` makes them
    /// an active admin, or stops them being one.
    fn moves_the_count(self, role: Role, status: UserStatus) -> bool {
        let after = (self.role.unwrap_or(role), self.status.unwrap_or(status));
        is_active_admin(role, status) != is_active_admin(after.0, after.1)
    }

    /// The roles and statuses from which this change moves the count: a
    /// user in any other state can be written without touching it.
    fn counted_states(self) -> Vec<(Role, UserStatus)> {
        ROLES
            .into_iter()
            .flat_map(|role| STATUSES.into_iter().map(move |status| (role, status)))
            .filter(|(role, status)| self.moves_the_count(*role, *status))
            .collect()
    }
}

/// The attribute of the admin counter holding the count.
const ACTIVE_ADMINS: &str = "activeAdmins";

fn admin_count_key() -> Item {
    key(ADMIN_COUNT_PK.into(), ADMIN_COUNT_SK.into())
}

/// A change that moves the admin count loses its pass when another write
/// of the same user's role or status lands first; each pass learns their
/// state anew, so only a user changed over and over runs out of passes.
const ADMIN_UPDATE_ATTEMPTS: usize = 5;

/// How a write that moves the admin count ended, short of an error.
enum CountedWrite {
    Done(Box<UserItem>),
    /// The user's role or status was no longer what the write assumed.
    Stale,
    /// The table has no counter (any more): its admins are to be counted.
    Uncounted,
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
    /// The claim of an address (strongly consistent), with the copies of
    /// the password hash and role that login reads.
    async fn email_claim(&self, email: &Email) -> Result<Option<EmailItem>, StoreError>;
    /// Login's write for a user whose password `password_hash` was found
    /// right: `lastLoginAt = now`, if the user is still active with that
    /// very hash (a reset or a suspension since the claim was read wins).
    /// The user as now stored, or (`Err`) as found (`None`: no such user).
    async fn record_login(
        &self,
        id: &UserId,
        password_hash: &str,
        now: &str,
    ) -> Result<Result<UserItem, Option<UserItem>>, StoreError>;
    /// Migration 2's write: copies `user`'s hash and role onto its email
    /// claim if the claim is still `user`'s and has no hash yet (a reset
    /// writes the claim's hash itself, and must win). Whether it changed.
    async fn fill_claim(&self, user: &UserItem) -> Result<bool, StoreError>;
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
    /// The active-admin count moves in the same transaction when the user
    /// becomes or stops being an active admin: `LastAdmin` when that would
    /// leave no active admin, `UserGone` when there is no such user.
    async fn admin_update(
        &self,
        id: &UserId,
        change: AdminChange,
        now: &str,
    ) -> Result<UserItem, StoreError>;
    /// `admin_update` of `user` as a caller has just read them (consistently),
    /// with the active-admin count read alongside (`admins`): one write, the
    /// counted transaction or the plain update as their state calls for,
    /// and `LastAdmin` without any write when it applies. When the user or
    /// the count changed since they were read, or the count is missing, it
    /// falls back to `admin_update`.
    async fn admin_update_from(
        &self,
        user: &UserItem,
        admins: Option<u64>,
        change: AdminChange,
        now: &str,
    ) -> Result<UserItem, StoreError>;
    /// The number of active admins, strongly consistent; `None` until the
    /// `admin-count` migration or a first change of an admin counted them.
    async fn active_admins(&self) -> Result<Option<u64>, StoreError>;
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
        let name = self.name(attribute);
        let placeholder = self.value(&format!(":{attribute}"), value);
        self.sets.push(format!("{name} = {placeholder}"));
    }

    /// `#attribute`, for a condition on an attribute (maybe not assigned).
    fn name(&mut self, attribute: &str) -> String {
        let name = format!("#{attribute}");
        self.names.insert(name.clone(), attribute.to_owned());
        name
    }

    /// `placeholder`, bound to `value`.
    fn value(&mut self, placeholder: &str, value: AttributeValue) -> String {
        self.values.insert(placeholder.to_owned(), value);
        placeholder.to_owned()
    }

    fn expression(&self) -> String {
        format!("SET {}", self.sets.join(", "))
    }

    /// Sets the user's role and status as `change` says, and the
    /// timestamps that go with them: `updatedAt`, and `sessionsValidAfter`
    /// when the user leaves `active`, which it also returns.
    fn admin_change(change: AdminChange, now: &str) -> (Self, Option<i64>) {
        let mut assignments = Assignments::new();
        let mut sessions_valid_after = None;
        if let Some(role) = change.role {
            assignments.set("role", AttributeValue::S(role.as_str().to_owned()));
        }
        if let Some(status) = change.status {
            assignments.set("status", AttributeValue::S(status.as_str().to_owned()));
            if status != UserStatus::Active {
                let after = unix_now_ms() + 1;
                assignments.set("sessionsValidAfter", AttributeValue::N(after.to_string()));
                sessions_valid_after = Some(after);
            }
        }
        assignments.set("updatedAt", AttributeValue::S(now.to_owned()));
        (assignments, sessions_valid_after)
    }

    /// One `UpdateItem` of the existing user if `condition` also holds:
    /// the new item, or (`Err`) the item as it was when the condition
    /// failed, `None` when there is no such user.
    async fn apply_if(
        self,
        table: &Table,
        id: &UserId,
        condition: Option<String>,
    ) -> Result<Result<UserItem, Option<UserItem>>, StoreError> {
        let condition = match condition {
            Some(condition) => format!("attribute_exists(pk) AND ({condition})"),
            None => "attribute_exists(pk)".to_owned(),
        };
        let result = table
            .client
            .update_item()
            .table_name(&table.name)
            .set_key(Some(UserItem::key(id)))
            .update_expression(self.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Ok(from_item(output.attributes.unwrap_or_default())?)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Err(failed.item().cloned().map(from_item).transpose()?))
                }
                _ => Err(dynamo(err)),
            },
        }
    }

    /// The update of an existing user; `UserGone` when there is none.
    async fn apply(self, table: &Table, id: &UserId) -> Result<UserItem, StoreError> {
        self.apply_if(table, id, None)
            .await?
            .map_err(|_| StoreError::Condition(Condition::UserGone))
    }
}

impl Table {
    /// `change`, in one `UpdateItem`, if it does not move the admin count
    /// from the user's state at the moment of the write (whatever that
    /// is: nothing is read first); else (`Err`) the user as they are, whose
    /// change must move the count with it, or `None` for no such user.
    async fn admin_update_uncounted(
        &self,
        id: &UserId,
        change: AdminChange,
        now: &str,
    ) -> Result<Result<UserItem, Option<UserItem>>, StoreError> {
        let (mut assignments, _) = Assignments::admin_change(change, now);
        let counted = change.counted_states();
        let condition = if counted.is_empty() {
            None
        } else {
            let role = assignments.name("role");
            let status = assignments.name("status");
            let states: Vec<String> = counted
                .into_iter()
                .map(|(is_role, is_status)| {
                    let is_role = assignments.value(
                        &format!(":is_{}", is_role.as_str()),
                        AttributeValue::S(is_role.as_str().to_owned()),
                    );
                    let is_status = assignments.value(
                        &format!(":is_{}", is_status.as_str()),
                        AttributeValue::S(is_status.as_str().to_owned()),
                    );
                    format!("{role} = {is_role} AND {status} = {is_status}")
                })
                .collect();
            // DynamoDB refuses doubled parentheses, so one state has none
            // of its own.
            Some(match states.as_slice() {
                [state] => format!("NOT ({state})"),
                _ => format!("NOT (({}))", states.join(") OR (")),
            })
        };
        assignments.apply_if(self, id, condition).await
    }

    /// `change` of `user`, which moves the admin count, in one transaction
    /// with the count: the user's write holds only if their role and
    /// status are still `user`'s, the count's only if the table has one and
    /// (when an active admin stops being one) it stays above zero.
    async fn admin_update_counted(
        &self,
        user: &UserItem,
        change: AdminChange,
        now: &str,
    ) -> Result<CountedWrite, StoreError> {
        let (mut assignments, sessions_valid_after) = Assignments::admin_change(change, now);
        let role = assignments.name("role");
        let status = assignments.name("status");
        let was_role =
            assignments.value(":wasRole", AttributeValue::S(user.role.as_str().to_owned()));
        let was_status = assignments.value(
            ":wasStatus",
            AttributeValue::S(user.status.as_str().to_owned()),
        );
        let user_write = transact_update_named(
            self,
            UserItem::key(&user.id),
            &assignments.expression(),
            &format!("{role} = {was_role} AND {status} = {was_status}"),
            assignments.names,
            assignments.values,
        )?;
        let demotes = is_active_admin(user.role, user.status);
        let one = || AttributeValue::N("1".into());
        let count_write = if demotes {
            transact_update(
                self,
                admin_count_key(),
                &format!("ADD {ACTIVE_ADMINS} :minusOne"),
                &format!("{ACTIVE_ADMINS} > :one"),
                vec![
                    (":minusOne", AttributeValue::N("-1".into())),
                    (":one", one()),
                ],
            )?
        } else {
            transact_update(
                self,
                admin_count_key(),
                &format!("ADD {ACTIVE_ADMINS} :one"),
                "attribute_exists(pk)",
                vec![(":one", one())],
            )?
        };
        match table::transact_write(self, vec![user_write, count_write]).await {
            Ok(()) => {
                // A transaction returns no item: the user is the one read,
                // changed as written (an edit of their profile made in
                // between would show on the next read, not here).
                let mut updated = user.clone();
                updated.role = change.role.unwrap_or(user.role);
                updated.status = change.status.unwrap_or(user.status);
                updated.updated_at = now.to_owned();
                if let Some(after) = sessions_valid_after {
                    updated.sessions_valid_after = after;
                }
                Ok(CountedWrite::Done(Box::new(updated)))
            }
            Err(TransactionFailure::Conditions(failed)) if failed.contains(&0) => {
                Ok(CountedWrite::Stale)
            }
            // Only the count's condition failed: it would fall to zero (a
            // race with another admin leaving), or it is gone.
            Err(TransactionFailure::Conditions(_)) => {
                if demotes && self.active_admins().await?.is_some() {
                    Err(StoreError::Condition(Condition::LastAdmin))
                } else {
                    Ok(CountedWrite::Uncounted)
                }
            }
            Err(other) => Err(other.named(|_| None)),
        }
    }

    /// Creates the admin counter from the users as they are, unless it
    /// exists. Until it does, no write that moves the count can commit (each
    /// needs the counter), so the users counted cannot change under the
    /// count; of two processes counting at once, the first to write wins and
    /// the other's equal count is dropped. One filtered Query of the users
    /// partition per 1 MB of it, once in the life of a table (or never,
    /// where the `admin-count` migration of `make migrate` made it first).
    async fn count_admins(&self) -> Result<(), StoreError> {
        let admins = table::count_all(self.active_admins_query()).await?;
        self.create_admin_count(admins).await.map(drop)
    }

    /// The Query of every user: the users partition of `gsi1`, whose items
    /// are the whole user items. Migrations that visit each user read it.
    pub fn all_users_query(&self) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.name)
            .index_name(Index::Gsi1.name())
            .key_condition_expression(format!("{GSI1PK} = :users"))
            .expression_attribute_values(":users", AttributeValue::S(USERS_INDEX_PK.into()))
    }

    /// The Query that finds the active admins: the users partition of
    /// `gsi1`, filtered to role `admin` and status `active`. The request
    /// path above and the `admin-count` migration (infra) both count the
    /// admins with it, so they count by one rule.
    pub fn active_admins_query(&self) -> QueryFluentBuilder {
        self.all_users_query()
            .filter_expression("#role = :admin AND #status = :active")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":admin", AttributeValue::S(Role::Admin.as_str().into()))
            .expression_attribute_values(
                ":active",
                AttributeValue::S(UserStatus::Active.as_str().into()),
            )
    }

    /// Creates the admin counter holding `admins`, unless one exists:
    /// whether this call made it. `admins` must be a count of
    /// `active_admins_query` made while the counter was missing (see
    /// `count_admins` for why that count cannot be stale).
    pub async fn create_admin_count(&self, admins: u64) -> Result<bool, StoreError> {
        let created = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(admin_count_key()))
            .update_expression(format!("SET {ACTIVE_ADMINS} = :admins, #entity = :entity"))
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_values(":admins", AttributeValue::N(admins.to_string()))
            .expression_attribute_values(
                ":entity",
                AttributeValue::S(Entity::AdminCount.as_str().into()),
            )
            .send()
            .await;
        match created.map_err(dynamo) {
            Ok(_) => Ok(true),
            Err(err) if err.is(Condition::AlreadyExists) => Ok(false),
            Err(err) => Err(err),
        }
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
        Ok(self.email_claim(email).await?.map(|claim| claim.user_id))
    }

    async fn email_claim(&self, email: &Email) -> Result<Option<EmailItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(EmailItem::key(email)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        output.item.map(from_item::<EmailItem>).transpose()
    }

    async fn record_login(
        &self,
        id: &UserId,
        password_hash: &str,
        now: &str,
    ) -> Result<Result<UserItem, Option<UserItem>>, StoreError> {
        let mut assignments = Assignments::new();
        assignments.set("lastLoginAt", AttributeValue::S(now.to_owned()));
        let hash = assignments.name("passwordHash");
        let verified = assignments.value(":verified", AttributeValue::S(password_hash.to_owned()));
        let status = assignments.name("status");
        let active = assignments.value(
            ":active",
            AttributeValue::S(UserStatus::Active.as_str().to_owned()),
        );
        let condition = format!("{hash} = {verified} AND {status} = {active}");
        assignments.apply_if(self, id, Some(condition)).await
    }

    async fn fill_claim(&self, user: &UserItem) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(EmailItem::key(&user.email)))
            .update_expression("SET passwordHash = :hash, #role = :role")
            .condition_expression("userId = :id AND attribute_not_exists(passwordHash)")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":hash", AttributeValue::S(user.password_hash.clone()))
            .expression_attribute_values(":role", AttributeValue::S(user.role.as_str().to_owned()))
            .expression_attribute_values(":id", AttributeValue::S(user.id.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match dynamo(err) {
                StoreError::Condition(_) => Ok(false),
                other => Err(other),
            },
        }
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
        for _ in 0..ADMIN_UPDATE_ATTEMPTS {
            // The count is read alongside, for the change that moves it: so
            // the transaction is sent only when it should commit. (A
            // cancelled one costs nothing on DynamoDB, but the emulator
            // then restores a copy of the whole table, which detaches its
            // stream from the local poller.)
            let (uncounted, count) = tokio::join!(
                self.admin_update_uncounted(id, change, now),
                self.active_admins()
            );
            let user = match uncounted? {
                Ok(updated) => return Ok(updated),
                Err(Some(user)) => user,
                Err(None) => return Err(StoreError::Condition(Condition::UserGone)),
            };
            let count = match count? {
                Some(count) => count,
                None => {
                    self.count_admins().await?;
                    self.active_admins().await?.unwrap_or_default()
                }
            };
            if is_active_admin(user.role, user.status) && count <= 1 {
                return Err(StoreError::Condition(Condition::LastAdmin));
            }
            match self.admin_update_counted(&user, change, now).await? {
                CountedWrite::Done(updated) => return Ok(*updated),
                // Learn their state anew, and the count's.
                CountedWrite::Stale | CountedWrite::Uncounted => {}
            }
        }
        Err(StoreError::Throttled {
            service: "dynamodb",
            source: "the user kept changing under an admin update".into(),
        })
    }

    async fn admin_update_from(
        &self,
        user: &UserItem,
        admins: Option<u64>,
        change: AdminChange,
        now: &str,
    ) -> Result<UserItem, StoreError> {
        let moves_count = change.counted_states().contains(&(user.role, user.status));
        match (moves_count, admins) {
            (true, Some(count)) => {
                if is_active_admin(user.role, user.status) && count <= 1 {
                    return Err(StoreError::Condition(Condition::LastAdmin));
                }
                if let CountedWrite::Done(updated) =
                    self.admin_update_counted(user, change, now).await?
                {
                    return Ok(*updated);
                }
            }
            // No counter yet: the path that makes it.
            (true, None) => {}
            (false, _) => match self.admin_update_uncounted(&user.id, change, now).await? {
                Ok(updated) => return Ok(updated),
                Err(None) => return Err(StoreError::Condition(Condition::UserGone)),
                // They became someone whose change moves the count.
                Err(Some(_)) => {}
            },
        }
        self.admin_update(&user.id, change, now).await
    }

    async fn active_admins(&self) -> Result<Option<u64>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(admin_count_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        match output
            .item
            .as_ref()
            .and_then(|item| item.get(ACTIVE_ADMINS))
        {
            None => Ok(None),
            Some(AttributeValue::N(count)) => count
                .parse()
                .map(Some)
                .map_err(|err| StoreError::internal("reading the admin count", err)),
            Some(other) => Err(StoreError::internal(
                "reading the admin count",
                format!("not a number: {other:?}"),
            )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn change(role: Option<Role>, status: Option<UserStatus>) -> AdminChange {
        AdminChange { role, status }
    }

    #[test]
    fn every_role_and_status_is_enumerated() {
        // A new variant breaks these matches: list it in ROLES or STATUSES.
        let listed = |role: Role| match role {
            Role::User | Role::Admin => ROLES.contains(&role),
        };
        assert!(listed(Role::User) && listed(Role::Admin));
        let listed = |status: UserStatus| match status {
            UserStatus::Active | UserStatus::Suspended | UserStatus::Deleted => {
                STATUSES.contains(&status)
            }
        };
        assert!(
            listed(UserStatus::Active)
                && listed(UserStatus::Suspended)
                && listed(UserStatus::Deleted)
        );
    }

    #[test]
    fn only_active_admins_are_counted() {
        assert!(is_active_admin(Role::Admin, UserStatus::Active));
        assert!(!is_active_admin(Role::Admin, UserStatus::Suspended));
        assert!(!is_active_admin(Role::Admin, UserStatus::Deleted));
        assert!(!is_active_admin(Role::User, UserStatus::Active));
    }

    #[test]
    fn a_change_moves_the_count_from_exactly_the_states_it_turns_into_or_out_of_an_active_admin() {
        use Role::{Admin, User};
        use UserStatus::{Active, Deleted, Suspended};
        let cases = [
            (change(None, None), vec![]),
            (change(Some(User), None), vec![(Admin, Active)]),
            (change(None, Some(Suspended)), vec![(Admin, Active)]),
            (change(None, Some(Deleted)), vec![(Admin, Active)]),
            (change(Some(User), Some(Active)), vec![(Admin, Active)]),
            (change(Some(Admin), Some(Suspended)), vec![(Admin, Active)]),
            (change(Some(Admin), None), vec![(User, Active)]),
            (
                change(None, Some(Active)),
                vec![(Admin, Suspended), (Admin, Deleted)],
            ),
            (
                change(Some(Admin), Some(Active)),
                vec![
                    (User, Active),
                    (User, Suspended),
                    (User, Deleted),
                    (Admin, Suspended),
                    (Admin, Deleted),
                ],
            ),
        ];
        for (change, expected) in cases {
            assert_eq!(change.counted_states(), expected, "{change:?}");
        }
    }
}
