//! Posts in docs/API.md through the local gateway: posts, comments,
//! ownership, optimistic versions, pagination and idempotency.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use tests::{Session, TestApp, TestResponse, assert_envelope, get_presigned};

use crate::users::ready_upload;

async fn create_post(app: &TestApp, session: &Session, body: Value) -> TestResponse {
    app.send_as("POST", "/api/v1/posts", &session.access_token, Some(body))
        .await
}

async fn new_post(app: &TestApp, session: &Session, title: &str, tags: &[&str]) -> Value {
    let response = create_post(
        app,
        session,
        json!({"title": title, "body": "Some body", "tags": tags}),
    )
    .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    response.body["data"].clone()
}

/// Every item of a paginated list, following `nextCursor` to the end.
async fn walk(
    app: &TestApp,
    session: &Session,
    path: &str,
    limit: u32,
) -> (Vec<Value>, Vec<usize>) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{separator}limit={limit}&cursor={c}"),
            None => format!("{path}{separator}limit={limit}"),
        };
        let response = app.get_as(&url, &session.access_token).await;
        let body = assert_envelope(&response, 200, None);
        let page = body["data"].as_array().unwrap().clone();
        assert_eq!(body["pagination"]["limit"], limit);
        sizes.push(page.len());
        items.extend(page);
        match body["pagination"]["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(body["pagination"]["hasNext"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(body["pagination"]["hasNext"], false);
                return (items, sizes);
            }
        }
        assert!(sizes.len() < 50, "pagination does not end");
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_post_is_created_and_read_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let image = ready_upload(&app, &alice, "post-image").await;
    let response = create_post(&app, &alice, json!({"title": " Hello ", "body": "World\nline two", "tags": ["rust", "aws", "rust"], "imageUploadId": image})).await;
    let body = assert_envelope(&response, 201, None);
    let post = &body["data"];
    assert_eq!(post["title"], "Hello");
    assert_eq!(post["body"], "World\nline two");
    assert_eq!(
        post["tags"],
        json!(["rust", "aws"]),
        "repeated tags collapse"
    );
    assert_eq!(post["authorId"], alice.id);
    assert_eq!(post["author"]["id"], alice.id);
    assert!(
        post["author"].get("email").is_none(),
        "authors are PublicUser"
    );
    assert_eq!(post["commentCount"], 0);
    assert_eq!(post["version"], 1);
    let image_url = post["imageUrl"].as_str().unwrap();
    let served = get_presigned(image_url).await;
    assert_eq!(
        served.status(),
        200,
        "the post's image URL serves the image"
    );
    let id = post["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);

    let bob = app.signed_up_user().await;
    let read = app
        .get_as(&format!("/api/v1/posts/{id}"), &bob.access_token)
        .await;
    let body = assert_envelope(&read, 200, None);
    assert_eq!(body["data"]["title"], "Hello");
    for missing in ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope"] {
        assert_envelope(
            &app.get_as(&format!("/api/v1/posts/{missing}"), &bob.access_token)
                .await,
            404,
            Some("NOT_FOUND"),
        );
    }
    assert_envelope(&app.get("/api/v1/posts").await, 401, Some("UNAUTHORIZED"));
}

/// A post and its comments are read while the session is checked
/// (platform::auth::PendingAuth): a caller whose session is gone must still
/// get only the 401, whether or not the post exists.
#[tokio::test]
async fn a_revoked_session_reads_no_post_and_learns_nothing_of_which_exist() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let post = new_post(&app, &alice, "Hello", &[]).await;
    let id = post["id"].as_str().unwrap();
    let logout = app
        .send_as("POST", "/api/v1/auth/logout", &bob.access_token, None)
        .await;
    assert_eq!(logout.status, 200, "{:#}", logout.body);
    for path in [
        format!("/api/v1/posts/{id}"),
        format!("/api/v1/posts/{id}/comments"),
        "/api/v1/posts/01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        "/api/v1/posts/01ARZ3NDEKTSV4RRFFQ69G5FAV/comments".to_owned(),
        "/api/v1/posts/nope".to_owned(),
    ] {
        let read = app.get_as(&path, &bob.access_token).await;
        let body = assert_envelope(&read, 401, Some("UNAUTHORIZED"));
        assert!(
            body.get("data").is_none_or(Value::is_null),
            "{path}: {body:?}"
        );
    }
    let still = app
        .get_as(&format!("/api/v1/posts/{id}"), &alice.access_token)
        .await;
    assert_envelope(&still, 200, None);
}

