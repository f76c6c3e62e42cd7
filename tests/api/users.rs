//! Users in docs/API.md through the local gateway.

use std::collections::HashSet;

use serde_json::{Value, json};
use tests::{PASSWORD, Session, TestApp, assert_envelope, get_presigned, put_presigned};

/// Uploads `bytes` as `session` for `purpose` and completes it.
pub async fn ready_upload(app: &TestApp, session: &Session, purpose: &str) -> String {
    let bytes = vec![7u8; 64];
    let response = app
        .post_upload(
            &session.access_token,
            json!({"filename": "pic.png", "contentType": "image/png", "size": bytes.len(), "purpose": purpose}),
        )
        .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    let data = &response.body["data"];
    let id = data["upload"]["id"].as_str().unwrap().to_owned();
    let headers: Vec<(String, String)> = data["uploadHeaders"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    assert_eq!(
        put_presigned(data["uploadUrl"].as_str().unwrap(), &headers, bytes).await,
        200
    );
    assert_eq!(
        app.complete_upload(&session.access_token, &id).await.status,
        200
    );
    id
}

async fn admin(app: &TestApp) -> Session {
    let session = app.signed_up_user().await;
    app.promote_to_admin(&session.id).await;
    session
}

#[tokio::test]
async fn me_shows_the_full_profile_and_others_see_the_public_one() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;

    let me = app.get_as("/api/v1/users/me", &alice.access_token).await;
    let body = assert_envelope(&me, 200, None);
    assert_eq!(body["data"]["email"], alice.email);

    let public = app
        .get_as(&format!("/api/v1/users/{}", alice.id), &bob.access_token)
        .await;
    let body = assert_envelope(&public, 200, None);
    let keys: HashSet<&str> = body["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "name", "createdAt"]),
        "PublicUser only"
    );

    for missing in [
        "01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        "not-an-id".to_owned(),
        "..%2F..%2Fetc".to_owned(),
    ] {
        let response = app
            .get_as(&format!("/api/v1/users/{missing}"), &bob.access_token)
            .await;
        assert_envelope(&response, 404, Some("NOT_FOUND"));
    }
    assert_envelope(
        &app.get("/api/v1/users/me").await,
        401,
        Some("UNAUTHORIZED"),
    );
}

#[tokio::test]
async fn patch_me_changes_the_name_and_checks_the_rules() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let response = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"name": "  Alice B "})),
        )
        .await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["name"], "Alice B");
    assert_ne!(body["data"]["updatedAt"], body["data"]["createdAt"]);

    for (patch, field, code) in [
        (json!({"name": "A"}), "name", "TOO_SHORT"),
        (json!({"name": "x".repeat(101)}), "name", "TOO_LONG"),
        (
            json!({"avatarUploadId": "nope"}),
            "avatarUploadId",
            "INVALID_FORMAT",
        ),
        (
            json!({"avatarUploadId": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            "avatarUploadId",
            "NOT_ALLOWED",
        ),
    ] {
        let response = app
            .send_as(
                "PATCH",
                "/api/v1/users/me",
                &alice.access_token,
                Some(patch),
            )
            .await;
        let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(body["errors"][0]["field"], field);
        assert_eq!(body["errors"][0]["code"], code);
    }
    let response = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"email": "x@y.z"})),
        )
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
    let response = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"name": 42})),
        )
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
}

#[tokio::test]
async fn an_avatar_must_be_your_own_ready_avatar_upload() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;

    let bobs = ready_upload(&app, &bob, "avatar").await;
    let image = ready_upload(&app, &alice, "post-image").await;
    for id in [&bobs, &image] {
        let response = app
            .send_as(
                "PATCH",
                "/api/v1/users/me",
                &alice.access_token,
                Some(json!({"avatarUploadId": id})),
            )
            .await;
        let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
        assert_eq!(body["errors"][0]["code"], "NOT_ALLOWED");
    }
    let pending = app
        .post_upload(&alice.access_token, json!({"filename": "a.png", "contentType": "image/png", "size": 10, "purpose": "avatar"}))
        .await;
    let pending_id = pending.body["data"]["upload"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"avatarUploadId": pending_id})),
        )
        .await;
    assert_envelope(&response, 422, Some("VALIDATION_ERROR"));

    let mine = ready_upload(&app, &alice, "avatar").await;
    let response = app
        .send_as(
            "PATCH",
            "/api/v1/users/me",
            &alice.access_token,
            Some(json!({"avatarUploadId": mine})),
        )
        .await;
    let body = assert_envelope(&response, 200, None);
    let url = body["data"]["avatarUrl"]
        .as_str()
        .expect("avatarUrl")
        .to_owned();
    let bytes = get_presigned(&url).await.bytes().await.unwrap();
    assert_eq!(bytes.len(), 64, "the avatar URL serves the uploaded object");
    let public = app
        .get_as(&format!("/api/v1/users/{}", alice.id), &bob.access_token)
        .await;
    assert!(public.body["data"]["avatarUrl"].is_string());
}

