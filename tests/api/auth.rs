//! Auth in docs/API.md, end to end through the local gateway with a
//! real moto server behind it.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use model::domain::Role;
use serde_json::{Value, json};
use tests::{PASSWORD, TestApp, assert_envelope, session_from, unique_email};

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn register_login_profile_happy_path() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    let response = app
        .post_register(
            "  Ada Lovelace ",
            &format!("  {}", email.to_uppercase()),
            PASSWORD,
        )
        .await;
    let body = assert_envelope(&response, 201, None);
    let data = &body["data"];
    let user = &data["user"];
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], email, "emails are trimmed and lower-cased");
    assert_eq!(user["role"], "user");
    assert_eq!(user["status"], "active");
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["id"].as_str().unwrap().len(), 26);
    assert!(user.get("passwordHash").is_none() && user.get("password").is_none());
    assert_eq!(data["expiresIn"], 900);

    let session = app.logged_in(&email, PASSWORD).await;
    let profile = app
        .get_as("/api/v1/auth/profile", &session.access_token)
        .await;
    let body = assert_envelope(&profile, 200, None);
    assert_eq!(body["data"]["email"], email);
    assert!(body["data"]["lastLoginAt"].is_string(), "{body:?}");
    for key in [
        "id",
        "name",
        "email",
        "role",
        "status",
        "emailVerified",
        "createdAt",
        "updatedAt",
    ] {
        assert!(
            body["data"].get(key).is_some(),
            "UserResponse.{key} missing"
        );
    }
}

