//! The WebSocket API (docs/API.md §7) and the stream worker end to end:
//! real WebSocket clients against the local gateway, the stream poller
//! feeding the worker, moto behind everything.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use infra::ws::WsSettings;
use serde_json::{Value, json};
use tests::{Session, TestApp, WsClient, assert_envelope};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(600);

async fn connect(app: &TestApp, session: &Session) -> WsClient {
    app.ws_connect(Some(&session.access_token))
        .await
        .expect("handshake accepted")
}

async fn join(client: &mut WsClient, room: &str) -> Value {
    client
        .send_json(json!({"action": "chat.join", "room": room}))
        .await;
    client.expect("chat.joined", WAIT).await
}

#[tokio::test]
async fn the_handshake_needs_a_live_token() {
    let app = TestApp::spawn().await;
    assert_eq!(app.ws_connect(None).await.err(), Some(401));
    assert_eq!(app.ws_connect(Some("not-a-jwt")).await.err(), Some(401));
    let session = app.signed_up_user().await;
    assert_eq!(
        app.ws_connect(Some(&session.refresh_token)).await.err(),
        Some(401),
        "a refresh token is not an access token"
    );
    app.send_as("POST", "/api/v1/auth/logout", &session.access_token, None)
        .await;
    assert_eq!(
        app.ws_connect(Some(&session.access_token)).await.err(),
        Some(401),
        "revoked session"
    );
}

#[tokio::test]
async fn ping_pong_and_bad_frames_keep_the_socket_open() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let mut client = connect(&app, &session).await;
    client.send_json(json!({"action": "ping"})).await;
    client.expect("pong", WAIT).await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".to_owned(), "BAD_REQUEST"),
        ("[1,2]".to_owned(), "BAD_REQUEST"),
        (json!({"action": "dance"}).to_string(), "UNKNOWN_ACTION"),
        (json!({"room": "x"}).to_string(), "UNKNOWN_ACTION"),
        (
            json!({"action": "chat.join", "room": "bad room!"}).to_string(),
            "VALIDATION_ERROR",
        ),
        (
            json!({"action": "chat.join"}).to_string(),
            "VALIDATION_ERROR",
        ),
        (
            json!({"action": "chat.send", "room": "r", "text": ""}).to_string(),
            "VALIDATION_ERROR",
        ),
        (
            json!({"action": "chat.send", "room": "r", "text": "x".repeat(2001)}).to_string(),
            "VALIDATION_ERROR",
        ),
        (
            json!({"action": "ping", "pad": "x".repeat(33 * 1024)}).to_string(),
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (frame, code) in cases {
        client.send_text(frame.clone()).await;
        let error = client.expect("error", WAIT).await;
        assert_eq!(error["code"], code, "{}", &frame[..frame.len().min(60)]);
        assert!(error["message"].is_string());
    }
    client.send_json(json!({"action": "ping"})).await;
    client.expect("pong", WAIT).await;
}

#[tokio::test]
async fn frames_over_the_rate_limit_get_an_error_frame() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_WS_FRAMES", "3/60")]).await;
    let session = app.signed_up_user().await;
    let mut client = connect(&app, &session).await;
    for _ in 0..4 {
        client.send_json(json!({"action": "ping"})).await;
    }
    let frames = client.drain(QUIET).await;
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    let limited = frames
        .iter()
        .filter(|f| f["code"] == "RATE_LIMIT_EXCEEDED")
        .count();
    assert_eq!((pongs, limited), (3, 1), "{frames:?}");
}