#[tokio::test]
async fn deleting_yourself_ends_every_session_and_hides_you() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let bob = app.signed_up_user().await;
    let second = app.logged_in(&alice.email, PASSWORD).await;
    let response = app
        .send_as("DELETE", "/api/v1/users/me", &alice.access_token, None)
        .await;
    assert_envelope(&response, 200, None);
    assert_eq!(
        app.get_as("/api/v1/users/me", &alice.access_token)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get_as("/api/v1/users/me", &second.access_token)
            .await
            .status,
        401
    );
    assert_eq!(app.post_refresh(&alice.refresh_token).await.status, 401);
    assert_eq!(app.post_login(&alice.email, PASSWORD).await.status, 401);
    let public = app
        .get_as(&format!("/api/v1/users/{}", alice.id), &bob.access_token)
        .await;
    assert_envelope(&public, 404, Some("NOT_FOUND"));
}

#[tokio::test]
async fn only_admins_list_users_and_pages_cover_everyone_once() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let mut ids = HashSet::from([boss.id.clone()]);
    for _ in 0..6 {
        ids.insert(app.signed_up_user().await.id);
    }
    let user = app.signed_up_user().await;
    ids.insert(user.id.clone());
    assert_envelope(
        &app.get_as("/api/v1/users", &user.access_token).await,
        403,
        Some("FORBIDDEN"),
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={c}"),
            None => "/api/v1/users?limit=3".to_owned(),
        };
        let response = app.get_as(&path, &boss.access_token).await;
        let body = assert_envelope(&response, 200, None);
        let page = body["data"].as_array().unwrap();
        assert!(page.len() <= 3 && !page.is_empty());
        seen.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        assert!(page[0].get("email").is_some(), "admins see UserResponse");
        match body["pagination"]["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(body["pagination"]["hasNext"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(body["pagination"]["hasNext"], false);
                break;
            }
        }
    }
    assert_eq!(seen.len(), ids.len(), "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    let response = app
        .get_as("/api/v1/users?cursor=forged", &boss.access_token)
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
    let response = app
        .get_as("/api/v1/users?limit=101", &boss.access_token)
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
}

#[tokio::test]
async fn admins_change_roles_and_status_with_immediate_effect() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let user = app.signed_up_user().await;
    let path = format!("/api/v1/users/{}", user.id);

    let response = app
        .send_as(
            "PATCH",
            &path,
            &user.access_token,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_envelope(&response, 403, Some("FORBIDDEN"));

    let response = app
        .send_as(
            "PATCH",
            &path,
            &boss.access_token,
            Some(json!({"role": "superuser"})),
        )
        .await;
    let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
    assert_eq!(body["errors"][0]["code"], "NOT_ALLOWED");

    let response = app
        .send_as(
            "PATCH",
            &path,
            &boss.access_token,
            Some(json!({"status": "suspended"})),
        )
        .await;
    let body = assert_envelope(&response, 200, None);
    assert_eq!(body["data"]["status"], "suspended");
    assert_envelope(
        &app.get_as("/api/v1/users/me", &user.access_token).await,
        403,
        Some("FORBIDDEN"),
    );
    assert_eq!(app.post_login(&user.email, PASSWORD).await.status, 403);

    app.send_as(
        "PATCH",
        &path,
        &boss.access_token,
        Some(json!({"status": "active", "role": "admin"})),
    )
    .await;
    let again = app.logged_in(&user.email, PASSWORD).await;
    let me = app.get_as("/api/v1/users/me", &again.access_token).await;
    assert_eq!(me.body["data"]["role"], "admin");
    assert_eq!(
        app.get_as("/api/v1/users", &again.access_token)
            .await
            .status,
        200
    );

    let unknown = app
        .send_as(
            "PATCH",
            "/api/v1/users/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            &boss.access_token,
            Some(json!({"role": "user"})),
        )
        .await;
    assert_envelope(&unknown, 404, Some("NOT_FOUND"));

    let response = app.send_as("DELETE", &path, &boss.access_token, None).await;
    assert_envelope(&response, 200, None);
    assert_eq!(
        app.get_as("/api/v1/users/me", &again.access_token)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn the_last_admin_cannot_demote_suspend_or_delete_themselves() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    let own = format!("/api/v1/users/{}", boss.id);
    for change in [
        json!({"role": "user"}),
        json!({"status": "suspended"}),
        json!({"status": "deleted"}),
    ] {
        let response = app
            .send_as("PATCH", &own, &boss.access_token, Some(change))
            .await;
        assert_envelope(&response, 409, Some("CONFLICT"));
    }
    assert_envelope(
        &app.send_as("DELETE", &own, &boss.access_token, None).await,
        409,
        Some("CONFLICT"),
    );
    assert_envelope(
        &app.send_as("DELETE", "/api/v1/users/me", &boss.access_token, None)
            .await,
        409,
        Some("CONFLICT"),
    );
    let me = app.get_as("/api/v1/users/me", &boss.access_token).await;
    assert_eq!(me.body["data"]["role"], "admin", "nothing changed");

    let deputy = admin(&app).await;
    let response = app
        .send_as(
            "PATCH",
            &own,
            &boss.access_token,
            Some(json!({"role": "user"})),
        )
        .await;
    let body: Value = assert_envelope(&response, 200, None)
        .into_iter()
        .collect::<serde_json::Map<_, _>>()
        .into();
    assert_eq!(body["data"]["role"], "user");
    let deputy_own = format!("/api/v1/users/{}", deputy.id);
    let response = app
        .send_as(
            "PATCH",
            &deputy_own,
            &deputy.access_token,
            Some(json!({"role": "user"})),
        )
        .await;
    assert_envelope(&response, 409, Some("CONFLICT"));
}

/// The table of `app`, to read the admin count the way the store keeps it.
fn table(app: &TestApp) -> model::Table {
    model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone())
}

