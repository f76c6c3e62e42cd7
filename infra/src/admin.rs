//! Operator tasks that have no API route: making the first admin.
//!
//! `make admin EMAIL=…` runs this against the configured endpoint; after
//! that, admins manage roles through `PATCH /api/v1/users/{id}`.

use model::{
    StoreError, Table,
    clock::now_rfc3339,
    domain::{Email, Role, UserId},
    users::{AdminChange, Users},
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

fn store_error(err: StoreError) -> AdminError {
    AdminError::Store(platform::error::ErrorChain(&err).to_string())
}

/// Gives the user registered with `email` the admin role; returns their id.
/// The store counts them among the active admins once, however often this
/// runs (an admin already is one changes nothing), and on a table whose
/// admins predate the count it counts those first.
pub async fn promote(table: &Table, email: &str) -> Result<UserId, AdminError> {
    let email = Email::parse("email", email.to_owned())
        .map_err(|_| AdminError::InvalidEmail(email.to_owned()))?;
    let no_such_user = || AdminError::NoSuchUser(email.to_string());
    let user_id = table
        .user_id_by_email(&email)
        .await
        .map_err(store_error)?
        .ok_or_else(no_such_user)?;
    let change = AdminChange {
        role: Some(Role::Admin),
        status: None,
    };
    match table.admin_update(&user_id, change, &now_rfc3339()).await {
        Ok(_) => Ok(user_id),
        Err(err) if err.is(model::Condition::UserGone) => Err(no_such_user()),
        Err(err) => Err(store_error(err)),
    }
}
