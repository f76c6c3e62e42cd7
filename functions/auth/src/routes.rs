//! The handlers of Auth in docs/API.md, one per route.

use axum::extract::State;
use model::{
    Condition,
    clock::{now_rfc3339, unix_now_ms},
    domain::{Email, FieldErrors, Name, Password, Role, SessionId, UserId, UserStatus, length},
    outbox::{EmailKind, OutboxItem},
    sessions::{Accounts, SessionItem, SessionOrigin, TokenItem, TokenKind, hash_secret},
    users::{EmailItem, UserItem, UserResponse, Users},
};
use platform::{
    ApiResponse, AppError, FieldCode, FieldError,
    admission::Admission,
    auth::AuthUser,
    extract::{Json, ParseBody},
    http::ClientInfo,
    jwt::TokenType,
};

use serde::{Deserialize, Serialize};

use crate::{AuthState, password, tokens::new_token};

const INVALID_CREDENTIALS: &str = "Invalid email or password";
const INVALID_TOKEN: &str = "Invalid or expired token";

/// A token whose user was deleted meanwhile is as good as no token.
fn invalid_token_if_user_gone(err: model::StoreError) -> AppError {
    if err.is(Condition::UserGone) {
        AppError::BadRequest(INVALID_TOKEN.into())
    } else {
        err.into()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    user: UserResponse,
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

// What carries a password or a token has no `Debug` that could print it.
platform::redacted_debug!(
    AuthResponse,
    TokenPair,
    RawRegister,
    RawLogin,
    RawRefresh,
    RawToken,
    RawReset
);

/// A fresh pair of tokens for session `sid`, and the hash to store.
struct IssuedPair {
    pair: TokenPair,
    refresh_hash: String,
    refresh_expires_at: i64,
}

fn issue_pair(state: &AuthState, user: &UserItem, sid: &SessionId) -> Result<IssuedPair, AppError> {
    let jwt = &state.authenticator.jwt;
    let access = jwt.issue(&user.id, user.role, sid, TokenType::Access)?;
    let refresh = jwt.issue(&user.id, user.role, sid, TokenType::Refresh)?;
    Ok(IssuedPair {
        refresh_hash: hash_secret(&refresh.token),
        refresh_expires_at: refresh.claims.exp as i64,
        pair: TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            expires_in: jwt.access_ttl().as_secs(),
        },
    })
}

fn new_session(
    user_id: &UserId,
    issued: &IssuedPair,
    sid: SessionId,
    client: &ClientInfo,
) -> SessionItem {
    SessionItem::new(
        user_id,
        sid,
        issued.refresh_hash.clone(),
        issued.refresh_expires_at,
        SessionOrigin {
            ip: Some(client.ip.clone()),
            user_agent: client.user_agent.clone(),
        },
    )
}

fn auth_response(user: &UserItem, pair: TokenPair) -> AuthResponse {
    AuthResponse {
        user: user.to_response(None),
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        expires_in: pair.expires_in,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RegisterRequest)]
pub struct RawRegister {
    #[schema(required = true, schema_with = platform::openapi::fields::name)]
    name: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::email)]
    email: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::new_password)]
    password: Option<String>,
}

pub struct Register {
    name: Name,
    email: Email,
    password: Password,
}

