//! `make seed`: demo data for a running `make dev`, through the public API
//! as a client would make it: an admin and two ordinary users with known
//! passwords, their emails verified, an avatar each, posts with tags, and
//! comments on each other's posts (so every user has a notification, and
//! the verified authors a comment email).
//!
//! Running it again changes nothing: a user who exists (409 on register)
//! is logged in instead, and a post, comment or avatar already there is not
//! made again. The admin is promoted with `make admin`'s own code
//! ([`crate::admin::promote`]); the verification tokens are read where the
//! emulator keeps the emails it accepted (moto's `/moto-api/data.json`), as
//! the tests do; against another emulator verification is skipped, said
//! in the report.

use std::{collections::HashMap, fmt, time::Duration};

use model::Table;
use platform::config::{ConfigError, Source, StorageConfig, http_url, present};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin::{self, AdminError};

/// A demo account. Passwords follow the register rule (8–128 characters
/// with a letter and a digit); a test checks every field against the API's
/// own parsers.
pub struct DemoUser {
    pub name: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub admin: bool,
    /// The disc of the avatar.
    pub color: [u8; 3],
}

pub const USERS: [DemoUser; 3] = [
    DemoUser {
        name: "Ada Lovelace",
        email: "ada@example.com",
        password: "ada-lovelace-1815",
        admin: true,
        color: [0x6a, 0x1b, 0x9a],
    },
    DemoUser {
        name: "Grace Hopper",
        email: "grace@example.com",
        password: "grace-hopper-1906",
        admin: false,
        color: [0x00, 0x69, 0x5c],
    },
    DemoUser {
        name: "Alan Turing",
        email: "alan@example.com",
        password: "alan-turing-1912",
        admin: false,
        color: [0xc6, 0x28, 0x28],
    },
];

pub struct DemoPost {
    /// The author's email.
    pub author: &'static str,
    /// Unique per author: what tells a second run that the post exists.
    pub title: &'static str,
    pub body: &'static str,
    pub tags: &'static [&'static str],
}

pub const POSTS: [DemoPost; 4] = [
    DemoPost {
        author: "ada@example.com",
        title: "Welcome to the demo",
        body: "This stack was seeded by `make seed`. Log in as any of the demo users, \
               post something, comment on someone else's post and watch the notification arrive.",
        tags: &["welcome", "announcements"],
    },
    DemoPost {
        author: "grace@example.com",
        title: "Notes on compilers",
        body: "It is much easier to apologise than to get permission.\n\nA compiler lets people \
               write what they mean and leaves the machine to the machine.",
        tags: &["compilers", "history"],
    },
    DemoPost {
        author: "grace@example.com",
        title: "Finding the first bug",
        body: "Relay #70, panel F: a moth, taped into the log book. First actual case of bug being found.",
        tags: &["debugging", "history"],
    },
    DemoPost {
        author: "alan@example.com",
        title: "Can machines think?",
        body: "I propose to consider the question. Instead of defining the terms, let us play a game.",
        tags: &["ai", "philosophy"],
    },
];

pub struct DemoComment {
    /// The commenter's email; never the post's author, or no notification.
    pub author: &'static str,
    /// The title of the post commented on.
    pub post: &'static str,
    pub body: &'static str,
}

pub const COMMENTS: [DemoComment; 4] = [
    DemoComment {
        author: "alan@example.com",
        post: "Notes on compilers",
        body: "A machine that translates for us: half of my imitation game already.",
    },
    DemoComment {
        author: "ada@example.com",
        post: "Finding the first bug",
        body: "The Analytical Engine never had moths, only my own mistakes.",
    },
    DemoComment {
        author: "grace@example.com",
        post: "Can machines think?",
        body: "They can certainly be made to do more than we tell them we told them.",
    },
    DemoComment {
        author: "grace@example.com",
        post: "Welcome to the demo",
        body: "Glad to be here!",
    },
];

/// Where to seed, read from the environment once.
pub struct SeedConfig {
    /// `API_BASE`, by default `http://127.0.0.1:$API_PORT`.
    pub api_base: String,
    /// `AWS_ENDPOINT_URL`: the emulator, for the promotion and the emails.
    pub emulator: String,
    /// `TABLE_NAME`, for the promotion.
    pub table_name: String,
}