async fn active_admins(app: &TestApp) -> Option<u64> {
    use model::users::Users;
    table(app).active_admins().await.expect("the admin count")
}

/// Whether the user is an active admin, as stored.
async fn is_active_admin(app: &TestApp, id: &str) -> bool {
    use model::{
        domain::{Role, UserStatus},
        users::Users,
    };
    let user = table(app)
        .user(&id.parse().unwrap())
        .await
        .unwrap()
        .expect("the user");
    user.role == Role::Admin && user.status == UserStatus::Active
}

/// How two admins try to remove each other at the same moment.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Demote,
    Suspend,
    Delete,
}

impl Removal {
    async fn of(self, app: &TestApp, by: &Session, target: &Session) -> u16 {
        let path = format!("/api/v1/users/{}", target.id);
        let token = &by.access_token;
        let response = match self {
            Removal::Demote => {
                app.send_as("PATCH", &path, token, Some(json!({"role": "user"})))
                    .await
            }
            Removal::Suspend => {
                app.send_as("PATCH", &path, token, Some(json!({"status": "suspended"})))
                    .await
            }
            Removal::Delete => app.send_as("DELETE", &path, token, None).await,
        };
        response.status
    }
}

/// Races pairs of the only two active admins removing each other, several
/// times over: each round the survivor meets a newly promoted admin.
async fn admins_removing_each_other_leave_exactly_one(removal: Removal) {
    let app = TestApp::spawn().await;
    let mut survivor = admin(&app).await;
    for round in 0..5 {
        let rival = admin(&app).await;
        assert_eq!(active_admins(&app).await, Some(2), "round {round}");
        let (by_survivor, by_rival) = tokio::join!(
            removal.of(&app, &survivor, &rival),
            removal.of(&app, &rival, &survivor),
        );
        let statuses = [by_survivor, by_rival];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{removal:?} round {round}: exactly one wins: {statuses:?}"
        );
        // The loser found the count at one (409), or had already lost
        // their role or session when their request was checked (403, 401).
        let lost = if by_survivor == 200 {
            by_rival
        } else {
            by_survivor
        };
        assert!([409, 403, 401].contains(&lost), "{removal:?}: {statuses:?}");
        assert_eq!(active_admins(&app).await, Some(1), "round {round}");
        let (survivor_left, rival_left) = tokio::join!(
            is_active_admin(&app, &survivor.id),
            is_active_admin(&app, &rival.id)
        );
        assert!(
            survivor_left != rival_left,
            "{removal:?} round {round}: one admin remains"
        );
        if rival_left {
            survivor = rival;
        }
    }
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    admins_removing_each_other_leave_exactly_one(Removal::Demote).await;
}

#[tokio::test]
async fn two_admins_suspending_each_other_at_once_leave_one_admin() {
    admins_removing_each_other_leave_exactly_one(Removal::Suspend).await;
}

#[tokio::test]
async fn two_admins_deleting_each_other_at_once_leave_one_admin() {
    admins_removing_each_other_leave_exactly_one(Removal::Delete).await;
}

