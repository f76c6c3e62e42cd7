//! `make dev`'s saved state, the app's half: which items must not come
//! back after a restart, and the calls that have the emulator's launcher
//! load and save everything else.
//!
//! The launcher (infra/python/moto_launcher.py) saves and loads the table
//! items, the bucket objects and the sent emails itself, because the sent
//! emails are moto's SES backend state, which no AWS API reads. What it
//! does not know is the app's key formats, so the prefixes of the items of
//! live WebSocket connections come from here, derived from
//! [`model::keys`]: a restart has closed those sockets, and their items
//! coming back would count ghosts as online and push to dead connections.

use std::time::Duration;

use model::keys;
use platform::config::{ConfigError, Source, http_url};
use serde_json::{Value, json};

/// The key prefixes the launcher skips, on save and on load: an item whose
/// partition key or sort key starts with one of them belongs to a live
/// connection. Every such item carries the connection's id as
/// `CONN#<id>`, as its partition key (the connection's own items) or as its
/// sort key (presence, room member, dashboard subscriber, a user's
/// connection), and no other item's key starts so.
pub fn live_connection_key_prefixes() -> Vec<&'static str> {
    vec![keys::CONNECTION_SK_PREFIX]
}

/// The launcher's rule, for the tests of the prefixes.
pub fn is_live_connection_item(pk: &str, sk: &str) -> bool {
    live_connection_key_prefixes()
        .iter()
        .any(|prefix| pk.starts_with(prefix) || sk.starts_with(prefix))
}

/// `Debug` prints the message: `main` returning this error shows it as is.
#[derive(thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("asking the emulator at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the emulator at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
}

impl std::fmt::Debug for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The launcher's state endpoints, at `AWS_ENDPOINT_URL`.
pub struct StateClient {
    endpoint: String,
    http: reqwest::Client,
}

/// A save of thousands of items and megabytes of objects takes seconds;
/// a launcher that takes longer is stuck.
const TIMEOUT: Duration = Duration::from_secs(120);