impl SeedConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let api_base = match present(source, "API_BASE") {
            Some(_) => http_url(source, "API_BASE", None)?,
            None => format!("http://127.0.0.1:{}", api_port(source)?),
        };
        Ok(Self {
            api_base,
            emulator: http_url(source, "AWS_ENDPOINT_URL", None)?,
            table_name: StorageConfig::table_name(source)?,
        })
    }
}

fn api_port(source: &dyn Source) -> Result<u16, ConfigError> {
    let Some(raw) = present(source, "API_PORT") else {
        return Ok(3000);
    };
    raw.trim()
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| ConfigError::Invalid {
            name: "API_PORT",
            reason: format!("expected a port number (got {raw:?})"),
        })
}

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}: {message}")]
    Unreachable { what: String, message: String },
    #[error("{what}: the API answered {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "{email} is registered, but the demo password does not log in (changed, or the account was deleted); `make reset` starts the local stack over"
    )]
    ForeignAccount { email: &'static str },
    #[error("promoting {email} to admin: {source}")]
    Promote {
        email: &'static str,
        source: AdminError,
    },
}

impl fmt::Debug for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How many of each thing were made now and how many were there already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub new: usize,
    pub existing: usize,
}

impl Count {
    fn add(&mut self, new: bool) {
        if new {
            self.new += 1;
        } else {
            self.existing += 1;
        }
    }
}

/// What a run did, and how to log in; `Display` is the report `make seed`
/// prints.
#[derive(Debug, Default)]
pub struct Seeded {
    pub api_base: String,
    pub users: Count,
    pub verified: Count,
    pub avatars: Count,
    pub posts: Count,
    pub comments: Count,
    pub notes: Vec<String>,
}

impl fmt::Display for Seeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = [
            ("users", self.users),
            ("verified emails", self.verified),
            ("avatars", self.avatars),
            ("posts", self.posts),
            ("comments", self.comments),
        ]
        .map(|(what, c)| format!("{what} {} new, {} there already", c.new, c.existing))
        .join("; ");
        writeln!(f, "seeded {}: {counts}", self.api_base)?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        writeln!(f)?;
        writeln!(f, "Log in as any of them (role, email, password, name):")?;
        for user in &USERS {
            let role = if user.admin { "admin" } else { "user" };
            writeln!(
                f,
                "  {role:<5}  {:<18} {:<18} {}",
                user.email, user.password, user.name
            )?;
        }
        let example = &USERS[1];
        writeln!(f)?;
        writeln!(f, "For example:")?;
        writeln!(
            f,
            "  curl -s {}/api/v1/auth/login -H 'Content-Type: application/json' \\",
            self.api_base
        )?;
        writeln!(
            f,
            "    -d '{{\"email\": \"{}\", \"password\": \"{}\"}}'",
            example.email, example.password
        )?;
        writeln!(
            f,
            "and send its data.accessToken as 'Authorization: Bearer <token>', e.g. to {}/api/v1/notifications",
            self.api_base
        )
    }
}

