//! A request refused by the default rate limit changes nothing, on every
//! route that can write (docs/DATA_MODEL.md §3, R).
//!
//! Every route now starts alongside its rate-limit hit, so that its reads
//! and the session check share the hit's round trip; only its writes wait
//! for the verdict (`platform::admission`). This is the check that none of
//! them writes early: every writing route of template.yaml is called, over
//! the limit, with a request that would change something if let through,
//! and the table must be item for item as it was (the rate counters apart,
//! which count refused requests by design, except login's failure slot,
//! which must be given back).

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use model::keys;
use serde_json::{Value, json};
use tests::{PASSWORD, TestApp, assert_envelope, unique_email, workspace_root};

/// How many of the failure slots of login for `email` are taken now.
async fn failure_slots_taken(app: &TestApp, email: &str) -> u64 {
    let page = app
        .dynamodb
        .query()
        .table_name(&app.storage.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(keys::rate_pk(&format!("login:failed:{email}"))),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    page.items
        .unwrap_or_default()
        .iter()
        .filter_map(|item| match item.get("count") {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        })
        .sum()
}

fn data_id(response: &tests::TestResponse) -> String {
    assert!(
        (200..300).contains(&response.status),
        "{}: {:#}",
        response.status,
        response.body
    );
    response.body["data"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

#[tokio::test]
async fn a_write_refused_by_the_limit_changes_nothing_on_any_route() {
    // The fixtures are made through an app with the default limits.
    let setup = TestApp::spawn().await;
    let alice = setup.signed_up_user().await;
    let bob = setup.signed_up_user().await;
    setup.promote_to_admin(&alice.id).await;
    let alice = setup.logged_in(&alice.email, PASSWORD).await;
    let post = data_id(
        &setup
            .send_as(
                "POST",
                "/api/v1/posts",
                &alice.access_token,
                Some(json!({"title": "Kept", "body": "As it is", "tags": ["kept"]})),
            )
            .await,
    );
    let comment = data_id(
        &setup
            .send_as(
                "POST",
                &format!("/api/v1/posts/{post}/comments"),
                &bob.access_token,
                Some(json!({"body": "A comment"})),
            )
            .await,
    );
    let notifications = setup
        .get_as("/api/v1/notifications", &alice.access_token)
        .await;
    let notification = notifications.body["data"][0]["id"]
        .as_str()
        .expect("the comment's notification")
        .to_owned();
    let upload = setup.uploaded(&alice.access_token, vec![7; 64]).await;
    let pending = setup
        .create_upload(
            &alice.access_token,
            json!({"filename": "b.png", "contentType": "image/png", "size": 64, "purpose": "avatar"}),
        )
        .await;
    let verify_token = setup
        .emails_to(&bob.email)
        .await
        .first()
        .expect("bob's verification email")
        .token();
    let reset_token = setup.requested_reset_token(&bob.email).await;

    // The same table behind a limit of one request per user (and per IP)
    // an hour: one request each uses it up.
    let limited = TestApp::spawn_with(&[
        ("TABLE_NAME", &setup.storage.table_name),
        ("BUCKET_NAME", &setup.storage.bucket_name),
        ("RATE_LIMIT_DEFAULT", "1/3600"),
    ])
    .await;
    for token in [&alice.access_token, &bob.access_token] {
        assert_eq!(limited.get_as("/api/v1/users/me", token).await.status, 200);
    }
    assert_eq!(limited.get("/api/v1/posts").await.status, 401);

    let a = &alice.access_token;
    let b = &bob.access_token;
    let new_email = unique_email();
    let upload_id = upload.id.clone();
    let pending_id = pending.id.clone();
    // (method, path as template.yaml routes it, path called, token, body)
    let calls: Vec<(&str, &str, String, Option<&str>, Value)> = vec![
        (
            "POST",
            "/api/v1/auth/register",
            "/api/v1/auth/register".into(),
            None,
            json!({"name": "New", "email": new_email, "password": PASSWORD}),
        ),
        (
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login".into(),
            None,
            json!({"email": alice.email, "password": PASSWORD}),
        ),
        (
            "POST",
            "/api/v1/auth/refresh",
            "/api/v1/auth/refresh".into(),
            None,
            json!({"refreshToken": alice.refresh_token}),
        ),
        (
            "POST",
            "/api/v1/auth/logout",
            "/api/v1/auth/logout".into(),
            Some(a),
            json!({}),
        ),
        (
            "POST",
            "/api/v1/auth/verify-email",
            "/api/v1/auth/verify-email".into(),
            None,
            json!({"token": verify_token}),
        ),
        (
            "POST",
            "/api/v1/auth/forgot-password",
            "/api/v1/auth/forgot-password".into(),
            None,
            json!({"email": alice.email}),
        ),
        (
            "POST",
            "/api/v1/auth/reset-password",
            "/api/v1/auth/reset-password".into(),
            None,
            json!({"token": reset_token, "password": "another-horse-43"}),
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            "/api/v1/users/me".into(),
            Some(a),
            json!({"name": "Renamed", "avatarUploadId": upload_id}),
        ),
        (
            "DELETE",
            "/api/v1/users/me",
            "/api/v1/users/me".into(),
            Some(b),
            json!(null),
        ),
        (
            "PATCH",
            "/api/v1/users/{id}",
            format!("/api/v1/users/{}", bob.id),
            Some(a),
            json!({"status": "suspended"}),
        ),
        (
            "DELETE",
            "/api/v1/users/{id}",
            format!("/api/v1/users/{}", bob.id),
            Some(a),
            json!(null),
        ),
        (
            "POST",
            "/api/v1/posts",
            "/api/v1/posts".into(),
            Some(a),
            json!({"title": "Refused", "body": "Never stored"}),
        ),
        (
            "PATCH",
            "/api/v1/posts/{id}",
            format!("/api/v1/posts/{post}"),
            Some(a),
            json!({"title": "Changed", "version": 1}),
        ),
        (
            "DELETE",
            "/api/v1/posts/{id}",
            format!("/api/v1/posts/{post}"),
            Some(a),
            json!(null),
        ),
        (
            "POST",
            "/api/v1/posts/{id}/comments",
            format!("/api/v1/posts/{post}/comments"),
            Some(b),
            json!({"body": "Never stored"}),
        ),
        (
            "DELETE",
            "/api/v1/posts/{id}/comments/{commentId}",
            format!("/api/v1/posts/{post}/comments/{comment}"),
            Some(a),
            json!(null),
        ),
        (
            "PATCH",
            "/api/v1/notifications/{id}/read",
            format!("/api/v1/notifications/{notification}/read"),
            Some(a),
            json!(null),
        ),
        (
            "POST",
            "/api/v1/notifications/read-all",
            "/api/v1/notifications/read-all".into(),
            Some(a),
            json!(null),
        ),
        (
            "DELETE",
            "/api/v1/notifications/{id}",
            format!("/api/v1/notifications/{notification}"),
            Some(a),
            json!(null),
        ),
        (
            "POST",
            "/api/v1/uploads",
            "/api/v1/uploads".into(),
            Some(a),
            json!({"filename": "c.png", "contentType": "image/png", "size": 64, "purpose": "avatar"}),
        ),
        (
            "POST",
            "/api/v1/uploads/{id}/complete",
            format!("/api/v1/uploads/{pending_id}/complete"),
            Some(a),
            json!(null),
        ),
    ];

    // Every operation of the API document that can write is in the list
    // above.
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("docs/openapi.json")).expect("openapi.json"),
    )
    .expect("the API document");
    let writing: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("operations")
                .keys()
                .filter(|method| {
                    !matches!(method.as_str(), "get" | "head" | "options" | "parameters")
                })
                .map(|method| (method.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let called: BTreeSet<(String, String)> = calls
        .iter()
        .map(|(method, routed, ..)| ((*method).to_owned(), (*routed).to_owned()))
        .collect();
    assert_eq!(writing, called, "every writing route is called");

    let before = setup.snapshot().await;
    let slots_before = failure_slots_taken(&setup, &alice.email).await;
    for (method, _, path, token, body) in &calls {
        let body = (!body.is_null()).then_some(body);
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|bearer| ("Authorization", bearer.as_str()))
            .collect();
        let response = limited.request(method, path, body, &headers).await;
        assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
        setup
            .assert_unchanged(&before, &format!("{method} {path}"))
            .await;
    }
    assert_eq!(
        failure_slots_taken(&setup, &alice.email).await,
        slots_before,
        "a refused login keeps no failure slot"
    );
    // And what was refused still works where the limit allows it.
    assert_eq!(setup.logged_in(&alice.email, PASSWORD).await.id, alice.id);
}
