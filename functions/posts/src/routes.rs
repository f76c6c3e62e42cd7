//! The handlers of the Posts table of API.md, one per route.

use std::collections::HashSet;

use axum::extract::{Path, State};
use chrono::{SecondsFormat, Utc};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use shared::{
    ApiResponse, AppError, FieldCode, FieldError, Pagination,
    auth::{AuthUser, PendingAuth},
    domain::{FieldErrors, Id, length, no_control_chars},
    extract::{Json, ParseBody},
    idempotency::{Idempotency, IdempotencyKey, Replay, request_hash},
    notifications::{NotificationItem, NotificationType},
    query::{PageRequest, QueryParams},
    store::to_item,
    uploads::{self, Purpose},
    users::{self, PublicUser, UserItem},
};

use crate::{
    PostsState,
    model::{Comment, CommentItem, Post, PostItem, comment_sk, post_pk},
    store,
};

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub const MAX_TAGS: usize = 10;

/// A tag: 1–30 characters of `[a-z0-9-]`.
pub fn parse_tag(field: &str, raw: &str) -> Result<String, FieldError> {
    length(field, raw, 1, 30)?;
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(FieldError::new(
            field,
            FieldCode::InvalidFormat,
            "may contain only a-z, 0-9 and -",
        ));
    }
    Ok(raw.to_owned())
}

/// Up to ten valid tags; repeats are dropped, order is kept.
fn parse_tags(errors: &mut FieldErrors, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let raw = raw?;
    if raw.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            FieldCode::TooLong,
            format!("must have at most {MAX_TAGS} tags"),
        ));
        return None;
    }
    let mut seen = HashSet::new();
    let mut tags = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (index, tag) in raw.iter().enumerate() {
        match parse_tag(&format!("tags[{index}]"), tag) {
            Ok(tag) if seen.insert(tag.clone()) => tags.push(tag),
            Ok(_) => {}
            Err(err) => {
                errors.push(err);
                ok = false;
            }
        }
    }
    ok.then_some(tags)
}

fn title(field: &str, raw: String) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    length(field, trimmed, 1, 200)?;
    no_control_chars(field, trimmed)?;
    Ok(trimmed.to_owned())
}

fn text(max: usize) -> impl Fn(&str, String) -> Result<String, FieldError> {
    move |field, raw| {
        if raw.trim().is_empty() {
            return Err(FieldError::new(
                field,
                FieldCode::TooShort,
                "must not be empty",
            ));
        }
        length(field, &raw, 1, max)?;
        no_control_chars(field, &raw)?;
        Ok(raw)
    }
}

async fn public_user(state: &PostsState, user: &UserItem) -> Result<PublicUser, AppError> {
    Ok(user.to_public(
        state
            .presigner
            .maybe_download_url(user.avatar_key.as_deref())
            .await?,
    ))
}

/// Renders posts with their authors: one batch read for every author.
async fn render_posts(state: &PostsState, posts: Vec<PostItem>) -> Result<Vec<Post>, AppError> {
    let author_ids: Vec<String> = posts.iter().map(|p| p.author_id.clone()).collect();
    let authors = users::get_users(&state.table, &author_ids).await?;
    let mut rendered = Vec::with_capacity(posts.len());
    for post in posts {
        let author = match authors.get(&post.author_id) {
            Some(user) => public_user(state, user).await?,
            None => missing_user(&post.author_id),
        };
        rendered.push(render_post(state, post, author).await?);
    }
    Ok(rendered)
}

/// An author whose item is gone; their content still shows.
fn missing_user(id: &str) -> PublicUser {
    PublicUser {
        id: id.to_owned(),
        name: "Deleted user".into(),
        avatar_url: None,
        created_at: String::new(),
    }
}

async fn render_post(
    state: &PostsState,
    post: PostItem,
    author: PublicUser,
) -> Result<Post, AppError> {
    Ok(Post {
        image_url: state
            .presigner
            .maybe_download_url(post.image_key.as_deref())
            .await?,
        id: post.id,
        author_id: post.author_id,
        author,
        title: post.title,
        body: post.body,
        tags: post.tags,
        comment_count: post.comment_count,
        version: post.version,
        created_at: post.created_at,
        updated_at: post.updated_at,
    })
}