/// Seeds the stack at `config.api_base`; `table` is where `make admin`
/// would promote (the emulator's table).
pub async fn seed(config: &SeedConfig, table: &Table) -> Result<Seeded, SeedError> {
    let api = Api::new(&config.api_base)?;
    let mut seeded = Seeded {
        api_base: config.api_base.clone(),
        ..Seeded::default()
    };
    let mut sessions = HashMap::new();
    for user in &USERS {
        let (session, new) = sign_in(&api, user).await?;
        seeded.users.add(new);
        if session.email_verified {
            seeded.verified.add(false);
        } else if verify(&api, &config.emulator, user, &mut seeded.notes).await? {
            seeded.verified.add(true);
        }
        sessions.insert(user.email, session);
    }
    for user in USERS.iter().filter(|user| user.admin) {
        admin::promote(table, user.email)
            .await
            .map_err(|source| SeedError::Promote {
                email: user.email,
                source,
            })?;
    }
    for user in &USERS {
        seeded
            .avatars
            .add(avatar(&api, &sessions[user.email], user).await?);
    }
    let mut post_ids = HashMap::new();
    for user in &USERS {
        let session = &sessions[user.email];
        let mine = api
            .expect(
                &format!("listing the posts of {}", user.email),
                StatusCode::OK,
                Request::get(&format!("/api/v1/posts?authorId={}&limit=100", session.id))
                    .token(&session.token),
            )
            .await?;
        let existing: HashMap<String, String> = array(&mine)
            .filter_map(|post| Some((text(&post["title"])?, text(&post["id"])?)))
            .collect();
        for post in POSTS.iter().filter(|post| post.author == user.email) {
            let id = match existing.get(post.title) {
                Some(id) => id.clone(),
                None => {
                    let created = api
                        .expect(
                            &format!("creating the post {:?}", post.title),
                            StatusCode::CREATED,
                            Request::post(
                                "/api/v1/posts",
                                json!({"title": post.title, "body": post.body, "tags": post.tags}),
                            )
                            .token(&session.token)
                            .idempotency_key(&format!("seed-post-{}", slug(post.title))),
                        )
                        .await?;
                    text(&created["id"]).ok_or_else(|| missing("a created post", "id"))?
                }
            };
            seeded.posts.add(!existing.contains_key(post.title));
            post_ids.insert(post.title, id);
        }
    }
    for comment in &COMMENTS {
        let session = &sessions[comment.author];
        let post_id = &post_ids[comment.post];
        let path = format!("/api/v1/posts/{post_id}/comments");
        let there = api
            .expect(
                &format!("listing the comments on {:?}", comment.post),
                StatusCode::OK,
                Request::get(&format!("{path}?limit=100")).token(&session.token),
            )
            .await?;
        let exists = array(&there).any(|c| {
            c["authorId"].as_str() == Some(session.id.as_str())
                && c["body"].as_str() == Some(comment.body)
        });
        if !exists {
            api.expect(
                &format!("commenting on {:?} as {}", comment.post, comment.author),
                StatusCode::CREATED,
                Request::post(&path, json!({"body": comment.body}))
                    .token(&session.token)
                    .idempotency_key(&format!("seed-comment-{}", slug(comment.body))),
            )
            .await?;
        }
        seeded.comments.add(!exists);
    }
    Ok(seeded)
}

struct Session {
    id: String,
    token: String,
    email_verified: bool,
}

/// Registers the user, or logs in when the email is taken; whether the
/// account is new.
async fn sign_in(api: &Api, user: &'static DemoUser) -> Result<(Session, bool), SeedError> {
    let registered = api
        .send(
            &format!("registering {}", user.email),
            Request::post(
                "/api/v1/auth/register",
                json!({"name": user.name, "email": user.email, "password": user.password}),
            ),
        )
        .await?;
    let (reply, new) = if registered.status == StatusCode::CONFLICT {
        let login = api
            .send(
                &format!("logging in as {}", user.email),
                Request::post(
                    "/api/v1/auth/login",
                    json!({"email": user.email, "password": user.password}),
                ),
            )
            .await?;
        if login.status == StatusCode::UNAUTHORIZED {
            return Err(SeedError::ForeignAccount { email: user.email });
        }
        (
            login.data(&format!("logging in as {}", user.email), StatusCode::OK)?,
            false,
        )
    } else {
        (
            registered.data(&format!("registering {}", user.email), StatusCode::CREATED)?,
            true,
        )
    };
    let session = Session {
        id: text(&reply["user"]["id"]).ok_or_else(|| missing("a session", "user.id"))?,
        token: text(&reply["accessToken"]).ok_or_else(|| missing("a session", "accessToken"))?,
        email_verified: reply["user"]["emailVerified"].as_bool() == Some(true),
    };
    Ok((session, new))
}

/// Verifies the user's email with the token of the newest verification
/// email the emulator accepted for it; whether it did.
async fn verify(
    api: &Api,
    emulator: &str,
    user: &DemoUser,
    notes: &mut Vec<String>,
) -> Result<bool, SeedError> {
    let Some(token) = verification_token(&api.http, emulator, user.email).await else {
        notes.push(format!(
            "{} is not verified: no verification email for it at {emulator}/moto-api/data.json \
             (an emulator other than moto keeps its emails elsewhere), so it gets no comment emails",
            user.email
        ));
        return Ok(false);
    };
    let what = format!("verifying {}", user.email);
    let reply = api
        .send(
            &what,
            Request::post("/api/v1/auth/verify-email", json!({"token": token})),
        )
        .await?;
    if reply.status == StatusCode::BAD_REQUEST {
        // There is no route to send a new token (docs/API.md §4.2).
        notes.push(format!(
            "{} is not verified: its verification token was used or has expired",
            user.email
        ));
        return Ok(false);
    }
    reply.data(&what, StatusCode::OK)?;
    Ok(true)
}

