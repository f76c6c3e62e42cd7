//! Profiles (API.md, Users table): the caller's own profile, other users'
//! public profiles, and the admin routes to list users and change their
//! role or status.
//!
//! Deletion is soft: the status becomes `deleted` and every session dies in
//! the same write (`sessionsValidAfter`), so nothing else has to be found
//! and revoked.

use axum::{
    Router,
    extract::{FromRef, Path, State},
    routing::get,
};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use shared::{
    ApiResponse, AppError, FieldError, Pagination,
    auth::{AdminUser, AuthUser, Authenticator},
    config::JwtConfig,
    cursor::CursorCodec,
    domain::{FieldErrors, Id, Name, Role, UserStatus},
    extract::{Json, ParseBody},
    jwt::JwtKeys,
    query::{PageRequest, QueryParams},
    store::Table,
    uploads::{self, Presigner, Purpose},
    users::{self, PublicUser, UserItem, UserResponse},
};

mod store;

/// What the users routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct UsersState {
    authenticator: Authenticator,
    table: Table,
    presigner: Presigner,
    cursors: CursorCodec,
}

impl FromRef<UsersState> for Authenticator {
    fn from_ref(state: &UsersState) -> Self {
        state.authenticator.clone()
    }
}

impl UsersState {
    pub fn new(table: Table, presigner: Presigner, jwt: &JwtConfig) -> Self {
        Self {
            authenticator: Authenticator::new(JwtKeys::new(jwt), table.clone()),
            cursors: CursorCodec::new(jwt.secret_bytes()),
            table,
            presigner,
        }
    }

    async fn full(&self, user: &UserItem) -> Result<UserResponse, AppError> {
        let avatar = self
            .presigner
            .maybe_download_url(user.avatar_key.as_deref())
            .await?;
        Ok(user.to_response(avatar))
    }
}

