//! Sockets follow their session (docs/API.md §7.5): logout, password
//! reset, suspension and deletion close the WebSocket connections of the
//! sessions they end, through the stream worker, within about a second;
//! a frame on a connection whose items are gone is refused and closed.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use model::{connections::Connections, domain::ConnectionId};
use serde_json::{Value, json};
use tests::{PASSWORD, Session, TestApp, WsClient};

/// How long a revocation may take to close a socket: the contract says
/// about a second; the local stream poller reads every 100 ms.
const CLOSE_WITHIN: Duration = Duration::from_millis(2500);
const WAIT: Duration = Duration::from_secs(3);

async fn connect(app: &TestApp, session: &Session) -> WsClient {
    app.ws_connect(Some(&session.access_token))
        .await
        .expect("handshake accepted")
}

async fn join(client: &mut WsClient, room: &str) {
    client
        .send_json(json!({"action": "chat.join", "room": room}))
        .await;
    client.expect("chat.joined", WAIT).await;
}

async fn still_open(client: &mut WsClient) {
    client.send_json(json!({"action": "ping"})).await;
    client.expect("pong", WAIT).await;
}

/// Waits for the server to close `client`, and says how long it took.
async fn closed(client: &mut WsClient, why: &str) -> Duration {
    let started = Instant::now();
    client
        .frames_until_closed(CLOSE_WITHIN)
        .await
        .unwrap_or_else(|| panic!("socket still open {CLOSE_WITHIN:?} after {why}"));
    started.elapsed()
}

/// The items of every connection of `user_id` (connection, pointers,
/// presence, rooms), by scan: what must be gone once it is closed.
async fn connection_items(app: &TestApp, user_id: &str) -> Vec<(String, String)> {
    let output = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .filter_expression("begins_with(sk, :conn) OR begins_with(pk, :conn)")
        .expression_attribute_values(
            ":conn",
            AttributeValue::S(model::keys::CONNECTION_SK_PREFIX.into()),
        )
        .send()
        .await
        .unwrap();
    let of_user: Vec<String> = output
        .items()
        .iter()
        .filter(|item| {
            item.get("userId")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|id| id == user_id)
        })
        .filter_map(|item| item.get("connectionId")?.as_s().ok().cloned())
        .collect();
    output
        .items()
        .iter()
        .filter(|item| {
            item.get("connectionId")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|id| of_user.contains(id))
        })
        .map(|item| {
            (
                item["connectionId"].as_s().unwrap().clone(),
                format!(
                    "{}/{}",
                    item["pk"].as_s().unwrap(),
                    item["sk"].as_s().unwrap()
                ),
            )
        })
        .collect()
}

async fn logout(app: &TestApp, session: &Session) {
    let response = app
        .send_as("POST", "/api/v1/auth/logout", &session.access_token, None)
        .await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn logout_closes_that_sessions_sockets_and_no_others() {
    let app = TestApp::spawn_live(&[]).await;
    let first = app.signed_up_user().await;
    let second = app.logged_in(&first.email, PASSWORD).await;
    let mut doomed = connect(&app, &first).await;
    let mut doomed_too = connect(&app, &first).await;
    let mut kept = connect(&app, &second).await;
    join(&mut doomed, "lobby").await;
    join(&mut kept, "lobby").await;

    logout(&app, &first).await;
    let took = closed(&mut doomed, "logout").await;
    closed(&mut doomed_too, "logout").await;
    eprintln!("logout closed its socket in {took:?}");
    still_open(&mut kept).await;

    // The other session's socket is alone in the room now: its own
    // message reaches it, and membership shows only it.
    kept.send_json(json!({"action": "chat.send", "room": "lobby", "text": "anyone?"}))
        .await;
    kept.expect("chat.message", WAIT).await;
    // What is left of the user's connections is the kept one's: its
    // record, presence, pointer and both room items.
    let left = connection_items(&app, &first.id).await;
    let connections: std::collections::BTreeSet<&String> = left.iter().map(|(id, _)| id).collect();
    assert_eq!(connections.len(), 1, "{left:?}");
    assert_eq!(left.len(), 5, "{left:?}");
}

#[tokio::test]
async fn a_password_reset_closes_every_older_socket_but_not_a_newer_one() {
    let app = TestApp::spawn_live(&[]).await;
    let session = app.signed_up_user().await;
    let other_login = app.logged_in(&session.email, PASSWORD).await;
    let mut first = connect(&app, &session).await;
    let mut second = connect(&app, &other_login).await;

    let token = app.requested_reset_token(&session.email).await;
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": "brand-new-secret-7"}),
        )
        .await;
    assert_eq!(response.status, 200);
    // A login right after the reset must keep its socket.
    let after = app.logged_in(&session.email, "brand-new-secret-7").await;
    let mut newer = connect(&app, &after).await;

    closed(&mut first, "the reset").await;
    closed(&mut second, "the reset").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_open(&mut newer).await;
}