#[tokio::test]
async fn rooms_deliver_to_members_only() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.signed_up_user().await,
        app.signed_up_user().await,
        app.signed_up_user().await,
    );
    let (mut a, mut b, mut c) = (
        connect(&app, &alice).await,
        connect(&app, &bob).await,
        connect(&app, &carol).await,
    );

    let joined = join(&mut a, "general").await;
    assert_eq!(joined["room"], "general");
    assert_eq!(joined["user"]["id"], alice.id);
    join(&mut b, "general").await;
    let seen_by_alice = a.expect("chat.joined", WAIT).await;
    assert_eq!(seen_by_alice["user"]["id"], bob.id, "members see who joins");

    b.send_json(json!({"action": "chat.send", "room": "general", "text": "hello room"}))
        .await;
    for client in [&mut a, &mut b] {
        let message = client.expect("chat.message", WAIT).await;
        assert_eq!(message["room"], "general");
        assert_eq!(message["text"], "hello room");
        assert_eq!(message["from"]["id"], bob.id);
        assert!(message["from"].get("email").is_none());
        assert_eq!(message["id"].as_str().unwrap().len(), 26);
        assert!(message["sentAt"].as_str().unwrap().ends_with('Z'));
    }
    assert!(c.drain(QUIET).await.is_empty(), "carol is not in the room");

    c.send_json(json!({"action": "chat.send", "room": "general", "text": "let me in"}))
        .await;
    let error = c.expect("error", WAIT).await;
    assert_eq!(error["code"], "FORBIDDEN");
    assert!(
        a.drain(QUIET)
            .await
            .iter()
            .all(|f| f["type"] != "chat.message")
    );

    b.send_json(json!({"action": "chat.leave", "room": "general"}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send_json(json!({"action": "chat.send", "room": "general", "text": "anyone?"}))
        .await;
    a.expect("chat.message", WAIT).await;
    assert!(
        b.drain(QUIET)
            .await
            .iter()
            .all(|f| f["type"] != "chat.message"),
        "bob left"
    );
}

#[tokio::test]
async fn a_comment_reaches_the_authors_socket_and_inbox() {
    let app = TestApp::spawn_live(&[]).await;
    let alice = app.signed_up_user().await;
    let token = app.emails_to(&alice.email).await[0].token();
    app.post_json("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    let bob = app.signed_up_user().await;
    let mut a = connect(&app, &alice).await;

    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &alice.access_token,
            Some(json!({"title": "Live", "body": "b"})),
        )
        .await;
    let post_id = post.body["data"]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let comment = app
        .send_as(
            "POST",
            &format!("/api/v1/posts/{post_id}/comments"),
            &bob.access_token,
            Some(json!({"body": "nice one"})),
        )
        .await;
    assert_envelope(&comment, 201, None);
    let frame = a.expect("notification", Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    println!("comment -> socket delivery: {elapsed:?}");
    let notification = &frame["notification"];
    assert_eq!(notification["type"], "comment");
    assert_eq!(notification["read"], false);
    assert_eq!(notification["data"]["postId"], post_id);
    assert!(notification["body"].as_str().unwrap().contains("nice one"));

    let deadline = Instant::now() + Duration::from_secs(2);
    let email = loop {
        let inbox = app.emails_to(&alice.email).await;
        if let Some(email) = inbox.into_iter().find(|e| e.subject.contains("comment")) {
            break email;
        }
        assert!(Instant::now() < deadline, "no comment email within 2 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(email.body.contains("nice one"), "{}", email.body);
    assert!(email.body.contains(&post_id));
}

#[tokio::test]
async fn an_unverified_author_gets_the_socket_push_but_no_email() {
    let app = TestApp::spawn_live(&[]).await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let mut a = connect(&app, &alice).await;
    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &alice.access_token,
            Some(json!({"title": "Quiet", "body": "b"})),
        )
        .await;
    let post_id = post.body["data"]["id"].as_str().unwrap().to_owned();
    app.send_as(
        "POST",
        &format!("/api/v1/posts/{post_id}/comments"),
        &bob.access_token,
        Some(json!({"body": "hi"})),
    )
    .await;
    a.expect("notification", Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inbox = app.emails_to(&alice.email).await;
    assert!(
        inbox.iter().all(|e| !e.subject.contains("comment")),
        "{inbox:?}"
    );
}

async fn items_of_connection(app: &TestApp, user_id: &str) -> usize {
    let output = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .filter_expression(
            "entity IN (:a, :b, :c, :d, :e, :f) AND (userId = :u OR attribute_not_exists(userId))",
        )
        .expression_attribute_values(":a", AttributeValue::S("connection".into()))
        .expression_attribute_values(":b", AttributeValue::S("presence".into()))
        .expression_attribute_values(":c", AttributeValue::S("user-connection".into()))
        .expression_attribute_values(":d", AttributeValue::S("room-member".into()))
        .expression_attribute_values(":e", AttributeValue::S("connection-room".into()))
        .expression_attribute_values(":f", AttributeValue::S("dashboard-subscriber".into()))
        .expression_attribute_values(":u", AttributeValue::S(user_id.into()))
        .send()
        .await
        .unwrap();
    output.count as usize
}

/// Waits until the dashboard shows `(onlineUsers, connections)`. Stats are
/// pushed once per stream batch, so intermediate counts may be skipped or
/// repeated; what matters is that the expected one arrives.
async fn expect_stats(client: &mut WsClient, online_users: u64, connections: u64) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(frame) = client.next_json(deadline - Instant::now()).await else {
            break;
        };
        if frame["type"] != "dashboard.stats" {
            continue;
        }
        let counts = (
            frame["onlineUsers"].as_u64().unwrap(),
            frame["connections"].as_u64().unwrap(),
        );
        if counts == (online_users, connections) {
            return;
        }
        seen.push(counts);
    }
    panic!("dashboard never showed ({online_users}, {connections}); saw {seen:?}");
}

#[tokio::test]
async fn dashboard_counts_follow_connects_clean_closes_and_killed_clients() {
    // A killed client's $disconnect is lost here, as AWS's best effort
    // allows: the clean-up that follows must not depend on it.
    let app = TestApp::spawn_with_ws(
        WsSettings {
            disconnect_on_drop: false,
            ..WsSettings::AWS
        },
        true,
    )
    .await;
    let (watcher, alice, bob) = (
        app.signed_up_user().await,
        app.signed_up_user().await,
        app.signed_up_user().await,
    );
    let mut w = connect(&app, &watcher).await;
    w.send_json(json!({"action": "dashboard.subscribe"})).await;
    expect_stats(&mut w, 1, 1).await;

    let mut a = connect(&app, &alice).await;
    expect_stats(&mut w, 2, 2).await;
    let a2 = connect(&app, &alice).await;
    expect_stats(&mut w, 2, 3).await;
    a2.close().await;
    expect_stats(&mut w, 2, 2).await;

    // Alice's client dies without a close frame and its $disconnect is
    // lost. The next push to her gets a 410 and removes her connection
    // everywhere.
    join(&mut a, "lobby").await;
    let mut b = connect(&app, &bob).await;
    expect_stats(&mut w, 3, 3).await;
    join(&mut b, "lobby").await;
    let recorded = items_of_connection(&app, &alice.id).await;
    assert!(recorded > 0);
    a.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        items_of_connection(&app, &alice.id).await,
        recorded,
        "nothing but a push may clean up after a lost $disconnect"
    );
    b.send_json(json!({"action": "chat.send", "room": "lobby", "text": "still there?"}))
        .await;
    b.expect("chat.message", WAIT).await;
    expect_stats(&mut w, 2, 2).await;
    assert_eq!(
        items_of_connection(&app, &alice.id).await,
        0,
        "every item of the dead connection is gone"
    );
}

#[tokio::test]
async fn the_management_api_answers_410_for_unknown_connections() {
    let app = TestApp::spawn().await;
    let sdk = platform::aws::sdk_config_for_endpoint(&app.endpoint, tests::REGION).await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(format!("http://{}/local", app.ws_address))
        .build();
    let client = aws_sdk_apigatewaymanagement::Client::from_conf(config);
    let err = client
        .post_to_connection()
        .connection_id("bm9uZXhpc3RlbnQ=")
        .data(aws_smithy_types::Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{err:?}"
    );
    let err = client
        .get_connection()
        .connection_id("bm9uZXhpc3RlbnQ=")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{err:?}"
    );
    let err = client
        .delete_connection()
        .connection_id("bm9uZXhpc3RlbnQ=")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleting_a_post_removes_its_comments_through_the_stream() {
    let app = TestApp::spawn_live(&[]).await;
    let alice = app.signed_up_user().await;
    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &alice.access_token,
            Some(json!({"title": "Doomed", "body": "b"})),
        )
        .await;
    let post_id = post.body["data"]["id"].as_str().unwrap().to_owned();
    for i in 0..30 {
        app.send_as(
            "POST",
            &format!("/api/v1/posts/{post_id}/comments"),
            &alice.access_token,
            Some(json!({"body": format!("c{i}")})),
        )
        .await;
    }
    let partition = model::keys::post_pk(&post_id.parse().unwrap());
    assert_eq!(app.partition_len(&partition).await, 31);
    assert_envelope(
        &app.send_as(
            "DELETE",
            &format!("/api/v1/posts/{post_id}"),
            &alice.access_token,
            None,
        )
        .await,
        200,
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while app.partition_len(&partition).await > 0 {
        assert!(Instant::now() < deadline, "comments still there after 3 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn chat_keeps_line_breaks_but_refuses_hidden_characters() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let mut client = connect(&app, &session).await;
    // A room name is one line of visible ASCII; a bidi override is neither.
    for room in ["general\u{202E}", "gen\u{200B}eral", "general\n"] {
        client
            .send_json(json!({"action": "chat.join", "room": room}))
            .await;
        let error = client.expect("error", WAIT).await;
        assert_eq!(error["code"], "VALIDATION_ERROR", "{room:?}");
        assert!(error["message"].as_str().unwrap().starts_with("room "));
    }
    join(&mut client, "general").await;
    for text in ["bell\u{7}", "a\u{202E}b", "nul\u{0}"] {
        client
            .send_json(json!({"action": "chat.send", "room": "general", "text": text}))
            .await;
        let error = client.expect("error", WAIT).await;
        assert_eq!(error["code"], "VALIDATION_ERROR", "{text:?}");
        assert!(error["message"].as_str().unwrap().starts_with("text "));
    }
    let text = "two\nlines\r\n\tand a tab, 👩\u{200D}💻";
    client
        .send_json(json!({"action": "chat.send", "room": "general", "text": text}))
        .await;
    let message = client.expect("chat.message", WAIT).await;
    assert_eq!(message["text"], text, "delivered as sent");
}

#[tokio::test]
async fn the_stream_flows_on_after_a_cancelled_transaction() {
    let app = TestApp::spawn_live(&[]).await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let mut socket = connect(&app, &alice).await;
    // A taken email cancels the registration transaction, whose first
    // writes moto applies and then rolls back.
    let taken = app
        .post_register("Mallory", &alice.email, "long-enough-pass-9")
        .await;
    assert_envelope(&taken, 409, Some("CONFLICT"));

    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &alice.access_token,
            Some(json!({"title": "After", "body": "b"})),
        )
        .await;
    let post_id = post.body["data"]["id"].as_str().unwrap().to_owned();
    app.send_as(
        "POST",
        &format!("/api/v1/posts/{post_id}/comments"),
        &bob.access_token,
        Some(json!({"body": "still flowing"})),
    )
    .await;
    let frame = socket.expect("notification", WAIT).await;
    assert!(
        frame["notification"]["body"]
            .as_str()
            .unwrap()
            .contains("still flowing")
    );
}