#[tokio::test]
async fn every_post_rule_is_a_named_422() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let bobs_image = ready_upload(&app, &bob, "post-image").await;
    let cases = [
        (json!({"body": "b"}), "title", "REQUIRED"),
        (json!({"title": "  ", "body": "b"}), "title", "TOO_SHORT"),
        (
            json!({"title": "x".repeat(201), "body": "b"}),
            "title",
            "TOO_LONG",
        ),
        (json!({"title": "t"}), "body", "REQUIRED"),
        (
            json!({"title": "t", "body": "x".repeat(20_001)}),
            "body",
            "TOO_LONG",
        ),
        (
            json!({"title": "t", "body": "b", "tags": ["Rust"]}),
            "tags[0]",
            "INVALID_FORMAT",
        ),
        (
            json!({"title": "t", "body": "b", "tags": ["ok", "x".repeat(31)]}),
            "tags[1]",
            "TOO_LONG",
        ),
        (
            json!({"title": "t", "body": "b", "tags": ["ok", ""]}),
            "tags[1]",
            "TOO_SHORT",
        ),
        (
            json!({"title": "t", "body": "b", "tags": (0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
            "TOO_LONG",
        ),
        (
            json!({"title": "t", "body": "b", "imageUploadId": bobs_image}),
            "imageUploadId",
            "NOT_ALLOWED",
        ),
        (
            json!({"title": "t\u{0}x", "body": "b"}),
            "title",
            "INVALID_FORMAT",
        ),
    ];
    for (body, field, code) in cases {
        let response = create_post(&app, &alice, body).await;
        let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(
            (
                body["errors"][0]["field"].as_str().unwrap(),
                body["errors"][0]["code"].as_str().unwrap()
            ),
            (field, code)
        );
    }
    assert_eq!(
        create_post(
            &app,
            &alice,
            json!({"title": "t", "body": "b", "tags": "rust"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        create_post(&app, &alice, json!({"title": "t", "body": "b", "extra": 1}))
            .await
            .status,
        400
    );
    let (posts, _) = walk(&app, &alice, "/api/v1/posts", 100).await;
    assert!(posts.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn the_feed_pages_through_45_posts_newest_first_without_gaps() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let mut created = Vec::new();
    for i in 0..45 {
        let author = if i % 3 == 0 { &bob } else { &alice };
        let tags: &[&str] = if i % 5 == 0 { &["five"] } else { &[] };
        created.push(
            new_post(&app, author, &format!("post {i}"), tags).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (items, sizes) = walk(&app, &alice, "/api/v1/posts", 20).await;
    assert_eq!(sizes, vec![20, 20, 5]);
    let listed = ids(&items);
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(listed, expected, "newest first, each post once");

    let (by_bob, _) = walk(
        &app,
        &alice,
        &format!("/api/v1/posts?authorId={}", bob.id),
        4,
    )
    .await;
    assert_eq!(by_bob.len(), 15);
    assert!(by_bob.iter().all(|p| p["authorId"] == bob.id.as_str()));
    let (tagged, _) = walk(&app, &alice, "/api/v1/posts?tag=five", 2).await;
    assert_eq!(
        ids(&tagged),
        expected
            .iter()
            .enumerate()
            .filter(|(i, _)| (44 - i) % 5 == 0)
            .map(|(_, id)| id.clone())
            .collect::<Vec<_>>()
    );
    let (tagged_by_bob, _) = walk(
        &app,
        &alice,
        &format!("/api/v1/posts?tag=five&authorId={}", bob.id),
        1,
    )
    .await;
    assert_eq!(tagged_by_bob.len(), 3, "posts 0, 15 and 30");
}

#[tokio::test]
async fn bad_cursors_and_query_values_are_400() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    for i in 0..3 {
        new_post(&app, &alice, &format!("p{i}"), &["t"]).await;
    }
    let page = app
        .get_as("/api/v1/posts?limit=1", &alice.access_token)
        .await;
    let cursor = page.body["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for path in [
        format!("/api/v1/posts?cursor={tampered}"),
        format!("/api/v1/posts?tag=t&cursor={cursor}"),
        format!("/api/v1/posts?authorId={}&cursor={cursor}", alice.id),
        "/api/v1/posts?cursor=%00%FF".to_owned(),
        "/api/v1/posts?limit=0".to_owned(),
        "/api/v1/posts?limit=1000000".to_owned(),
        "/api/v1/posts?limit=-5".to_owned(),
        "/api/v1/posts?authorId=nope".to_owned(),
        "/api/v1/posts?tag=NotATag".to_owned(),
    ] {
        let response = app.get_as(&path, &alice.access_token).await;
        assert_envelope(&response, 400, Some("BAD_REQUEST"));
    }
}

#[tokio::test]
async fn only_the_owner_edits_and_a_stale_version_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let post = new_post(&app, &alice, "first", &["old"]).await;
    let path = format!("/api/v1/posts/{}", post["id"].as_str().unwrap());

    let response = app
        .send_as(
            "PATCH",
            &path,
            &bob.access_token,
            Some(json!({"title": "mine now", "version": 1})),
        )
        .await;
    assert_envelope(&response, 403, Some("FORBIDDEN"));

    let response = app
        .send_as(
            "PATCH",
            &path,
            &alice.access_token,
            Some(json!({"title": "second", "tags": ["new"], "version": 1})),
        )
        .await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(body["data"]["title"], "second");
    assert_eq!(body["data"]["body"], "Some body", "untouched fields stay");

    let stale = app
        .send_as(
            "PATCH",
            &path,
            &alice.access_token,
            Some(json!({"title": "third", "version": 1})),
        )
        .await;
    assert_envelope(&stale, 409, Some("CONFLICT"));
    let now = app.get_as(&path, &alice.access_token).await;
    assert_eq!(now.body["data"]["title"], "second");
    assert_eq!(now.body["data"]["version"], 2);

    let (old_tag, _) = walk(&app, &alice, "/api/v1/posts?tag=old", 10).await;
    let (new_tag, _) = walk(&app, &alice, "/api/v1/posts?tag=new", 10).await;
    assert!(old_tag.is_empty());
    assert_eq!(new_tag.len(), 1);

    let missing = app
        .send_as(
            "PATCH",
            &path,
            &alice.access_token,
            Some(json!({"title": "x"})),
        )
        .await;
    let body = assert_envelope(&missing, 422, Some("VALIDATION_ERROR"));
    assert_eq!(body["errors"][0]["field"], "version");
}

#[tokio::test]
async fn owners_and_admins_delete_posts_others_cannot() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let boss = app.signed_up_user().await;
    app.promote_to_admin(&boss.id).await;

    let first = new_post(&app, &alice, "first", &["gone"]).await;
    let path = format!("/api/v1/posts/{}", first["id"].as_str().unwrap());
    assert_envelope(
        &app.send_as("DELETE", &path, &bob.access_token, None).await,
        403,
        Some("FORBIDDEN"),
    );
    assert_envelope(
        &app.send_as("DELETE", &path, &alice.access_token, None)
            .await,
        200,
        None,
    );
    assert_envelope(
        &app.get_as(&path, &alice.access_token).await,
        404,
        Some("NOT_FOUND"),
    );
    assert_envelope(
        &app.send_as("DELETE", &path, &alice.access_token, None)
            .await,
        404,
        Some("NOT_FOUND"),
    );
    let (tagged, _) = walk(&app, &alice, "/api/v1/posts?tag=gone", 10).await;
    assert!(tagged.is_empty(), "tag references go with the post");

    let second = new_post(&app, &alice, "second", &[]).await;
    let path = format!("/api/v1/posts/{}", second["id"].as_str().unwrap());
    assert_envelope(
        &app.send_as("DELETE", &path, &boss.access_token, None).await,
        200,
        None,
    );
}

async fn comment(app: &TestApp, session: &Session, post_id: &str, body: &str) -> TestResponse {
    app.send_as(
        "POST",
        &format!("/api/v1/posts/{post_id}/comments"),
        &session.access_token,
        Some(json!({"body": body})),
    )
    .await
}

async fn notifications_of(
    app: &TestApp,
    user_id: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    app.dynamodb
        .query()
        .table_name(&app.storage.table_name)
        .key_condition_expression("pk = :pk AND begins_with(sk, :n)")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(model::keys::user_pk(&user_id.parse().unwrap())),
        )
        .expression_attribute_values(
            ":n",
            AttributeValue::S(model::keys::NOTIFICATION_SK_PREFIX.into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[tokio::test]
async fn comments_count_notify_and_list_oldest_first() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let post = new_post(&app, &alice, "discuss", &[]).await;
    let post_id = post["id"].as_str().unwrap();

    let response = comment(&app, &bob, post_id, "first!").await;
    let body = assert_envelope(&response, 201, None);
    assert_eq!(body["data"]["postId"], post_id);
    assert_eq!(body["data"]["authorId"], bob.id);
    assert_eq!(body["data"]["author"]["id"], bob.id);
    assert_eq!(body["data"]["body"], "first!");

    let notifications = notifications_of(&app, &alice.id).await;
    assert_eq!(notifications.len(), 1, "the post's author is notified");
    assert_eq!(notifications[0]["type"].as_s().unwrap(), "comment");
    assert_eq!(notifications[0]["read"].as_bool().unwrap(), &false);
    comment(&app, &alice, post_id, "own post, no notification").await;
    assert_eq!(notifications_of(&app, &alice.id).await.len(), 1);

    for i in 0..3 {
        comment(&app, &bob, post_id, &format!("c{i}")).await;
    }
    let (comments, sizes) = walk(
        &app,
        &alice,
        &format!("/api/v1/posts/{post_id}/comments"),
        2,
    )
    .await;
    assert_eq!(sizes, vec![2, 2, 1]);
    let bodies: Vec<&str> = comments
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec!["first!", "own post, no notification", "c0", "c1", "c2"]
    );
    let post = app
        .get_as(&format!("/api/v1/posts/{post_id}"), &alice.access_token)
        .await;
    assert_eq!(post.body["data"]["commentCount"], 5);

    for (body, code) in [
        (json!({}), "REQUIRED"),
        (json!({"body": "x".repeat(5001)}), "TOO_LONG"),
        (json!({"body": "   "}), "TOO_SHORT"),
    ] {
        let response = app
            .send_as(
                "POST",
                &format!("/api/v1/posts/{post_id}/comments"),
                &bob.access_token,
                Some(body),
            )
            .await;
        let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(body["errors"][0]["code"], code);
    }
    assert_envelope(
        &comment(&app, &bob, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "hello?").await,
        404,
        Some("NOT_FOUND"),
    );
    let response = app
        .get_as(
            "/api/v1/posts/01ARZ3NDEKTSV4RRFFQ69G5FAV/comments",
            &bob.access_token,
        )
        .await;
    assert_envelope(&response, 404, Some("NOT_FOUND"));
}

#[tokio::test]
async fn thirty_concurrent_comments_count_thirty() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let post = new_post(&app, &alice, "hot", &[]).await;
    let post_id = post["id"].as_str().unwrap();
    let statuses = futures::future::join_all((0..30).map(|i| {
        let (app, bob) = (&app, &bob);
        async move {
            comment(app, bob, post_id, &format!("comment {i}"))
                .await
                .status
        }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let post = app
        .get_as(&format!("/api/v1/posts/{post_id}"), &alice.access_token)
        .await;
    assert_eq!(post.body["data"]["commentCount"], 30);
    let (comments, _) = walk(
        &app,
        &alice,
        &format!("/api/v1/posts/{post_id}/comments"),
        100,
    )
    .await;
    assert_eq!(comments.len(), 30);
    assert_eq!(notifications_of(&app, &alice.id).await.len(), 30);
}

#[tokio::test]
async fn who_may_delete_a_comment() {
    let app = TestApp::spawn().await;
    let owner = app.signed_up_user().await;
    let writer = app.signed_up_user().await;
    let stranger = app.signed_up_user().await;
    let boss = app.signed_up_user().await;
    app.promote_to_admin(&boss.id).await;
    let post = new_post(&app, &owner, "moderated", &[]).await;
    let post_id = post["id"].as_str().unwrap();
    let mut comment_ids = Vec::new();
    for _ in 0..3 {
        comment_ids.push(
            comment(&app, &writer, post_id, "hm").await.body["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let path = |id: &str| format!("/api/v1/posts/{post_id}/comments/{id}");
    assert_envelope(
        &app.send_as(
            "DELETE",
            &path(&comment_ids[0]),
            &stranger.access_token,
            None,
        )
        .await,
        403,
        Some("FORBIDDEN"),
    );
    for (who, id) in [
        (&writer, &comment_ids[0]),
        (&owner, &comment_ids[1]),
        (&boss, &comment_ids[2]),
    ] {
        assert_envelope(
            &app.send_as("DELETE", &path(id), &who.access_token, None)
                .await,
            200,
            None,
        );
    }
    assert_envelope(
        &app.send_as("DELETE", &path(&comment_ids[0]), &writer.access_token, None)
            .await,
        404,
        Some("NOT_FOUND"),
    );
    let post = app
        .get_as(&format!("/api/v1/posts/{post_id}"), &owner.access_token)
        .await;
    assert_eq!(post.body["data"]["commentCount"], 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bearer = format!("Bearer {}", alice.access_token);
    let body = json!({"title": "once", "body": "only once"});
    let send = |body: Value, key: &'static str| {
        let bearer = bearer.clone();
        let app = &app;
        async move {
            app.request(
                "POST",
                "/api/v1/posts",
                Some(&body),
                &[("Authorization", &bearer), ("Idempotency-Key", key)],
            )
            .await
        }
    };
    let first = send(body.clone(), "key-1").await;
    let again = send(body.clone(), "key-1").await;
    assert_envelope(&first, 201, None);
    assert_envelope(&again, 201, None);
    assert_eq!(first.body["data"]["id"], again.body["data"]["id"]);
    let other = send(json!({"title": "different", "body": "x"}), "key-1").await;
    assert_envelope(&other, 409, Some("CONFLICT"));

    let concurrent = futures::future::join_all(
        (0..5).map(|_| send(json!({"title": "race", "body": "r"}), "key-2")),
    )
    .await;
    let race_ids: HashSet<String> = concurrent
        .iter()
        .map(|r| r.body["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(concurrent.iter().all(|r| r.status == 201));
    assert_eq!(race_ids.len(), 1, "one post for one key");

    let (posts, _) = walk(&app, &alice, "/api/v1/posts", 100).await;
    assert_eq!(posts.len(), 2, "{:?}", ids(&posts));

    let post_id = first.body["data"]["id"].as_str().unwrap().to_owned();
    let comment_path = format!("/api/v1/posts/{post_id}/comments");
    let c1 = app
        .request(
            "POST",
            &comment_path,
            Some(&json!({"body": "hi"})),
            &[("Authorization", &bearer), ("Idempotency-Key", "c-1")],
        )
        .await;
    let c2 = app
        .request(
            "POST",
            &comment_path,
            Some(&json!({"body": "hi"})),
            &[("Authorization", &bearer), ("Idempotency-Key", "c-1")],
        )
        .await;
    assert_eq!(c1.body["data"]["id"], c2.body["data"]["id"]);
    let post = app
        .get_as(&format!("/api/v1/posts/{post_id}"), &alice.access_token)
        .await;
    assert_eq!(post.body["data"]["commentCount"], 1);

    let long_key = "k".repeat(129);
    let bad = app
        .request(
            "POST",
            "/api/v1/posts",
            Some(&body),
            &[("Authorization", &bearer), ("Idempotency-Key", &long_key)],
        )
        .await;
    assert_envelope(&bad, 400, Some("BAD_REQUEST"));
}

/// A deleted account keeps its posts and comments, shown under the
/// placeholder author `{id, name: "Deleted user"}`: no name, no avatar, no
/// creation time, wherever a post or comment is read.
#[tokio::test]
async fn a_deleted_authors_posts_and_comments_show_the_placeholder() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.signed_up_user().await, app.signed_up_user().await);
    let avatar = ready_upload(&app, &alice, "avatar").await;
    let patched = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"avatarUploadId": avatar})),
        )
        .await;
    assert_envelope(&patched, 200, None);
    let post = new_post(&app, &alice, "Before I go", &[]).await;
    let post_path = format!("/api/v1/posts/{}", post["id"].as_str().unwrap());
    let comments_path = format!("{post_path}/comments");
    let bobs_post = new_post(&app, &bob, "Bob's", &[]).await;
    let bobs_comments = format!(
        "/api/v1/posts/{}/comments",
        bobs_post["id"].as_str().unwrap()
    );
    for path in [&comments_path, &bobs_comments] {
        let comment = app
            .send_as(
                "POST",
                path,
                &alice.access_token,
                Some(json!({"body": "Bye"})),
            )
            .await;
        assert_envelope(&comment, 201, None);
    }
    let shown = app.get_as(&post_path, &bob.access_token).await;
    let author = &shown.body["data"]["author"];
    assert_ne!(author["name"], "Deleted user", "{author}");
    assert!(author["avatarUrl"].is_string() && author["createdAt"].is_string());

    let deleted = app
        .send_as("DELETE", "/api/v1/users/me", &alice.access_token, None)
        .await;
    assert_envelope(&deleted, 200, None);

    let placeholder = json!({"id": alice.id, "name": "Deleted user"});
    let read = app.get_as(&post_path, &bob.access_token).await;
    let read = assert_envelope(&read, 200, None);
    assert_eq!(read["data"]["author"], placeholder);
    assert_eq!(read["data"]["authorId"], alice.id);
    let feed = app.get_as("/api/v1/posts", &bob.access_token).await;
    let feed = assert_envelope(&feed, 200, None);
    let authors: Vec<&Value> = feed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|post| &post["author"])
        .collect();
    assert_eq!(authors.len(), 2, "{feed:?}");
    for author in authors {
        if author["id"] == alice.id {
            assert_eq!(*author, placeholder);
        } else {
            assert_eq!(author["id"], bob.id, "the others still show");
            assert_ne!(author["name"], "Deleted user");
        }
    }
    let by_alice = app
        .get_as(
            &format!("/api/v1/posts?authorId={}", alice.id),
            &bob.access_token,
        )
        .await;
    assert_eq!(by_alice.body["data"][0]["author"], placeholder);
    for path in [&comments_path, &bobs_comments] {
        let listed = app.get_as(path, &bob.access_token).await;
        let listed = assert_envelope(&listed, 200, None);
        assert_eq!(listed["data"][0]["author"], placeholder, "{path}");
        assert_eq!(listed["data"][0]["body"], "Bye", "the content stays");
    }
}
