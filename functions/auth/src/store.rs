//! The DynamoDB writes of the auth function, one round trip each.
//!
//! One-time tokens (email verification, password reset) are stored only as
//! the SHA-256 of the token (`pk = TOKEN#<hash>`, `sk = VERIFY | RESET`) and
//! consumed with a single `DeleteItem … ReturnValues=ALL_OLD`, so a token
//! works exactly once even under concurrent use.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    AppError,
    jwt::unix_now,
    store::{self, Table, from_item, to_item},
    users::{EmailItem, SessionItem, UserItem, session_sk, user_pk},
};

/// Hex SHA-256 of a secret; what is stored instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random, URL-safe one-time token with 256 bits of entropy.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Verify,
    Reset,
}

impl TokenKind {
    fn sk(self) -> &'static str {
        match self {
            TokenKind::Verify => "VERIFY",
            TokenKind::Reset => "RESET",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: String,
    /// Epoch seconds; checked on use, since TTL deletion can lag by hours.
    pub expires_at: i64,
    pub ttl: i64,
}

impl TokenItem {
    pub fn new(token: &str, kind: TokenKind, user_id: &str, ttl_secs: u64) -> Self {
        let expires_at = (unix_now() + ttl_secs) as i64;
        Self {
            pk: format!("TOKEN#{}", hash_secret(token)),
            sk: kind.sk().to_owned(),
            entity: "token".into(),
            user_id: user_id.to_owned(),
            expires_at,
            ttl: expires_at,
        }
    }
}

use store::transact_put as put;

/// Creates the email claim, the user, their first session and their
/// verification token atomically; a taken email is a 409.
pub async fn register(
    table: &Table,
    user: &UserItem,
    session: &SessionItem,
    token: &TokenItem,
) -> Result<(), AppError> {
    let not_exists = Some("attribute_not_exists(pk)");
    table
        .client
        .transact_write_items()
        .transact_items(put(
            table,
            to_item(&EmailItem::new(&user.email, &user.id))?,
            not_exists,
        )?)
        .transact_items(put(table, to_item(user)?, not_exists)?)
        .transact_items(put(table, to_item(session)?, not_exists)?)
        .transact_items(put(table, to_item(token)?, None)?)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| match store::dynamo(err) {
            AppError::Conflict(_) => AppError::Conflict("Email is already registered".into()),
            other => other,
        })
}

/// Stores a new session and the login time in one transaction.
pub async fn start_session(
    table: &Table,
    session: &SessionItem,
    login_at: &str,
) -> Result<(), AppError> {
    let update = Update::builder()
        .table_name(&table.name)
        .set_key(Some(UserItem::key(&session.user_id)))
        .update_expression("SET lastLoginAt = :now")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":now", AttributeValue::S(login_at.to_owned()))
        .build()
        .map_err(|err| AppError::internal("building a transaction", err))?;
    table
        .client
        .transact_write_items()
        .transact_items(put(
            table,
            to_item(session)?,
            Some("attribute_not_exists(pk)"),
        )?)
        .transact_items(TransactWriteItem::builder().update(update).build())
        .send()
        .await
        .map(|_| ())
        .map_err(store::dynamo)
}

/// Swaps the refresh token in force, only if `old_hash` still is it: of two
/// concurrent refreshes with one token, exactly one wins.
pub async fn rotate_refresh(
    table: &Table,
    user_id: &str,
    sid: &str,
    old_hash: &str,
    new_hash: &str,
    ttl: i64,
) -> Result<(), AppError> {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(SessionItem::key(user_id, sid)))
        .update_expression("SET refreshHash = :new, #ttl = :ttl")
        .condition_expression("refreshHash = :old AND revoked = :false")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":new", AttributeValue::S(new_hash.to_owned()))
        .expression_attribute_values(":old", AttributeValue::S(old_hash.to_owned()))
        .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .send()
        .await
        .map(|_| ())
        .map_err(store::dynamo)
}

/// Marks one session revoked; a session already gone stays gone.
pub async fn revoke_session(table: &Table, user_id: &str, sid: &str) -> Result<(), AppError> {
    let result = table
        .client
        .update_item()
        .table_name(&table.name)
        .key("pk", AttributeValue::S(user_pk(user_id)))
        .key("sk", AttributeValue::S(session_sk(sid)))
        .update_expression("SET revoked = :true")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .send()
        .await
        .map_err(store::dynamo);
    match result {
        Ok(_) | Err(AppError::Conflict(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

pub async fn put_token(table: &Table, token: &TokenItem) -> Result<(), AppError> {
    table
        .client
        .put_item()
        .table_name(&table.name)
        .set_item(Some(to_item(token)?))
        .send()
        .await
        .map(|_| ())
        .map_err(store::dynamo)
}

/// Deletes the token and returns it if it existed and had not expired.
pub async fn consume_token(
    table: &Table,
    token: &str,
    kind: TokenKind,
) -> Result<Option<TokenItem>, AppError> {
    let output = table
        .client
        .delete_item()
        .table_name(&table.name)
        .key(
            "pk",
            AttributeValue::S(format!("TOKEN#{}", hash_secret(token))),
        )
        .key("sk", AttributeValue::S(kind.sk().to_owned()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .map_err(store::dynamo)?;
    let Some(item) = output.attributes.filter(|item| !item.is_empty()) else {
        return Ok(None);
    };
    let token: TokenItem = from_item(item)?;
    Ok((token.expires_at > unix_now() as i64).then_some(token))
}

pub async fn mark_email_verified(table: &Table, user_id: &str, now: &str) -> Result<(), AppError> {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(UserItem::key(user_id)))
        .update_expression("SET emailVerified = :true, updatedAt = :now")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":true", AttributeValue::Bool(true))
        .expression_attribute_values(":now", AttributeValue::S(now.to_owned()))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| match store::dynamo(err) {
            AppError::Conflict(_) => AppError::BadRequest("Invalid or expired token".into()),
            other => other,
        })
}

/// Sets a new password and kills every session that existed before it.
pub async fn set_password(
    table: &Table,
    user_id: &str,
    password_hash: &str,
    valid_after_ms: i64,
    now: &str,
) -> Result<(), AppError> {
    table
        .client
        .update_item()
        .table_name(&table.name)
        .set_key(Some(UserItem::key(user_id)))
        .update_expression(
            "SET passwordHash = :hash, sessionsValidAfter = :after, updatedAt = :now",
        )
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":hash", AttributeValue::S(password_hash.to_owned()))
        .expression_attribute_values(":after", AttributeValue::N(valid_after_ms.to_string()))
        .expression_attribute_values(":now", AttributeValue::S(now.to_owned()))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| match store::dynamo(err) {
            AppError::Conflict(_) => AppError::BadRequest("Invalid or expired token".into()),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_to_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, new_token());
    }
}
