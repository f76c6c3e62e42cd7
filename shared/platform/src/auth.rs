//! Authentication as extractor types: a handler that needs a user asks for an
//! `AuthUser` (or `AdminUser`) in its signature and cannot forget the check.
//!
//! A request is authenticated by the access token's signature and claims,
//! then by one consistent BatchGetItem of the user and the session named in
//! the token: a revoked session, a suspended or deleted user, or a role
//! change take effect on the very next request, not at token expiry.

use axum::extract::{FromRef, FromRequestParts};
use http::{Method, header::AUTHORIZATION, request::Parts};

use model::{
    Table,
    domain::{Role, SessionId, UserId, UserStatus},
    sessions::SessionItem,
    users::{UserItem, Users},
};

use crate::{
    admission::Admission,
    error::AppError,
    jwt::{Claims, JwtKeys, TokenType, unix_now},
};

/// What authentication needs; every function with protected routes puts one
/// in its state.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub jwt: JwtKeys,
    pub table: Table,
}

/// A signed-in, active user with a live session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: UserItem,
    pub session_id: SessionId,
    pub claims: Claims,
}

impl AuthUser {
    pub fn id(&self) -> &UserId {
        &self.user.id
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// A request whose access token has passed the checks made in memory
/// (signature, type, expiry), with the store's check of user and session
/// still to come: for a read-only handler that can fetch its own data while
/// that check runs, one round trip instead of two. The handler gets its data
/// only through [`PendingAuth::alongside`], which answers with the
/// authentication error first, so a caller who may not act learns nothing
/// from the read (not even whether the item exists).
///
/// Taking a `PendingAuth` and never calling `alongside` would serve a
/// revoked session or a suspended user: a handler that does not read
/// anything of its own first should take an [`AuthUser`] instead.
#[derive(Debug, Clone)]
#[must_use = "the session is only checked by `alongside`"]
pub struct PendingAuth {
    authenticator: Authenticator,
    claims: Claims,
    /// Waited for by a method that can write: the handler may write as
    /// soon as `alongside` answers.
    admission: Admission,
    method: Method,
}

impl PendingAuth {
    /// Confirms the session while `read` runs and, for a method that can
    /// write, while the rate limit decides: the caller's first write then
    /// follows one round trip, not three. The refusal and the
    /// authentication error come before anything read.
    pub async fn alongside<T>(
        self,
        read: impl Future<Output = Result<T, AppError>>,
    ) -> Result<(AuthUser, T), AppError> {
        let (admitted, user, read) = tokio::join!(
            self.admission.granted_for(&self.method),
            self.authenticator.confirm(self.claims),
            read
        );
        admitted?;
        Ok((user?, read?))
    }

    /// The caller's id, as the verified token names it: a read keyed by it
    /// can go out alongside the check that the session is alive.
    pub fn user_id(&self) -> &UserId {
        &self.claims.sub
    }
}

/// The state of a function with protected routes: its own state `T` and the
/// `Authenticator` the extractors need, found through this one `FromRef`.
/// Handlers reach `T`'s fields through `Deref`.
#[derive(Debug, Clone)]
pub struct ApiState<T> {
    pub authenticator: Authenticator,
    pub inner: T,
}

impl<T> ApiState<T> {
    pub fn new(authenticator: Authenticator, inner: T) -> Self {
        Self {
            authenticator,
            inner,
        }
    }
}

impl<T> std::ops::Deref for ApiState<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: Clone> FromRef<ApiState<T>> for Authenticator {
    fn from_ref(state: &ApiState<T>) -> Self {
        state.authenticator.clone()
    }
}

/// An `AuthUser` whose current role is admin.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl AdminUser {
    /// `user`, if an admin; else the 403 every admin route answers.
    pub fn of(user: AuthUser) -> Result<Self, AppError> {
        if !user.is_admin() {
            return Err(AppError::Forbidden("Admin role required".into()));
        }
        Ok(AdminUser(user))
    }
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer_token(parts: &Parts) -> Result<&str, AppError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("Missing Authorization header".into()))?;
    let value = header
        .to_str()
        .map_err(|_| AppError::Unauthorized("Malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AppError::Unauthorized("Expected a Bearer token".into()))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AppError::Unauthorized("Expected a Bearer token".into()));
    }
    Ok(token)
}

/// Whether `user` may act at all: suspended is a 403, deleted a 401.
pub fn ensure_active(user: &UserItem) -> Result<(), AppError> {
    match user.status {
        UserStatus::Active => Ok(()),
        UserStatus::Suspended => Err(AppError::Forbidden("Account is suspended".into())),
        UserStatus::Deleted => Err(AppError::Unauthorized("Account no longer exists".into())),
    }
}

impl Authenticator {
    pub fn new(jwt: JwtKeys, table: Table) -> Self {
        Self { jwt, table }
    }

    /// The user and session a token names, if the user may act and the
    /// session is alive: one consistent batch read. Shared by every
    /// authenticated request and by the refresh of a session.
    pub async fn live_session(&self, claims: &Claims) -> Result<(UserItem, SessionItem), AppError> {
        let (user, session) = self
            .table
            .user_and_session(&claims.sub, &claims.sid)
            .await?;
        let revoked = || AppError::Unauthorized("Session has been revoked".into());
        let user = user.ok_or_else(revoked)?;
        ensure_active(&user)?;
        let session = session.ok_or_else(revoked)?;
        if !session.is_live(&user, unix_now() as i64) {
            return Err(revoked());
        }
        Ok((user, session))
    }

    /// The checks of an access token made in memory: signature, type,
    /// expiry.
    pub fn verify_access(&self, token: &str) -> Result<Claims, AppError> {
        self.jwt.verify(token, TokenType::Access)
    }

