//! Accounts and sessions: the session item, the one-time token item, and
//! the store of the account lifecycle (`Accounts`): register, log in,
//! refresh, revoke, verify an email, reset a password.
//!
//! One-time tokens (email verification, password reset) are stored only as
//! the SHA-256 of the token. A token is read, then used in one transaction
//! that deletes it on the condition that it is still there and unexpired
//! and makes its change, so a token works exactly once even under
//! concurrent use. The emails that carry tokens are outbox items
//! (`crate::outbox`) written in the transaction that makes the token.
//! Each write here is one round trip.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    clock::unix_now,
    domain::{Email, SessionId, UserId, UserStatus},
    error::{Condition, StoreError, dynamo},
    keys::{self, Entity, RESET_SK, VERIFY_SK},
    outbox::OutboxItem,
    table::{
        self, Item, Table, from_item, key, to_item, transact_check, transact_put, transact_update,
        transact_update_named,
    },
    users::{EmailItem, UserItem, Users},
};

/// The user attribute before which issued reset tokens are dead (epoch
/// ms); only the reset reads and writes it, so `UserItem` does not carry it.
const RESETS_VALID_AFTER: &str = "resetsValidAfter";

/// Hex SHA-256 of a secret; what is stored instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One login: the refresh token in force is kept only as its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub sid: SessionId,
    pub user_id: UserId,
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

/// Who opened a session, as the request told it.
#[derive(Debug, Clone, Default)]
pub struct SessionOrigin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionItem {
    /// A new session, live until `expires_at` (epoch seconds), holding the
    /// hash of its first refresh token.
    pub fn new(
        user_id: &UserId,
        sid: SessionId,
        refresh_hash: String,
        expires_at: i64,
        origin: SessionOrigin,
    ) -> Self {
        Self {
            pk: keys::user_pk(user_id),
            sk: keys::session_sk(&sid),
            entity: Entity::Session.as_str().into(),
            sid,
            user_id: *user_id,
            refresh_hash,
            revoked: false,
            created_at_ms: crate::clock::unix_now_ms(),
            ttl: expires_at,
            ip: origin.ip,
            user_agent: origin.user_agent,
        }
    }

    pub fn key(user_id: &UserId, sid: &SessionId) -> Item {
        key(keys::user_pk(user_id), keys::session_sk(sid))
    }

    /// Whether this session may still be used by `user`.
    pub fn is_live(&self, user: &UserItem, now_secs: i64) -> bool {
        !self.revoked && self.ttl > now_secs && self.created_at_ms >= user.sessions_valid_after
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Verify,
    Reset,
}

impl TokenKind {
    fn sk(self) -> &'static str {
        match self {
            TokenKind::Verify => VERIFY_SK,
            TokenKind::Reset => RESET_SK,
        }
    }
}

/// A one-time token, under the hash of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: UserId,
    /// Epoch seconds; checked on use, since TTL deletion can lag by hours.
    pub expires_at: i64,
    pub ttl: i64,
    /// Epoch milliseconds. A reset token issued before the user's last
    /// successful reset is dead (`Accounts::set_password`); tokens stored
    /// before this field existed read as issued at 0.
    #[serde(default)]
    pub issued_at_ms: i64,
    /// The address a reset token was sent to: the reset writes the new
    /// password's copy onto that claim in its own transaction. Absent on
    /// verification tokens and on reset tokens issued before the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

impl TokenItem {
    fn key_of(token: &str, kind: TokenKind) -> Item {
        key(keys::token_pk(&hash_secret(token)), kind.sk().to_owned())
    }

    /// This item's own key.
    fn own_key(&self) -> Item {
        key(self.pk.clone(), self.sk.clone())
    }

    pub fn new(token: &str, kind: TokenKind, user_id: &UserId, ttl_secs: u64) -> Self {
        let expires_at = (unix_now() + ttl_secs) as i64;
        Self {
            pk: keys::token_pk(&hash_secret(token)),
            sk: kind.sk().to_owned(),
            entity: Entity::Token.as_str().into(),
            user_id: *user_id,
            expires_at,
            ttl: expires_at,
            issued_at_ms: crate::clock::unix_now_ms(),
            email: None,
        }
    }

    /// This token, naming the address it is sent to.
    pub fn sent_to(self, email: &Email) -> Self {
        Self {
            email: Some(email.clone()),
            ..self
        }
    }
}