#[tokio::test]
async fn every_register_rule_is_a_named_422() {
    let app = TestApp::spawn().await;
    let response = app.post_json("/api/v1/auth/register", json!({})).await;
    let body = assert_envelope(&response, 422, Some("VALIDATION_ERROR"));
    let codes = field_codes(&Value::Object(body.into_iter().collect()));
    for field in ["name", "email", "password"] {
        assert!(
            codes.contains(&(field.to_owned(), "REQUIRED".to_owned())),
            "{field}: {codes:?}"
        );
    }

    let cases = [
        (
            json!({"name": "A", "email": unique_email(), "password": PASSWORD}),
            "name",
            "TOO_SHORT",
        ),
        (
            json!({"name": "x".repeat(101), "email": unique_email(), "password": PASSWORD}),
            "name",
            "TOO_LONG",
        ),
        (
            json!({"name": "Ann", "email": "not-an-email", "password": PASSWORD}),
            "email",
            "INVALID_FORMAT",
        ),
        (
            json!({"name": "Ann", "email": format!("{}@example.com", "a".repeat(250)), "password": PASSWORD}),
            "email",
            "TOO_LONG",
        ),
        (
            json!({"name": "Ann", "email": unique_email(), "password": "ab1"}),
            "password",
            "TOO_SHORT",
        ),
        (
            json!({"name": "Ann", "email": unique_email(), "password": format!("a1{}", "x".repeat(127))}),
            "password",
            "TOO_LONG",
        ),
        (
            json!({"name": "Ann", "email": unique_email(), "password": "onlyletters"}),
            "password",
            "WEAK_PASSWORD",
        ),
        (
            json!({"name": "Ann", "email": unique_email(), "password": "1234567890"}),
            "password",
            "WEAK_PASSWORD",
        ),
    ];
    for (body, field, code) in cases {
        let response = app.post_json("/api/v1/auth/register", body).await;
        assert_eq!(response.status, 422, "{field} {code}: {:#}", response.body);
        assert_eq!(
            field_codes(&response.body),
            vec![(field.to_owned(), code.to_owned())]
        );
    }

    let response = app
        .post_json(
            "/api/v1/auth/register",
            json!({"name": "Ann", "email": 5, "password": PASSWORD}),
        )
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
    let response = app
        .send_raw(
            "POST",
            "/api/v1/auth/register",
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_envelope(&response, 415, Some("UNSUPPORTED_MEDIA_TYPE"));
    let response = app
        .send_raw(
            "POST",
            "/api/v1/auth/register",
            "application/json",
            b"{\"name\":".to_vec(),
        )
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let response = app
        .post_register("Other", &session.email.to_uppercase(), PASSWORD)
        .await;
    assert_envelope(&response, 409, Some("CONFLICT"));
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_email_give_one_account() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    let attempts = (0..20).map(|i| {
        let app = &app;
        let email = email.clone();
        async move {
            app.post_register(&format!("Racer {i}"), &email, PASSWORD)
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let wrong = app.post_login(&session.email, "wrong-password-1").await;
    let unknown = app.post_login(&unique_email(), "wrong-password-1").await;
    let a = assert_envelope(&wrong, 401, Some("UNAUTHORIZED"));
    let b = assert_envelope(&unknown, 401, Some("UNAUTHORIZED"));
    assert_eq!(a["message"], "Invalid email or password");
    assert_eq!(a["message"], b["message"]);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_kills_the_session() {
    let app = TestApp::spawn().await;
    let first = app.signed_up_user().await;

    let response = app.post_refresh(&first.refresh_token).await;
    let body = assert_envelope(&response, 200, None);
    let second_access = body["data"]["accessToken"].as_str().unwrap().to_owned();
    let second_refresh = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh_token);
    assert_eq!(body["data"]["expiresIn"], 900);
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &second_access)
            .await
            .status,
        200
    );

    // The retired token comes back: theft is assumed, the session dies.
    let reuse = app.post_refresh(&first.refresh_token).await;
    assert_envelope(&reuse, 401, Some("UNAUTHORIZED"));
    assert_eq!(app.post_refresh(&second_refresh).await.status, 401);
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &second_access)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &first.access_token)
            .await
            .status,
        401
    );

    // Other sessions of the same user are untouched.
    let other = app.logged_in(&first.email, PASSWORD).await;
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &other.access_token)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn logout_kills_access_and_refresh_tokens_at_once() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let response = app
        .send_as("POST", "/api/v1/auth/logout", &session.access_token, None)
        .await;
    assert_envelope(&response, 200, None);
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &session.access_token)
            .await
            .status,
        401
    );
    assert_eq!(app.post_refresh(&session.refresh_token).await.status, 401);
    assert_eq!(
        app.send_as("POST", "/api/v1/auth/logout", &session.access_token, None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn access_and_refresh_tokens_cannot_stand_in_for_each_other() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    assert_envelope(
        &app.post_refresh(&session.access_token).await,
        401,
        Some("UNAUTHORIZED"),
    );
    assert_envelope(
        &app.get_as("/api/v1/auth/profile", &session.refresh_token)
            .await,
        401,
        Some("UNAUTHORIZED"),
    );
}

fn jwt_keys() -> platform::jwt::JwtKeys {
    let config = platform::config::JwtConfig::from_source(&|name: &str| match name {
        "JWT_SECRET" => Some("test-secret-that-is-at-least-32-bytes-long".to_owned()),
        _ => None,
    })
    .unwrap();
    platform::jwt::JwtKeys::new(&config)
}

#[tokio::test]
async fn expired_tampered_and_unsigned_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let keys = jwt_keys();
    let valid = keys
        .verify(&session.access_token, platform::jwt::TokenType::Access)
        .unwrap();
    let now = platform::jwt::unix_now();

    let expired = keys
        .sign(&platform::jwt::Claims {
            iat: now - 7200,
            nbf: now - 7200,
            exp: now - 3600,
            ..valid.clone()
        })
        .unwrap();
    let admin_claims = platform::jwt::Claims {
        role: model::domain::Role::Admin,
        ..valid.clone()
    };
    let mut parts: Vec<String> = session.access_token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin_claims).unwrap());
    let tampered = parts.join(".");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid).unwrap())
    );
    for (what, token) in [
        ("expired", expired),
        ("tampered", tampered),
        ("alg none", none),
        ("garbage", "x.y.z".into()),
    ] {
        let response = app.get_as("/api/v1/auth/profile", &token).await;
        assert_eq!(
            response.status, 401,
            "{what} token accepted: {:#}",
            response.body
        );
        assert_envelope(&response, 401, Some("UNAUTHORIZED"));
    }
    let response = app.get("/api/v1/auth/profile").await;
    assert_envelope(&response, 401, Some("UNAUTHORIZED"));
    let response = app
        .request(
            "GET",
            "/api/v1/auth/profile",
            None,
            &[("Authorization", "Basic abc")],
        )
        .await;
    assert_envelope(&response, 401, Some("UNAUTHORIZED"));
}

