//! The handlers of Posts in docs/API.md, one per route.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use http::HeaderMap;
use model::{
    Condition,
    clock::now_rfc3339,
    domain::{
        CommentBody, CommentId, FieldErrors, PostBody, PostId, Tag, Title, UploadId, UserId,
        UserStatus, Version,
    },
    idempotency::IdempotencyItem,
    notifications::{CommentNotice, NotificationItem, NotificationType},
    posts::{Comment, CommentExtras, CommentItem, Post, PostItem, Posts},
    uploads::Purpose,
    users::{PublicUser, UserItem, Users},
};
use platform::{
    ApiResponse, AppError, FieldCode, FieldError, Pagination,
    auth::PendingAuth,
    extract::{Json, JsonInteger, ParseBody, path_id},
    query::{PageRequest, QueryParams},
    uploads::ready_upload,
};
use serde::{Deserialize, Serialize};

use crate::{
    PostsState,
    idempotency::{Idempotency, NextAction},
};

pub const MAX_TAGS: usize = 10;

/// `schema_with` of `tags` in request bodies: the tag rule on every item,
/// so that the tags a fuzzer means as valid are tags.
fn tags_schema() -> utoipa::openapi::schema::Schema {
    platform::openapi::tags_list(platform::openapi::Presence::Optional, MAX_TAGS)
}

/// Up to ten valid tags; repeats are dropped, order is kept.
fn parse_tags(errors: &mut FieldErrors, raw: Option<Vec<String>>) -> Option<Vec<Tag>> {
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
        match Tag::parse(&format!("tags[{index}]"), tag) {
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

async fn public_user(state: &PostsState, user: &UserItem) -> Result<PublicUser, AppError> {
    Ok(user.to_public(
        state
            .presigner
            .maybe_download_url(user.avatar_key.as_deref())
            .await?,
    ))
}

/// The author who still shows on their content: an account deleted
/// (deletion only sets the status) shows as the placeholder, exactly as
/// one whose item is gone, so neither its name nor its avatar outlives it.
fn shown_author(user: Option<&UserItem>) -> Option<&UserItem> {
    user.filter(|user| user.status != UserStatus::Deleted)
}

/// The author of a post or comment as rendered.
async fn author(
    state: &PostsState,
    authors: &HashMap<UserId, UserItem>,
    id: &UserId,
) -> Result<PublicUser, AppError> {
    match shown_author(authors.get(id)) {
        Some(user) => public_user(state, user).await,
        None => Ok(PublicUser::deleted(id)),
    }
}

/// Renders posts with their authors: one batch read for every author.
async fn render_posts(state: &PostsState, posts: Vec<PostItem>) -> Result<Vec<Post>, AppError> {
    let author_ids: Vec<UserId> = posts.iter().map(|p| p.author_id).collect();
    let authors = state.table.users(&author_ids).await?;
    render_posts_by(state, posts, &authors).await
}

/// Renders posts whose authors have been read already.
async fn render_posts_by(
    state: &PostsState,
    posts: Vec<PostItem>,
    authors: &HashMap<UserId, UserItem>,
) -> Result<Vec<Post>, AppError> {
    let mut rendered = Vec::with_capacity(posts.len());
    for post in posts {
        let author = author(state, authors, &post.author_id).await?;
        rendered.push(render_post(state, post, author).await?);
    }
    Ok(rendered)
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
        id: post.id.to_string(),
        author_id: post.author_id.to_string(),
        author,
        title: post.title.into_inner(),
        body: post.body.into_inner(),
        tags: post.tags.into_iter().map(Tag::into_inner).collect(),
        comment_count: post.comment_count,
        version: post.version.get(),
        created_at: post.created_at,
        updated_at: post.updated_at,
    })
}

async fn render_comments(
    state: &PostsState,
    comments: Vec<CommentItem>,
) -> Result<Vec<Comment>, AppError> {
    let author_ids: Vec<UserId> = comments.iter().map(|c| c.author_id).collect();
    let authors = state.table.users(&author_ids).await?;
    let mut rendered = Vec::with_capacity(comments.len());
    for comment in comments {
        let author = author(state, &authors, &comment.author_id).await?;
        rendered.push(render_comment(comment, author));
    }
    Ok(rendered)
}