/// The account lifecycle.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Accounts {
    /// The email claim, the user, their first session, their verification
    /// token and its email, atomically; `EmailTaken` if the email is
    /// claimed (and then no email exists either).
    async fn register(
        &self,
        user: &UserItem,
        session: &SessionItem,
        token: &TokenItem,
        email: &OutboxItem,
    ) -> Result<(), StoreError>;
    /// A new session (`AlreadyExists` for an id collision). Login writes
    /// it alongside the user's conditional `lastLoginAt`
    /// (`Users::record_login`) rather than in one transaction with it, so
    /// that the user item comes back from the same round trip; a session
    /// whose login then fails is removed, and no token ever names it.
    async fn put_session(&self, session: &SessionItem) -> Result<(), StoreError>;
    /// Deletes a session that no token names (a login that failed after
    /// writing it).
    async fn remove_session(&self, user: &UserId, sid: &SessionId) -> Result<(), StoreError>;
    /// Swaps the refresh token in force, only if `old_hash` still is it: of
    /// two concurrent refreshes with one token exactly one wins, the other
    /// gets `RefreshSuperseded`.
    async fn rotate_refresh(
        &self,
        session: &SessionItem,
        old_hash: &str,
        new_hash: &str,
        ttl: i64,
    ) -> Result<(), StoreError>;
    /// Marks one session revoked; a session already gone stays gone.
    async fn revoke_session(&self, user: &UserId, sid: &SessionId) -> Result<(), StoreError>;
    /// Some of a user's sessions, strongly consistent, in one round trip
    /// per 100; the ones that do not exist are absent.
    async fn sessions(
        &self,
        user: &UserId,
        sids: &[SessionId],
    ) -> Result<Vec<SessionItem>, StoreError>;
    /// A reset token and its email, on the condition that the user is
    /// active, in one transaction: `UserGone` when they are not (or are
    /// gone), and then neither is written.
    async fn request_reset(&self, token: &TokenItem, email: &OutboxItem) -> Result<(), StoreError>;
    /// The token, if it exists and has not expired (strongly consistent).
    async fn token(&self, token: &str, kind: TokenKind) -> Result<Option<TokenItem>, StoreError>;
    /// Uses the verification token `token`: deletes it and marks its
    /// user's email verified, in one transaction. `TokenSuperseded` when it
    /// was used (or expired) meanwhile, `UserGone` when the user is gone.
    async fn verify_email(&self, token: &TokenItem, now: &str) -> Result<(), StoreError>;
    /// Uses the reset token `token` to set a new password, and kills every
    /// session created, and every reset token issued, before
    /// `valid_after_ms`, in one transaction that also deletes the token:
    /// the conditional write makes the token's check and the reset one
    /// step, so of two outstanding tokens only the first used works.
    /// `TokenSuperseded` if the token was used meanwhile, a reset after the
    /// token's issue won, or the user was deleted meanwhile.
    async fn set_password(
        &self,
        token: &TokenItem,
        password_hash: &str,
        valid_after_ms: i64,
        now: &str,
    ) -> Result<(), StoreError>;
}