    /// The store's check of verified claims: the user they name may act
    /// and the session is alive.
    pub async fn confirm(&self, claims: Claims) -> Result<AuthUser, AppError> {
        let (user, _session) = self.live_session(&claims).await?;
        Ok(AuthUser {
            user,
            session_id: claims.sid,
            claims,
        })
    }

    /// Checks an access token all the way to the store.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, AppError> {
        self.confirm(self.verify_access(token)?).await
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token = bearer_token(parts)?;
        let admission = Admission::of(parts);
        let authenticator = Authenticator::from_ref(state);
        let (admitted, user) = tokio::join!(
            admission.granted_for(&parts.method),
            authenticator.authenticate(token)
        );
        admitted?;
        let user = user?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl<S> FromRequestParts<S> for PendingAuth
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Authenticator::from_ref(state);
        let claims = authenticator.verify_access(bearer_token(parts)?)?;
        Ok(Self {
            authenticator,
            claims,
            admission: Admission::of(parts),
            method: parts.method.clone(),
        })
    }
}

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AdminUser::of(AuthUser::from_request_parts(parts, state).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(header: Option<&str>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(value) = header {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token(&parts(Some("Bearer abc"))).unwrap(), "abc");
        assert_eq!(bearer_token(&parts(Some("bearer  abc "))).unwrap(), "abc");
        for bad in [
            None,
            Some("abc"),
            Some("Basic abc"),
            Some("Bearer "),
            Some("Bearer"),
        ] {
            assert!(
                matches!(bearer_token(&parts(bad)), Err(AppError::Unauthorized(_))),
                "{bad:?}"
            );
        }
    }

    use crate::config::JwtConfig;
    use model::domain::{Email, Name};

    /// Keys and a table handle that is never sent a request: the tests
    /// below stop before the store (an extractor's cached user, the
    /// in-memory token checks).
    fn authenticator() -> Authenticator {
        let jwt = JwtKeys::new(&JwtConfig {
            secret: secrecy::SecretString::from("0123456789abcdef0123456789abcdef".to_owned()),
            issuer: "social-api".into(),
            audience: "social-app".into(),
            access_ttl: std::time::Duration::from_secs(900),
            refresh_ttl: std::time::Duration::from_secs(3600),
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let table = Table::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
        Authenticator::new(jwt, table)
    }

    fn user_item(role: Role, status: UserStatus) -> UserItem {
        let name = Name::parse("name", "Ada Lovelace".into()).unwrap();
        let email = Email::parse("email", "ada@example.com".into()).unwrap();
        let now = model::clock::now_rfc3339();
        UserItem {
            role,
            status,
            ..UserItem::new(UserId::new(), name, email, "hash".into(), now)
        }
    }

    fn auth_user(role: Role) -> AuthUser {
        let user = user_item(role, UserStatus::Active);
        let session_id = SessionId::new();
        let claims = authenticator()
            .jwt
            .issue(&user.id, role, &session_id, TokenType::Access)
            .unwrap()
            .claims;
        AuthUser {
            user,
            session_id,
            claims,
        }
    }

    #[test]
    fn only_an_active_user_may_act() {
        assert!(ensure_active(&user_item(Role::User, UserStatus::Active)).is_ok());
        assert!(matches!(
            ensure_active(&user_item(Role::Admin, UserStatus::Suspended)),
            Err(AppError::Forbidden(_))
        ));
        assert!(matches!(
            ensure_active(&user_item(Role::User, UserStatus::Deleted)),
            Err(AppError::Unauthorized(_))
        ));
    }

    #[test]
    fn an_auth_user_is_the_stored_user_and_its_current_role() {
        let user = auth_user(Role::User);
        assert_eq!(user.id(), &user.user.id);
        assert!(!user.is_admin());
        assert!(auth_user(Role::Admin).is_admin());
    }

    /// A request whose `AuthUser` an earlier extractor already resolved.
    fn parts_with(user: &AuthUser) -> Parts {
        let mut parts = parts(None);
        parts.extensions.insert(user.clone());
        parts
    }

    #[tokio::test]
    async fn the_admin_extractor_takes_admins_only() {
        let state = authenticator();
        let admin = auth_user(Role::Admin);
        let AdminUser(extracted) = AdminUser::from_request_parts(&mut parts_with(&admin), &state)
            .await
            .unwrap();
        assert_eq!(extracted.user.id, admin.user.id);
        assert_eq!(extracted.claims, admin.claims);

        let user = auth_user(Role::User);
        let refused = AdminUser::from_request_parts(&mut parts_with(&user), &state).await;
        assert!(
            matches!(refused, Err(AppError::Forbidden(_))),
            "{refused:?}"
        );
        let extracted = AuthUser::from_request_parts(&mut parts_with(&user), &state)
            .await
            .unwrap();
        assert_eq!(extracted.session_id, user.session_id);
    }

    #[tokio::test]
    async fn a_pending_auth_holds_only_a_verified_access_token() {
        let state = authenticator();
        let user = user_item(Role::User, UserStatus::Active);
        let sid = SessionId::new();
        let issue = |typ| state.jwt.issue(&user.id, Role::User, &sid, typ).unwrap();
        let access = issue(TokenType::Access);
        let bearer = |token: &str| parts(Some(&format!("Bearer {token}")));
        let pending = PendingAuth::from_request_parts(&mut bearer(&access.token), &state)
            .await
            .unwrap();
        assert_eq!(pending.claims, access.claims);
        let refresh = issue(TokenType::Refresh).token;
        for mut refused in [parts(None), bearer(&refresh), bearer("not-a-token")] {
            let result = PendingAuth::from_request_parts(&mut refused, &state).await;
            assert!(matches!(result, Err(AppError::Unauthorized(_))));
        }
    }
}
