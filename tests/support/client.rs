//! Client-like helpers on `TestApp`: one method per endpoint, so tests read
//! as what a user does (`app.register(...)`, `app.login(...)`).

use serde_json::{Value, json};

use crate::{TestApp, TestResponse};

/// An email address no other test uses.
pub fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

pub const PASSWORD: &str = "correct-horse-42";

/// A signed-in user as tests hold one.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// An email as the emulator recorded it.
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

impl SentEmail {
    /// The `token=` value in the body.
    pub fn token(&self) -> String {
        let start = self.body.find("token=").expect("a token in the email") + "token=".len();
        self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: Value) -> TestResponse {
        self.request("POST", path, Some(&body), &[]).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> TestResponse {
        let bearer = format!("Bearer {token}");
        self.request("GET", path, None, &[("Authorization", &bearer)])
            .await
    }

    pub async fn send_as(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let bearer = format!("Bearer {token}");
        self.request(method, path, body.as_ref(), &[("Authorization", &bearer)])
            .await
    }

    pub async fn post_register(&self, name: &str, email: &str, password: &str) -> TestResponse {
        self.post_json(
            "/api/v1/auth/register",
            json!({"name": name, "email": email, "password": password}),
        )
        .await
    }

    pub async fn post_login(&self, email: &str, password: &str) -> TestResponse {
        self.post_json(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> TestResponse {
        self.post_json(
            "/api/v1/auth/refresh",
            json!({"refreshToken": refresh_token}),
        )
        .await
    }

    /// Registers a new user and returns their session.
    pub async fn signed_up_user(&self) -> Session {
        let email = unique_email();
        let response = self.post_register("Test User", &email, PASSWORD).await;
        assert_eq!(response.status, 201, "{:#}", response.body);
        session_from(&response.body["data"], &email)
    }

    /// Logs in and returns the new session.
    pub async fn logged_in(&self, email: &str, password: &str) -> Session {
        let response = self.post_login(email, password).await;
        assert_eq!(response.status, 200, "{:#}", response.body);
        session_from(&response.body["data"], email)
    }

    /// Asks for a password reset for `email` and returns the token of the
    /// newest reset email it was sent.
    pub async fn requested_reset_token(&self, email: &str) -> String {
        let response = self
            .post_json("/api/v1/auth/forgot-password", json!({"email": email}))
            .await;
        assert_eq!(response.status, 200, "{:#}", response.body);
        self.emails_to(email)
            .await
            .into_iter()
            .rev()
            .find(|e| e.subject.contains("Reset"))
            .expect("a reset email")
            .token()
    }

    /// Emails the emulator accepted for `to`, oldest first, once the
    /// outbox's due emails are sent: the sweep runs first, as the schedule
    /// would (with or without the stream poller, each email goes once).
    pub async fn emails_to(&self, to: &str) -> Vec<SentEmail> {
        self.run_sweep().await;
        self.mailbox_of(to).await
    }

    /// One run of the outbox sweep, as the schedule runs it.
    pub async fn run_sweep(&self) -> stream::Tally {
        infra::schedule::run_once(&self.sweep, "us-east-1", "OutboxSweep")
            .await
            .expect("the sweep runs")
    }

    /// What the emulator accepted for `to` so far, oldest first: nothing
    /// is sent first.
    pub async fn mailbox_of(&self, to: &str) -> Vec<SentEmail> {
        let data = self.moto_data().await;
        data["ses"]["Message"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|message| SentEmail {
                to: message["destinations"]["ToAddresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                subject: message["subject"].as_str().unwrap_or_default().to_owned(),
                body: message["body"].as_str().unwrap_or_default().to_owned(),
            })
            .filter(|email| email.to.iter().any(|address| address == to))
            .collect()
    }

    /// moto's dump of every model. Dumping while other tests write can fail
    /// inside moto ("dictionary changed size"), so a failed dump is retried.
    async fn moto_data(&self) -> Value {
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let mut last_error = String::new();
        for _ in 0..20 {
            match reqwest::get(&url).await {
                Ok(response) if response.status().is_success() => {
                    match response.json::<Value>().await {
                        Ok(data) => return data,
                        Err(err) => last_error = err.to_string(),
                    }
                }
                Ok(response) => last_error = format!("status {}", response.status()),
                Err(err) => last_error = err.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("moto data.json kept failing: {last_error}");
    }

    /// Makes user `user_id` an admin through the store, as `make admin`
    /// does (which looks the user up by email first).
    pub async fn promote_to_admin(&self, user_id: &str) {
        use model::{
            domain::Role,
            users::{AdminChange, Users},
        };
        let table = model::Table::new(self.dynamodb.clone(), self.storage.table_name.clone());
        let change = AdminChange {
            role: Some(Role::Admin),
            status: None,
        };
        table
            .admin_update(
                &user_id.parse().expect("a user id"),
                change,
                &model::clock::now_rfc3339(),
            )
            .await
            .expect("promote");
    }
}

pub fn session_from(data: &Value, email: &str) -> Session {
    Session {
        id: data["user"]["id"].as_str().expect("user id").to_owned(),
        email: email.to_owned(),
        access_token: data["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh_token: data["refreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}