pub fn router(state: UsersState) -> Router {
    Router::new()
        .route("/api/v1/users", get(list_users))
        .route(
            "/api/v1/users/me",
            get(get_me).patch(patch_me).delete(delete_me),
        )
        .route(
            "/api/v1/users/{id}",
            get(get_user)
                .patch(admin_patch_user)
                .delete(admin_delete_user),
        )
        .with_state(state)
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// GET /api/v1/users/me
async fn get_me(
    State(state): State<UsersState>,
    me: AuthUser,
) -> Result<ApiResponse<UserResponse>, AppError> {
    Ok(ApiResponse::ok(
        "Profile retrieved successfully",
        state.full(&me.user).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = PatchMeRequest)]
pub struct RawPatchMe {
    #[schema(min_length = 2, max_length = 100)]
    name: Option<String>,
    avatar_upload_id: Option<String>,
}

pub struct PatchMe {
    name: Option<Name>,
    avatar_upload_id: Option<Id>,
}

impl ParseBody for PatchMe {
    type Raw = RawPatchMe;
    fn parse(raw: RawPatchMe) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let name = errors.optional("name", raw.name, Name::parse);
        let avatar = errors.optional("avatarUploadId", raw.avatar_upload_id, Id::parse);
        let parsed = match (name, avatar) {
            (Some(name), Some(avatar_upload_id)) => Some(PatchMe {
                name,
                avatar_upload_id,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// PATCH /api/v1/users/me
async fn patch_me(
    State(state): State<UsersState>,
    me: AuthUser,
    Json(body): Json<PatchMe>,
) -> Result<ApiResponse<UserResponse>, AppError> {
    let avatar_key = match body.avatar_upload_id {
        Some(id) => Some(
            uploads::ready_upload(&state.table, "avatarUploadId", id, me.id(), Purpose::Avatar)
                .await?
                .key,
        ),
        None => None,
    };
    let name = body.name.map(Name::into_inner);
    if name.is_none() && avatar_key.is_none() {
        return Ok(ApiResponse::ok(
            "Profile unchanged",
            state.full(&me.user).await?,
        ));
    }
    let updated = store::update_profile(
        &state.table,
        me.id(),
        name.as_deref(),
        avatar_key.as_deref(),
        &now_rfc3339(),
    )
    .await?;
    Ok(ApiResponse::ok(
        "Profile updated successfully",
        state.full(&updated).await?,
    ))
}

/// DELETE /api/v1/users/me
async fn delete_me(
    State(state): State<UsersState>,
    me: AuthUser,
) -> Result<ApiResponse<()>, AppError> {
    if me.is_admin() {
        store::ensure_another_admin(&state.table, me.id()).await?;
    }
    store::set_status(&state.table, me.id(), UserStatus::Deleted, &now_rfc3339()).await?;
    Ok(ApiResponse::message("Account deleted"))
}

/// GET /api/v1/users/{id}
async fn get_user(
    State(state): State<UsersState>,
    _me: AuthUser,
    Path(id): Path<String>,
) -> Result<ApiResponse<PublicUser>, AppError> {
    let id = Id::from_path(&id)?;
    let user = users::get_user(&state.table, &id.to_string())
        .await?
        .filter(|user| user.status != UserStatus::Deleted)
        .ok_or_else(|| AppError::NotFound("User not found".into()))?;
    let avatar = state
        .presigner
        .maybe_download_url(user.avatar_key.as_deref())
        .await?;
    Ok(ApiResponse::ok(
        "User retrieved successfully",
        user.to_public(avatar),
    ))
}

/// GET /api/v1/users
async fn list_users(
    State(state): State<UsersState>,
    _admin: AdminUser,
    query: QueryParams,
) -> Result<ApiResponse<Vec<UserResponse>>, AppError> {
    let page = PageRequest::from_query(&query, &state.cursors, store::USERS_LIST)?;
    let (items, last_key) = store::list_users(&state.table, &page).await?;
    let mut users = Vec::with_capacity(items.len());
    for user in &items {
        users.push(state.full(user).await?);
    }
    let next = state.cursors.encode(store::USERS_LIST, last_key.as_ref())?;
    Ok(ApiResponse::page(
        "Users retrieved successfully",
        users,
        Pagination::new(page.limit, next),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminPatchUserRequest)]
pub struct RawAdminPatch {
    #[schema(example = "admin")]
    role: Option<String>,
    #[schema(example = "suspended")]
    status: Option<String>,
}

pub struct AdminPatch {
    role: Option<Role>,
    status: Option<UserStatus>,
}

impl ParseBody for AdminPatch {
    type Raw = RawAdminPatch;
    fn parse(raw: RawAdminPatch) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let role = errors.optional("role", raw.role, Role::parse);
        let status = errors.optional("status", raw.status, UserStatus::parse);
        let parsed = match (role, status) {
            (Some(role), Some(status)) => Some(AdminPatch { role, status }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// PATCH /api/v1/users/{id}
async fn admin_patch_user(
    State(state): State<UsersState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    Json(body): Json<AdminPatch>,
) -> Result<ApiResponse<UserResponse>, AppError> {
    let id = Id::from_path(&id)?.to_string();
    let loses_admin = body.role == Some(Role::User)
        || matches!(
            body.status,
            Some(UserStatus::Suspended | UserStatus::Deleted)
        );
    if id == admin.id() && loses_admin {
        store::ensure_another_admin(&state.table, &id).await?;
    }
    let updated =
        store::admin_update(&state.table, &id, body.role, body.status, &now_rfc3339()).await?;
    Ok(ApiResponse::ok(
        "User updated successfully",
        state.full(&updated).await?,
    ))
}

/// DELETE /api/v1/users/{id}
async fn admin_delete_user(
    State(state): State<UsersState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<ApiResponse<()>, AppError> {
    let id = Id::from_path(&id)?.to_string();
    if id == admin.id() {
        store::ensure_another_admin(&state.table, &id).await?;
    }
    store::set_status(&state.table, &id, UserStatus::Deleted, &now_rfc3339()).await?;
    Ok(ApiResponse::message("User deleted"))
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use shared::openapi::{ApiBuilder, Data, Query, Route};
    use utoipa::openapi::HttpMethod::{Delete, Get, Patch};
    let mut api = ApiBuilder::new();
    let user = api.schema::<UserResponse>();
    let public = api.schema::<PublicUser>();
    let patch_me = api.schema::<RawPatchMe>();
    let admin_patch = api.schema::<RawAdminPatch>();
    api.route(Route::new(Get, "/api/v1/users/me", "Own profile").data(Data::One(user.clone())));
    api.route(
        Route::new(Patch, "/api/v1/users/me", "Change own name or avatar")
            .body(patch_me)
            .data(Data::One(user.clone())),
    );
    api.route(Route::new(Delete, "/api/v1/users/me", "Delete own account (soft)").errors(&[409]));
    api.route(
        Route::new(Get, "/api/v1/users/{id}", "A user's public profile").data(Data::One(public)),
    );
    api.route(
        Route::new(Get, "/api/v1/users", "Every user, newest first (admin)")
            .data(Data::Page(user.clone()))
            .query(Query::page()),
    );
    api.route(
        Route::new(
            Patch,
            "/api/v1/users/{id}",
            "Change a user's role or status (admin)",
        )
        .body(admin_patch)
        .data(Data::One(user))
        .errors(&[409]),
    );
    api.route(
        Route::new(Delete, "/api/v1/users/{id}", "Delete a user (admin, soft)").errors(&[409]),
    );
    api.build()
}
