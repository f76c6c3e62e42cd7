//! How WebSocket connections end (docs/API.md §7.6), through real sockets
//! against the local gateway: every end (a clean close, a drop without a
//! close frame, `DELETE @connections`, the idle timeout, the maximum
//! duration, an oversized message) closes the socket as API Gateway does
//! and runs `$disconnect` exactly once, which takes the connection out of
//! presence at once. The limits are shortened to fractions of a second.

use std::time::{Duration, Instant};

use infra::ws::WsSettings;
use model::{connections::Connections as _, domain::ConnectionId};
use serde_json::json;
use tests::{Closed, Session, TestApp, WsClient};

const WAIT: Duration = Duration::from_secs(3);

fn with_idle(idle: Duration) -> WsSettings {
    WsSettings {
        idle_timeout: idle,
        ..WsSettings::AWS
    }
}

fn going_away() -> Option<Closed> {
    Some(Closed::Frame(1001, "Going away".to_owned()))
}

fn table(app: &TestApp) -> model::Table {
    model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone())
}

async fn connect(app: &TestApp, session: &Session) -> WsClient {
    app.ws_connect(Some(&session.access_token))
        .await
        .expect("handshake accepted")
}

/// A new socket and the id its `$connect` recorded.
async fn connect_with_id(app: &TestApp, session: &Session) -> (WsClient, ConnectionId) {
    let user = session.id.parse().expect("a user id");
    let before = table(app).user_connections(&user).await.unwrap();
    let client = connect(app, session).await;
    let mut new: Vec<ConnectionId> = table(app)
        .user_connections(&user)
        .await
        .unwrap()
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    (client, new.remove(0))
}

async fn management(app: &TestApp) -> aws_sdk_apigatewaymanagement::Client {
    let sdk = platform::aws::sdk_config_for_endpoint(&app.endpoint, tests::REGION).await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .endpoint_url(format!("http://{}/local", app.ws_address))
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// Live connections as presence (and so `dashboard.stats`) counts them.
async fn presence(app: &TestApp) -> u64 {
    table(app).stats().await.expect("presence").connections
}

/// Waits until presence counts `expected` connections.
async fn expect_presence(app: &TestApp, expected: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let counted = presence(app).await;
        if counted == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "presence still counts {counted}, not {expected}, after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the dashboard shows `connections`, skipping other counts.
async fn expect_stats(client: &mut WsClient, connections: u64) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let frame = client.expect("dashboard.stats", WAIT).await;
        if frame["connections"] == connections {
            return;
        }
    }
    panic!("the dashboard never showed {connections} connections");
}

/// How many times `$disconnect` ran: each run reads its connection's items
/// with exactly one Query.
fn disconnects(app: &TestApp) -> usize {
    app.calls
        .calls()
        .iter()
        .filter(|call| {
            call.route.as_deref() == Some("$disconnect") && call.operation.ends_with(".Query")
        })
        .count()
}

#[tokio::test]
async fn a_client_dropped_without_a_close_frame_leaves_presence_at_once() {
    let app = TestApp::spawn_live(&[]).await;
    let (watcher, alice) = (app.signed_up_user().await, app.signed_up_user().await);
    let mut w = connect(&app, &watcher).await;
    w.send_json(json!({"action": "dashboard.subscribe"})).await;
    expect_stats(&mut w, 1).await;
    let a = connect(&app, &alice).await;
    expect_stats(&mut w, 2).await;

    // No push to Alice follows: only her $disconnect can clean up.
    a.kill();
    expect_presence(&app, 1).await;
    expect_stats(&mut w, 1).await;
    assert_eq!(disconnects(&app), 1);
}

