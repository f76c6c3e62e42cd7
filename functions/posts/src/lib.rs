//! Posts and comments (docs/API.md, Posts).
//!
//! The feed is spread over `FEED_SHARDS` partitions of `gsi1` so that no one
//! key takes every new post; a page reads every shard in parallel and
//! merges them. Listing by author uses `gsi2`, by tag the tag's reference
//! items. Comments live in their post's partition, and a comment, its
//! post's counter, the notification it causes and its idempotency record
//! are one transaction. All
//! of that is `model::posts`; here are the handlers and the
//! `Idempotency-Key` handling, which only this function offers.

use aws_config::SdkConfig;
use axum::{
    Router,
    routing::{delete, get},
};
use model::Table;
use platform::{
    auth::ApiState,
    config::{ConfigError, Source},
    cursor::CursorCodec,
    function::ApiFunction,
    http::HttpService,
    uploads::Presigner,
};

mod idempotency;
mod routes;

/// What the posts routes need, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    table: Table,
    presigner: Presigner,
    cursors: CursorCodec,
}

type PostsState = ApiState<Deps>;

/// The function, ready to serve: configuration from `source`, clients from
/// `sdk`. Its `main`, the local gateway and the tests all build it here.
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

fn router(state: PostsState) -> Router {
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
    use platform::openapi::{ApiBuilder, Data, Link, Query, Route};
    use utoipa::openapi::HttpMethod::{Delete, Get, Patch, Post};
    let mut api = ApiBuilder::new();
    let post = api.schema::<model::posts::Post>();
    let comment = api.schema::<model::posts::Comment>();
    let create = api.schema::<routes::RawCreatePost>();
    let patch = api.schema::<routes::RawPatchPost>();
    let create_comment = api.schema::<routes::RawCreateComment>();
    let mut list = Query::page();
    list.push(Query::id("authorId", "Only posts by this user"));
    list.push(Query::tag("tag", "Only posts with this tag"));
    let post_id = |method, path| Link::to(method, path).with("id", "/data/id");
    let first_post = |method, path| Link::to(method, path).with("id", "/data/0/id");
    api.route(
        Route::new(
            Post,
            "/api/v1/posts",
            "Create a post (honours Idempotency-Key)",
        )
        .body(create)
        .created()
        .idempotent()
        .data(Data::One(post.clone()))
        .errors(&[409])
        .link(post_id(Get, "/api/v1/posts/{id}"))
        .link(post_id(Patch, "/api/v1/posts/{id}"))
        .link(post_id(Delete, "/api/v1/posts/{id}"))
        .link(post_id(Get, "/api/v1/posts/{id}/comments"))
        .link(post_id(Post, "/api/v1/posts/{id}/comments")),
    );
    api.route(
        Route::new(Get, "/api/v1/posts", "Posts, newest first")
            .data(Data::Page(post.clone()))
            .query(list)
            .link(first_post(Get, "/api/v1/posts/{id}"))
            .link(first_post(Get, "/api/v1/posts/{id}/comments")),
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
        .idempotent()
        .data(Data::One(comment.clone()))
        .errors(&[409])
        .link(
            Link::to(Delete, "/api/v1/posts/{id}/comments/{commentId}")
                .with("id", "/data/postId")
                .with("commentId", "/data/id"),
        ),
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
