//! Notifications in docs/API.md through the local gateway. Notifications
//! are made the real way: another user comments on the recipient's post.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use tests::{Session, TestApp, TestResponse, assert_envelope};

const LIST: &str = "/api/v1/notifications";
const UNREAD: &str = "/api/v1/notifications?unread=true";
const COUNT: &str = "/api/v1/notifications/unread-count";
const READ_ALL: &str = "/api/v1/notifications/read-all";

/// A post by `author`; its id.
async fn new_post(app: &TestApp, author: &Session) -> String {
    let response = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &author.access_token,
            Some(json!({"title": "Notify me", "body": "Some body", "tags": []})),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    response.body["data"]["id"].as_str().unwrap().to_owned()
}

/// `commenter` comments on `post_id`; the comment's id.
async fn comment(app: &TestApp, commenter: &Session, post_id: &str, body: &str) -> String {
    let response = app
        .send_as(
            "POST",
            &format!("/api/v1/posts/{post_id}/comments"),
            &commenter.access_token,
            Some(json!({"body": body})),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    response.body["data"]["id"].as_str().unwrap().to_owned()
}

/// `n` notifications for `recipient`, one per comment by `commenter` on one
/// of the recipient's posts; the post id and the comment ids, oldest first.
async fn notify(
    app: &TestApp,
    recipient: &Session,
    commenter: &Session,
    n: usize,
) -> (String, Vec<String>) {
    let post_id = new_post(app, recipient).await;
    let mut comments = Vec::with_capacity(n);
    for i in 0..n {
        comments.push(comment(app, commenter, &post_id, &format!("comment {i}")).await);
    }
    (post_id, comments)
}

/// The data of a successful list request.
async fn list(app: &TestApp, session: &Session, path: &str) -> Vec<Value> {
    let response = app.get_as(path, &session.access_token).await;
    let body = assert_envelope(&response, 200, None);
    body["data"].as_array().unwrap().clone()
}

async fn unread_count(app: &TestApp, session: &Session) -> u64 {
    let response = app.get_as(COUNT, &session.access_token).await;
    let body = assert_envelope(&response, 200, None);
    body["data"]["count"].as_u64().unwrap()
}

async fn mark_read(app: &TestApp, session: &Session, id: &str) -> TestResponse {
    app.send_as(
        "PATCH",
        &format!("/api/v1/notifications/{id}/read"),
        &session.access_token,
        None,
    )
    .await
}

async fn read_all(app: &TestApp, session: &Session) -> u64 {
    let response = app
        .send_as("POST", READ_ALL, &session.access_token, None)
        .await;
    let body = assert_envelope(&response, 200, None);
    body["data"]["updated"].as_u64().unwrap()
}

async fn delete(app: &TestApp, session: &Session, id: &str) -> TestResponse {
    app.send_as(
        "DELETE",
        &format!("/api/v1/notifications/{id}"),
        &session.access_token,
        None,
    )
    .await
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn comment_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["data"]["commentId"].as_str().unwrap().to_owned())
        .collect()
}

fn newest_first(comments: &[String]) -> Vec<String> {
    comments.iter().rev().cloned().collect()
}

/// One page of `path` at `limit`, resuming at `cursor`: the envelope.
async fn page(
    app: &TestApp,
    session: &Session,
    path: &str,
    limit: u32,
    cursor: Option<&str>,
) -> TestResponse {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = match cursor {
        Some(c) => format!("{path}{separator}limit={limit}&cursor={c}"),
        None => format!("{path}{separator}limit={limit}"),
    };
    app.get_as(&url, &session.access_token).await
}

/// Every item of a paginated list, following `nextCursor` to the end, and
/// the size of each page.
async fn walk(
    app: &TestApp,
    session: &Session,
    path: &str,
    limit: u32,
) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let response = page(app, session, path, limit, cursor.as_deref()).await;
        let body = assert_envelope(&response, 200, None);
        let data = body["data"].as_array().unwrap().clone();
        assert_eq!(body["pagination"]["limit"], limit);
        sizes.push(data.len());
        items.extend(data);
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

#[tokio::test]
async fn notifications_are_listed_newest_first_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let (post_id, comments) = notify(&app, &alice, &bob, 2).await;

    let response = app.get_as(LIST, &alice.access_token).await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(
        body["pagination"],
        json!({"limit": 20, "hasNext": false}),
        "one page, no cursor"
    );
    let items = body["data"].as_array().unwrap();
    assert_eq!(comment_ids(items), newest_first(&comments));
    for item in items {
        let keys: HashSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["id", "type", "title", "body", "data", "read", "createdAt"]),
            "{item:#}"
        );
        assert_eq!(item["id"].as_str().unwrap().len(), 26);
        assert_eq!(item["type"], "comment");
        assert_eq!(item["read"], false);
        assert_eq!(item["data"]["postId"], post_id);
        assert_eq!(item["data"]["actorId"], bob.id);
        assert!(item["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(item["body"].as_str().unwrap().contains("comment"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(item["createdAt"].as_str().unwrap()).is_ok(),
            "{item:#}"
        );
    }
    assert!(
        list(&app, &bob, LIST).await.is_empty(),
        "Bob does not see Alice's notifications"
    );
}

