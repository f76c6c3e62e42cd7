//! Live connections: who is connected, who is in which room, who watches the
//! dashboard, and pushing frames to them through the API Gateway management
//! API. Used by the websocket function and the stream worker.
//!
//! Items (every one with a TTL just past API Gateway's 2-hour connection
//! limit, so a lost `$disconnect` cannot leave a ghost for long; reads also
//! skip expired items because TTL deletion lags):
//! - `CONN#<id>` / `META`: the connection's user
//! - `CONN#<id>` / `ROOM#<room>`, `CONN#<id>` / `DASHBOARD`: what to undo
//! - `PRESENCE` / `CONN#<id>`: every live connection, for the counts
//! - `USER#<uid>` / `CONN#<id>`: a user's connections, for notifications
//! - `ROOM#<room>` / `CONN#<id>`: a room's members
//! - `DASHBOARD` / `CONN#<id>`: dashboard subscribers
//!
//! A push answered 410 (GoneException) means the peer is gone: every item of
//! that connection is deleted on the spot.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_smithy_types::Blob;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::{
    error::{AppError, ErrorChain},
    jwt::unix_now,
    store::{self, Item, Table, delete_request, from_item, put_request, to_item},
    users::{PublicUser, user_pk},
};

/// API Gateway closes every WebSocket after 2 hours; a few minutes more.
pub const CONNECTION_TTL_SECS: u64 = 2 * 3600 + 300;

pub const PRESENCE_PK: &str = "PRESENCE";
pub const DASHBOARD_PK: &str = "DASHBOARD";

pub fn conn_pk(id: &str) -> String {
    format!("CONN#{id}")
}

pub fn conn_sk(id: &str) -> String {
    format!("CONN#{id}")
}

pub fn room_pk(room: &str) -> String {
    format!("ROOM#{room}")
}

/// `CONN#<id>` / `META`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub connection_id: String,
    pub user_id: String,
    pub user_name: String,
    pub user_created_at: String,
    pub connected_at: String,
    pub ttl: i64,
}

impl ConnectionItem {
    pub fn user(&self) -> PublicUser {
        PublicUser {
            id: self.user_id.clone(),
            name: self.user_name.clone(),
            avatar_url: None,
            created_at: self.user_created_at.clone(),
        }
    }
}

/// Any item that points at a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefItem {
    pk: String,
    sk: String,
    entity: String,
    connection_id: String,
    #[serde(default)]
    user_id: Option<String>,
    ttl: i64,
}

/// The numbers of `dashboard.stats`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub online_users: u64,
    pub connections: u64,
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The peer was gone; its items have been removed.
    Gone,
}

/// Connection state in the table plus the management API client.
#[derive(Debug, Clone)]
pub struct Realtime {
    pub table: Table,
    pub management: aws_sdk_apigatewaymanagement::Client,
}

fn expiry() -> i64 {
    (unix_now() + CONNECTION_TTL_SECS) as i64
}

fn live(item: &Item, now: i64) -> bool {
    match item.get("ttl") {
        Some(AttributeValue::N(ttl)) => ttl.parse::<i64>().map(|t| t > now).unwrap_or(false),
        _ => false,
    }
}

fn ref_item(
    pk: String,
    sk: String,
    entity: &str,
    connection_id: &str,
    user_id: Option<&str>,
    ttl: i64,
) -> RefItem {
    RefItem {
        pk,
        sk,
        entity: entity.to_owned(),
        connection_id: connection_id.to_owned(),
        user_id: user_id.map(str::to_owned),
        ttl,
    }
}

impl Realtime {
    pub fn new(table: Table, management: aws_sdk_apigatewaymanagement::Client) -> Self {
        Self { table, management }
    }

    /// Records a new connection: one batch write.
    pub async fn connect(
        &self,
        connection_id: &str,
        user: &PublicUser,
        connected_at: &str,
    ) -> Result<(), AppError> {
        let ttl = expiry();
        let meta = ConnectionItem {
            pk: conn_pk(connection_id),
            sk: "META".into(),
            entity: "connection".into(),
            connection_id: connection_id.to_owned(),
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            user_created_at: user.created_at.clone(),
            connected_at: connected_at.to_owned(),
            ttl,
        };
        let items = vec![
            to_item(&meta)?,
            to_item(&ref_item(
                PRESENCE_PK.into(),
                conn_sk(connection_id),
                "presence",
                connection_id,
                Some(&user.id),
                ttl,
            ))?,
            to_item(&ref_item(
                user_pk(&user.id),
                conn_sk(connection_id),
                "user-connection",
                connection_id,
                Some(&user.id),
                ttl,
            ))?,
        ];
        self.write(
            items
                .into_iter()
                .map(put_request)
                .collect::<Result<_, _>>()?,
        )
        .await
    }

