//! Live connections as the table holds them (`Connections`): who is
//! connected, who is in which room, who watches the dashboard. Pushing
//! frames to them is the platform's (`platform::realtime`).
//!
//! Items (every one with a TTL just past API Gateway's 2-hour connection
//! limit, so a lost `$disconnect` cannot leave a ghost for long; reads also
//! skip expired items because TTL deletion lags):
//! - `CONN#<id>` / `META`: the connection's user and session
//! - `CONN#<id>` / `ROOM#<room>`, `CONN#<id>` / `DASHBOARD`: what to undo
//! - `PRESENCE` / `CONN#<id>`: every live connection, for the counts
//! - `USER#<uid>` / `CONN#<id>`: a user's connections and their sessions,
//!   for notifications and for closing the connections of a session that
//!   ended
//! - `ROOM#<room>` / `CONN#<id>`: a room's members
//! - `DASHBOARD` / `CONN#<id>`: dashboard subscribers

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_now,
    domain::{ConnectionId, Room, SessionId, UserId, UserStatus},
    error::{Condition, StoreError, dynamo},
    keys::{
        self, CONNECTION_SK_PREFIX, DASHBOARD_PK, DASHBOARD_SK, Entity, META_SK, PK, PRESENCE_PK,
        SK, TTL,
    },
    sessions::SessionItem,
    table::{self, Item, Table, delete_request, from_item, key, put_request, to_item},
    users::{PublicUser, UserItem},
};

/// API Gateway closes every WebSocket after 2 hours; a few minutes more.
pub const CONNECTION_TTL_SECS: u64 = 2 * 3600 + 300;

/// `CONN#<id>` / `META`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub connection_id: ConnectionId,
    pub user_id: UserId,
    pub user_name: String,
    pub user_created_at: String,
    /// The session whose access token opened the connection; the
    /// connection ends with it. Absent on connections opened before
    /// sessions were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    pub connected_at: String,
    pub ttl: i64,
}

impl ConnectionItem {
    pub fn user(&self) -> PublicUser {
        PublicUser {
            id: self.user_id.to_string(),
            name: self.user_name.clone(),
            avatar_url: None,
            created_at: Some(self.user_created_at.clone()),
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
    connection_id: ConnectionId,
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<SessionId>,
    ttl: i64,
}

/// One live connection of a user, and the session it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConnection {
    pub connection_id: ConnectionId,
    /// `None` for a connection opened before sessions were recorded.
    pub session_id: Option<SessionId>,
}

/// The numbers of `dashboard.stats`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub online_users: u64,
    pub connections: u64,
}

fn expiry() -> i64 {
    (unix_now() + CONNECTION_TTL_SECS) as i64
}

fn live(item: &Item, now: i64) -> bool {
    match item.get(TTL) {
        Some(AttributeValue::N(ttl)) => ttl.parse::<i64>().map(|t| t > now).unwrap_or(false),
        _ => false,
    }
}

fn ref_item(
    pk: String,
    sk: String,
    entity: Entity,
    connection_id: &ConnectionId,
    user_id: Option<&UserId>,
    ttl: i64,
) -> RefItem {
    RefItem {
        pk,
        sk,
        entity: entity.as_str().to_owned(),
        connection_id: connection_id.clone(),
        user_id: user_id.copied(),
        session_id: None,
        ttl,
    }
}

/// Connection state.
#[expect(
    async_fn_in_trait,
    reason = "called on the DynamoDB implementation, whose futures are Send; nothing is generic over it"
)]
pub trait Connections {
    /// Records a new connection of `user` in session `session`, as one
    /// transaction that holds only while the session and the user are as
    /// `user` shows them (`SessionEnded` otherwise).
    async fn connect(
        &self,
        id: &ConnectionId,
        user: &UserItem,
        session: &SessionId,
        connected_at: &str,
    ) -> Result<(), StoreError>;
    /// The connection's META item, if it is still live.
    async fn connection(&self, id: &ConnectionId) -> Result<Option<ConnectionItem>, StoreError>;
    /// Removes every item of a connection: on `$disconnect` and on a 410.
    async fn disconnect(&self, id: &ConnectionId) -> Result<(), StoreError>;
    /// Adds a connection to a room.
    async fn join(&self, connection: &ConnectionItem, room: &Room) -> Result<(), StoreError>;
    async fn leave(&self, id: &ConnectionId, room: &Room) -> Result<(), StoreError>;
    /// The live connections in a room.
    async fn members(&self, room: &Room) -> Result<Vec<ConnectionId>, StoreError>;
    async fn subscribe_dashboard(&self, connection: &ConnectionItem) -> Result<(), StoreError>;
    async fn dashboard_subscribers(&self) -> Result<Vec<ConnectionId>, StoreError>;
    /// A user's live connections.
    async fn user_connections(&self, user: &UserId) -> Result<Vec<ConnectionId>, StoreError>;
    /// A user's live connections with the session each belongs to.
    async fn user_connection_sessions(
        &self,
        user: &UserId,
    ) -> Result<Vec<UserConnection>, StoreError>;
    /// Users online and live connections, from the presence partition.
    async fn stats(&self) -> Result<Stats, StoreError>;
}

