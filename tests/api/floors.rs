//! The round trips of docs/DATA_MODEL.md's *Floors* table are the ones the
//! code makes: every REST route and WebSocket action of the table runs on
//! its normal path through the local gateway, and the spans of its
//! DynamoDB calls as the recorder saw them (`infra::calls::round_trips`:
//! calls sent together count once) must come to the table's "now". A row
//! whose "now" is above its floor must say why.

use std::{collections::BTreeMap, time::Duration};

use infra::calls::{Call, round_trips};
use serde_json::json;
use tests::{PASSWORD, TestApp, workspace_root};

/// One row of the table: what the route does now, and its floor.
#[derive(Debug)]
struct Row {
    now: usize,
    floor: usize,
    why: String,
}

/// The leading count of a cell (`2 + email` is 2 DynamoDB round trips).
fn count(cell: &str) -> Option<usize> {
    cell.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
}

/// The *Floors* table, by route as the gateway serves it (`POST
/// /api/v1/auth/login`, or a WebSocket route key).
fn floors() -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(workspace_root().join("docs/DATA_MODEL.md"))
        .expect("docs/DATA_MODEL.md");
    let table = text
        .split("### Floors")
        .nth(1)
        .expect("a Floors section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let route = cells[0].trim_matches('`');
            let served = match route.split_once(' ') {
                Some((method, path)) if path.starts_with('/') && method.len() <= 6 => {
                    let path = if path.starts_with("/health") || path.starts_with("/ready") {
                        path.to_owned()
                    } else {
                        format!("/api/v1{path}")
                    };
                    format!("{method} {path}")
                }
                _ => route.to_owned(),
            };
            Some((
                served,
                Row {
                    now: count(cells[2])?,
                    floor: count(cells[3])?,
                    why: cells[4].to_owned(),
                },
            ))
        })
        .collect()
}

/// The round trips of the newest invocation of `route` among `calls`,
/// counting DynamoDB's calls only (S3, SES and pushes are listed apart).
fn measured(calls: &[Call], route: &str) -> Option<usize> {
    let invocation = calls
        .iter()
        .rev()
        .find(|call| call.route.as_deref() == Some(route))?
        .invocation;
    let dynamodb: Vec<&Call> = calls
        .iter()
        .filter(|call| call.invocation == invocation && call.operation.starts_with("DynamoDB"))
        .collect();
    Some(round_trips(&dynamodb))
}