    /// The connection's META item, if it is still live.
    pub async fn connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionItem>, AppError> {
        let output = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key("pk", AttributeValue::S(conn_pk(connection_id)))
            .key("sk", AttributeValue::S("META".into()))
            // A frame right after $connect must see the connection it made.
            .consistent_read(true)
            .send()
            .await
            .map_err(store::dynamo)?;
        let now = unix_now() as i64;
        output
            .item
            .filter(|item| live(item, now))
            .map(from_item)
            .transpose()
    }

    /// Removes every item of a connection: on `$disconnect` and on a 410.
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), AppError> {
        let own = self.query(&conn_pk(connection_id), None, false).await?;
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut user_id = None;
        for item in &own {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("pk"), item.get("sk"))
            else {
                continue;
            };
            keys.push((pk.clone(), sk.clone()));
            if sk == "META" {
                user_id = item.get("userId").and_then(|v| v.as_s().ok()).cloned();
            } else if let Some(room) = sk.strip_prefix("ROOM#") {
                keys.push((room_pk(room), conn_sk(connection_id)));
            } else if sk == "DASHBOARD" {
                keys.push((DASHBOARD_PK.into(), conn_sk(connection_id)));
            }
        }
        keys.push((PRESENCE_PK.into(), conn_sk(connection_id)));
        if let Some(user_id) = user_id {
            keys.push((user_pk(&user_id), conn_sk(connection_id)));
        }
        let requests = keys
            .into_iter()
            .map(|(pk, sk)| delete_request(pk, sk))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(requests).await
    }

    /// Adds a connection to a room and returns the room's live members.
    pub async fn join(&self, connection: &ConnectionItem, room: &str) -> Result<(), AppError> {
        let ttl = connection.ttl;
        let id = &connection.connection_id;
        let items = vec![
            to_item(&ref_item(
                room_pk(room),
                conn_sk(id),
                "room-member",
                id,
                Some(&connection.user_id),
                ttl,
            ))?,
            to_item(&ref_item(
                conn_pk(id),
                format!("ROOM#{room}"),
                "connection-room",
                id,
                None,
                ttl,
            ))?,
        ];
        self.write(
            items
                .into_iter()
                .map(put_request)
                .collect::<Result<_, _>>()?,
        )
        .await
    }

    pub async fn leave(&self, connection_id: &str, room: &str) -> Result<(), AppError> {
        self.write(vec![
            delete_request(room_pk(room), conn_sk(connection_id))?,
            delete_request(conn_pk(connection_id), format!("ROOM#{room}"))?,
        ])
        .await
    }

    /// The live connections in a room.
    pub async fn members(&self, room: &str) -> Result<Vec<String>, AppError> {
        Ok(connection_ids(
            self.query(&room_pk(room), None, true).await?,
        ))
    }

    pub async fn subscribe_dashboard(&self, connection: &ConnectionItem) -> Result<(), AppError> {
        let id = &connection.connection_id;
        let ttl = connection.ttl;
        let items = vec![
            to_item(&ref_item(
                DASHBOARD_PK.into(),
                conn_sk(id),
                "dashboard-subscriber",
                id,
                None,
                ttl,
            ))?,
            to_item(&ref_item(
                conn_pk(id),
                "DASHBOARD".into(),
                "connection-dashboard",
                id,
                None,
                ttl,
            ))?,
        ];
        self.write(
            items
                .into_iter()
                .map(put_request)
                .collect::<Result<_, _>>()?,
        )
        .await
    }

    pub async fn dashboard_subscribers(&self) -> Result<Vec<String>, AppError> {
        Ok(connection_ids(self.query(DASHBOARD_PK, None, true).await?))
    }

    /// A user's live connections.
    pub async fn user_connections(&self, user_id: &str) -> Result<Vec<String>, AppError> {
        Ok(connection_ids(
            self.query(&user_pk(user_id), Some("CONN#"), true).await?,
        ))
    }

    /// Users online and live connections, from the presence partition.
    pub async fn stats(&self) -> Result<Stats, AppError> {
        let items = self.query(PRESENCE_PK, None, true).await?;
        let users: HashSet<&str> = items
            .iter()
            .filter_map(|item| {
                item.get("userId")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
            })
            .collect();
        Ok(Stats {
            online_users: users.len() as u64,
            connections: items.len() as u64,
        })
    }

    /// Pushes one frame; a 410 removes the connection everywhere.
    pub async fn push(
        &self,
        connection_id: &str,
        frame: &serde_json::Value,
    ) -> Result<Delivery, AppError> {
        let data = serde_json::to_vec(frame)
            .map_err(|err| AppError::internal("serialising a frame", err))?;
        let result = self
            .management
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Delivery::Sent),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                tracing::info!(connectionId = %connection_id, "connection gone; cleaning up");
                self.disconnect(connection_id).await?;
                Ok(Delivery::Gone)
            }
            Err(err) => Err(store::translate("apigateway", err)),
        }
    }

    /// Pushes a frame to many connections at once. Failures are logged, not
    /// returned: one bad peer must not stop the others' delivery.
    pub async fn fan_out(
        &self,
        connection_ids: &[String],
        frame: &serde_json::Value,
    ) -> Vec<(String, Result<Delivery, AppError>)> {
        let pushes = connection_ids
            .iter()
            .map(|id| async move { (id.clone(), self.push(id, frame).await) });
        let results = join_all(pushes).await;
        for (id, result) in &results {
            if let Err(err) = result {
                tracing::warn!(connectionId = %id, error = %ErrorChain(err), "push failed");
            }
        }
        results
    }

    /// Sends the current counts to every dashboard subscriber.
    pub async fn broadcast_stats(&self) -> Result<Stats, AppError> {
        let stats = self.stats().await?;
        let subscribers = self.dashboard_subscribers().await?;
        self.fan_out(&subscribers, &stats_frame(stats)).await;
        Ok(stats)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        only_live: bool,
    ) -> Result<Vec<Item>, AppError> {
        let now = unix_now() as i64;
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression(if sk_prefix.is_some() {
                    "pk = :pk AND begins_with(sk, :prefix)"
                } else {
                    "pk = :pk"
                })
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(prefix) = sk_prefix {
                query = query
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()));
            }
            let output = query.send().await.map_err(store::dynamo)?;
            items.extend(
                output
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|item| !only_live || live(item, now)),
            );
            match output.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), AppError> {
        store::batch_write(&self.table, requests).await
    }
}