fn render_comment(comment: CommentItem, author: PublicUser) -> Comment {
    Comment {
        id: comment.id.to_string(),
        post_id: comment.post_id.to_string(),
        author_id: comment.author_id.to_string(),
        author,
        body: comment.body.into_inner(),
        created_at: comment.created_at,
    }
}

async fn existing_post(state: &PostsState, id: &PostId) -> Result<PostItem, AppError> {
    state
        .table
        .post(id)
        .await?
        .ok_or_else(|| Condition::PostGone.into())
}

/// What the request's `Idempotency-Key` record says: the first response to
/// replay, or `None` to go ahead (also when no key was sent).
async fn replay_of(
    state: &PostsState,
    idempotency: Option<&Idempotency>,
) -> Result<Option<serde_json::Value>, AppError> {
    let Some(idempotency) = idempotency else {
        return Ok(None);
    };
    Ok(match idempotency.next_action(&state.table).await? {
        NextAction::Replay(data) => Some(data),
        NextAction::Proceed => None,
    })
}

/// After a creating transaction lost to a concurrent request with the
/// same key (`Condition::Replayed`): answer as that request did.
async fn replay_after_race(
    state: &PostsState,
    idempotency: Option<&Idempotency>,
    err: model::StoreError,
) -> Result<serde_json::Value, AppError> {
    if let (true, Some(idempotency)) = (err.is(Condition::Replayed), idempotency)
        && let NextAction::Replay(data) = idempotency.next_action(&state.table).await?
    {
        return Ok(data);
    }
    Err(err.into())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = CreatePostRequest)]
pub struct RawCreatePost {
    #[schema(required = true, schema_with = platform::openapi::fields::title)]
    title: Option<String>,
    #[schema(required = true, schema_with = platform::openapi::fields::post_body)]
    body: Option<String>,
    #[schema(schema_with = tags_schema)]
    tags: Option<Vec<String>>,
    #[schema(schema_with = platform::openapi::fields::id_optional)]
    image_upload_id: Option<String>,
}

/// What is hashed for `Idempotency-Key`: the parsed request.
#[derive(Debug, Serialize)]
pub struct CreatePost {
    title: Title,
    body: PostBody,
    tags: Vec<Tag>,
    image: Option<UploadId>,
}

impl ParseBody for CreatePost {
    type Raw = RawCreatePost;
    fn parse(raw: RawCreatePost) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let title = errors.required("title", raw.title, Title::parse);
        let body = errors.required("body", raw.body, PostBody::parse);
        let tags = parse_tags(&mut errors, raw.tags.or_else(|| Some(Vec::new())));
        let image = errors.optional("imageUploadId", raw.image_upload_id, UploadId::parse);
        let parsed = match (title, body, tags, image) {
            (Some(title), Some(body), Some(tags), Some(image)) => Some(CreatePost {
                title,
                body,
                tags,
                image,
            }),
            _ => None,
        };
        errors.finish(parsed)
    }
}