async fn render_comments(
    state: &PostsState,
    comments: Vec<CommentItem>,
) -> Result<Vec<Comment>, AppError> {
    let author_ids: Vec<String> = comments.iter().map(|c| c.author_id.clone()).collect();
    let authors = users::get_users(&state.table, &author_ids).await?;
    let mut rendered = Vec::with_capacity(comments.len());
    for comment in comments {
        let author = match authors.get(&comment.author_id) {
            Some(user) => public_user(state, user).await?,
            None => missing_user(&comment.author_id),
        };
        rendered.push(render_comment(comment, author));
    }
    Ok(rendered)
}

fn render_comment(comment: CommentItem, author: PublicUser) -> Comment {
    Comment {
        id: comment.id,
        post_id: comment.post_id,
        author_id: comment.author_id,
        author,
        body: comment.body,
        created_at: comment.created_at,
    }
}

async fn existing_post(state: &PostsState, id: &str) -> Result<PostItem, AppError> {
    let id = Id::from_path(id)?;
    store::get_post(&state.table, &id.to_string())
        .await?
        .ok_or_else(|| AppError::NotFound("Post not found".into()))
}

/// Reads the `Idempotency-Key` of a creating request, if any.
fn idempotency_for<T: Serialize>(
    headers: &HeaderMap,
    me: &AuthUser,
    scope: &str,
    request: &T,
) -> Result<Option<Idempotency>, AppError> {
    IdempotencyKey::from_headers(headers)?
        .map(|key| {
            Ok(Idempotency::new(
                me.id(),
                scope,
                &key,
                request_hash(request)?,
            ))
        })
        .transpose()
}

/// After a transaction failed on a condition: if it was the idempotency
/// record, a concurrent request with the same key won; answer as it did.
async fn replay_after_conflict(
    state: &PostsState,
    idempotency: Option<&Idempotency>,
    err: AppError,
) -> Result<serde_json::Value, AppError> {
    if let (AppError::Conflict(_), Some(idempotency)) = (&err, idempotency)
        && let Replay::Replay(data) = idempotency.check(&state.table).await?
    {
        return Ok(data);
    }
    Err(err)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = CreatePostRequest)]