#[tokio::test]
async fn every_way_of_ending_runs_disconnect_exactly_once() {
    // Long enough that the four connect before the first times out, on a
    // loaded machine too.
    let idle = Duration::from_secs(4);
    let app = TestApp::spawn_with_ws(with_idle(idle), false).await;
    let session = app.signed_up_user().await;
    let (closed, _) = connect_with_id(&app, &session).await;
    let (killed, _) = connect_with_id(&app, &session).await;
    let (mut deleted, deleted_id) = connect_with_id(&app, &session).await;
    let (mut idle_one, _) = connect_with_id(&app, &session).await;
    assert_eq!(presence(&app).await, 4);

    closed.close_with(4000, "bye").await;
    killed.kill();
    management(&app)
        .await
        .delete_connection()
        .connection_id(deleted_id.as_str())
        .send()
        .await
        .expect("deleted");
    assert_eq!(
        deleted.closed_within(WAIT).await,
        Some(Closed::Frame(1000, "Connection Closed Normally".to_owned()))
    );
    assert_eq!(idle_one.closed_within(idle + WAIT).await, going_away());
    expect_presence(&app, 0).await;
    // Room for a second $disconnect of any of them to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(disconnects(&app), 4);
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_1001_and_leaves_presence() {
    let idle = Duration::from_millis(500);
    let app = TestApp::spawn_with_ws(with_idle(idle), false).await;
    let session = app.signed_up_user().await;
    let started = Instant::now();
    let mut client = connect(&app, &session).await;
    assert_eq!(presence(&app).await, 1);
    assert_eq!(client.closed_within(WAIT).await, going_away());
    let after = started.elapsed();
    assert!(after >= idle, "closed after {after:?}");
    expect_presence(&app, 0).await;
    assert_eq!(disconnects(&app), 1);
}

#[tokio::test]
async fn frames_from_the_client_and_pushes_to_it_keep_a_socket_alive() {
    // Several round trips of chat fit in one idle period even when the
    // machine is loaded: what is tested is that they reset it.
    let idle = Duration::from_secs(2);
    let app = TestApp::spawn_with_ws(with_idle(idle), false).await;
    let (alice, bob) = (app.signed_up_user().await, app.signed_up_user().await);
    let (mut talker, mut listener) = (connect(&app, &alice).await, connect(&app, &bob).await);
    for client in [&mut talker, &mut listener] {
        client
            .send_json(json!({"action": "chat.join", "room": "lobby"}))
            .await;
        client.expect("chat.joined", WAIT).await;
    }
    // Two idle timeouts in which the listener sends nothing: only what
    // is pushed to it keeps it open.
    let until = Instant::now() + 2 * idle;
    while Instant::now() < until {
        talker
            .send_json(json!({"action": "chat.send", "room": "lobby", "text": "still here"}))
            .await;
        talker.expect("chat.message", WAIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, client) in [("talker", &mut talker), ("listener", &mut listener)] {
        assert_eq!(
            client.closed_within(Duration::from_millis(100)).await,
            None,
            "the {name} was closed while active"
        );
    }
    assert_eq!(presence(&app).await, 2);
    // Then both fall silent, and both are closed.
    for client in [&mut talker, &mut listener] {
        assert_eq!(client.closed_within(idle + WAIT).await, going_away());
    }
    expect_presence(&app, 0).await;
}

#[tokio::test]
async fn websocket_ping_frames_do_not_keep_a_socket_alive() {
    let idle = Duration::from_millis(600);
    let app = TestApp::spawn_with_ws(with_idle(idle), false).await;
    let session = app.signed_up_user().await;
    let started = Instant::now();
    let mut client = connect(&app, &session).await;
    let closed = loop {
        client.send_ping().await;
        if let Some(closed) = client.closed_within(Duration::from_millis(100)).await {
            break closed;
        }
        assert!(
            started.elapsed() < 4 * idle,
            "the pinging socket stays open"
        );
    };
    assert!(
        started.elapsed() >= idle,
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(Some(closed), going_away());
    expect_presence(&app, 0).await;
    assert_eq!(disconnects(&app), 1);
}

#[tokio::test]
async fn the_maximum_duration_closes_even_an_active_socket() {
    let max = Duration::from_millis(1200);
    let app = TestApp::spawn_with_ws(
        WsSettings {
            max_duration: max,
            ..WsSettings::AWS
        },
        false,
    )
    .await;
    let session = app.signed_up_user().await;
    let started = Instant::now();
    let mut client = connect(&app, &session).await;
    let closed = loop {
        client.send_json(json!({"action": "ping"})).await;
        if let Some(closed) = client.closed_within(Duration::from_millis(150)).await {
            break closed;
        }
        assert!(started.elapsed() < max + WAIT, "never closed");
    };
    assert!(
        started.elapsed() >= max,
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(Some(closed), going_away());
    expect_presence(&app, 0).await;
    assert_eq!(disconnects(&app), 1);
}

#[tokio::test]
async fn a_delete_through_the_management_api_closes_with_1000_and_disconnects_once() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let management = management(&app).await;
    let (mut client, id) = connect_with_id(&app, &session).await;

    management
        .delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .expect("deleted");
    assert_eq!(
        client.closed_within(WAIT).await,
        Some(Closed::Frame(1000, "Connection Closed Normally".to_owned()))
    );
    // DeleteConnection itself removes no item: $disconnect does.
    expect_presence(&app, 0).await;
    let again = management
        .delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .unwrap_err();
    assert!(
        again
            .as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(disconnects(&app), 1);
}

#[tokio::test]
async fn a_message_over_1_mib_is_closed_with_1009_and_disconnected() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let mut client = connect(&app, &session).await;
    client.send_text("x".repeat(1024 * 1024 + 1)).await;
    assert_eq!(
        client.closed_within(WAIT).await,
        Some(Closed::Frame(1009, "Message too big".to_owned()))
    );
    expect_presence(&app, 0).await;
    assert_eq!(disconnects(&app), 1);
}
