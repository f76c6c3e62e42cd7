//! The DynamoDB reads and writes of the users function.
//!
//! Admins are listed from the `gsi1` partition `USERS` (sort key: the user's
//! ULID, so newest first is a reverse query). User writes are single
//! conditional `UpdateItem`s returning the new item: one round trip.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use shared::{
    AppError,
    domain::{Role, UserStatus},
    query::PageRequest,
    store::{self, Item, Table, from_item},
    users::{USERS_INDEX_PK, UserItem},
};

/// The cursor scope of the admin user list.
pub const USERS_LIST: &str = "users";

fn not_found(err: AppError) -> AppError {
    match err {
        AppError::Conflict(_) => AppError::NotFound("User not found".into()),
        other => other,
    }
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

    async fn apply(self, table: &Table, id: &str) -> Result<UserItem, AppError> {
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
            .map_err(|err| not_found(store::dynamo(err)))?;
        from_item(output.attributes.unwrap_or_default())
    }
}

fn revoke_sessions(assignments: &mut Assignments) {
    let after = chrono::Utc::now().timestamp_millis() + 1;
    assignments.set("sessionsValidAfter", AttributeValue::N(after.to_string()));
}

pub async fn update_profile(
    table: &Table,
    id: &str,
    name: Option<&str>,
    avatar_key: Option<&str>,
    now: &str,
) -> Result<UserItem, AppError> {
    let mut assignments = Assignments::new();
    if let Some(name) = name {
        assignments.set("name", AttributeValue::S(name.to_owned()));
    }
    if let Some(key) = avatar_key {
        assignments.set("avatarKey", AttributeValue::S(key.to_owned()));
    }
    assignments.set("updatedAt", AttributeValue::S(now.to_owned()));
    assignments.apply(table, id).await
}

/// Sets `status`; leaving `active` also ends every session at once.
pub async fn set_status(
    table: &Table,
    id: &str,
    status: UserStatus,
    now: &str,
) -> Result<UserItem, AppError> {
    admin_update(table, id, None, Some(status), now).await
}

pub async fn admin_update(
    table: &Table,
    id: &str,
    role: Option<Role>,
    status: Option<UserStatus>,
    now: &str,
) -> Result<UserItem, AppError> {
    let mut assignments = Assignments::new();
    if let Some(role) = role {
        assignments.set("role", AttributeValue::S(role.as_str().to_owned()));
    }
    if let Some(status) = status {
        assignments.set("status", AttributeValue::S(status.as_str().to_owned()));
        if status != UserStatus::Active {
            revoke_sessions(&mut assignments);
        }
    }
    assignments.set("updatedAt", AttributeValue::S(now.to_owned()));
    assignments.apply(table, id).await
}

/// Refuses (409) when no active admin other than `except` exists. Admin
/// changes are rare, so reading the users partition with a filter is fine.
pub async fn ensure_another_admin(table: &Table, except: &str) -> Result<(), AppError> {
    let mut start: Option<Item> = None;
    loop {
        let output = table
            .client
            .query()
            .table_name(&table.name)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :users")
            .filter_expression("#role = :admin AND #status = :active AND id <> :me")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":users", AttributeValue::S(USERS_INDEX_PK.into()))
            .expression_attribute_values(":admin", AttributeValue::S("admin".into()))
            .expression_attribute_values(":active", AttributeValue::S("active".into()))
            .expression_attribute_values(":me", AttributeValue::S(except.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store::dynamo)?;
        if output.count > 0 {
            return Ok(());
        }
        match output.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => {
                return Err(AppError::Conflict(
                    "This would leave no active admin; promote another admin first".into(),
                ));
            }
        }
    }
}

/// One page of users, newest first.
pub async fn list_users(
    table: &Table,
    page: &PageRequest,
) -> Result<(Vec<UserItem>, Option<Item>), AppError> {
    let (items, next) = store::query_page(
        page.limit,
        page.cursor.clone().map(|c| c.0),
        &["pk", "sk", "gsi1pk", "gsi1sk"],
        |start, limit| async move {
            table
                .client
                .query()
                .table_name(&table.name)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :users")
                .expression_attribute_values(":users", AttributeValue::S(USERS_INDEX_PK.into()))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store::dynamo)
        },
    )
    .await?;
    let users = items
        .into_iter()
        .map(from_item)
        .collect::<Result<Vec<UserItem>, _>>()?;
    Ok((users, next))
}