impl Connections for Table {
    async fn connect(
        &self,
        id: &ConnectionId,
        user: &UserItem,
        session: &SessionId,
        connected_at: &str,
    ) -> Result<(), StoreError> {
        let ttl = expiry();
        let meta = ConnectionItem {
            pk: keys::connection_pk(id),
            sk: META_SK.into(),
            entity: Entity::Connection.as_str().into(),
            connection_id: id.clone(),
            user_id: user.id,
            user_name: user.name.to_string(),
            user_created_at: user.created_at.clone(),
            session_id: Some(*session),
            connected_at: connected_at.to_owned(),
            ttl,
        };
        let items = vec![
            to_item(&meta)?,
            to_item(&ref_item(
                PRESENCE_PK.into(),
                keys::connection_sk(id),
                Entity::Presence,
                id,
                Some(&user.id),
                ttl,
            ))?,
            to_item(&RefItem {
                session_id: Some(*session),
                ..ref_item(
                    keys::user_pk(&user.id),
                    keys::connection_sk(id),
                    Entity::UserConnection,
                    id,
                    Some(&user.id),
                    ttl,
                )
            })?,
        ];
        // The connection is written only while its session is alive as
        // the handshake saw it. A session ended just before is refused; one
        // ended just after finds the connection when the stream worker
        // looks, since that look follows the ending write. Without the
        // checks a logout landing between the handshake's read and this
        // write would leave a socket nobody closes.
        let mut writes = items
            .into_iter()
            .map(|item| table::transact_put(self, item, None))
            .collect::<Result<Vec<_>, _>>()?;
        writes.push(table::transact_check(
            self,
            SessionItem::key(&user.id, session),
            "attribute_exists(pk) AND revoked = :false",
            HashMap::new(),
            HashMap::from([(":false".to_owned(), AttributeValue::Bool(false))]),
        )?);
        writes.push(table::transact_check(
            self,
            UserItem::key(&user.id),
            "#status = :active AND (sessionsValidAfter = :seen OR attribute_not_exists(sessionsValidAfter))",
            HashMap::from([("#status".to_owned(), "status".to_owned())]),
            HashMap::from([
                (
                    ":active".to_owned(),
                    AttributeValue::S(UserStatus::Active.as_str().to_owned()),
                ),
                (
                    ":seen".to_owned(),
                    AttributeValue::N(user.sessions_valid_after.to_string()),
                ),
            ]),
        )?);
        table::transact_write(self, writes)
            .await
            .map_err(|failure| failure.named(|_| Some(Condition::SessionEnded)))
    }