/// Measures `route` as served by `request`, once its calls have all
/// answered (a WebSocket action that sends nothing back finishes after the
/// frame's send returns).
async fn measure<F: Future<Output = ()>>(app: &TestApp, route: &str, request: F) -> usize {
    let mark = app.calls.calls().len();
    request.await;
    for _ in 0..100 {
        let calls = app.calls.calls().split_off(mark);
        let done = calls
            .iter()
            .all(|call| call.finished.lock().expect("finished").is_some());
        if done && let Some(trips) = measured(&calls, route) {
            // Settled: nothing more arrives for this route within a moment.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let again = app.calls.calls().split_off(mark);
            if again.len() == calls.len() {
                return trips;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{route}: no invocation recorded");
}

fn id_of(body: &serde_json::Value) -> String {
    body["data"]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn every_route_takes_the_round_trips_the_data_model_gives() {
    let floors = floors();
    for (route, row) in &floors {
        assert!(
            row.now <= row.floor || !row.why.is_empty(),
            "{route}: {} round trips, above its floor {}, and no reason given",
            row.now,
            row.floor
        );
    }
    let app = TestApp::spawn().await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    macro_rules! check {
        ($route:expr, $request:expr) => {{
            let trips = measure(&app, $route, async {
                $request;
            })
            .await;
            seen.insert($route.to_owned(), trips);
        }};
    }

    // Accounts.
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let carol = app.signed_up_user().await;
    let admin = app.signed_up_user().await;
    app.promote_to_admin(&admin.id).await;
    let admin = app.logged_in(&admin.email, PASSWORD).await;
    let (a, b, adm) = (&alice.access_token, &bob.access_token, &admin.access_token);
    check!("POST /api/v1/auth/register", app.signed_up_user().await);
    check!(
        "POST /api/v1/auth/login",
        app.logged_in(&alice.email, PASSWORD).await
    );
    let spare = app.logged_in(&alice.email, PASSWORD).await;
    check!(
        "POST /api/v1/auth/refresh",
        assert_eq!(app.post_refresh(&spare.refresh_token).await.status, 200)
    );
    check!(
        "POST /api/v1/auth/logout",
        assert_eq!(
            app.send_as("POST", "/api/v1/auth/logout", &spare.access_token, None)
                .await
                .status,
            200
        )
    );
    check!(
        "GET /api/v1/auth/profile",
        assert_eq!(app.get_as("/api/v1/auth/profile", a).await.status, 200)
    );
    let verify = app.emails_to(&bob.email).await[0].token();
    check!(
        "POST /api/v1/auth/verify-email",
        assert_eq!(
            app.post_json("/api/v1/auth/verify-email", json!({"token": verify}))
                .await
                .status,
            200
        )
    );
    let reset = app.requested_reset_token(&carol.email).await;
    check!(
        "POST /api/v1/auth/forgot-password",
        app.requested_reset_token(&carol.email).await
    );
    check!(
        "POST /api/v1/auth/reset-password",
        assert_eq!(
            app.post_json(
                "/api/v1/auth/reset-password",
                json!({"token": reset, "password": "another-horse-43"})
            )
            .await
            .status,
            200
        )
    );

    // Users.
    check!(
        "GET /api/v1/users/me",
        assert_eq!(app.get_as("/api/v1/users/me", a).await.status, 200)
    );
    check!(
        "PATCH /api/v1/users/me",
        assert_eq!(
            app.send_as(
                "PATCH",
                "/api/v1/users/me",
                a,
                Some(json!({"name": "Alice"}))
            )
            .await
            .status,
            200
        )
    );
    let leaving = app.signed_up_user().await;
    check!(
        "DELETE /api/v1/users/me",
        assert_eq!(
            app.send_as("DELETE", "/api/v1/users/me", &leaving.access_token, None)
                .await
                .status,
            200
        )
    );
    check!(
        "GET /api/v1/users/{id}",
        assert_eq!(
            app.get_as(&format!("/api/v1/users/{}", bob.id), a)
                .await
                .status,
            200
        )
    );
    check!(
        "GET /api/v1/users",
        assert_eq!(app.get_as("/api/v1/users", adm).await.status, 200)
    );
    let target = app.signed_up_user().await;
    check!(
        "PATCH /api/v1/users/{id}",
        assert_eq!(
            app.send_as(
                "PATCH",
                &format!("/api/v1/users/{}", target.id),
                adm,
                Some(json!({"status": "suspended"}))
            )
            .await
            .status,
            200
        )
    );
    check!(
        "DELETE /api/v1/users/{id}",
        assert_eq!(
            app.send_as("DELETE", &format!("/api/v1/users/{}", target.id), adm, None)
                .await
                .status,
            200
        )
    );

    // Posts and comments.
    let created = app
        .send_as(
            "POST",
            "/api/v1/posts",
            a,
            Some(json!({"title": "T", "body": "B", "tags": ["floor"]})),
        )
        .await;
    let post = id_of(&created.body);
    check!(
        "POST /api/v1/posts",
        assert_eq!(
            app.send_as(
                "POST",
                "/api/v1/posts",
                a,
                Some(json!({"title": "T2", "body": "B", "tags": ["floor"]}))
            )
            .await
            .status,
            201
        )
    );
    for list in ["/api/v1/posts", "/api/v1/posts?tag=floor"] {
        check!(
            "GET /api/v1/posts",
            assert_eq!(app.get_as(list, b).await.status, 200)
        );
        assert_eq!(
            seen["GET /api/v1/posts"], floors["GET /api/v1/posts"].now,
            "{list}"
        );
    }
    check!(
        "GET /api/v1/posts",
        assert_eq!(
            app.get_as(&format!("/api/v1/posts?authorId={}", alice.id), b)
                .await
                .status,
            200
        )
    );
    check!(
        "GET /api/v1/posts/{id}",
        assert_eq!(
            app.get_as(&format!("/api/v1/posts/{post}"), b).await.status,
            200
        )
    );
    check!(
        "PATCH /api/v1/posts/{id}",
        assert_eq!(
            app.send_as(
                "PATCH",
                &format!("/api/v1/posts/{post}"),
                a,
                Some(json!({"title": "T3", "version": 1}))
            )
            .await
            .status,
            200
        )
    );
    let commented = app
        .send_as(
            "POST",
            &format!("/api/v1/posts/{post}/comments"),
            b,
            Some(json!({"body": "first"})),
        )
        .await;
    let comment = id_of(&commented.body);
    check!(
        "POST /api/v1/posts/{id}/comments",
        assert_eq!(
            app.send_as(
                "POST",
                &format!("/api/v1/posts/{post}/comments"),
                b,
                Some(json!({"body": "second"}))
            )
            .await
            .status,
            201
        )
    );
    check!(
        "GET /api/v1/posts/{id}/comments",
        assert_eq!(
            app.get_as(&format!("/api/v1/posts/{post}/comments"), a)
                .await
                .status,
            200
        )
    );
    check!(
        "DELETE /api/v1/posts/{id}/comments/{commentId}",
        assert_eq!(
            app.send_as(
                "DELETE",
                &format!("/api/v1/posts/{post}/comments/{comment}"),
                b,
                None
            )
            .await
            .status,
            200
        )
    );

    // Notifications (the comments above notified alice).
    let listed = app.get_as("/api/v1/notifications", a).await;
    let notification = listed.body["data"][0]["id"]
        .as_str()
        .expect("a notification")
        .to_owned();
    check!(
        "GET /api/v1/notifications",
        assert_eq!(app.get_as("/api/v1/notifications", a).await.status, 200)
    );
    check!(
        "GET /api/v1/notifications/unread-count",
        assert_eq!(
            app.get_as("/api/v1/notifications/unread-count", a)
                .await
                .status,
            200
        )
    );
    check!(
        "PATCH /api/v1/notifications/{id}/read",
        assert_eq!(
            app.send_as(
                "PATCH",
                &format!("/api/v1/notifications/{notification}/read"),
                a,
                None
            )
            .await
            .status,
            200
        )
    );
    check!(
        "POST /api/v1/notifications/read-all",
        assert_eq!(
            app.send_as("POST", "/api/v1/notifications/read-all", a, None)
                .await
                .status,
            200
        )
    );
    check!(
        "DELETE /api/v1/notifications/{id}",
        assert_eq!(
            app.send_as(
                "DELETE",
                &format!("/api/v1/notifications/{notification}"),
                a,
                None
            )
            .await
            .status,
            200
        )
    );
    check!(
        "DELETE /api/v1/posts/{id}",
        assert_eq!(
            app.send_as("DELETE", &format!("/api/v1/posts/{post}"), a, None)
                .await
                .status,
            200
        )
    );

    // Uploads.
    let upload = app.uploaded(a, vec![1; 32]).await;
    check!(
        "POST /api/v1/uploads",
        app.create_upload(a, tests::upload_request(16)).await
    );
    let pending = app.create_upload(a, tests::upload_request(8)).await;
    let status =
        tests::put_presigned(&pending.upload_url, &pending.upload_headers, vec![3; 8]).await;
    assert_eq!(status, 200);
    check!(
        "POST /api/v1/uploads/{id}/complete",
        assert_eq!(app.complete_upload(a, &pending.id).await.status, 200)
    );
    check!(
        "GET /api/v1/uploads/{id}",
        assert_eq!(app.get_upload(a, &upload.id).await.status, 200)
    );

    // Health.
    check!(
        "GET /ready",
        assert_eq!(app.get("/ready").await.status, 200)
    );

    // WebSocket.
    let wait = Duration::from_secs(5);
    let mut socket = None;
    check!(
        "$connect",
        socket = Some(app.ws_connect(Some(a)).await.expect("connected"))
    );
    let mut socket = socket.expect("connected");
    check!("ping", {
        socket.send_json(json!({"action": "ping"})).await;
        socket.expect("pong", wait).await;
    });
    check!("chat.join", {
        socket
            .send_json(json!({"action": "chat.join", "room": "floors"}))
            .await;
        socket.expect("chat.joined", wait).await;
    });
    check!("chat.send", {
        socket
            .send_json(json!({"action": "chat.send", "room": "floors", "text": "hi"}))
            .await;
        socket.expect("chat.message", wait).await;
    });
    check!("dashboard.subscribe", {
        socket
            .send_json(json!({"action": "dashboard.subscribe"}))
            .await;
        socket.expect("dashboard.stats", wait).await;
    });
    check!(
        "chat.leave",
        socket
            .send_json(json!({"action": "chat.leave", "room": "floors"}))
            .await
    );
    check!("$disconnect", socket.close_with(1000, "done").await);

    let mut wrong = Vec::new();
    for (route, trips) in &seen {
        let row = floors
            .get(route)
            .unwrap_or_else(|| panic!("{route} is not in the Floors table"));
        if *trips != row.now {
            wrong.push(format!(
                "{route}: {trips} round trips, the table says {}",
                row.now
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let unmeasured: Vec<&String> = floors
        .keys()
        .filter(|route| {
            (route.contains(" /") || route.starts_with('$') || route.contains('.'))
                && !route.contains("INSERT")
                && !route.contains("MODIFY")
                && !route.contains("REMOVE")
                && route.as_str() != "GET /health"
                && !seen.contains_key(*route)
        })
        .collect();
    assert!(unmeasured.is_empty(), "not measured: {unmeasured:?}");
}