#[tokio::test]
async fn the_admin_count_follows_promotion_suspension_and_reactivation() {
    let app = TestApp::spawn().await;
    let boss = admin(&app).await;
    assert_eq!(active_admins(&app).await, Some(1));
    let user = app.signed_up_user().await;
    let path = format!("/api/v1/users/{}", user.id);
    let own = format!("/api/v1/users/{}", boss.id);
    let patch = |path: String, body: Value| {
        let token = boss.access_token.clone();
        let app = &app;
        async move { app.send_as("PATCH", &path, &token, Some(body)).await.status }
    };
    let steps = [
        (path.clone(), json!({"role": "admin"}), 200, 2),
        // Promoting an admin again counts nothing.
        (path.clone(), json!({"role": "admin"}), 200, 2),
        (path.clone(), json!({"status": "suspended"}), 200, 1),
        // A suspended admin is not counted, so the boss is the last one.
        (own.clone(), json!({"role": "user"}), 409, 1),
        (path.clone(), json!({"status": "active"}), 200, 2),
        (
            path.clone(),
            json!({"role": "user", "status": "suspended"}),
            200,
            1,
        ),
        // Promoting a suspended user makes no active admin...
        (path.clone(), json!({"role": "admin"}), 200, 1),
        // ...until they are active again.
        (path.clone(), json!({"status": "active"}), 200, 2),
        (path.clone(), json!({"status": "deleted"}), 200, 1),
        (own.clone(), json!({"status": "suspended"}), 409, 1),
        (
            path.clone(),
            json!({"status": "active", "role": "admin"}),
            200,
            2,
        ),
        (own.clone(), json!({"role": "user"}), 200, 1),
    ];
    for (index, (path, body, status, count)) in steps.into_iter().enumerate() {
        let step = format!("step {index}: {body} on {path}");
        assert_eq!(patch(path, body).await, status, "{step}");
        assert_eq!(active_admins(&app).await, Some(count), "{step}");
    }
    assert!(is_active_admin(&app, &user.id).await);
    assert!(!is_active_admin(&app, &boss.id).await);
    let last = app.logged_in(&user.email, PASSWORD).await;
    assert_envelope(
        &app.send_as("DELETE", "/api/v1/users/me", &last.access_token, None)
            .await,
        409,
        Some("CONFLICT"),
    );
    assert_eq!(active_admins(&app).await, Some(1));
}

#[tokio::test]
async fn make_admin_twice_counts_the_admin_once() {
    let app = TestApp::spawn().await;
    let boss = app.signed_up_user().await;
    for _ in 0..2 {
        infra::admin::promote(&table(&app), &boss.email)
            .await
            .unwrap();
    }
    assert_eq!(active_admins(&app).await, Some(1));
    let response = app
        .send_as(
            "PATCH",
            &format!("/api/v1/users/{}", boss.id),
            &boss.access_token,
            Some(json!({"role": "user"})),
        )
        .await;
    assert_envelope(&response, 409, Some("CONFLICT"));
}

#[tokio::test]
async fn admins_from_before_the_counter_are_counted_once() {
    let app = TestApp::spawn().await;
    // An admin made as the code did before the count existed: the role
    // written on the user item alone.
    let old = app.signed_up_user().await;
    let old_id: model::domain::UserId = old.id.parse().unwrap();
    app.dynamodb
        .update_item()
        .table_name(&app.storage.table_name)
        .set_key(Some(model::users::UserItem::key(&old_id)))
        .update_expression("SET #role = :admin")
        .expression_attribute_names("#role", "role")
        .expression_attribute_values(
            ":admin",
            aws_sdk_dynamodb::types::AttributeValue::S("admin".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(active_admins(&app).await, None);

    // Re-running `make admin` on them changes nothing and counts nobody.
    infra::admin::promote(&table(&app), &old.email)
        .await
        .unwrap();
    assert_eq!(active_admins(&app).await, None);

    // Two promotions at once both find no count: the admins are counted
    // once, from the users as they are, and each promotion adds one.
    let (first, second) = (app.signed_up_user().await, app.signed_up_user().await);
    let table = table(&app);
    let (a, b) = tokio::join!(
        infra::admin::promote(&table, &first.email),
        infra::admin::promote(&table, &second.email),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(active_admins(&app).await, Some(3));
    infra::admin::promote(&table, &old.email).await.unwrap();
    assert_eq!(active_admins(&app).await, Some(3));

    for (leaving, status, left) in [(&old, 200, 2), (&first, 200, 1), (&second, 409, 1)] {
        let response = app
            .send_as("DELETE", "/api/v1/users/me", &leaving.access_token, None)
            .await;
        assert_eq!(response.status, status, "{:#}", response.body);
        assert_eq!(active_admins(&app).await, Some(left));
    }
}
