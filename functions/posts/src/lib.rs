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
