//! The frames the server sends on the WebSocket API (docs/API.md §7), and
//! pushing them to connections through the API Gateway management API, for
//! the websocket function and the stream worker. Who is connected where is
//! the table's (`model::connections`).
//!
//! Every outgoing frame is one variant of `OutgoingFrame`, tagged by
//! `type`; an error frame takes its `code` from the one error table
//! (`ErrorCode`). A push answered 410 (GoneException) means the peer is
//! gone: every item of that connection is deleted on the spot.

use aws_smithy_types::Blob;
use futures::future::join_all;
use model::{
    Table,
    connections::{Connections, Stats},
    domain::{ChatText, ConnectionId, MessageId, Room},
    notifications::Notification,
    users::PublicUser,
};
use serde::Serialize;

use crate::error::{AppError, ErrorChain, ErrorCode};

/// Every frame the server sends (docs/API.md §7), tagged by `type`.
///
/// Fields are declared in the order the contract lists them; on the wire
/// (`to_json`) an object's keys come out sorted, `type` among them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum OutgoingFrame {
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    Pong,
    /// To every member of `room`, the joiner included.
    #[serde(rename = "chat.joined")]
    ChatJoined { room: Room, user: PublicUser },
    /// To every member of `room`, the sender included.
    #[serde(rename = "chat.message", rename_all = "camelCase")]
    ChatMessage {
        room: Room,
        from: PublicUser,
        text: ChatText,
        sent_at: String,
        id: MessageId,
    },
    /// `{onlineUsers, connections}`, to dashboard subscribers.
    #[serde(rename = "dashboard.stats")]
    DashboardStats(Stats),
    /// A new notification, to every connection of its recipient.
    #[serde(rename = "notification")]
    Notification { notification: Notification },
    /// A frame that failed; the connection stays open.
    #[serde(rename = "error")]
    Error { code: ErrorCode, message: String },
}

impl OutgoingFrame {
    /// An error frame with `code` and `message`.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        OutgoingFrame::Error {
            code,
            message: message.into(),
        }
    }

    /// The frame as it goes on the wire.
    pub fn to_json(&self) -> Result<String, AppError> {
        to_wire_json(self).map_err(|err| AppError::internal("serialising a frame", err))
    }
}

/// JSON text of the WebSocket API: frames and the `$connect` refusal body.
/// It goes through a `serde_json::Value`, whose objects keep their keys
/// sorted, so the bytes are the ones these bodies had when they were built
/// as `Value`s (`type` sorted among the fields, not first).
pub fn to_wire_json<T: Serialize>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(&serde_json::to_value(value)?)
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

impl Realtime {
    pub fn new(table: Table, management: aws_sdk_apigatewaymanagement::Client) -> Self {
        Self { table, management }
    }

    /// Pushes one frame; a 410 removes the connection everywhere.
    pub async fn push(
        &self,
        connection_id: &ConnectionId,
        frame: &OutgoingFrame,
    ) -> Result<Delivery, AppError> {
        let data = frame.to_json()?;
        let result = self
            .management
            .post_to_connection()
            .connection_id(connection_id.as_str())
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
                self.table.disconnect(connection_id).await?;
                Ok(Delivery::Gone)
            }
            Err(err) => Err(model::error::translate("apigateway", err).into()),
        }
    }

    /// Ends a connection from the server's side: its items go (so no
    /// frame is served and no push reaches it) and the management API
    /// closes the socket, both at once. A peer already gone is no error;
    /// API Gateway then runs `$disconnect`, which finds nothing left.
    pub async fn end(&self, connection_id: &ConnectionId) -> Result<(), AppError> {
        let (removed, closed) = tokio::join!(
            self.table.disconnect(connection_id),
            self.management
                .delete_connection()
                .connection_id(connection_id.as_str())
                .send(),
        );
        removed?;
        match closed {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(model::error::translate("apigateway", err).into()),
        }
    }

    /// Pushes a frame to many connections at once. Failures are logged, not
    /// returned: one bad peer must not stop the others' delivery.
    pub async fn fan_out(
        &self,
        connection_ids: &[ConnectionId],
        frame: &OutgoingFrame,
    ) -> Vec<(ConnectionId, Result<Delivery, AppError>)> {
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
        // Independent reads: one round trip for both.
        let (stats, subscribers) =
            tokio::try_join!(self.table.stats(), self.table.dashboard_subscribers())?;
        self.fan_out(&subscribers, &OutgoingFrame::DashboardStats(stats))
            .await;
        Ok(stats)
    }
}

/// Where the management API of the WebSocket API is.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `WS_MANAGEMENT_ENDPOINT`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// on AWS, the local gateway's WebSocket port and stage locally.
    pub management_endpoint: String,
}