impl Accounts for Table {
    async fn register(
        &self,
        user: &UserItem,
        session: &SessionItem,
        token: &TokenItem,
        email: &OutboxItem,
    ) -> Result<(), StoreError> {
        let not_exists = Some("attribute_not_exists(pk)");
        let items = vec![
            transact_put(self, to_item(&EmailItem::new(user))?, not_exists)?,
            transact_put(self, to_item(user)?, not_exists)?,
            transact_put(self, to_item(session)?, not_exists)?,
            transact_put(self, to_item(token)?, None)?,
            transact_put(self, to_item(email)?, not_exists)?,
        ];
        // The token's put has no condition; a user, session or email id
        // that is taken can only be a collision, reported as the email's
        // claim as it always was.
        table::transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| (!failed.contains(&3)).then_some(Condition::EmailTaken))
        })
    }

    async fn put_session(&self, session: &SessionItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(session)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| dynamo(err).on_condition(Condition::AlreadyExists))?;
        Ok(())
    }

    async fn remove_session(&self, user: &UserId, sid: &SessionId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(SessionItem::key(user, sid)))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        session: &SessionItem,
        old_hash: &str,
        new_hash: &str,
        ttl: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(SessionItem::key(&session.user_id, &session.sid)))
            .update_expression("SET refreshHash = :new, #ttl = :ttl")
            .condition_expression("refreshHash = :old AND revoked = :false")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":new", AttributeValue::S(new_hash.to_owned()))
            .expression_attribute_values(":old", AttributeValue::S(old_hash.to_owned()))
            .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| dynamo(err).on_condition(Condition::RefreshSuperseded))
    }

    async fn revoke_session(&self, user: &UserId, sid: &SessionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(SessionItem::key(user, sid)))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(dynamo);
        match result {
            Ok(_) | Err(StoreError::Condition(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn sessions(
        &self,
        user: &UserId,
        sids: &[SessionId],
    ) -> Result<Vec<SessionItem>, StoreError> {
        let mut unique: Vec<&SessionId> = sids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique
            .into_iter()
            .map(|sid| SessionItem::key(user, sid))
            .collect();
        table::batch_get(self, keys, true)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn request_reset(&self, token: &TokenItem, email: &OutboxItem) -> Result<(), StoreError> {
        let items = vec![
            transact_check(
                self,
                UserItem::key(&token.user_id),
                "attribute_exists(pk) AND #status = :active",
                [("#status".to_owned(), "status".to_owned())].into(),
                [(
                    ":active".to_owned(),
                    AttributeValue::S(UserStatus::Active.as_str().to_owned()),
                )]
                .into(),
            )?,
            transact_put(self, to_item(token)?, None)?,
            transact_put(self, to_item(email)?, Some("attribute_not_exists(pk)"))?,
        ];
        table::transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| match failed {
                [0] => Some(Condition::UserGone),
                [2] => Some(Condition::AlreadyExists),
                _ => None,
            })
        })
    }

    async fn token(&self, token: &str, kind: TokenKind) -> Result<Option<TokenItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(TokenItem::key_of(token, kind)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        let Some(item) = output.item.filter(|item| !item.is_empty()) else {
            return Ok(None);
        };
        let token: TokenItem = from_item(item)?;
        Ok((token.expires_at > unix_now() as i64).then_some(token))
    }

    async fn verify_email(&self, token: &TokenItem, now: &str) -> Result<(), StoreError> {
        let items = vec![
            use_token(self, token)?,
            transact_update(
                self,
                UserItem::key(&token.user_id),
                "SET emailVerified = :true, updatedAt = :now",
                "attribute_exists(pk)",
                vec![
                    (":true", AttributeValue::Bool(true)),
                    (":now", AttributeValue::S(now.to_owned())),
                ],
            )?,
        ];
        table::transact_write(self, items).await.map_err(|failure| {
            failure.named(|failed| {
                Some(if failed.contains(&0) {
                    Condition::TokenSuperseded
                } else {
                    Condition::UserGone
                })
            })
        })
    }

    async fn set_password(
        &self,
        token: &TokenItem,
        password_hash: &str,
        valid_after_ms: i64,
        now: &str,
    ) -> Result<(), StoreError> {
        let mut items = vec![
            use_token(self, token)?,
            transact_update_named(
                self,
                UserItem::key(&token.user_id),
                "SET passwordHash = :hash, sessionsValidAfter = :after, #resets = :after, updatedAt = :now",
                "attribute_exists(pk) AND (attribute_not_exists(#resets) OR #resets <= :issued)",
                [("#resets".to_owned(), RESETS_VALID_AFTER.to_owned())].into(),
                [
                    (
                        ":hash".to_owned(),
                        AttributeValue::S(password_hash.to_owned()),
                    ),
                    (
                        ":after".to_owned(),
                        AttributeValue::N(valid_after_ms.to_string()),
                    ),
                    (
                        ":issued".to_owned(),
                        AttributeValue::N(token.issued_at_ms.to_string()),
                    ),
                    (":now".to_owned(), AttributeValue::S(now.to_owned())),
                ]
                .into(),
            )?,
        ];
        // Login checks the password against the claim's copy of the hash
        // (`EmailItem::password_hash`): the copy changes with it, or the new
        // password would not log in. A token names its address since the
        // copy exists; an older one's claim is found from the user after.
        if let Some(email) = &token.email {
            items.push(claim_hash_update(
                self,
                email,
                &token.user_id,
                password_hash,
            )?);
        }
        // Either way the token is no good: used meanwhile, or beaten by a
        // later reset (or the user is gone).
        table::transact_write(self, items)
            .await
            .map_err(|failure| failure.named(|_| Some(Condition::TokenSuperseded)))?;
        if token.email.is_none()
            && let Some(user) = Users::user(self, &token.user_id).await?
        {
            let update = claim_hash_update(self, &user.email, &user.id, password_hash)?;
            table::transact_write(self, vec![update])
                .await
                .map_err(|failure| failure.named(|_| Some(Condition::UserGone)))?;
        }
        Ok(())
    }
}

/// The write of a new password's copy onto the claim of `email`, if the
/// claim is still `user`'s.
fn claim_hash_update(
    table: &Table,
    email: &Email,
    user: &UserId,
    password_hash: &str,
) -> Result<TransactWriteItem, StoreError> {
    transact_update(
        table,
        EmailItem::key(email),
        "SET passwordHash = :hash",
        "userId = :id",
        vec![
            (":hash", AttributeValue::S(password_hash.to_owned())),
            (":id", AttributeValue::S(user.to_string())),
        ],
    )
}

/// The deletion of a token in the transaction that uses it, on the
/// condition that it is still there and unexpired: of two uses, one wins.
fn use_token(table: &Table, token: &TokenItem) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(&table.name)
        .set_key(Some(token.own_key()))
        .condition_expression("attribute_exists(pk) AND expiresAt > :now")
        .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
        .build()
        .map_err(|err| StoreError::internal("building a transaction", err))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
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
}