/// POST /api/v1/posts
pub async fn create_post(
    State(state): State<PostsState>,
    auth: PendingAuth,
    headers: HeaderMap,
    body: Result<Json<CreatePost>, AppError>,
) -> Result<ApiResponse<serde_json::Value>, AppError> {
    const CREATED: &str = "Post created successfully";
    let caller = *auth.user_id();
    // The key's record and the image go out with the rate limit and the
    // session check. A replay answers as the first request did, whatever
    // the image's state is now, so the image's verdict waits its turn.
    // The body's errors come after the session's (`alongside`).
    let reads = async {
        let Json(body) = body?;
        let idempotency = Idempotency::of_request(&headers, &caller, "create-post", &body)?;
        let image = async {
            match &body.image {
                Some(id) => ready_upload(
                    &state.table,
                    "imageUploadId",
                    id,
                    &caller,
                    Purpose::PostImage,
                )
                .await
                .map(|upload| Some(upload.key)),
                None => Ok(None),
            }
        };
        let (replay, image) = tokio::join!(replay_of(&state, idempotency.as_ref()), image);
        Ok((body, idempotency, replay, image))
    };
    let (me, (body, idempotency, replay, image_key)) = auth.alongside(reads).await?;
    if let Some(data) = replay? {
        return Ok(ApiResponse::created(CREATED, data));
    }
    let image_key = image_key?;
    let post = PostItem::new(
        PostId::new(),
        *me.id(),
        body.title,
        body.body,
        body.tags,
        image_key,
        now_rfc3339(),
    );
    let author = public_user(&state, &me.user).await?;
    let response = render_post(&state, post.clone(), author).await?;
    let record: Option<IdempotencyItem> = idempotency
        .as_ref()
        .map(|i| i.record(&response))
        .transpose()?;
    if let Err(err) = state.table.create_post(&post, record.as_ref()).await {
        return Ok(ApiResponse::created(
            CREATED,
            replay_after_race(&state, idempotency.as_ref(), err).await?,
        ));
    }
    let data = serde_json::to_value(response)
        .map_err(|err| AppError::internal("rendering a post", err))?;
    Ok(ApiResponse::created(CREATED, data))
}

/// GET /api/v1/posts
pub async fn list_posts(
    State(state): State<PostsState>,
    auth: PendingAuth,
    query: QueryParams,
) -> Result<ApiResponse<Vec<Post>>, AppError> {
    // The list's first reads go out with the session check: the feed's
    // shards, an author's or a tag's first page (and for a tag the posts
    // and authors after it).
    let (_me, (posts, pagination)) = auth.alongside(first_reads(&state, &query)).await?;
    Ok(ApiResponse::page(
        "Posts retrieved successfully",
        posts,
        pagination,
    ))
}