pub struct RawCreatePost {
    #[schema(required = true, min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(required = true, min_length = 1, max_length = 20000)]
    body: Option<String>,
    #[schema(max_items = 10)]
    tags: Option<Vec<String>>,
    image_upload_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CreatePost {
    title: String,
    body: String,
    tags: Vec<String>,
    #[serde(skip)]
    image_upload_id: Option<Id>,
    image: Option<String>,
}

impl ParseBody for CreatePost {
    type Raw = RawCreatePost;
    fn parse(raw: RawCreatePost) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let title = errors.required("title", raw.title, title);
        let body = errors.required("body", raw.body, text(20_000));
        let tags = parse_tags(&mut errors, raw.tags.or_else(|| Some(Vec::new())));
        let image = errors.optional("imageUploadId", raw.image_upload_id, Id::parse);
        let parsed = match (title, body, tags, image) {
            (Some(title), Some(body), Some(tags), Some(image_upload_id)) => Some(CreatePost {
                title,
                body,
                tags,
                image: image_upload_id.map(|id| id.to_string()),
                image_upload_id,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// POST /api/v1/posts
pub async fn create_post(
    State(state): State<PostsState>,
    me: AuthUser,
    headers: HeaderMap,
    Json(body): Json<CreatePost>,
) -> Result<ApiResponse<serde_json::Value>, AppError> {
    const CREATED: &str = "Post created successfully";
    let idempotency = idempotency_for(&headers, &me, "create-post", &body)?;
    if let Some(idempotency) = &idempotency
        && let Replay::Replay(data) = idempotency.check(&state.table).await?
    {
        return Ok(ApiResponse::created(CREATED, data));
    }
    let image_key = match body.image_upload_id {
        Some(id) => Some(
            uploads::ready_upload(
                &state.table,
                "imageUploadId",
                id,
                me.id(),
                Purpose::PostImage,
            )
            .await?
            .key,
        ),
        None => None,
    };
    let post = PostItem::new(
        Id::new().to_string(),
        me.id().to_owned(),
        body.title,
        body.body,
        body.tags,
        image_key,
        now_rfc3339(),
    );
    let author = public_user(&state, &me.user).await?;
    let response = render_post(&state, post.clone(), author).await?;
    let record = idempotency
        .as_ref()
        .map(|i| i.record(&state.table, &response))
        .transpose()?;
    match store::create_post(&state.table, &post, record).await {
        Ok(()) => {}
        Err(err) => {
            return Ok(ApiResponse::created(
                CREATED,
                replay_after_conflict(&state, idempotency.as_ref(), err).await?,
            ));
        }
    }
    let data = serde_json::to_value(response)
        .map_err(|err| AppError::internal("rendering a post", err))?;
    Ok(ApiResponse::created(CREATED, data))
}

/// GET /api/v1/posts
pub async fn list_posts(
    State(state): State<PostsState>,
    _me: AuthUser,
    query: QueryParams,
) -> Result<ApiResponse<Vec<Post>>, AppError> {
    let author = query
        .get("authorId")
        .map(|raw| {
            Id::parse("authorId", raw.to_owned()).map_err(|_| {
                AppError::BadRequest("Query parameter authorId must be a user id".into())
            })
        })
        .transpose()?
        .map(|id| id.to_string());
    let tag = query
        .get("tag")
        .map(|raw| {
            parse_tag("tag", raw).map_err(|_| {
                AppError::BadRequest(
                    "Query parameter tag must be 1-30 characters of a-z, 0-9 and -".into(),
                )
            })
        })
        .transpose()?;
    let list = match (&tag, &author) {
        (Some(tag), Some(author)) => format!("posts:tag:{tag}:author:{author}"),
        (Some(tag), None) => format!("posts:tag:{tag}"),
        (None, Some(author)) => format!("posts:author:{author}"),
        (None, None) => "posts".to_owned(),
    };
    let page = PageRequest::from_query(&query, &state.cursors, &list)?;
    let (posts, last_key) = match (&tag, &author) {
        (Some(tag), author) => {
            store::list_by_tag(&state.table, tag, author.as_deref(), &page).await?
        }
        (None, Some(author)) => store::list_by_author(&state.table, author, &page).await?,
        (None, None) => store::list_feed(&state.table, &page).await?,
    };
    let next = state.cursors.encode(&list, last_key.as_ref())?;
    let posts = render_posts(&state, posts).await?;
    Ok(ApiResponse::page(
        "Posts retrieved successfully",
        posts,
        Pagination::new(page.limit, next),
    ))
}

/// GET /api/v1/posts/{id}
pub async fn get_post(
    State(state): State<PostsState>,
    auth: PendingAuth,
    Path(id): Path<String>,
) -> Result<ApiResponse<Post>, AppError> {
    let (_me, post) = auth.alongside(existing_post(&state, &id)).await?;
    let mut rendered = render_posts(&state, vec![post]).await?;
    let post = rendered
        .pop()
        .ok_or_else(|| AppError::NotFound("Post not found".into()))?;
    Ok(ApiResponse::ok("Post retrieved successfully", post))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PatchPostRequest)]
pub struct RawPatchPost {
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(min_length = 1, max_length = 20000)]
    body: Option<String>,
    #[schema(max_items = 10)]
    tags: Option<Vec<String>>,
    #[schema(required = true, minimum = 1)]
    version: Option<i64>,
}

pub struct PatchPost {
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
    version: i64,
}

impl ParseBody for PatchPost {
    type Raw = RawPatchPost;
    fn parse(raw: RawPatchPost) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let title = errors.optional("title", raw.title, title);
        let body = errors.optional("body", raw.body, text(20_000));
        let tags = match raw.tags {
            Some(tags) => parse_tags(&mut errors, Some(tags)).map(Some),
            None => Some(None),
        };
        let version = match raw.version {
            None => {
                errors.push(FieldError::new(
                    "version",
                    FieldCode::Required,
                    "is required",
                ));
                None
            }
            Some(v) if v < 1 => {
                errors.push(FieldError::new(
                    "version",
                    FieldCode::OutOfRange,
                    "must be at least 1",
                ));
                None
            }
            Some(v) => Some(v),
        };
        let parsed = match (title, body, tags, version) {
            (Some(title), Some(body), Some(tags), Some(version)) => Some(PatchPost {
                title,
                body,
                tags,
                version,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// PATCH /api/v1/posts/{id}
pub async fn patch_post(
    State(state): State<PostsState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<PatchPost>,
) -> Result<ApiResponse<Post>, AppError> {
    let old = existing_post(&state, &id).await?;
    if old.author_id != me.id() {
        return Err(AppError::Forbidden(
            "Only the author can edit a post".into(),
        ));
    }
    if old.version != body.version {
        return Err(AppError::Conflict(format!(
            "The post is at version {}, not {}; reload it and retry",
            old.version, body.version
        )));
    }
    let new = PostItem {
        title: body.title.unwrap_or_else(|| old.title.clone()),
        body: body.body.unwrap_or_else(|| old.body.clone()),
        tags: body.tags.unwrap_or_else(|| old.tags.clone()),
        version: old.version + 1,
        updated_at: now_rfc3339(),
        ..old.clone()
    };
    store::update_post(&state.table, &old, &new, body.version).await?;
    let author = public_user(&state, &me.user).await?;
    Ok(ApiResponse::ok(
        "Post updated successfully",
        render_post(&state, new, author).await?,
    ))
}

/// DELETE /api/v1/posts/{id}
pub async fn delete_post(
    State(state): State<PostsState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<ApiResponse<()>, AppError> {
    let post = existing_post(&state, &id).await?;
    if post.author_id != me.id() && !me.is_admin() {
        return Err(AppError::Forbidden(
            "Only the author or an admin can delete a post".into(),
        ));
    }
    store::delete_post(&state.table, &post).await?;
    Ok(ApiResponse::message("Post deleted successfully"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateCommentRequest)]
pub struct RawCreateComment {
    #[schema(required = true, min_length = 1, max_length = 5000)]
    body: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CreateComment {
    body: String,
}

impl ParseBody for CreateComment {
    type Raw = RawCreateComment;
    fn parse(raw: RawCreateComment) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let body = errors.required("body", raw.body, text(5_000));
        errors.finish(body.map(|body| CreateComment { body }))
    }
}

/// POST /api/v1/posts/{id}/comments
pub async fn create_comment(
    State(state): State<PostsState>,
    me: AuthUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<CreateComment>,
) -> Result<ApiResponse<serde_json::Value>, AppError> {
    const CREATED: &str = "Comment created successfully";
    let post_id = Id::from_path(&id)?.to_string();
    let idempotency = idempotency_for(&headers, &me, &format!("comment:{post_id}"), &body)?;
    if let Some(idempotency) = &idempotency
        && let Replay::Replay(data) = idempotency.check(&state.table).await?
    {
        return Ok(ApiResponse::created(CREATED, data));
    }
    let post = existing_post(&state, &post_id).await?;
    let now = now_rfc3339();
    let comment_id = Id::new().to_string();
    let comment = CommentItem {
        pk: post_pk(&post.id),
        sk: comment_sk(&comment_id),
        entity: "comment".into(),
        id: comment_id.clone(),
        post_id: post.id.clone(),
        author_id: me.id().to_owned(),
        body: body.body,
        created_at: now.clone(),
    };
    let response = render_comment(comment.clone(), public_user(&state, &me.user).await?);
    let mut extra = Vec::new();
    if post.author_id != me.id() {
        let notification = comment_notification(&post, &comment, &me.user, now);
        extra.push(store::put(&state.table, to_item(&notification)?, None)?);
    }
    if let Some(idempotency) = &idempotency {
        extra.push(idempotency.record(&state.table, &response)?);
    }
    if let Err(err) = store::add_comment(&state.table, &comment, extra).await {
        return match replay_after_conflict(&state, idempotency.as_ref(), err).await {
            Ok(data) => Ok(ApiResponse::created(CREATED, data)),
            Err(AppError::Conflict(_)) => Err(AppError::NotFound("Post not found".into())),
            Err(other) => Err(other),
        };
    }
    let data = serde_json::to_value(response)
        .map_err(|err| AppError::internal("rendering a comment", err))?;
    Ok(ApiResponse::created(CREATED, data))
}

fn comment_notification(
    post: &PostItem,
    comment: &CommentItem,
    commenter: &UserItem,
    now: String,
) -> NotificationItem {
    let excerpt: String = comment.body.chars().take(140).collect();
    let mut data = serde_json::Map::new();
    data.insert("postId".into(), post.id.clone().into());
    data.insert("commentId".into(), comment.id.clone().into());
    data.insert("actorId".into(), commenter.id.clone().into());
    data.insert("actorName".into(), commenter.name.clone().into());
    NotificationItem::new(
        &post.author_id,
        NotificationType::Comment,
        "New comment on your post".into(),
        format!(
            "{} commented on \"{}\": {}",
            commenter.name, post.title, excerpt
        ),
        data,
        now,
    )
}

/// GET /api/v1/posts/{id}/comments
pub async fn list_comments(
    State(state): State<PostsState>,
    auth: PendingAuth,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<ApiResponse<Vec<Comment>>, AppError> {
    let (_me, post) = auth.alongside(existing_post(&state, &id)).await?;
    let list = format!("comments:{}", post.id);
    let page = PageRequest::from_query(&query, &state.cursors, &list)?;
    let (comments, last_key) = store::list_comments(&state.table, &post.id, &page).await?;
    let next = state.cursors.encode(&list, last_key.as_ref())?;
    let comments = render_comments(&state, comments).await?;
    Ok(ApiResponse::page(
        "Comments retrieved successfully",
        comments,
        Pagination::new(page.limit, next),
    ))
}

/// DELETE /api/v1/posts/{id}/comments/{commentId}
pub async fn delete_comment(
    State(state): State<PostsState>,
    me: AuthUser,
    Path((id, comment_id)): Path<(String, String)>,
) -> Result<ApiResponse<()>, AppError> {
    let post_id = Id::from_path(&id)?.to_string();
    let comment_id = Id::from_path(&comment_id)?.to_string();
    let (post, comment) = store::get_post_and_comment(&state.table, &post_id, &comment_id).await?;
    let (Some(post), Some(comment)) = (post, comment) else {
        return Err(AppError::NotFound("Comment not found".into()));
    };
    if comment.author_id != me.id() && post.author_id != me.id() && !me.is_admin() {
        return Err(AppError::Forbidden(
            "Only the comment's author, the post's author or an admin can delete a comment".into(),
        ));
    }
    store::delete_comment(&state.table, &post_id, &comment_id).await?;
    Ok(ApiResponse::message("Comment deleted successfully"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_rules() {
        let mut errors = FieldErrors::new();
        let tags = parse_tags(
            &mut errors,
            Some(vec!["rust".into(), "web-dev".into(), "rust".into()]),
        );
        assert_eq!(tags, Some(vec!["rust".to_owned(), "web-dev".to_owned()]));
        for bad in ["", "Rust", "with space", "ü", &"x".repeat(31), "a_b"] {
            let mut errors = FieldErrors::new();
            assert!(
                parse_tags(&mut errors, Some(vec![bad.to_owned()])).is_none(),
                "{bad:?}"
            );
        }
        let mut errors = FieldErrors::new();
        assert!(
            parse_tags(
                &mut errors,
                Some((0..11).map(|i| format!("t{i}")).collect())
            )
            .is_none()
        );
    }
}