async fn set_status(app: &TestApp, user_id: &str, status: &str) {
    app.dynamodb
        .update_item()
        .table_name(&app.storage.table_name)
        .set_key(Some(model::users::UserItem::key(&user_id.parse().unwrap())))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S(status.into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_suspended_user_is_locked_out_everywhere() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    set_status(&app, &session.id, "suspended").await;
    assert_envelope(
        &app.post_login(&session.email, PASSWORD).await,
        403,
        Some("FORBIDDEN"),
    );
    assert_envelope(
        &app.get_as("/api/v1/auth/profile", &session.access_token)
            .await,
        403,
        Some("FORBIDDEN"),
    );
    assert_envelope(
        &app.post_refresh(&session.refresh_token).await,
        403,
        Some("FORBIDDEN"),
    );
}

#[tokio::test]
async fn a_deleted_user_cannot_log_in_or_use_old_tokens() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    set_status(&app, &session.id, "deleted").await;
    let response = app.post_login(&session.email, PASSWORD).await;
    let body = assert_envelope(&response, 401, Some("UNAUTHORIZED"));
    assert_eq!(body["message"], "Invalid email or password");
    assert_eq!(
        app.get_as("/api/v1/auth/profile", &session.access_token)
            .await
            .status,
        401
    );
    assert_eq!(app.post_refresh(&session.refresh_token).await.status, 401);
}

#[tokio::test]
async fn the_emailed_token_verifies_the_address_once() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let emails = app.emails_to(&session.email).await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].subject.to_lowercase().contains("verify"));
    let token = emails[0].token();

    let response = app
        .post_json("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_envelope(&response, 200, None);
    let profile = app
        .get_as("/api/v1/auth/profile", &session.access_token)
        .await;
    assert_eq!(profile.body["data"]["emailVerified"], true);

    let again = app
        .post_json("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_envelope(&again, 400, Some("BAD_REQUEST"));
    let forged = app
        .post_json(
            "/api/v1/auth/verify-email",
            json!({"token": "not-a-real-token"}),
        )
        .await;
    assert_envelope(&forged, 400, Some("BAD_REQUEST"));
    let missing = app.post_json("/api/v1/auth/verify-email", json!({})).await;
    assert_envelope(&missing, 422, Some("VALIDATION_ERROR"));
}

#[tokio::test]
async fn forgot_and_reset_password() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;

    let unknown = unique_email();
    let response = app
        .post_json("/api/v1/auth/forgot-password", json!({"email": unknown}))
        .await;
    let unknown_body = assert_envelope(&response, 200, None);
    assert!(app.emails_to(&unknown).await.is_empty());

    let response = app
        .post_json(
            "/api/v1/auth/forgot-password",
            json!({"email": session.email.to_uppercase()}),
        )
        .await;
    let known_body = assert_envelope(&response, 200, None);
    assert_eq!(
        unknown_body["message"], known_body["message"],
        "no hint whether the email exists"
    );
    let reset = app
        .emails_to(&session.email)
        .await
        .into_iter()
        .find(|e| e.subject.contains("Reset"))
        .expect("reset email");
    let token = reset.token();

    // A weak password is refused and does not burn the token.
    let weak = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_envelope(&weak, 422, Some("VALIDATION_ERROR"));

    let new_password = "brand-new-secret-7";
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": new_password}),
        )
        .await;
    assert_envelope(&response, 200, None);

    assert_eq!(
        app.get_as("/api/v1/auth/profile", &session.access_token)
            .await
            .status,
        401,
        "sessions revoked"
    );
    assert_eq!(app.post_refresh(&session.refresh_token).await.status, 401);
    assert_eq!(app.post_login(&session.email, PASSWORD).await.status, 401);
    app.logged_in(&session.email, new_password).await;

    let again = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": "another-one-8"}),
        )
        .await;
    assert_envelope(&again, 400, Some("BAD_REQUEST"));
}