/// GET /posts's reads and rendering, and where the next page starts.
async fn first_reads(
    state: &PostsState,
    query: &QueryParams,
) -> Result<(Vec<Post>, Pagination), AppError> {
    let author = query
        .get("authorId")
        .map(|raw| {
            UserId::parse("authorId", raw.to_owned()).map_err(|_| {
                AppError::BadRequest("Query parameter authorId must be a user id".into())
            })
        })
        .transpose()?;
    let tag = query
        .get("tag")
        .map(|raw| {
            Tag::parse("tag", raw).map_err(|_| {
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
    let page = PageRequest::from_query(query, &state.cursors, &list)?;
    let (posts, last_key) = match (&tag, &author) {
        (Some(tag), author) => {
            let (found, last_key) = state
                .table
                .posts_by_tag(tag, author.as_ref(), page.page())
                .await?;
            let posts = render_posts_by(state, found.posts, &found.authors).await?;
            (posts, last_key)
        }
        (None, Some(author)) => {
            let (posts, last_key) = state.table.posts_by_author(author, page.page()).await?;
            (render_posts(state, posts).await?, last_key)
        }
        (None, None) => {
            let (posts, last_key) = state.table.feed(page.page()).await?;
            (render_posts(state, posts).await?, last_key)
        }
    };
    let next = state.cursors.encode(&list, last_key.as_ref())?;
    Ok((posts, Pagination::new(page.limit, next)))
}

/// GET /api/v1/posts/{id}
pub async fn get_post(
    State(state): State<PostsState>,
    auth: PendingAuth,
    Path(id): Path<String>,
) -> Result<ApiResponse<Post>, AppError> {
    let read = async {
        let id: PostId = path_id(&id)?;
        existing_post(&state, &id).await
    };
    let (_me, post) = auth.alongside(read).await?;
    let mut rendered = render_posts(&state, vec![post]).await?;
    let post = rendered
        .pop()
        .ok_or_else(|| AppError::from(Condition::PostGone))?;
    Ok(ApiResponse::ok("Post retrieved successfully", post))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PatchPostRequest)]
pub struct RawPatchPost {
    #[schema(schema_with = platform::openapi::fields::title_optional)]
    title: Option<String>,
    #[schema(schema_with = platform::openapi::fields::post_body_optional)]
    body: Option<String>,
    #[schema(schema_with = tags_schema)]
    tags: Option<Vec<String>>,
    #[schema(required = true, schema_with = platform::openapi::fields::version)]
    version: Option<JsonInteger>,
}

pub struct PatchPost {
    title: Option<Title>,
    body: Option<PostBody>,
    tags: Option<Vec<Tag>>,
    version: Version,
}

impl ParseBody for PatchPost {
    type Raw = RawPatchPost;
    fn parse(raw: RawPatchPost) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let title = errors.optional("title", raw.title, Title::parse);
        let body = errors.optional("body", raw.body, PostBody::parse);
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
            Some(raw) => errors.check(Version::parse("version", raw.saturating_i64())),
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
    auth: PendingAuth,
    Path(id): Path<String>,
    body: Result<Json<PatchPost>, AppError>,
) -> Result<ApiResponse<Post>, AppError> {
    let read = async {
        let Json(body) = body?;
        Ok((body, existing_post(&state, &path_id(&id)?).await?))
    };
    let (me, (body, old)) = auth.alongside(read).await?;
    if old.author_id != *me.id() {
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
        version: old.version.next(),
        updated_at: now_rfc3339(),
        ..old.clone()
    };
    state.table.update_post(&old, &new).await?;
    let author = public_user(&state, &me.user).await?;
    Ok(ApiResponse::ok(
        "Post updated successfully",
        render_post(&state, new, author).await?,
    ))
}

/// DELETE /api/v1/posts/{id}
pub async fn delete_post(
    State(state): State<PostsState>,
    auth: PendingAuth,
    Path(id): Path<String>,
) -> Result<ApiResponse<()>, AppError> {
    let read = async { existing_post(&state, &path_id(&id)?).await };
    let (me, post) = auth.alongside(read).await?;
    if post.author_id != *me.id() && !me.is_admin() {
        return Err(AppError::Forbidden(
            "Only the author or an admin can delete a post".into(),
        ));
    }
    state.table.delete_post(&post).await?;
    Ok(ApiResponse::message("Post deleted successfully"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateCommentRequest)]
pub struct RawCreateComment {
    #[schema(required = true, schema_with = platform::openapi::fields::comment_body)]
    body: Option<String>,
}

/// What is hashed for `Idempotency-Key`: the parsed request.
#[derive(Debug, Serialize)]
pub struct CreateComment {
    body: CommentBody,
}

impl ParseBody for CreateComment {
    type Raw = RawCreateComment;
    fn parse(raw: RawCreateComment) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        let body = errors.required("body", raw.body, CommentBody::parse);
        errors.finish(body.map(|body| CreateComment { body }))
    }
}

/// POST /api/v1/posts/{id}/comments
pub async fn create_comment(
    State(state): State<PostsState>,
    auth: PendingAuth,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CreateComment>, AppError>,
) -> Result<ApiResponse<serde_json::Value>, AppError> {
    const CREATED: &str = "Comment created successfully";
    let caller = *auth.user_id();
    // As for a post: the key's record and the post go out with the rate
    // limit and the session check, and a replay wins over the post's fate.
    let reads = async {
        let Json(body) = body?;
        let post_id: PostId = path_id(&id)?;
        let scope = format!("comment:{post_id}");
        let idempotency = Idempotency::of_request(&headers, &caller, &scope, &body)?;
        let (replay, post) = tokio::join!(
            replay_of(&state, idempotency.as_ref()),
            existing_post(&state, &post_id)
        );
        Ok((body, idempotency, replay, post))
    };
    let (me, (body, idempotency, replay, post)) = auth.alongside(reads).await?;
    if let Some(data) = replay? {
        return Ok(ApiResponse::created(CREATED, data));
    }
    let post = post?;
    let now = now_rfc3339();
    let comment = CommentItem::new(&post.id, me.id(), body.body, now.clone());
    let response = render_comment(comment.clone(), public_user(&state, &me.user).await?);
    let notification = (post.author_id != *me.id())
        .then(|| comment_notification(&post, &comment, &me.user, now))
        .transpose()?;
    let record = idempotency
        .as_ref()
        .map(|i| i.record(&response))
        .transpose()?;
    let extras = CommentExtras {
        notification: notification.as_ref(),
        record: record.as_ref(),
    };
    if let Err(err) = state.table.add_comment(&comment, extras).await {
        let data = replay_after_race(&state, idempotency.as_ref(), err).await?;
        return Ok(ApiResponse::created(CREATED, data));
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
) -> Result<NotificationItem, AppError> {
    let excerpt: String = comment.body.as_str().chars().take(140).collect();
    let data = CommentNotice {
        post_id: post.id,
        comment_id: comment.id,
        actor_id: commenter.id,
        actor_name: commenter.name.clone(),
    }
    .into_data()?;
    Ok(NotificationItem::new(
        &post.author_id,
        NotificationType::Comment,
        "New comment on your post".into(),
        format!(
            "{} commented on \"{}\": {}",
            commenter.name, post.title, excerpt
        ),
        data,
        now,
    ))
}

/// GET /api/v1/posts/{id}/comments
pub async fn list_comments(
    State(state): State<PostsState>,
    auth: PendingAuth,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<ApiResponse<Vec<Comment>>, AppError> {
    // The post, which must exist, and its first page of comments are read
    // together, with the session check.
    let reads = async {
        let id: PostId = path_id(&id)?;
        let list = format!("comments:{id}");
        let page = PageRequest::from_query(&query, &state.cursors, &list)?;
        let comments = async { Ok::<_, AppError>(state.table.comments(&id, page.page()).await?) };
        let (comments, _post) = tokio::try_join!(comments, existing_post(&state, &id))?;
        Ok((list, page, comments))
    };
    let (_me, (list, page, (comments, last_key))) = auth.alongside(reads).await?;
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
    auth: PendingAuth,
    Path((id, comment_id)): Path<(String, String)>,
) -> Result<ApiResponse<()>, AppError> {
    let reads = async {
        let post_id: PostId = path_id(&id)?;
        let comment_id: CommentId = path_id(&comment_id)?;
        let found = state.table.post_and_comment(&post_id, &comment_id).await?;
        Ok((post_id, comment_id, found))
    };
    let (me, (post_id, comment_id, (post, comment))) = auth.alongside(reads).await?;
    let (Some(post), Some(comment)) = (post, comment) else {
        return Err(Condition::CommentGone.into());
    };
    if comment.author_id != *me.id() && post.author_id != *me.id() && !me.is_admin() {
        return Err(AppError::Forbidden(
            "Only the comment's author, the post's author or an admin can delete a comment".into(),
        ));
    }
    state.table.delete_comment(&post_id, &comment_id).await?;
    Ok(ApiResponse::message("Comment deleted successfully"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::domain::{Email, Name};

    #[test]
    fn only_a_deleted_account_hides_behind_the_placeholder() {
        let mut user = UserItem::new(
            UserId::new(),
            Name::parse("name", "Ada".into()).unwrap(),
            Email::parse("email", "ada@example.com".into()).unwrap(),
            "hash".into(),
            now_rfc3339(),
        );
        assert!(shown_author(None).is_none());
        for (status, shown) in [
            (UserStatus::Active, true),
            (UserStatus::Suspended, true),
            (UserStatus::Deleted, false),
        ] {
            user.status = status;
            assert_eq!(shown_author(Some(&user)).is_some(), shown, "{status:?}");
        }
    }

    #[test]
    fn tags_follow_the_rules() {
        let mut errors = FieldErrors::new();
        let tags = parse_tags(
            &mut errors,
            Some(vec!["rust".into(), "web-dev".into(), "rust".into()]),
        );
        let tags: Option<Vec<String>> =
            tags.map(|tags| tags.into_iter().map(Tag::into_inner).collect());
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