#[tokio::test]
async fn pages_walk_both_lists_to_the_end_without_duplicates() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let (_, comments) = notify(&app, &alice, &bob, 7).await;

    let (items, sizes) = walk(&app, &alice, LIST, 3).await;
    assert_eq!(sizes, vec![3, 3, 1], "exact pages, the last one not empty");
    assert_eq!(comment_ids(&items), newest_first(&comments));
    assert_eq!(ids(&items).into_iter().collect::<HashSet<_>>().len(), 7);

    let (unread, sizes) = walk(&app, &alice, UNREAD, 3).await;
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(ids(&unread), ids(&items), "all are unread, same order");

    // Exactly `limit` left: no phantom empty last page.
    let (items, sizes) = walk(&app, &alice, LIST, 7).await;
    assert_eq!((items.len(), sizes), (7, vec![7]));

    // Reading the first unread page before asking for the next one takes
    // those out of the index; the cursor still resumes right after them.
    let first = page(&app, &alice, UNREAD, 3, None).await;
    let body = assert_envelope(&first, 200, None);
    let cursor = body["pagination"]["nextCursor"].as_str().unwrap();
    let first = ids(body["data"].as_array().unwrap());
    for id in &first {
        assert_envelope(&mark_read(&app, &alice, id).await, 200, None);
    }
    let second = page(&app, &alice, UNREAD, 3, Some(cursor)).await;
    let body = assert_envelope(&second, 200, None);
    assert_eq!(
        ids(body["data"].as_array().unwrap()),
        ids(&unread[3..6]),
        "the next three, none of the first page again"
    );
}

#[tokio::test]
async fn cursors_belong_to_one_list_and_cannot_be_forged() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    notify(&app, &alice, &bob, 3).await;
    notify(&app, &bob, &alice, 3).await;

    let first = page(&app, &alice, LIST, 1, None).await;
    let all_cursor = assert_envelope(&first, 200, None)["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = page(&app, &alice, UNREAD, 1, None).await;
    let unread_cursor = assert_envelope(&first, 200, None)["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();

    // Sanity: each cursor works on its own list.
    assert_envelope(
        &page(&app, &alice, LIST, 1, Some(&all_cursor)).await,
        200,
        None,
    );
    assert_envelope(
        &page(&app, &alice, UNREAD, 1, Some(&unread_cursor)).await,
        200,
        None,
    );

    let mut tampered = all_cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (session, path, cursor) in [
        (&alice, LIST, unread_cursor.as_str()),
        (&alice, UNREAD, all_cursor.as_str()),
        (&alice, LIST, tampered.as_str()),
        (&alice, LIST, "junk"),
        // Another user's cursor is another list, not a start key for theirs.
        (&bob, LIST, all_cursor.as_str()),
        (&bob, UNREAD, unread_cursor.as_str()),
    ] {
        assert_envelope(
            &page(&app, session, path, 1, Some(cursor)).await,
            400,
            Some("BAD_REQUEST"),
        );
    }
}

#[tokio::test]
async fn reading_one_takes_it_out_of_the_unread_list_and_count() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    notify(&app, &alice, &bob, 3).await;
    assert_eq!(unread_count(&app, &alice).await, 3);
    assert_eq!(unread_count(&app, &bob).await, 0);

    let all = ids(&list(&app, &alice, LIST).await);
    let target = &all[1];
    let response = mark_read(&app, &alice, target).await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["id"], target.as_str());
    assert_eq!(body["data"]["read"], true);
    assert_eq!(body["data"]["type"], "comment");
    assert!(
        body["data"].get("gsi2pk").is_none(),
        "no storage detail leaks"
    );

    assert_eq!(unread_count(&app, &alice).await, 2);
    let unread = ids(&list(&app, &alice, UNREAD).await);
    assert_eq!(unread, vec![all[0].clone(), all[2].clone()]);
    let now = list(&app, &alice, "/api/v1/notifications?unread=false").await;
    assert_eq!(ids(&now), all, "unread=false lists all, read ones too");
    let reads: Vec<&Value> = now.iter().map(|n| &n["read"]).collect();
    assert_eq!(reads, vec![&json!(false), &json!(true), &json!(false)]);

    // Again: still 200, still read, nothing else changes.
    let again = mark_read(&app, &alice, target).await;
    assert_eq!(assert_envelope(&again, 200, None)["data"]["read"], true);
    assert_eq!(unread_count(&app, &alice).await, 2);

    assert_envelope(
        &app.get_as("/api/v1/notifications?unread=maybe", &alice.access_token)
            .await,
        400,
        Some("BAD_REQUEST"),
    );
}

