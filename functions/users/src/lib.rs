//! Profiles (docs/API.md, Users): the caller's own profile, other users'
//! public profiles, and the admin routes to list users and change their
//! role or status.
//!
//! Deletion is soft: the status becomes `deleted` and every session dies in
//! the same write (`sessionsValidAfter`), so nothing else has to be found
//! and revoked. Every read and write is the model's `Users` store; an
//! avatar is an upload checked by `platform::uploads`, and shown through a
//! presigned URL, which is why this function holds an S3 client.

use aws_config::SdkConfig;
use axum::{
    Router,
    extract::{Path, State},
    routing::get,
};
use model::{
    Condition, Table,
    clock::now_rfc3339,
    domain::{FieldErrors, Name, Role, UploadId, UserId, UserStatus},
    uploads::Purpose,
    users::{AdminChange, PublicUser, UserItem, UserResponse, Users},
};
use platform::{
    ApiResponse, AppError, FieldError, Pagination,
    auth::{AdminUser, ApiState, AuthUser, PendingAuth},
    config::{ConfigError, Source},
    cursor::CursorCodec,
    extract::{Json, ParseBody, path_id},
    function::ApiFunction,
    http::HttpService,
    query::{PageRequest, QueryParams},
    uploads::{Presigner, ready_upload},
};
use serde::Deserialize;

/// The cursor scope of the admin user list.
const USERS_LIST: &str = "users";

/// What the users routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    table: Table,
    presigner: Presigner,
    cursors: CursorCodec,
}

impl Deps {
    async fn full(&self, user: &UserItem) -> Result<UserResponse, AppError> {
        let avatar = self
            .presigner
            .maybe_download_url(user.avatar_key.as_deref())
            .await?;
        Ok(user.to_response(avatar))
    }
}