/// moto's dump of its models, which is where it keeps the emails it
/// accepted; `None` when there is none to be had. Dumping while requests
/// write can fail inside moto ("dictionary changed size"): retried. The
/// email is sent by the stream worker from the outbox a moment after the
/// register, so it is waited for, 10 s at most.
async fn verification_token(http: &reqwest::Client, emulator: &str, to: &str) -> Option<String> {
    let url = format!("{emulator}/moto-api/data.json");
    for _ in 0..200 {
        if let Ok(response) = http.get(&url).send().await {
            if response.status() == StatusCode::NOT_FOUND {
                return None;
            }
            if let Ok(data) = response.json::<Value>().await {
                let token = array(&data["ses"]["Message"])
                    .filter(|message| {
                        array(&message["destinations"]["ToAddresses"]).any(|a| a == to)
                            && message["subject"]
                                .as_str()
                                .is_some_and(|s| s.contains("Verify"))
                    })
                    .filter_map(|message| token_in(message["body"].as_str()?))
                    .next_back();
                if token.is_some() {
                    return token;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The `token=` value in an email's body (docs/API.md §8).
fn token_in(body: &str) -> Option<String> {
    let start = body.find("token=")? + "token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// Uploads the user's avatar unless they have one; whether it did.
async fn avatar(api: &Api, session: &Session, user: &DemoUser) -> Result<bool, SeedError> {
    let me = api
        .expect(
            &format!("reading the profile of {}", user.email),
            StatusCode::OK,
            Request::get("/api/v1/users/me").token(&session.token),
        )
        .await?;
    if me["avatarUrl"].is_string() {
        return Ok(false);
    }
    let png = avatar_png(user.color);
    let what = format!("uploading the avatar of {}", user.email);
    let created = api
        .expect(
            &what,
            StatusCode::CREATED,
            Request::post(
                "/api/v1/uploads",
                json!({"filename": "avatar.png", "contentType": "image/png", "size": png.len(), "purpose": "avatar"}),
            )
            .token(&session.token),
        )
        .await?;
    let id = text(&created["upload"]["id"]).ok_or_else(|| missing("an upload", "upload.id"))?;
    let url = text(&created["uploadUrl"]).ok_or_else(|| missing("an upload", "uploadUrl"))?;
    let mut put = api.http.put(&url).body(png);
    for (name, value) in created["uploadHeaders"].as_object().into_iter().flatten() {
        // reqwest sets the length from the body, which is the declared size.
        if let (false, Some(value)) = (name.eq_ignore_ascii_case("content-length"), value.as_str())
        {
            put = put.header(name, value);
        }
    }
    let stored = put.send().await.map_err(|err| unreachable(&what, &err))?;
    if !stored.status().is_success() {
        return Err(SeedError::Refused {
            what: format!("{what} to S3"),
            status: stored.status().as_u16(),
            message: stored.text().await.unwrap_or_default(),
        });
    }
    api.expect(
        &what,
        StatusCode::OK,
        Request::new(Method::POST, &format!("/api/v1/uploads/{id}/complete")).token(&session.token),
    )
    .await?;
    api.expect(
        &what,
        StatusCode::OK,
        Request::new(Method::PATCH, "/api/v1/users/me")
            .json(json!({"avatarUploadId": id}))
            .token(&session.token),
    )
    .await?;
    Ok(true)
}

/// An idempotency key from a title or a body: printable ASCII, no spaces.
fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').chars().take(64).collect()
}

fn array(value: &Value) -> impl DoubleEndedIterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn missing(what: &str, field: &str) -> SeedError {
    SeedError::Unreachable {
        what: format!("reading {what}"),
        message: format!("the answer has no {field}"),
    }
}

fn unreachable(what: &str, err: &reqwest::Error) -> SeedError {
    let hint = if err.is_connect() {
        " (is make dev running? API_BASE or API_PORT names where)"
    } else {
        ""
    };
    SeedError::Unreachable {
        what: what.to_owned(),
        message: format!("{}{hint}", platform::error::ErrorChain(err)),
    }
}

/// One API request.
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    token: Option<String>,
    idempotency_key: Option<String>,
}

impl Request {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            body: None,
            token: None,
            idempotency_key: None,
        }
    }

    fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    fn post(path: &str, body: Value) -> Self {
        Self::new(Method::POST, path).json(body)
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn idempotency_key(mut self, key: &str) -> Self {
        self.idempotency_key = Some(key.to_owned());
        self
    }
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    /// The envelope's `data`, if the status is `expected`.
    fn data(self, what: &str, expected: StatusCode) -> Result<Value, SeedError> {
        if self.status != expected {
            return Err(SeedError::Refused {
                what: what.to_owned(),
                status: self.status.as_u16(),
                message: self.body["message"]
                    .as_str()
                    .unwrap_or("(no envelope)")
                    .to_owned(),
            });
        }
        Ok(self.body["data"].clone())
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

/// How often a request refused with 429 is sent again, after its
/// `Retry-After`: a second run within a minute can meet the login limit.
const RATE_LIMITED_RETRIES: usize = 3;

impl Api {
    fn new(base: &str) -> Result<Self, SeedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| unreachable("building the HTTP client", &err))?;
        Ok(Self {
            base: base.to_owned(),
            http,
        })
    }

    async fn send(&self, what: &str, request: Request) -> Result<Reply, SeedError> {
        let mut attempt = 0;
        loop {
            let mut builder = self.http.request(
                request.method.clone(),
                format!("{}{}", self.base, request.path),
            );
            if let Some(token) = &request.token {
                builder = builder.bearer_auth(token);
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            if let Some(key) = &request.idempotency_key {
                builder = builder.header("Idempotency-Key", key);
            }
            let response = builder
                .send()
                .await
                .map_err(|err| unreachable(what, &err))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMITED_RETRIES {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                attempt += 1;
                continue;
            }
            let body = response.json().await.unwrap_or(Value::Null);
            return Ok(Reply { status, body });
        }
    }

    async fn expect(
        &self,
        what: &str,
        expected: StatusCode,
        request: Request,
    ) -> Result<Value, SeedError> {
        self.send(what, request).await?.data(what, expected)
    }
}

/// A 32×32 RGB PNG: a disc of `color` on white. Written out (stored
/// deflate blocks, the CRC and Adler checksums by hand) so that the demo
/// needs no image crate and no binary file.
pub fn avatar_png(color: [u8; 3]) -> Vec<u8> {
    const SIZE: i32 = 32;
    let mut pixels = Vec::new();
    for y in 0..SIZE {
        pixels.push(0); // filter type None
        for x in 0..SIZE {
            let (dx, dy) = (2 * x + 1 - SIZE, 2 * y + 1 - SIZE);
            let inside = dx * dx + dy * dy <= (SIZE - 2) * (SIZE - 2);
            pixels.extend_from_slice(&if inside { color } else { [0xff; 3] });
        }
    }
    let mut header = Vec::new();
    header.extend_from_slice(&(SIZE as u32).to_be_bytes());
    header.extend_from_slice(&(SIZE as u32).to_be_bytes());
    // 8 bits per channel, RGB, deflate, no filtering method, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_stored(&pixels));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of uncompressed deflate blocks (RFC 1950, RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(0xffff).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use model::domain::{CommentBody, Email, Name, Password, PostBody, Tag, Title};

    use super::*;

    #[test]
    fn the_demo_data_passes_the_apis_own_rules() {
        for user in &USERS {
            Name::parse("name", user.name.into()).unwrap();
            Password::parse("password", user.password.into()).unwrap();
            let email = Email::parse("email", user.email.into()).unwrap();
            assert_eq!(
                email.as_str(),
                user.email,
                "already in the form the API stores"
            );
        }
        for post in &POSTS {
            Title::parse("title", post.title.into()).unwrap();
            PostBody::parse("body", post.body.into()).unwrap();
            for tag in post.tags {
                Tag::parse("tags", tag).unwrap();
            }
            assert!(
                USERS.iter().any(|u| u.email == post.author),
                "{}",
                post.title
            );
        }
        for comment in &COMMENTS {
            CommentBody::parse("body", comment.body.into()).unwrap();
        }
        assert_eq!(USERS.iter().filter(|u| u.admin).count(), 1);
    }

    #[test]
    fn every_comment_notifies_and_every_user_gets_a_notification() {
        for comment in &COMMENTS {
            let post = POSTS.iter().find(|p| p.title == comment.post).unwrap();
            assert_ne!(
                post.author, comment.author,
                "a comment on one's own post notifies no one"
            );
            assert!(USERS.iter().any(|u| u.email == comment.author));
        }
        for user in &USERS {
            let notified = COMMENTS.iter().any(|c| {
                POSTS
                    .iter()
                    .any(|p| p.title == c.post && p.author == user.email)
            });
            assert!(notified, "{} gets no notification", user.email);
        }
    }

    #[test]
    fn titles_and_comment_keys_are_unique() {
        let titles: std::collections::HashSet<_> = POSTS.iter().map(|p| slug(p.title)).collect();
        assert_eq!(titles.len(), POSTS.len());
        let keys: std::collections::HashSet<_> = COMMENTS.iter().map(|c| slug(c.body)).collect();
        assert_eq!(keys.len(), COMMENTS.len());
        assert_eq!(slug("Can machines think?"), "can-machines-think");
    }

    #[test]
    fn the_checksums_match_their_reference_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn the_avatar_is_a_well_formed_png() {
        let png = avatar_png([1, 2, 3]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32(body), crc);
            kinds.push(String::from_utf8(body[..4].to_vec()).unwrap());
            if &body[..4] == b"IDAT" {
                let zlib = &body[4..];
                assert_eq!(
                    u16::from_be_bytes([zlib[0], zlib[1]]) % 31,
                    0,
                    "zlib header check"
                );
                let len = u16::from_le_bytes([zlib[3], zlib[4]]) as usize;
                assert_eq!(len, 32 * (1 + 32 * 3), "one stored block of every scanline");
                let pixels = &zlib[7..7 + len];
                let centre = 16 * (1 + 32 * 3) + 1 + 16 * 3;
                assert_eq!(&pixels[centre..centre + 3], &[1, 2, 3], "the disc");
                assert_eq!(&pixels[1..4], &[0xff; 3], "the corner");
                let adler = &zlib[7 + len..];
                assert_eq!(adler, adler32(pixels).to_be_bytes());
            }
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
    }

    #[test]
    fn a_verification_token_is_read_as_the_tests_read_it() {
        let body = "Open http://x/verify-email?token=abc-DEF_1 or send it.";
        assert_eq!(token_in(body).as_deref(), Some("abc-DEF_1"));
        assert_eq!(token_in("no token here"), None);
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_api_base_defaults_to_the_local_gateway_and_bad_values_are_named() {
        let base = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("TABLE_NAME", "t"),
        ];
        let config = SeedConfig::from_source(&env(&base)).unwrap();
        assert_eq!(config.api_base, "http://127.0.0.1:3000");
        let with_port = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("TABLE_NAME", "t"),
            ("API_PORT", "3200"),
        ];
        assert_eq!(
            SeedConfig::from_source(&env(&with_port)).unwrap().api_base,
            "http://127.0.0.1:3200"
        );
        let bad_port = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("TABLE_NAME", "t"),
            ("API_PORT", "x"),
        ];
        let err = SeedConfig::from_source(&env(&bad_port))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("API_PORT is invalid"), "{err}");
        let no_endpoint = [("TABLE_NAME", "t")];
        let err = SeedConfig::from_source(&env(&no_endpoint))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
        let explicit = [
            ("API_BASE", "http://api.test/"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("TABLE_NAME", "t"),
        ];
        assert_eq!(
            SeedConfig::from_source(&env(&explicit)).unwrap().api_base,
            "http://api.test"
        );
    }

    #[test]
    fn the_report_tells_how_to_log_in() {
        let report = Seeded {
            api_base: "http://127.0.0.1:3000".into(),
            ..Seeded::default()
        }
        .to_string();
        for user in &USERS {
            assert!(report.contains(user.email) && report.contains(user.password));
        }
        assert!(
            report.contains("  user   grace@example.com  grace-hopper-1906  Grace Hopper"),
            "{report}"
        );
        assert!(report.contains("curl -s http://127.0.0.1:3000/api/v1/auth/login"));
    }
}