fn connection_ids(items: Vec<Item>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| {
            item.get("connectionId")
                .and_then(|v| v.as_s().ok())
                .cloned()
        })
        .collect()
}

/// Where the management API of the WebSocket API is.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `WS_MANAGEMENT_ENDPOINT`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// on AWS, the local gateway's WebSocket port and stage locally.
    pub management_endpoint: String,
}

impl RealtimeConfig {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Self::from_source(&crate::config::ProcessEnv)
    }

    pub fn from_source(
        source: &dyn crate::config::Source,
    ) -> Result<Self, crate::config::ConfigError> {
        let name = "WS_MANAGEMENT_ENDPOINT";
        let endpoint = source
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(crate::config::ConfigError::Missing { name })?;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(crate::config::ConfigError::Invalid {
                name,
                reason: format!("expected an http(s) URL (got {endpoint:?})"),
            });
        }
        Ok(Self {
            management_endpoint: endpoint.trim_end_matches('/').to_owned(),
        })
    }

    /// The management API client; building it does no network I/O.
    pub fn client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_apigatewaymanagement::Client {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(&self.management_endpoint)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
    }
}

/// `{type:"dashboard.stats", onlineUsers, connections}`.
pub fn stats_frame(stats: Stats) -> serde_json::Value {
    serde_json::json!({
        "type": "dashboard.stats",
        "onlineUsers": stats.online_users,
        "connections": stats.connections,
    })
}

/// `{type:"error", code, message}`.
pub fn error_frame(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"type": "error", "code": code, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    #[test]
    fn expired_items_are_not_live() {
        let now = 1_000;
        let item = |ttl: &str| HashMap::from([("ttl".to_owned(), AttributeValue::N(ttl.into()))]);
        assert!(live(&item("1001"), now));
        assert!(!live(&item("1000"), now));
        assert!(!live(&HashMap::new(), now));
    }

    #[test]
    fn frames_have_the_contract_shape() {
        let frame = stats_frame(Stats {
            online_users: 2,
            connections: 3,
        });
        assert_eq!(frame["type"], "dashboard.stats");
        assert_eq!(frame["onlineUsers"], 2);
        assert_eq!(error_frame("BAD_REQUEST", "x")["code"], "BAD_REQUEST");
    }
}