type UsersState = ApiState<Deps>;

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk` (S3 path-style when `S3_FORCE_PATH_STYLE` says the endpoint needs
/// it). Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let function = ApiFunction::from_source(source, sdk)?;
    let state = ApiState::new(
        function.authenticator.clone(),
        Deps {
            presigner: function.presigner(sdk),
            cursors: function.cursors(),
            table: function.table.clone(),
        },
    );
    Ok(function.serve(router(state)))
}

fn router(state: UsersState) -> Router {
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

/// Deleting is setting the status; it also ends every session.
const DELETE: AdminChange = AdminChange {
    role: None,
    status: Some(UserStatus::Deleted),
};

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
    #[schema(schema_with = platform::openapi::fields::name_optional)]
    name: Option<String>,
    #[schema(schema_with = platform::openapi::fields::id_optional)]
    avatar_upload_id: Option<String>,
}

pub struct PatchMe {
    name: Option<Name>,
    avatar_upload_id: Option<UploadId>,
}

impl ParseBody for PatchMe {
    type Raw = RawPatchMe;
    fn parse(raw: RawPatchMe) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let name = errors.optional("name", raw.name, Name::parse);
        let avatar = errors.optional("avatarUploadId", raw.avatar_upload_id, UploadId::parse);
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
    auth: PendingAuth,
    body: Result<Json<PatchMe>, AppError>,
) -> Result<ApiResponse<UserResponse>, AppError> {
    let caller = *auth.user_id();
    // The avatar's upload is read with the rate limit and the session
    // check: the update is then the second and last round trip. The body's
    // errors come after the session's.
    let avatar = async {
        let Json(body) = body?;
        let key = match &body.avatar_upload_id {
            Some(id) => Some(
                ready_upload(&state.table, "avatarUploadId", id, &caller, Purpose::Avatar)
                    .await?
                    .key,
            ),
            None => None,
        };
        Ok((body, key))
    };
    let (me, (body, avatar_key)) = auth.alongside(avatar).await?;
    if body.name.is_none() && avatar_key.is_none() {
        return Ok(ApiResponse::ok(
            "Profile unchanged",
            state.full(&me.user).await?,
        ));
    }
    let updated = state
        .table
        .update_profile(
            me.id(),
            body.name.as_ref(),
            avatar_key.as_deref(),
            &now_rfc3339(),
        )
        .await?;
    Ok(ApiResponse::ok(
        "Profile updated successfully",
        state.full(&updated).await?,
    ))
}

/// DELETE /api/v1/users/me. The last active admin cannot (409): the store
/// refuses any change that would leave no active admin.
async fn delete_me(
    State(state): State<UsersState>,
    auth: PendingAuth,
) -> Result<ApiResponse<()>, AppError> {
    // The session check reads the caller, whose deletion this is: with the
    // admin count read alongside, the store writes once.
    let count = async { Ok(state.table.active_admins().await?) };
    let (me, admins) = auth.alongside(count).await?;
    state
        .table
        .admin_update_from(&me.user, admins, DELETE, &now_rfc3339())
        .await?;
    Ok(ApiResponse::message("Account deleted"))
}

/// An admin's change of user `id`: the user and the admin count are read
/// with the rate limit and the session check, then the store writes once.
async fn admin_change(
    state: &UsersState,
    auth: PendingAuth,
    id: &str,
    change: Result<AdminChange, AppError>,
) -> Result<UserItem, AppError> {
    let reads = async {
        let id: UserId = path_id(id)?;
        let (user, admins) = tokio::try_join!(state.table.user(&id), state.table.active_admins())?;
        Ok::<_, AppError>((user, admins))
    };
    // The 401 and the 403 come before the path's and the body's errors,
    // and before whether the user exists.
    let (me, reads) = auth.alongside(async { Ok(reads.await) }).await?;
    AdminUser::of(me)?;
    let change = change?;
    let (user, admins) = reads?;
    let user = user.ok_or(Condition::UserGone)?;
    Ok(state
        .table
        .admin_update_from(&user, admins, change, &now_rfc3339())
        .await?)
}

/// GET /api/v1/users/{id}
async fn get_user(
    State(state): State<UsersState>,
    auth: PendingAuth,
    Path(id): Path<String>,
) -> Result<ApiResponse<PublicUser>, AppError> {
    let read = async {
        let id: UserId = path_id(&id)?;
        Ok(state.table.user(&id).await?)
    };
    let (_me, user) = auth.alongside(read).await?;
    let user = user
        .filter(|user| user.status != UserStatus::Deleted)
        .ok_or(Condition::UserGone)?;
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
    auth: PendingAuth,
    query: QueryParams,
) -> Result<ApiResponse<Vec<UserResponse>>, AppError> {
    // The page is read while the caller is checked, and thrown away unless
    // the caller is an admin, who alone learns anything from it (even of
    // the query's errors, which come after the 403).
    let read = async {
        let page = PageRequest::from_query(&query, &state.cursors, USERS_LIST)?;
        Ok::<_, AppError>((page.limit, state.table.list_users(page.page()).await?))
    };
    let (me, read) = auth.alongside(async { Ok(read.await) }).await?;
    AdminUser::of(me)?;
    let (limit, (items, last_key)) = read?;
    let mut users = Vec::with_capacity(items.len());
    for user in &items {
        users.push(state.full(user).await?);
    }
    let next = state.cursors.encode(USERS_LIST, last_key.as_ref())?;
    Ok(ApiResponse::page(
        "Users retrieved successfully",
        users,
        Pagination::new(limit, next),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminPatchUserRequest)]
pub struct RawAdminPatch {
    #[schema(schema_with = platform::openapi::fields::role_optional)]
    role: Option<String>,
    #[schema(schema_with = platform::openapi::fields::status_optional)]
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

/// PATCH /api/v1/users/{id}. Whoever the user is, a change that would
/// leave no active admin is a 409; the store decides it atomically, so two
/// admins demoting each other at once cannot both succeed.
async fn admin_patch_user(
    State(state): State<UsersState>,
    auth: PendingAuth,
    Path(id): Path<String>,
    body: Result<Json<AdminPatch>, AppError>,
) -> Result<ApiResponse<UserResponse>, AppError> {
    let change = body.map(|Json(body)| AdminChange {
        role: body.role,
        status: body.status,
    });
    let updated = admin_change(&state, auth, &id, change).await?;
    Ok(ApiResponse::ok(
        "User updated successfully",
        state.full(&updated).await?,
    ))
}

/// DELETE /api/v1/users/{id}; as PATCH, never the last active admin.
async fn admin_delete_user(
    State(state): State<UsersState>,
    auth: PendingAuth,
    Path(id): Path<String>,
) -> Result<ApiResponse<()>, AppError> {
    admin_change(&state, auth, &id, Ok(DELETE)).await?;
    Ok(ApiResponse::message("User deleted"))
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use platform::openapi::{ApiBuilder, Data, Link, Query, Route};
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
            .query(Query::page())
            .link(Link::to(Get, "/api/v1/users/{id}").with("id", "/data/0/id"))
            .link(Link::to(Patch, "/api/v1/users/{id}").with("id", "/data/0/id")),
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
