//! Posts and comments (API.md, Posts table).
//!
//! The feed is spread over `FEED_SHARDS` partitions of `gsi1` so that no one
//! key takes every new post; a page reads every shard in parallel and
//! merges them. Listing by author uses `gsi2`, by tag the tag's reference
//! items. Comments live in their post's partition, and a comment, its
//! post's counter and the notification it causes are one transaction.

use axum::{
    Router,
    extract::FromRef,
    routing::{delete, get},
};
use shared::{
    auth::Authenticator, config::JwtConfig, cursor::CursorCodec, jwt::JwtKeys, store::Table,
    uploads::Presigner,
};

pub mod model;
mod routes;
mod store;

/// What the posts routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct PostsState {
    authenticator: Authenticator,
    table: Table,
    presigner: Presigner,
    cursors: CursorCodec,
}

impl FromRef<PostsState> for Authenticator {
    fn from_ref(state: &PostsState) -> Self {
        state.authenticator.clone()
    }
}

impl PostsState {
    pub fn new(table: Table, presigner: Presigner, jwt: &JwtConfig) -> Self {
        Self {
            authenticator: Authenticator::new(JwtKeys::new(jwt), table.clone()),
            cursors: CursorCodec::new(jwt.secret_bytes()),
            table,
            presigner,
        }
    }
}

pub fn router(state: PostsState) -> Router {
    Router::new()
        .route(
            "/api/v1/posts",
            get(routes::list_posts).post(routes::create_post),
        )
        .route(
            "/api/v1/posts/{id}",
            get(routes::get_post)
                .patch(routes::patch_post)
                .delete(routes::delete_post),
        )
        .route(
            "/api/v1/posts/{id}/comments",
            get(routes::list_comments).post(routes::create_comment),
        )
        .route(
            "/api/v1/posts/{id}/comments/{comment_id}",
            delete(routes::delete_comment),
        )
        .with_state(state)
}

/// The routes of this function in the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use shared::openapi::{ApiBuilder, Data, Query, Route};
    use utoipa::openapi::HttpMethod::{Delete, Get, Patch, Post};
    let mut api = ApiBuilder::new();
    let post = api.schema::<model::Post>();
    let comment = api.schema::<model::Comment>();
    let create = api.schema::<routes::RawCreatePost>();
    let patch = api.schema::<routes::RawPatchPost>();
    let create_comment = api.schema::<routes::RawCreateComment>();
    let mut list = Query::page();
    list.push(Query::string("authorId", "Only posts by this user"));
    list.push(Query::string("tag", "Only posts with this tag"));
    api.route(
        Route::new(
            Post,
            "/api/v1/posts",
            "Create a post (honours Idempotency-Key)",
        )
        .body(create)
        .created()
        .data(Data::One(post.clone()))
        .errors(&[409]),
    );
    api.route(
        Route::new(Get, "/api/v1/posts", "Posts, newest first")
            .data(Data::Page(post.clone()))
            .query(list),
    );
    api.route(Route::new(Get, "/api/v1/posts/{id}", "One post").data(Data::One(post.clone())));
    api.route(
        Route::new(
            Patch,
            "/api/v1/posts/{id}",
            "Edit own post (optimistic version)",
        )
        .body(patch)
        .data(Data::One(post))
        .errors(&[409]),
    );
    api.route(Route::new(
        Delete,
        "/api/v1/posts/{id}",
        "Delete a post (owner or admin)",
    ));
    api.route(
        Route::new(
            Post,
            "/api/v1/posts/{id}/comments",
            "Comment on a post (honours Idempotency-Key)",
        )
        .body(create_comment)
        .created()
        .data(Data::One(comment.clone()))
        .errors(&[409]),
    );
    api.route(
        Route::new(Get, "/api/v1/posts/{id}/comments", "Comments, oldest first")
            .data(Data::Page(comment))
            .query(Query::page()),
    );
    api.route(Route::new(
        Delete,
        "/api/v1/posts/{id}/comments/{commentId}",
        "Delete a comment (its author, the post's author or an admin)",
    ));
    api.build()
}