#[tokio::test]
async fn read_all_marks_each_unread_one_once() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let (post_id, _) = notify(&app, &alice, &bob, 4).await;
    notify(&app, &bob, &alice, 2).await;
    let first = ids(&list(&app, &alice, LIST).await)[0].clone();
    assert_envelope(&mark_read(&app, &alice, &first).await, 200, None);

    assert_eq!(read_all(&app, &alice).await, 3, "only the unread ones");
    assert_eq!(unread_count(&app, &alice).await, 0);
    assert!(list(&app, &alice, UNREAD).await.is_empty());
    let all = list(&app, &alice, LIST).await;
    assert_eq!(all.len(), 4, "read, not deleted");
    assert!(all.iter().all(|n| n["read"] == true));
    assert_eq!(read_all(&app, &alice).await, 0, "nothing left to read");
    assert_eq!(unread_count(&app, &bob).await, 2, "Bob's are untouched");

    comment(&app, &bob, &post_id, "one more").await;
    assert_eq!(unread_count(&app, &alice).await, 1);
    assert_eq!(read_all(&app, &alice).await, 1);
    assert_eq!(unread_count(&app, &alice).await, 0);
}

#[tokio::test]
async fn a_deleted_notification_is_gone() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    notify(&app, &alice, &bob, 2).await;
    let all = ids(&list(&app, &alice, LIST).await);

    let response = delete(&app, &alice, &all[0]).await;
    let body = assert_envelope(&response, 200, None);
    assert!(!body.contains_key("data"));
    assert_eq!(ids(&list(&app, &alice, LIST).await), vec![all[1].clone()]);
    assert_eq!(unread_count(&app, &alice).await, 1, "it was unread");

    assert_envelope(&delete(&app, &alice, &all[0]).await, 404, Some("NOT_FOUND"));
    assert_envelope(
        &mark_read(&app, &alice, &all[0]).await,
        404,
        Some("NOT_FOUND"),
    );
    // Marking a deleted one read must not have written a stub item back.
    let stub = app
        .dynamodb
        .get_item()
        .table_name(&app.storage.table_name)
        .key(
            "pk",
            AttributeValue::S(model::keys::user_pk(&alice.id.parse().unwrap())),
        )
        .key(
            "sk",
            AttributeValue::S(model::keys::notification_sk(&all[0].parse().unwrap())),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(stub.item.is_none(), "{:?}", stub.item);
    assert_eq!(read_all(&app, &alice).await, 1);
}

#[tokio::test]
async fn another_users_notification_is_not_found() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    notify(&app, &alice, &bob, 1).await;
    let alices = ids(&list(&app, &alice, LIST).await)[0].clone();

    assert_envelope(
        &mark_read(&app, &bob, &alices).await,
        404,
        Some("NOT_FOUND"),
    );
    assert_envelope(&delete(&app, &bob, &alices).await, 404, Some("NOT_FOUND"));
    assert_eq!(read_all(&app, &bob).await, 0);
    assert!(list(&app, &bob, LIST).await.is_empty());
    assert!(list(&app, &bob, UNREAD).await.is_empty());

    let still = list(&app, &alice, LIST).await;
    assert_eq!(ids(&still), vec![alices.clone()], "not deleted by Bob");
    assert_eq!(still[0]["read"], false, "not read by Bob");
    assert_eq!(unread_count(&app, &alice).await, 1);

    for missing in ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", &alices[..25]] {
        assert_envelope(
            &mark_read(&app, &alice, missing).await,
            404,
            Some("NOT_FOUND"),
        );
        assert_envelope(&delete(&app, &alice, missing).await, 404, Some("NOT_FOUND"));
    }
}

#[tokio::test]
async fn every_route_needs_a_token() {
    let app = TestApp::spawn().await;
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for (method, path) in [
        ("GET", LIST.to_owned()),
        ("GET", UNREAD.to_owned()),
        ("GET", COUNT.to_owned()),
        ("POST", READ_ALL.to_owned()),
        ("PATCH", format!("/api/v1/notifications/{id}/read")),
        ("DELETE", format!("/api/v1/notifications/{id}")),
    ] {
        let response = app.request(method, &path, None, &[]).await;
        assert_envelope(&response, 401, Some("UNAUTHORIZED"));
        let response = app.send_as(method, &path, "not-a-token", None).await;
        assert_envelope(&response, 401, Some("UNAUTHORIZED"));
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_and_fixed_paths_are_never_ids() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for (method, path) in [
        ("GET", format!("/api/v1/notifications/{id}")),
        ("GET", format!("/api/v1/notifications/{id}/read")),
        ("POST", LIST.to_owned()),
        ("GET", READ_ALL.to_owned()),
        // Not a delete of a notification whose id is "read-all".
        ("DELETE", READ_ALL.to_owned()),
        ("DELETE", COUNT.to_owned()),
    ] {
        let response = app.send_as(method, &path, &alice.access_token, None).await;
        assert_envelope(&response, 405, Some("METHOD_NOT_ALLOWED"));
    }
}