impl RealtimeConfig {
    pub fn from_source(
        source: &dyn crate::config::Source,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            management_endpoint: crate::config::http_url(source, "WS_MANAGEMENT_ENDPOINT", None)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    use model::{domain::UserId, notifications::NotificationType};
    use serde_json::json;

    const USER: &str = "01J0000000000000000000000A";
    const MESSAGE: &str = "01J0000000000000000000000M";
    const AT: &str = "2025-01-02T03:04:05.678Z";

    fn user() -> PublicUser {
        PublicUser {
            id: USER.into(),
            name: "Alice".into(),
            avatar_url: None,
            created_at: Some(AT.into()),
        }
    }

    fn wire(frame: &OutgoingFrame) -> String {
        frame.to_json().unwrap()
    }

    #[test]
    fn pong() {
        assert_eq!(wire(&OutgoingFrame::Pong), r#"{"type":"pong"}"#);
    }

    #[test]
    fn chat_joined() {
        let frame = OutgoingFrame::ChatJoined {
            room: Room::parse("general").unwrap(),
            user: user(),
        };
        assert_eq!(
            wire(&frame),
            format!(
                r#"{{"room":"general","type":"chat.joined","user":{{"createdAt":"{AT}","id":"{USER}","name":"Alice"}}}}"#
            )
        );
    }

    #[test]
    fn chat_message() {
        let frame = OutgoingFrame::ChatMessage {
            room: Room::parse("general").unwrap(),
            from: user(),
            text: ChatText::parse("hello room").unwrap(),
            sent_at: AT.into(),
            id: MESSAGE.parse().unwrap(),
        };
        assert_eq!(
            wire(&frame),
            format!(
                r#"{{"from":{{"createdAt":"{AT}","id":"{USER}","name":"Alice"}},"id":"{MESSAGE}","room":"general","sentAt":"{AT}","text":"hello room","type":"chat.message"}}"#
            )
        );
    }

    #[test]
    fn dashboard_stats() {
        let frame = OutgoingFrame::DashboardStats(Stats {
            online_users: 2,
            connections: 3,
        });
        assert_eq!(
            wire(&frame),
            r#"{"connections":3,"onlineUsers":2,"type":"dashboard.stats"}"#
        );
    }

    #[test]
    fn notification() {
        let recipient: UserId = USER.parse().unwrap();
        let mut data = serde_json::Map::new();
        data.insert("postId".into(), json!("01J0000000000000000000000P"));
        let mut item = model::notifications::NotificationItem::new(
            &recipient,
            NotificationType::Comment,
            "New comment".into(),
            "Bob: nice".into(),
            data,
            AT.into(),
        );
        item.id = "01J0000000000000000000000N".parse().unwrap();
        let frame = OutgoingFrame::Notification {
            notification: item.to_response(),
        };
        assert_eq!(
            wire(&frame),
            format!(
                r#"{{"notification":{{"body":"Bob: nice","createdAt":"{AT}","data":{{"postId":"01J0000000000000000000000P"}},"id":"01J0000000000000000000000N","read":false,"title":"New comment","type":"comment"}},"type":"notification"}}"#
            )
        );
    }

    #[test]
    fn error_frames_take_code_and_message_from_the_error_table() {
        assert_eq!(
            wire(&OutgoingFrame::error(
                ErrorCode::BadRequest,
                "Frame is not valid JSON"
            )),
            r#"{"code":"BAD_REQUEST","message":"Frame is not valid JSON","type":"error"}"#
        );
        let unknown = AppError::UnknownAction("Frame has no action".into());
        assert_eq!(
            wire(&OutgoingFrame::error(
                unknown.code(),
                unknown.public_message()
            )),
            r#"{"code":"UNKNOWN_ACTION","message":"Frame has no action","type":"error"}"#
        );
        let internal = AppError::internal("x", std::io::Error::other("secret"));
        assert_eq!(
            wire(&OutgoingFrame::error(
                internal.code(),
                internal.public_message()
            )),
            r#"{"code":"INTERNAL_ERROR","message":"Internal server error","type":"error"}"#
        );
    }

    /// The bytes are the ones of the frames built as `json!` values before
    /// they were typed.
    #[test]
    fn the_wire_is_what_the_untyped_frames_sent() {
        let room = Room::parse("r-1").unwrap();
        let cases = [
            (OutgoingFrame::Pong, json!({"type": "pong"})),
            (
                OutgoingFrame::ChatJoined {
                    room: room.clone(),
                    user: user(),
                },
                json!({"type": "chat.joined", "room": "r-1", "user": user()}),
            ),
            (
                OutgoingFrame::ChatMessage {
                    room,
                    from: user(),
                    text: ChatText::parse("hi").unwrap(),
                    sent_at: AT.into(),
                    id: MESSAGE.parse().unwrap(),
                },
                json!({
                    "type": "chat.message",
                    "room": "r-1",
                    "from": user(),
                    "text": "hi",
                    "sentAt": AT,
                    "id": MESSAGE,
                }),
            ),
            (
                OutgoingFrame::DashboardStats(Stats {
                    online_users: 1,
                    connections: 4,
                }),
                json!({"type": "dashboard.stats", "onlineUsers": 1, "connections": 4}),
            ),
            (
                OutgoingFrame::error(ErrorCode::RateLimitExceeded, "Too many frames; slow down"),
                json!({"type": "error", "code": "RATE_LIMIT_EXCEEDED", "message": "Too many frames; slow down"}),
            ),
        ];
        for (frame, old) in cases {
            assert_eq!(wire(&frame), serde_json::to_string(&old).unwrap());
        }
    }
}