#[tokio::test]
async fn a_reset_token_expires() {
    // Two seconds, not one: the email is sent by the sweep a moment later,
    // and an email whose token already died is not sent at all.
    let app = TestApp::spawn_with(&[("RESET_TOKEN_TTL_SECS", "2")]).await;
    let session = app.signed_up_user().await;
    let token = app.requested_reset_token(&session.email).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            json!({"token": token, "password": "brand-new-secret-7"}),
        )
        .await;
    assert_envelope(&response, 400, Some("BAD_REQUEST"));
    app.logged_in(&session.email, PASSWORD).await;
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN", "3/60")]).await;
    let session = app.signed_up_user().await;
    for _ in 0..3 {
        assert_eq!(app.post_login(&session.email, PASSWORD).await.status, 200);
    }
    let response = app.post_login(&session.email, PASSWORD).await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
    let retry: u64 = response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn failed_logins_lock_the_email_for_a_window() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2/900")]).await;
    let session = app.signed_up_user().await;
    for _ in 0..2 {
        assert_eq!(
            app.post_login(&session.email, "wrong-password-1")
                .await
                .status,
            401
        );
    }
    let response = app.post_login(&session.email, PASSWORD).await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
    assert!(response.header("retry-after").is_some());
    // Other emails are not affected.
    let other = app.signed_up_user().await;
    assert_eq!(app.post_login(&other.email, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn forgot_password_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_FORGOT_PASSWORD", "2/60")]).await;
    for _ in 0..2 {
        let response = app
            .post_json(
                "/api/v1/auth/forgot-password",
                json!({"email": unique_email()}),
            )
            .await;
        assert_eq!(response.status, 200);
    }
    let response = app
        .post_json(
            "/api/v1/auth/forgot-password",
            json!({"email": unique_email()}),
        )
        .await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn only_hashes_are_stored() {
    let app = TestApp::spawn().await;
    let response = app
        .post_register("Hash Check", &unique_email(), PASSWORD)
        .await;
    let session = session_from(&response.body["data"], "");
    let items = app
        .dynamodb
        .scan()
        .table_name(&app.storage.table_name)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let dump = format!("{items:?}");
    assert!(
        !dump.contains(&session.refresh_token),
        "raw refresh token stored"
    );
    assert!(
        !dump.contains(&session.access_token),
        "raw access token stored"
    );
    assert!(!dump.contains(PASSWORD), "raw password stored");
    let user = items
        .iter()
        .find(|item| item.get("sk") == Some(&AttributeValue::S("PROFILE".into())))
        .expect("user item");
    let hash = user["passwordHash"].as_s().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[tokio::test]
async fn make_admin_promotes_a_registered_user() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    let table = model::Table::new(app.dynamodb.clone(), app.storage.table_name.clone());
    let promoted = infra::admin::promote(&table, &session.email.to_uppercase())
        .await
        .unwrap();
    assert_eq!(promoted.to_string(), session.id);
    let profile = app
        .get_as("/api/v1/auth/profile", &session.access_token)
        .await;
    assert_eq!(
        profile.body["data"]["role"], "admin",
        "role changes apply to live sessions"
    );
    let missing = infra::admin::promote(&table, &unique_email())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no user"), "{missing}");
}

/// The statuses of `n` concurrent logins of `email` with `password`.
async fn concurrent_logins(app: &TestApp, email: &str, password: &str, n: usize) -> Vec<u16> {
    let attempts = (0..n).map(|_| app.post_login(email, password));
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|response| {
            if response.status == 429 {
                assert!(
                    response.header("retry-after").is_some(),
                    "429 without Retry-After"
                );
            }
            response.status
        })
        .collect()
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_checked_at_most_the_limit() {
    // The IP's own limit is out of the way: what refuses must be the slots.
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_LOGIN_FAILURES", "5/3600"),
        ("RATE_LIMIT_LOGIN", "1000/60"),
    ])
    .await;
    let session = app.signed_up_user().await;
    let mut statuses = concurrent_logins(&app, &session.email, "wrong-password-1", 10).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    // No slot is left, so not even the right password is tried.
    let response = app.post_login(&session.email, PASSWORD).await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn a_successful_login_gives_its_slot_back() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3/3600")]).await;
    let session = app.signed_up_user().await;
    for _ in 0..2 {
        let response = app.post_login(&session.email, "wrong-password-1").await;
        assert_eq!(response.status, 401);
    }
    // Right passwords take the last slot and give it back, every time.
    for _ in 0..3 {
        assert_eq!(app.post_login(&session.email, PASSWORD).await.status, 200);
    }
    let third = app.post_login(&session.email, "wrong-password-1").await;
    assert_eq!(third.status, 401, "the third failure still had a slot");
    let response = app.post_login(&session.email, PASSWORD).await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn a_suspended_account_with_the_right_password_uses_no_failure_slot() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_FAILURES", "1/900")]).await;
    let session = app.signed_up_user().await;
    set_status(&app, &session.id, "suspended").await;
    for _ in 0..3 {
        let response = app.post_login(&session.email, PASSWORD).await;
        assert_envelope(&response, 403, Some("FORBIDDEN"));
    }
    set_status(&app, &session.id, "active").await;
    assert_eq!(app.post_login(&session.email, PASSWORD).await.status, 200);
}