impl ParseBody for Register {
    type Raw = RawRegister;
    fn parse(raw: RawRegister) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let name = errors.required("name", raw.name, Name::parse);
        let email = errors.required("email", raw.email, Email::parse);
        let password = errors.required("password", raw.password, Password::parse);
        let parsed = match (name, email, password) {
            (Some(name), Some(email), Some(password)) => Some(Register {
                name,
                email,
                password,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// POST /api/v1/auth/register
pub async fn register(
    State(state): State<AuthState>,
    admission: Admission,
    client: ClientInfo,
    Json(body): Json<Register>,
) -> Result<ApiResponse<AuthResponse>, AppError> {
    // The hash is worked out while the rate limit decides; the write waits
    // for its verdict.
    let (admitted, password_hash) = tokio::join!(
        admission.granted(),
        password::hash(body.password.into_inner())
    );
    admitted?;
    let password_hash = password_hash?;
    let id = UserId::new();
    let user = UserItem::new(id, body.name, body.email, password_hash, now_rfc3339());
    let sid = SessionId::new();
    let issued = issue_pair(&state, &user, &sid)?;
    let session = new_session(&id, &issued, sid, &client);
    let verify_token = new_token();
    let token_item = TokenItem::new(
        &verify_token,
        TokenKind::Verify,
        &id,
        state.verify_token_ttl.as_secs(),
    );
    let hours = state.verify_token_ttl.as_secs().div_ceil(3600);
    // The email is written with the account: no account without its email,
    // and no email (nor token) for a register that did not commit.
    let email = OutboxItem::with_token(
        EmailKind::Verification,
        &user.email,
        &token_item,
        "Verify your email address",
        format!(
            "Hi {name},\n\nWelcome! Confirm your email address by opening this link:\n\n{url}/verify-email?token={verify_token}\n\nor by sending this token to POST /api/v1/auth/verify-email:\n\ntoken={verify_token}\n\nThe link works for {hours} hours.\n",
            name = user.name,
            url = state.app_url,
        ),
    );
    state
        .table
        .register(&user, &session, &token_item, &email)
        .await?;
    tracing::info!(userId = %user.id, "user registered");
    Ok(ApiResponse::created(
        "User registered successfully",
        auth_response(&user, issued.pair),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LoginRequest)]
pub struct RawLogin {
    #[schema(required = true, schema_with = platform::openapi::fields::email)]
    email: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::login_password)]
    password: Option<String>,
}

pub struct Login {
    email: Email,
    password: String,
}

/// A password long enough to be a hashing cost attack is refused before it
/// is hashed; login does not judge strength, so old passwords keep working.
fn login_password(field: &str, raw: String) -> Result<String, FieldError> {
    length(field, &raw, 1, 128)?;
    Ok(raw)
}

impl ParseBody for Login {
    type Raw = RawLogin;
    fn parse(raw: RawLogin) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let email = errors.required("email", raw.email, Email::parse);
        let password = errors.required("password", raw.password, login_password);
        let parsed = match (email, password) {
            (Some(email), Some(password)) => Some(Login { email, password }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// What a right password proved: whose it is, the hash it matched, and
/// the role the claim recorded.
struct Verified {
    user_id: UserId,
    password_hash: String,
    role: Role,
}

/// Whose the password is, from the email's claim, which carries a copy of
/// the hash (a claim from before migration 2 does not: the user is read
/// for it); `None` for a wrong guess. An unknown email is checked against a
/// dummy hash, so both take as long.
async fn check_password(
    state: &AuthState,
    claim: Result<Option<EmailItem>, model::StoreError>,
    password: String,
) -> Result<Option<Verified>, AppError> {
    let claim = claim?;
    let hash = match &claim {
        Some(EmailItem {
            password_hash: Some(hash),
            ..
        }) => Some(hash.clone()),
        Some(older) => state
            .table
            .user(&older.user_id)
            .await?
            .map(|user| user.password_hash),
        None => None,
    };
    let password_ok = password::verify_or_dummy(password, hash.clone()).await?;
    Ok(match (claim, hash) {
        (Some(claim), Some(password_hash)) if password_ok => Some(Verified {
            user_id: claim.user_id,
            password_hash,
            role: claim.role.unwrap_or(Role::User),
        }),
        _ => None,
    })
}

/// POST /api/v1/auth/login
///
/// Two round trips besides the hash: everything the check needs goes out
/// at once (with the default limit's hit), then everything the login
/// writes. Only a wrong password keeps the email's failure slot: a right
/// one, a refusal before the check and an outage are no failed guess.
pub async fn login(
    State(state): State<AuthState>,
    admission: Admission,
    client: ClientInfo,
    Json(body): Json<Login>,
) -> Result<ApiResponse<AuthResponse>, AppError> {
    // The slot is taken before the password is checked, so concurrent
    // guesses check at most the limit however they interleave.
    let ip_key = format!("login:ip:{}", client.ip);
    let failures_key = format!("login:failed:{}", body.email);
    let (admitted, per_ip, slot, claim) = tokio::join!(
        admission.granted(),
        state.limiter.hit(&ip_key, state.limits.login_per_ip),
        state
            .limiter
            .take(&failures_key, state.limits.login_failures_per_email),
        state.table.email_claim(&body.email),
    );
    let slot = slot?;
    let checked = match admitted.and(per_ip) {
        Ok(_) => check_password(&state, claim, body.password).await,
        Err(refused) => Err(refused),
    };
    let verified = match checked {
        Ok(Some(verified)) => verified,
        Ok(None) => return Err(AppError::Unauthorized(INVALID_CREDENTIALS.into())),
        Err(err) => {
            state.limiter.give_back(slot).await;
            return Err(err);
        }
    };
    let jwt = &state.authenticator.jwt;
    let sid = SessionId::new();
    let refresh = match jwt.issue(&verified.user_id, verified.role, &sid, TokenType::Refresh) {
        Ok(refresh) => refresh,
        Err(err) => {
            state.limiter.give_back(slot).await;
            return Err(err);
        }
    };
    let mut session = SessionItem::new(
        &verified.user_id,
        sid,
        hash_secret(&refresh.token),
        refresh.claims.exp as i64,
        SessionOrigin {
            ip: Some(client.ip.clone()),
            user_agent: client.user_agent.clone(),
        },
    );
    let login_at = now_rfc3339();
    let (recorded, started, ()) = tokio::join!(
        state
            .table
            .record_login(&verified.user_id, &verified.password_hash, &login_at),
        state.table.put_session(&session),
        state.limiter.give_back(slot),
    );
    let recorded = match recorded {
        Ok(Ok(user)) => Ok(user),
        Ok(Err(Some(found)))
            if found.status == UserStatus::Suspended
                && found.password_hash == verified.password_hash =>
        {
            Err(AppError::Forbidden("Account is suspended".into()))
        }
        // Deleted, gone, or a password changed since the claim was read:
        // the password given is no longer theirs.
        Ok(Err(_)) => Err(AppError::Unauthorized(INVALID_CREDENTIALS.into())),
        Err(err) => Err(err.into()),
    };
    let user = match recorded {
        Ok(user) => user,
        Err(refused) => {
            // The session written alongside is named by no token: it goes.
            if started.is_ok() {
                state.table.remove_session(&verified.user_id, &sid).await?;
            }
            return Err(refused);
        }
    };
    started?;
    let mut refresh = refresh;
    if user.role != verified.role {
        // The claim's role is the one at registration: an admin's refresh
        // token is signed again with the role the user has.
        let again = jwt.issue(&user.id, user.role, &sid, TokenType::Refresh)?;
        let new_hash = hash_secret(&again.token);
        state
            .table
            .rotate_refresh(
                &session,
                &session.refresh_hash,
                &new_hash,
                again.claims.exp as i64,
            )
            .await?;
        session.refresh_hash = new_hash;
        refresh = again;
    }
    let access = jwt.issue(&user.id, user.role, &sid, TokenType::Access)?;
    let pair = TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        expires_in: jwt.access_ttl().as_secs(),
    };
    Ok(ApiResponse::ok(
        "Login successful",
        auth_response(&user, pair),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = RefreshRequest)]
pub struct RawRefresh {
    #[schema(required = true, schema_with = platform::openapi::fields::token)]
    refresh_token: Option<String>,
}

pub struct Refresh {
    refresh_token: String,
}

fn non_empty(field: &str, raw: String) -> Result<String, FieldError> {
    if raw.trim().is_empty() {
        return Err(FieldError::new(field, FieldCode::Required, "is required"));
    }
    length(field, &raw, 1, 4096)?;
    Ok(raw)
}

impl ParseBody for Refresh {
    type Raw = RawRefresh;
    fn parse(raw: RawRefresh) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let token = errors.required("refreshToken", raw.refresh_token, non_empty);
        errors.finish(token.map(|refresh_token| Refresh { refresh_token }))
    }
}

/// POST /api/v1/auth/refresh
pub async fn refresh(
    State(state): State<AuthState>,
    admission: Admission,
    Json(body): Json<Refresh>,
) -> Result<ApiResponse<TokenPair>, AppError> {
    let claims = state
        .authenticator
        .jwt
        .verify(&body.refresh_token, TokenType::Refresh)?;
    // The session is read with the rate limit's hit: its rotation is then
    // the second and last round trip.
    let (user, session) = admission
        .alongside(state.authenticator.live_session(&claims))
        .await?;
    if unix_now_ms() >= session_end_ms(&session, state.session_max_age) {
        return Err(AppError::Unauthorized(
            "Session has expired; please log in again".into(),
        ));
    }
    let presented = hash_secret(&body.refresh_token);
    if presented != session.refresh_hash {
        // A retired refresh token came back: someone holds a copy of it.
        // Kill the session so the copy and the legitimate one both stop.
        state.table.revoke_session(&user.id, &session.sid).await?;
        tracing::warn!(userId = %user.id, sid = %session.sid, "refresh token reuse; session revoked");
        return Err(AppError::Unauthorized(
            "Refresh token was already used; the session has been revoked".into(),
        ));
    }
    let issued = issue_pair(&state, &user, &session.sid)?;
    match state
        .table
        .rotate_refresh(
            &session,
            &presented,
            &issued.refresh_hash,
            issued.refresh_expires_at,
        )
        .await
    {
        Ok(()) => Ok(ApiResponse::ok("Token refreshed successfully", issued.pair)),
        Err(err) if err.is(Condition::RefreshSuperseded) => {
            state.table.revoke_session(&user.id, &session.sid).await?;
            Err(err.into())
        }
        Err(other) => Err(other.into()),
    }
}

/// The instant (epoch ms) past which `session` cannot be refreshed.
fn session_end_ms(session: &SessionItem, max_age: std::time::Duration) -> i64 {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    session.created_at_ms.saturating_add(max_age_ms)
}

/// POST /api/v1/auth/logout
pub async fn logout(
    State(state): State<AuthState>,
    user: AuthUser,
) -> Result<ApiResponse<()>, AppError> {
    state
        .table
        .revoke_session(user.id(), &user.session_id)
        .await?;
    Ok(ApiResponse::message("Logged out successfully"))
}

/// GET /api/v1/auth/profile
pub async fn profile(user: AuthUser) -> ApiResponse<UserResponse> {
    ApiResponse::ok(
        "Profile retrieved successfully",
        user.user.to_response(None),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TokenRequest)]
pub struct RawToken {
    #[schema(required = true, schema_with = platform::openapi::fields::token)]
    token: Option<String>,
}

pub struct OneTimeToken {
    token: String,
}

impl ParseBody for OneTimeToken {
    type Raw = RawToken;
    fn parse(raw: RawToken) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let token = errors.required("token", raw.token, non_empty);
        errors.finish(token.map(|token| OneTimeToken { token }))
    }
}

/// POST /api/v1/auth/verify-email
pub async fn verify_email(
    State(state): State<AuthState>,
    admission: Admission,
    Json(body): Json<OneTimeToken>,
) -> Result<ApiResponse<()>, AppError> {
    // Read with the rate limit's hit, then used in one transaction on the
    // condition that it is still there: the user's id is in the token, so
    // nothing is written blind.
    let token = admission
        .alongside(async { Ok(state.table.token(&body.token, TokenKind::Verify).await?) })
        .await?
        .ok_or_else(|| AppError::BadRequest(INVALID_TOKEN.into()))?;
    state
        .table
        .verify_email(&token, &now_rfc3339())
        .await
        .map_err(invalid_token_if_user_gone)?;
    Ok(ApiResponse::message("Email verified successfully"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ForgotPasswordRequest)]
pub struct RawForgot {
    #[schema(required = true, schema_with = platform::openapi::fields::email)]
    email: Option<String>,
}

pub struct Forgot {
    email: Email,
}

impl ParseBody for Forgot {
    type Raw = RawForgot;
    fn parse(raw: RawForgot) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let email = errors.required("email", raw.email, Email::parse);
        errors.finish(email.map(|email| Forgot { email }))
    }
}

const FORGOT_MESSAGE: &str = "If the email is registered, a password reset link has been sent";

/// POST /api/v1/auth/forgot-password
pub async fn forgot_password(
    State(state): State<AuthState>,
    admission: Admission,
    client: ClientInfo,
    Json(body): Json<Forgot>,
) -> Result<ApiResponse<()>, AppError> {
    // Counted per IP and per email (registered or not, so the answer
    // tells nothing), in the same round trip as the email's claim.
    let ip_key = format!("forgot:ip:{}", client.ip);
    let email_key = format!("forgot:email:{}", body.email);
    let (admitted, per_ip, per_email, claim) = tokio::join!(
        admission.granted(),
        state
            .limiter
            .hit(&ip_key, state.limits.forgot_password_per_ip),
        state
            .limiter
            .hit(&email_key, state.limits.forgot_password_per_email),
        state.table.user_id_by_email(&body.email),
    );
    admitted?;
    per_ip?;
    per_email?;
    let Some(user_id) = claim? else {
        return Ok(ApiResponse::message(FORGOT_MESSAGE));
    };
    // The user is not read: the transaction writes the token and its email
    // only while the account is active, and a refusal answers as an
    // unknown address does. The address is the claim's own (an account's
    // email never changes), so the email needs nothing the user holds.
    let token = new_token();
    let token_item = TokenItem::new(
        &token,
        TokenKind::Reset,
        &user_id,
        state.reset_token_ttl.as_secs(),
    )
    .sent_to(&body.email);
    let minutes = state.reset_token_ttl.as_secs().div_ceil(60);
    let email = OutboxItem::with_token(
        EmailKind::PasswordReset,
        &body.email,
        &token_item,
        "Reset your password",
        format!(
            "Hello,\n\nSomeone asked to reset the password of this account. If it was you, open:\n\n{url}/reset-password?token={token}\n\nor send this token with your new password to POST /api/v1/auth/reset-password:\n\ntoken={token}\n\nThe link works once, for {minutes} minutes. If it was not you, ignore this email.\n",
            url = state.app_url,
        ),
    );
    match state.table.request_reset(&token_item, &email).await {
        Ok(()) => Ok(ApiResponse::message(FORGOT_MESSAGE)),
        Err(err) if err.is(Condition::UserGone) => Ok(ApiResponse::message(FORGOT_MESSAGE)),
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResetPasswordRequest)]
pub struct RawReset {
    #[schema(required = true, schema_with = platform::openapi::fields::token)]
    token: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::new_password)]
    password: Option<String>,
}

pub struct Reset {
    token: String,
    password: Password,
}

impl ParseBody for Reset {
    type Raw = RawReset;
    fn parse(raw: RawReset) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let token = errors.required("token", raw.token, non_empty);
        let password = errors.required("password", raw.password, Password::parse);
        let parsed = match (token, password) {
            (Some(token), Some(password)) => Some(Reset { token, password }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// POST /api/v1/auth/reset-password
pub async fn reset_password(
    State(state): State<AuthState>,
    admission: Admission,
    Json(body): Json<Reset>,
) -> Result<ApiResponse<()>, AppError> {
    // The token is read with the rate limit's hit and before the password
    // is hashed: a made-up token costs a read, not an argon2id run.
    let token = admission
        .alongside(async { Ok(state.table.token(&body.token, TokenKind::Reset).await?) })
        .await?
        .ok_or_else(|| AppError::BadRequest(INVALID_TOKEN.into()))?;
    let password_hash = password::hash(body.password.into_inner()).await?;
    let valid_after = unix_now_ms() + 1;
    state
        .table
        .set_password(&token, &password_hash, valid_after, &now_rfc3339())
        .await?;
    tracing::info!(userId = %token.user_id, "password reset; all sessions revoked");
    Ok(ApiResponse::message(
        "Password has been reset; please log in again",
    ))
}