#[tokio::test]
async fn suspension_and_deletion_close_the_users_sockets() {
    let app = TestApp::spawn_live(&[]).await;
    let admin = app.signed_up_user().await;
    app.promote_to_admin(&admin.id).await;
    let admin = app.logged_in(&admin.email, PASSWORD).await;
    let suspended = app.signed_up_user().await;
    let deleted = app.signed_up_user().await;
    let bystander = app.signed_up_user().await;
    let mut suspended_socket = connect(&app, &suspended).await;
    let mut deleted_socket = connect(&app, &deleted).await;
    let mut bystander_socket = connect(&app, &bystander).await;

    let response = app
        .send_as(
            "PATCH",
            &format!("/api/v1/users/{}", suspended.id),
            &admin.access_token,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    closed(&mut suspended_socket, "suspension").await;

    let response = app
        .send_as("DELETE", "/api/v1/users/me", &deleted.access_token, None)
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    closed(&mut deleted_socket, "deletion").await;

    still_open(&mut bystander_socket).await;
    for user in [&suspended, &deleted] {
        assert_eq!(connection_items(&app, &user.id).await, []);
    }
}

#[tokio::test]
async fn a_frame_on_a_connection_whose_items_are_gone_is_refused_and_closed() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    for frame in [json!({"action": "ping"}).to_string(), "not json".to_owned()] {
        let mut client = connect(&app, &session).await;
        still_open(&mut client).await;
        // What the stream worker does when the session ends, without it.
        let table = model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
        let ids: Vec<ConnectionId> = {
            use model::connections::Connections as _;
            table
                .user_connections(&session.id.parse().unwrap())
                .await
                .unwrap()
        };
        assert_eq!(ids.len(), 1);
        table.disconnect(&ids[0]).await.unwrap();

        client.send_text(frame.clone()).await;
        let frames = client
            .frames_until_closed(WAIT)
            .await
            .unwrap_or_else(|| panic!("still open after {frame:?}"));
        let errors: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{frames:?}");
        assert_eq!(errors[0]["code"], "UNAUTHORIZED");
        assert_eq!(
            errors[0]["message"],
            "Connection is not registered; reconnect"
        );
    }
}

#[tokio::test]
async fn a_notification_is_not_pushed_to_a_closed_session() {
    let app = TestApp::spawn_live(&[]).await;
    let author = app.signed_up_user().await;
    let kept_session = app.logged_in(&author.email, PASSWORD).await;
    let commenter = app.signed_up_user().await;
    let mut doomed = connect(&app, &author).await;
    let mut kept = connect(&app, &kept_session).await;
    logout(&app, &author).await;
    closed(&mut doomed, "logout").await;

    let post = app
        .send_as(
            "POST",
            "/api/v1/posts",
            &kept_session.access_token,
            Some(json!({"title": "Hello", "body": "World"})),
        )
        .await;
    let post_id = post.body["data"]["id"].as_str().unwrap().to_owned();
    app.send_as(
        "POST",
        &format!("/api/v1/posts/{post_id}/comments"),
        &commenter.access_token,
        Some(json!({"body": "nice"})),
    )
    .await;
    kept.expect("notification", WAIT).await;
    // Only the live session's connection is left to push to.
    let table = model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
    let left = table
        .user_connections(&author.id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn a_connection_is_recorded_only_while_its_session_lives() {
    use model::{
        domain::{Email, SessionId, UserId},
        outbox::{EmailKind, OutboxItem},
        sessions::Accounts,
        users::Users,
    };
    let app = TestApp::spawn().await;
    let table = model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
    let session = app.signed_up_user().await;
    let user_id: UserId = session.id.parse().unwrap();
    let other = app.logged_in(&session.email, PASSWORD).await;
    let sid_of = |token: &str| -> SessionId {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sid"].as_str().unwrap().parse().unwrap()
    };
    let connection = |n: u32| ConnectionId::parse(&format!("guard{n}=")).unwrap();
    let seen = table.user(&user_id).await.unwrap().unwrap();

    // As the handshake saw it, the session is alive: recorded.
    table
        .connect(&connection(1), &seen, &sid_of(&session.access_token), "t")
        .await
        .unwrap();

    // The session was revoked after the handshake's read: refused.
    logout(&app, &other).await;
    let err = table
        .connect(&connection(2), &seen, &sid_of(&other.access_token), "t")
        .await
        .unwrap_err();
    assert!(err.is(model::Condition::SessionEnded), "{err:?}");

    // Every session was cut (a reset) after the handshake's read: refused.
    let token =
        model::sessions::TokenItem::new("t", model::sessions::TokenKind::Reset, &user_id, 60);
    let email = Email::parse("email", session.email.clone()).unwrap();
    let reset_email = OutboxItem::with_token(
        EmailKind::PasswordReset,
        &email,
        &token,
        "Reset",
        "t".into(),
    );
    table.request_reset(&token, &reset_email).await.unwrap();
    table
        .set_password(&token, "hash", model::clock::unix_now_ms() + 1, "now")
        .await
        .unwrap();
    let err = table
        .connect(&connection(3), &seen, &sid_of(&session.access_token), "t")
        .await
        .unwrap_err();
    assert!(err.is(model::Condition::SessionEnded), "{err:?}");
    let recorded = table.user_connections(&user_id).await.unwrap();
    assert_eq!(recorded, [connection(1)]);
}