async fn forgot(app: &TestApp, email: &str) -> tests::TestResponse {
    app.post_json("/api/v1/auth/forgot-password", json!({"email": email}))
        .await
}

async fn reset_tokens(app: &TestApp, email: &str) -> Vec<String> {
    app.emails_to(email)
        .await
        .into_iter()
        .filter(|e| e.subject.contains("Reset"))
        .map(|e| e.token())
        .collect()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> tests::TestResponse {
    app.post_json(
        "/api/v1/auth/reset-password",
        json!({"token": token, "password": password}),
    )
    .await
}

#[tokio::test]
async fn forgot_password_is_limited_per_email() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    for _ in 0..3 {
        assert_eq!(forgot(&app, &session.email).await.status, 200);
    }
    let response = forgot(&app, &session.email.to_uppercase()).await;
    assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
    let retry: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(reset_tokens(&app, &session.email).await.len(), 3);
    // An unregistered address is limited the same way: no hint either way.
    let unknown = unique_email();
    for _ in 0..3 {
        assert_eq!(forgot(&app, &unknown).await.status, 200);
    }
    assert_eq!(forgot(&app, &unknown).await.status, 429);
    let other = app.signed_up_user().await;
    assert_eq!(forgot(&app, &other.email).await.status, 200);
}

#[tokio::test]
async fn a_reset_kills_every_outstanding_reset_token() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    forgot(&app, &session.email).await;
    forgot(&app, &session.email).await;
    let tokens = reset_tokens(&app, &session.email).await;
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1]);

    assert_eq!(
        reset(&app, &tokens[0], "first-new-secret-1").await.status,
        200
    );
    let second = reset(&app, &tokens[1], "second-new-secret-2").await;
    assert_envelope(&second, 400, Some("BAD_REQUEST"));
    app.logged_in(&session.email, "first-new-secret-1").await;
    assert_eq!(
        app.post_login(&session.email, "second-new-secret-2")
            .await
            .status,
        401
    );

    // A token asked for after the reset works.
    forgot(&app, &session.email).await;
    let tokens = reset_tokens(&app, &session.email).await;
    let third = reset(&app, &tokens[2], "third-new-secret-3").await;
    assert_eq!(third.status, 200, "{:#}", third.body);
    app.logged_in(&session.email, "third-new-secret-3").await;
}

#[tokio::test]
async fn two_concurrent_resets_with_two_tokens_change_the_password_once() {
    let app = TestApp::spawn().await;
    let session = app.signed_up_user().await;
    forgot(&app, &session.email).await;
    forgot(&app, &session.email).await;
    let tokens = reset_tokens(&app, &session.email).await;
    let (a, b) = tokio::join!(
        reset(&app, &tokens[0], "first-new-secret-1"),
        reset(&app, &tokens[1], "second-new-secret-2"),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400]);
    let winner = if a.status == 200 {
        "first-new-secret-1"
    } else {
        "second-new-secret-2"
    };
    app.logged_in(&session.email, winner).await;
}

