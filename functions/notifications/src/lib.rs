//! Notifications (docs/API.md, Notifications): the caller's own
//! notifications, listed, counted, marked read and deleted.
//!
//! Notifications are created elsewhere (a comment notifies the post's
//! author, in the posts function); this function only serves the recipient.
//! Every key embeds the caller's id, so another user's notification is not
//! hidden by a check but simply absent: a 404 like any unknown id.

use aws_config::SdkConfig;
use axum::{
    Router,
    extract::{Path, State},
    routing::{delete, get, patch, post},
};
use model::{
    Table,
    domain::{NotificationId, UserId},
    notifications::{Notification, NotificationItem, Notifications},
};
use platform::{
    ApiResponse, AppError, Pagination,
    auth::{ApiState, AuthUser, PendingAuth},
    config::{ConfigError, Source},
    cursor::CursorCodec,
    extract::path_id,
    function::ApiFunction,
    http::HttpService,
    query::{PageRequest, QueryParams},
};
use serde::Serialize;

/// What the notifications routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    table: Table,
    cursors: CursorCodec,
}

type NotificationsState = ApiState<Deps>;

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
pub fn build(source: &dyn Source, sdk: &SdkConfig) -> Result<HttpService, ConfigError> {
    let function = ApiFunction::from_source(source, sdk)?;
    let state = ApiState::new(
        function.authenticator.clone(),
        Deps {
            cursors: function.cursors(),
            table: function.table.clone(),
        },
    );
    Ok(function.serve(router(state)))
}

fn router(state: NotificationsState) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/notifications/unread-count", get(unread_count))
        .route("/api/v1/notifications/read-all", post(read_all))
        .route("/api/v1/notifications/{id}", delete(delete_notification))
        .route("/api/v1/notifications/{id}/read", patch(mark_read))
        .with_state(state)
}

/// The cursor scope of a list. The recipient is part of it: a cursor holds
/// their partition key, and one carried over to another user's list must
/// be refused as a 400 rather than reach DynamoDB as an invalid start key.
fn list_name(unread_only: bool, user_id: &UserId) -> String {
    if unread_only {
        format!("notifications:unread:{user_id}")
    } else {
        format!("notifications:{user_id}")
    }
}

/// GET /api/v1/notifications
async fn list_notifications(
    State(state): State<NotificationsState>,
    auth: PendingAuth,
    query: QueryParams,
) -> Result<ApiResponse<Vec<Notification>>, AppError> {
    // Every key is the caller's own, so the page is read with the session
    // check: one round trip.
    let caller = *auth.user_id();
    let read = async {
        let unread_only = query.flag("unread")?.unwrap_or(false);
        let list = list_name(unread_only, &caller);
        let page = PageRequest::from_query(&query, &state.cursors, &list)?;
        let found = if unread_only {
            state.table.list_unread(&caller, page.page()).await?
        } else {
            state.table.list_notifications(&caller, page.page()).await?
        };
        Ok((list, page, found))
    };
    let (_me, (list, page, (items, last_key))) = auth.alongside(read).await?;
    let next = state.cursors.encode(&list, last_key.as_ref())?;
    Ok(ApiResponse::page(
        "Notifications retrieved successfully",
        items.iter().map(NotificationItem::to_response).collect(),
        Pagination::new(page.limit, next),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    count: u64,
}

/// GET /api/v1/notifications/unread-count
async fn unread_count(
    State(state): State<NotificationsState>,
    auth: PendingAuth,
) -> Result<ApiResponse<UnreadCount>, AppError> {
    let caller = *auth.user_id();
    let read = async { Ok(state.table.count_unread(&caller).await?) };
    let (_me, count) = auth.alongside(read).await?;
    Ok(ApiResponse::ok(
        "Unread count retrieved successfully",
        UnreadCount { count },
    ))
}

/// PATCH /api/v1/notifications/{id}/read
async fn mark_read(
    State(state): State<NotificationsState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<ApiResponse<Notification>, AppError> {
    let id: NotificationId = path_id(&id)?;
    let item = state.table.mark_read(me.id(), &id).await?;
    Ok(ApiResponse::ok(
        "Notification marked as read",
        item.to_response(),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadAll {
    updated: u64,
}

/// POST /api/v1/notifications/read-all
async fn read_all(
    State(state): State<NotificationsState>,
    auth: PendingAuth,
) -> Result<ApiResponse<ReadAll>, AppError> {
    // The first page of unread ids is read with the rate limit and the
    // session check; the updates wait for both.
    let caller = *auth.user_id();
    let first = async { Ok(state.table.unread_ids(&caller, None).await?) };
    let (_me, first) = auth.alongside(first).await?;
    let updated = state.table.mark_all_read(&caller, first).await?;
    Ok(ApiResponse::ok(
        "All notifications marked as read",
        ReadAll { updated },
    ))
}

/// DELETE /api/v1/notifications/{id}
async fn delete_notification(
    State(state): State<NotificationsState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<ApiResponse<()>, AppError> {
    let id: NotificationId = path_id(&id)?;
    state.table.delete_notification(me.id(), &id).await?;
    Ok(ApiResponse::message("Notification deleted"))
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use platform::openapi::{ApiBuilder, Data, Link, Query, Route};
    use utoipa::openapi::HttpMethod::{Delete, Get, Patch, Post};
    let mut api = ApiBuilder::new();
    let notification = api.schema::<Notification>();
    let count = api.schema::<UnreadCount>();
    let read_all = api.schema::<ReadAll>();
    let mut query = Query::page();
    query.push(Query::boolean("unread", "Only unread notifications"));
    api.route(
        Route::new(
            Get,
            "/api/v1/notifications",
            "Own notifications, newest first",
        )
        .data(Data::Page(notification.clone()))
        .query(query)
        .link(Link::to(Patch, "/api/v1/notifications/{id}/read").with("id", "/data/0/id"))
        .link(Link::to(Delete, "/api/v1/notifications/{id}").with("id", "/data/0/id")),
    );
    api.route(
        Route::new(
            Get,
            "/api/v1/notifications/unread-count",
            "How many are unread",
        )
        .data(Data::One(count)),
    );
    api.route(
        Route::new(Patch, "/api/v1/notifications/{id}/read", "Mark one read")
            .data(Data::One(notification)),
    );
    api.route(
        Route::new(
            Post,
            "/api/v1/notifications/read-all",
            "Mark every one read",
        )
        .data(Data::One(read_all)),
    );
    api.route(Route::new(
        Delete,
        "/api/v1/notifications/{id}",
        "Delete one",
    ));
    api.build()
}