impl StateClient {
    pub fn from_source(source: &dyn Source) -> Result<Self, StateError> {
        let endpoint = http_url(source, "AWS_ENDPOINT_URL", None)?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|err| StateError::Unreachable {
                url: endpoint.clone(),
                message: err.to_string(),
            })?;
        Ok(Self { endpoint, http })
    }

    /// Loads the saved state into the emulator; what it says it did.
    pub async fn load(&self) -> Result<String, StateError> {
        self.call("load").await
    }

    /// Saves the emulator's data over the saved state; what it says it did.
    pub async fn save(&self) -> Result<String, StateError> {
        self.call("save").await
    }

    async fn call(&self, action: &str) -> Result<String, StateError> {
        let url = format!("{}/_local/state/{action}", self.endpoint);
        let unreachable = |err: reqwest::Error| StateError::Unreachable {
            url: url.clone(),
            message: platform::error::ErrorChain(&err).to_string(),
        };
        let response = self
            .http
            .post(&url)
            .json(&json!({ "skipKeyPrefixes": live_connection_key_prefixes() }))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"]
            .as_str()
            .unwrap_or("(no message: not our emulator launcher?)")
            .to_owned();
        if status.is_success() {
            Ok(message)
        } else {
            Err(StateError::Refused {
                url,
                status: status.as_u16(),
                message,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use model::{
        domain::{ConnectionId, Email, Room},
        keys::{self, Entity},
    };

    use super::*;

    /// The keys of an item of each entity, as the stores build them: the
    /// match is exhaustive, so a new entity has to be placed here.
    fn example_keys(entity: Entity) -> (String, String) {
        let user = "01J0000000000000000000000A".parse().unwrap();
        let id = "01J0000000000000000000000B";
        let connection = ConnectionId::parse("Abc=").unwrap();
        let room = Room::parse("general").unwrap();
        let email = Email::parse("email", "a@b.test".into()).unwrap();
        let tag = model::domain::Tag::parse("tag", "rust").unwrap();
        match entity {
            Entity::User => (keys::user_pk(&user), keys::PROFILE_SK.into()),
            Entity::Email => (keys::email_pk(&email), keys::EMAIL_SK.into()),
            Entity::Session => (keys::user_pk(&user), keys::session_sk(&id.parse().unwrap())),
            Entity::Token => (keys::token_pk("ab"), keys::VERIFY_SK.into()),
            Entity::Post => (keys::post_pk(&id.parse().unwrap()), keys::POST_SK.into()),
            Entity::PostTag => (keys::tag_pk(&tag), keys::tag_ref_sk(&id.parse().unwrap())),
            Entity::Comment => (
                keys::post_pk(&id.parse().unwrap()),
                keys::comment_sk(&id.parse().unwrap()),
            ),
            Entity::Notification => (
                keys::user_pk(&user),
                keys::notification_sk(&id.parse().unwrap()),
            ),
            Entity::Upload => (
                keys::upload_pk(&id.parse().unwrap()),
                keys::UPLOAD_SK.into(),
            ),
            Entity::UploadSlots => (keys::user_pk(&user), keys::UPLOAD_SLOTS_SK.into()),
            Entity::Idempotency => (
                keys::idempotency_pk(&user, "create-post", "k"),
                keys::IDEMPOTENCY_SK.into(),
            ),
            Entity::Connection => (keys::connection_pk(&connection), keys::META_SK.into()),
            Entity::Presence => (keys::PRESENCE_PK.into(), keys::connection_sk(&connection)),
            Entity::UserConnection => (keys::user_pk(&user), keys::connection_sk(&connection)),
            Entity::RoomMember => (keys::room_pk(&room), keys::connection_sk(&connection)),
            Entity::ConnectionRoom => (keys::connection_pk(&connection), keys::room_sk(&room)),
            Entity::DashboardSubscriber => {
                (keys::DASHBOARD_PK.into(), keys::connection_sk(&connection))
            }
            Entity::ConnectionDashboard => {
                (keys::connection_pk(&connection), keys::DASHBOARD_SK.into())
            }
            Entity::AdminCount => (keys::ADMIN_COUNT_PK.into(), keys::ADMIN_COUNT_SK.into()),
            Entity::Outbox => (keys::outbox_pk(id), keys::OUTBOX_SK.into()),
            Entity::EmailThrottle => (
                keys::user_pk(&user),
                keys::mailed_post_sk(&id.parse().unwrap()),
            ),
        }
    }

    #[test]
    fn exactly_the_items_of_live_connections_are_skipped() {
        for entity in Entity::ALL {
            let live = matches!(
                entity,
                Entity::Connection
                    | Entity::Presence
                    | Entity::UserConnection
                    | Entity::RoomMember
                    | Entity::ConnectionRoom
                    | Entity::DashboardSubscriber
                    | Entity::ConnectionDashboard
            );
            let (pk, sk) = example_keys(entity);
            assert_eq!(
                is_live_connection_item(&pk, &sk),
                live,
                "{entity:?}: {pk} / {sk}"
            );
        }
    }

    #[test]
    fn a_rate_window_of_a_connection_is_not_one_of_its_items() {
        // It expires on its own, and names the connection only inside its key.
        let pk = keys::rate_pk("ws:Abc=");
        assert!(!is_live_connection_item(&pk, &keys::rate_window_sk(1, 7)));
    }

    #[test]
    fn the_endpoint_is_required_and_named() {
        let none = |_: &str| None;
        let err = StateClient::from_source(&none).err().unwrap().to_string();
        assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
        let bad = |_: &str| Some("localhost:4566".to_owned());
        let err = StateClient::from_source(&bad).err().unwrap().to_string();
        assert!(err.contains("AWS_ENDPOINT_URL is invalid"), "{err}");
    }
}