#[tokio::test]
async fn a_session_cannot_be_refreshed_past_its_max_age() {
    let app = TestApp::spawn_with(&[("SESSION_MAX_AGE_SECS", "4")]).await;
    let session = app.signed_up_user().await;
    let started = std::time::Instant::now();
    let mut refresh_token = session.refresh_token.clone();
    // Rotating keeps working inside the lifetime…
    while started.elapsed() < Duration::from_millis(2000) {
        let response = app.post_refresh(&refresh_token).await;
        let body = assert_envelope(&response, 200, None);
        refresh_token = body["data"]["refreshToken"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(4100).saturating_sub(started.elapsed())).await;
    // …and stops at its end, however fresh the token.
    let response = app.post_refresh(&refresh_token).await;
    let body = assert_envelope(&response, 401, Some("UNAUTHORIZED"));
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body:?}"
    );
    // A new login starts a new lifetime.
    let fresh = app.logged_in(&session.email, PASSWORD).await;
    assert_eq!(app.post_refresh(&fresh.refresh_token).await.status, 200);
}

#[tokio::test]
async fn a_login_refused_per_ip_uses_no_failure_slot() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_LOGIN", "1/3600"),
        ("RATE_LIMIT_LOGIN_FAILURES", "5/3600"),
    ])
    .await;
    let session = app.signed_up_user().await;
    assert_eq!(
        app.post_login(&session.email, "wrong-password-1")
            .await
            .status,
        401
    );
    for _ in 0..3 {
        let response = app.post_login(&session.email, "wrong-password-1").await;
        assert_envelope(&response, 429, Some("RATE_LIMIT_EXCEEDED"));
    }
    // Only the one password that was checked holds a slot (summed over
    // windows, should one have ended meanwhile).
    let output = app
        .dynamodb
        .query()
        .table_name(&app.storage.table_name)
        .key_condition_expression(format!("{} = :pk", model::keys::PK))
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(model::keys::rate_pk(&format!(
                "login:failed:{}",
                session.email
            ))),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let slots: u64 = output
        .items()
        .iter()
        .map(|item| item["count"].as_n().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(slots, 1);
}

#[tokio::test]
async fn login_signs_an_admins_tokens_with_the_role_the_user_has() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    app.promote_to_admin(&user.id).await;
    let session = app.logged_in(&user.email, PASSWORD).await;
    let keys = jwt_keys();
    for (token, typ) in [
        (&session.access_token, platform::jwt::TokenType::Access),
        (&session.refresh_token, platform::jwt::TokenType::Refresh),
    ] {
        assert_eq!(
            keys.verify(token, typ).unwrap().role,
            Role::Admin,
            "{typ:?}"
        );
    }
    // The refresh token signed again is the one the session holds.
    let refreshed = app.post_refresh(&session.refresh_token).await;
    assert_eq!(refreshed.status, 200, "{:#}", refreshed.body);
}

#[tokio::test]
async fn a_suspended_user_with_the_right_password_gets_403_and_no_session() {
    let app = TestApp::spawn().await;
    let user = app.signed_up_user().await;
    let admin = app.signed_up_user().await;
    app.promote_to_admin(&admin.id).await;
    let admin = app.logged_in(&admin.email, PASSWORD).await;
    let suspended = app
        .send_as(
            "PATCH",
            &format!("/api/v1/users/{}", user.id),
            &admin.access_token,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(suspended.status, 200, "{:#}", suspended.body);
    let partition = model::keys::user_pk(&user.id.parse().unwrap());
    let before = app.partition_len(&partition).await;
    let refused = app.post_login(&user.email, PASSWORD).await;
    assert_envelope(&refused, 403, Some("FORBIDDEN"));
    // The user's partition holds its sessions: the one written alongside
    // the refused login is gone again.
    assert_eq!(app.partition_len(&partition).await, before);
    let wrong = app.post_login(&user.email, "not-the-password-1").await;
    assert_envelope(&wrong, 401, Some("UNAUTHORIZED"));
}
