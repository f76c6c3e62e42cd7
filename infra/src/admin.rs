//! Operator tasks that have no API route: making the first admin.
//!
//! `make admin EMAIL=…` runs this against the configured endpoint; after
//! that, admins manage roles through `PATCH /api/v1/users/{id}`.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::{
    domain::Email,
    store::{self, Table},
    users::{self, UserItem},
};

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum AdminError {
    #[error("{0:?} is not a valid email address")]
    InvalidEmail(String),
    #[error("no user is registered with {0}")]
    NoSuchUser(String),
    #[error("{0}")]
    Store(String),
}

impl std::fmt::Debug for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn store_error(err: shared::AppError) -> AdminError {
    AdminError::Store(shared::error::ErrorChain(&err).to_string())
}

/// Gives the user registered with `email` the admin role; returns their id.
pub async fn promote(table: &Table, email: &str) -> Result<String, AdminError> {
    let email = Email::parse("email", email.to_owned())
        .map_err(|_| AdminError::InvalidEmail(email.to_owned()))?;
    let user_id = users::user_id_by_email(table, email.as_str())
        .await
        .map_err(store_error)?
        .ok_or_else(|| AdminError::NoSuchUser(email.to_string()))?;
    table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(UserItem::key(&user_id)))
        .update_expression("SET #role = :admin")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#role", "role")
        .expression_attribute_values(":admin", AttributeValue::S("admin".into()))
        .send()
        .await
        .map_err(|err| store_error(store::dynamo(err)))?;
    Ok(user_id)
}