    async fn connection(&self, id: &ConnectionId) -> Result<Option<ConnectionItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::connection_pk(id), META_SK.into())))
            // A frame right after $connect must see the connection it made.
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        let now = unix_now() as i64;
        output
            .item
            .filter(|item| live(item, now))
            .map(from_item)
            .transpose()
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), StoreError> {
        let own = query(self, &keys::connection_pk(id), None, false).await?;
        let mut keys_to_delete: Vec<(String, String)> = Vec::new();
        let mut user_id = None;
        for item in &own {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get(PK), item.get(SK))
            else {
                continue;
            };
            keys_to_delete.push((pk.clone(), sk.clone()));
            if sk == META_SK {
                user_id = item
                    .get("userId")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|raw| raw.parse::<UserId>().ok());
            } else if let Some(room) = keys::room_of_sk(sk) {
                keys_to_delete.push((keys::room_pk(&room), keys::connection_sk(id)));
            } else if sk == DASHBOARD_SK {
                keys_to_delete.push((DASHBOARD_PK.into(), keys::connection_sk(id)));
            }
        }
        keys_to_delete.push((PRESENCE_PK.into(), keys::connection_sk(id)));
        if let Some(user_id) = user_id {
            keys_to_delete.push((keys::user_pk(&user_id), keys::connection_sk(id)));
        }
        let requests = keys_to_delete
            .into_iter()
            .map(|(pk, sk)| delete_request(pk, sk))
            .collect::<Result<Vec<_>, _>>()?;
        write(self, requests).await
    }

    async fn join(&self, connection: &ConnectionItem, room: &Room) -> Result<(), StoreError> {
        let ttl = connection.ttl;
        let id = &connection.connection_id;
        let items = vec![
            to_item(&ref_item(
                keys::room_pk(room),
                keys::connection_sk(id),
                Entity::RoomMember,
                id,
                Some(&connection.user_id),
                ttl,
            ))?,
            to_item(&ref_item(
                keys::connection_pk(id),
                keys::room_sk(room),
                Entity::ConnectionRoom,
                id,
                None,
                ttl,
            ))?,
        ];
        put_all(self, items).await
    }

    async fn leave(&self, id: &ConnectionId, room: &Room) -> Result<(), StoreError> {
        write(
            self,
            vec![
                delete_request(keys::room_pk(room), keys::connection_sk(id))?,
                delete_request(keys::connection_pk(id), keys::room_sk(room))?,
            ],
        )
        .await
    }

    async fn members(&self, room: &Room) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(connection_ids(
            query(self, &keys::room_pk(room), None, true).await?,
        ))
    }

    async fn subscribe_dashboard(&self, connection: &ConnectionItem) -> Result<(), StoreError> {
        let id = &connection.connection_id;
        let ttl = connection.ttl;
        let items = vec![
            to_item(&ref_item(
                DASHBOARD_PK.into(),
                keys::connection_sk(id),
                Entity::DashboardSubscriber,
                id,
                None,
                ttl,
            ))?,
            to_item(&ref_item(
                keys::connection_pk(id),
                DASHBOARD_SK.into(),
                Entity::ConnectionDashboard,
                id,
                None,
                ttl,
            ))?,
        ];
        put_all(self, items).await
    }

    async fn dashboard_subscribers(&self) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(connection_ids(query(self, DASHBOARD_PK, None, true).await?))
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(connection_ids(
            query(self, &keys::user_pk(user), Some(CONNECTION_SK_PREFIX), true).await?,
        ))
    }

    async fn user_connection_sessions(
        &self,
        user: &UserId,
    ) -> Result<Vec<UserConnection>, StoreError> {
        let items = query(self, &keys::user_pk(user), Some(CONNECTION_SK_PREFIX), true).await?;
        let mut connections = Vec::with_capacity(items.len());
        for item in items {
            let pointer: RefItem = from_item(item)?;
            connections.push(UserConnection {
                connection_id: pointer.connection_id,
                session_id: pointer.session_id,
            });
        }
        Ok(connections)
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let items = query(self, PRESENCE_PK, None, true).await?;
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
}

async fn put_all(table: &Table, items: Vec<Item>) -> Result<(), StoreError> {
    write(
        table,
        items
            .into_iter()
            .map(put_request)
            .collect::<Result<_, _>>()?,
    )
    .await
}

async fn write(table: &Table, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
    table::batch_write(table, requests).await
}

/// Every item of a partition (optionally under a sort-key prefix), all
/// pages, strongly consistent; `only_live` skips items past their TTL.
async fn query(
    table: &Table,
    pk: &str,
    sk_prefix: Option<&str>,
    only_live: bool,
) -> Result<Vec<Item>, StoreError> {
    let now = unix_now() as i64;
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut query = table
            .client
            .query()
            .table_name(&table.name)
            .key_condition_expression(if sk_prefix.is_some() {
                format!("{PK} = :pk AND begins_with({SK}, :prefix)")
            } else {
                format!("{PK} = :pk")
            })
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .set_exclusive_start_key(start.take());
        if let Some(prefix) = sk_prefix {
            query =
                query.expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()));
        }
        let output = query.send().await.map_err(dynamo)?;
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

/// The connection ids of pointer items; one that does not parse (no
/// writer makes one) is skipped rather than failing a whole fan-out.
fn connection_ids(items: Vec<Item>) -> Vec<ConnectionId> {
    items
        .into_iter()
        .filter_map(|item| {
            item.get("connectionId")
                .and_then(|v| v.as_s().ok())
                .and_then(|raw| ConnectionId::parse(raw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    #[test]
    fn expired_items_are_not_live() {
        let now = 1_000;
        let item = |ttl: &str| HashMap::from([(TTL.to_owned(), AttributeValue::N(ttl.into()))]);
        assert!(live(&item("1001"), now));
        assert!(!live(&item("1000"), now));
        assert!(!live(&HashMap::new(), now));
    }
}
