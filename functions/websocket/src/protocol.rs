//! What a client sends on the WebSocket API (docs/API.md §7): one JSON
//! object per frame, routed on its `action` and parsed into `IncomingFrame`
//! with its fields as domain values. What the server sends back is
//! `platform::realtime::OutgoingFrame`.
//!
//! A frame is read in two steps, because the handler checks the connection
//! in between (docs/API.md §7 answers a malformed frame before an unknown
//! connection, and an unknown connection before the frame's action):
//! `json_object` (BAD_REQUEST), then `IncomingFrame::from_object`
//! (UNKNOWN_ACTION, then VALIDATION_ERROR for the fields, room first).

use model::domain::{ChatText, FieldError, Room};
use platform::{AppError, error::ErrorCode, realtime::OutgoingFrame};
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::{Map, Value};

/// API Gateway's own frame limit, 32 KiB (docs/API.md §7).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Every frame a client may send, tagged by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action")]
pub enum IncomingFrame {
    /// Answered with `pong`.
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "chat.join", deserialize_with = "room")]
    ChatJoin { room: Room },
    #[serde(rename = "chat.leave", deserialize_with = "room")]
    ChatLeave { room: Room },
    #[serde(rename = "chat.send", deserialize_with = "room_and_text")]
    ChatSend { room: Room, text: ChatText },
    /// Current `dashboard.stats` now, and again whenever presence changes.
    #[serde(rename = "dashboard.subscribe")]
    DashboardSubscribe,
}

impl IncomingFrame {
    /// The `action` of every variant (a test checks they agree).
    pub const ACTIONS: [&str; 5] = [
        "ping",
        "chat.join",
        "chat.leave",
        "chat.send",
        "dashboard.subscribe",
    ];

    /// The frame's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            IncomingFrame::Ping => "ping",
            IncomingFrame::ChatJoin { .. } => "chat.join",
            IncomingFrame::ChatLeave { .. } => "chat.leave",
            IncomingFrame::ChatSend { .. } => "chat.send",
            IncomingFrame::DashboardSubscribe => "dashboard.subscribe",
        }
    }

    /// The frame a JSON object asks for: UNKNOWN_ACTION when its `action`
    /// is missing, not a string or not one of `ACTIONS`, else
    /// VALIDATION_ERROR for the first field that breaks its rule.
    pub fn from_object(object: Map<String, Value>) -> Result<Self, FrameError> {
        match object.get("action") {
            Some(Value::String(action)) if Self::ACTIONS.contains(&action.as_str()) => {}
            Some(Value::String(other)) => {
                return Err(AppError::UnknownAction(format!(
                    "Unknown action {:?}",
                    truncate(other)
                ))
                .into());
            }
            _ => return Err(AppError::UnknownAction("Frame has no action".into()).into()),
        }
        // The action is known, so only a field can fail here, and its
        // message is the field's own (line 0: nothing is appended to it).
        serde_json::from_value(Value::Object(object))
            .map_err(|err| FrameError::new(ErrorCode::ValidationError, err.to_string()))
    }
}

/// The text of a frame as a JSON object: BAD_REQUEST if it is not one.
pub fn json_object(body: &str) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_str(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(AppError::BadRequest("Frame must be a JSON object".into())),
        Err(_) => Err(AppError::BadRequest("Frame is not valid JSON".into())),
    }
}

/// A failed frame: the code and message of the error frame it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// Whether the connection is closed after the error frame: only when
    /// it may no longer act at all (its session ended), never for a bad
    /// frame.
    pub closes: bool,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            closes: false,
        }
    }

    /// An error after which the server closes the connection.
    pub fn closing(err: AppError) -> Self {
        Self {
            closes: true,
            ..Self::from(err)
        }
    }

    pub fn to_frame(&self) -> OutgoingFrame {
        OutgoingFrame::error(self.code, self.message.clone())
    }
}

/// Its row of the error table: code and public message. A server-side
/// failure is logged with its cause here, the frame saying only that it
/// failed.
impl From<AppError> for FrameError {
    fn from(err: AppError) -> Self {
        if err.status().is_server_error() {
            tracing::error!(error = %platform::error::ErrorChain(&err), "frame failed");
        }
        Self::new(err.code(), err.public_message())
    }
}

/// The fields a frame may carry, as sent; each action reads its own and
/// checks them in the contract's order (room, then text).
#[derive(Deserialize)]
struct Fields {
    room: Option<Value>,
    text: Option<Value>,
}

fn field_text<'v>(value: Option<&'v Value>, name: &str) -> Result<&'v str, String> {
    value
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} is required and must be a string"))
}

fn parse_room(fields: &Fields) -> Result<Room, String> {
    Room::parse(field_text(fields.room.as_ref(), "room")?).map_err(message)
}

fn parse_text(fields: &Fields) -> Result<ChatText, String> {
    ChatText::parse(field_text(fields.text.as_ref(), "text")?).map_err(message)
}

fn message(err: FieldError) -> String {
    err.message
}

fn room<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Room, D::Error> {
    let fields = Fields::deserialize(deserializer)?;
    parse_room(&fields).map_err(D::Error::custom)
}

fn room_and_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(Room, ChatText), D::Error> {
    let fields = Fields::deserialize(deserializer)?;
    let room = parse_room(&fields).map_err(D::Error::custom)?;
    let text = parse_text(&fields).map_err(D::Error::custom)?;
    Ok((room, text))
}

/// An unknown action is echoed back, at most 64 characters of it.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_limit_is_the_contracts() {
        assert_eq!(MAX_FRAME_BYTES, 32_768);
    }

    #[test]
    fn only_an_ended_connection_is_closed_after_its_error_frame() {
        let gone = FrameError::closing(AppError::Unauthorized(
            "Connection is not registered; reconnect".into(),
        ));
        assert!(gone.closes);
        assert_eq!(gone.code, ErrorCode::Unauthorized);
        assert_eq!(gone.message, "Connection is not registered; reconnect");
        let bad = FrameError::from(AppError::BadRequest("Frame is not valid JSON".into()));
        assert!(!bad.closes, "a bad frame keeps the connection");
        assert!(!FrameError::new(ErrorCode::Forbidden, "no").closes);
    }

    use serde_json::json;

    fn parse(frame: Value) -> Result<IncomingFrame, (&'static str, String)> {
        let object = json_object(&frame.to_string())
            .map_err(|err| (err.code().as_str(), err.public_message()))?;
        IncomingFrame::from_object(object).map_err(|err| (err.code.as_str(), err.message))
    }

    fn room(raw: &str) -> Room {
        Room::parse(raw).unwrap()
    }

    fn refused(frame: Value) -> (&'static str, String) {
        parse(frame.clone()).expect_err(&frame.to_string())
    }

    const ROOM_REQUIRED: &str = "room is required and must be a string";
    const ROOM_RULE: &str = "room must be 1-64 characters of A-Z, a-z, 0-9, _ and -";
    const TEXT_REQUIRED: &str = "text is required and must be a string";
    const TEXT_RULE: &str = "text must be 1-2000 characters";

    #[test]
    fn each_action_parses_into_its_frame() {
        assert_eq!(parse(json!({"action": "ping"})), Ok(IncomingFrame::Ping));
        assert_eq!(
            parse(json!({"action": "chat.join", "room": "general_1-a"})),
            Ok(IncomingFrame::ChatJoin {
                room: room("general_1-a")
            })
        );
        assert_eq!(
            parse(json!({"action": "chat.leave", "room": "general"})),
            Ok(IncomingFrame::ChatLeave {
                room: room("general")
            })
        );
        assert_eq!(
            parse(json!({"action": "chat.send", "room": "general", "text": "hello\nroom"})),
            Ok(IncomingFrame::ChatSend {
                room: room("general"),
                text: ChatText::parse("hello\nroom").unwrap(),
            })
        );
        assert_eq!(
            parse(json!({"action": "dashboard.subscribe"})),
            Ok(IncomingFrame::DashboardSubscribe)
        );
    }

    #[test]
    fn every_listed_action_is_a_variant_with_that_name() {
        for action in IncomingFrame::ACTIONS {
            let frame = parse(json!({"action": action, "room": "r", "text": "t"})).unwrap();
            assert_eq!(frame.action(), action);
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse(json!({"action": "ping", "pad": "x", "room": 5})),
            Ok(IncomingFrame::Ping)
        );
        assert_eq!(
            parse(json!({"action": "chat.join", "room": "r", "text": 5, "extra": []})),
            Ok(IncomingFrame::ChatJoin { room: room("r") })
        );
    }

    #[test]
    fn an_unknown_action_is_named_in_the_error() {
        assert_eq!(
            refused(json!({"action": "dance"})),
            ("UNKNOWN_ACTION", r#"Unknown action "dance""#.to_owned())
        );
        assert_eq!(
            refused(json!({"action": "Ping"})),
            ("UNKNOWN_ACTION", r#"Unknown action "Ping""#.to_owned())
        );
        let long = "a".repeat(100);
        assert_eq!(
            refused(json!({"action": long})),
            (
                "UNKNOWN_ACTION",
                format!("Unknown action {:?}", "a".repeat(64))
            )
        );
        assert_eq!(
            refused(json!({"action": "say \"hi\""})),
            (
                "UNKNOWN_ACTION",
                r#"Unknown action "say \"hi\"""#.to_owned()
            )
        );
    }

    #[test]
    fn a_missing_or_non_string_action_is_no_action() {
        for frame in [
            json!({}),
            json!({"room": "x"}),
            json!({"action": null}),
            json!({"action": 1}),
            json!({"action": ["ping"]}),
            json!({"action": {"name": "ping"}}),
        ] {
            assert_eq!(
                refused(frame),
                ("UNKNOWN_ACTION", "Frame has no action".to_owned())
            );
        }
    }

    #[test]
    fn frames_that_are_not_json_objects_are_bad_requests() {
        let bad = |body: &str| {
            let err = json_object(body).unwrap_err();
            (err.code().as_str(), err.public_message())
        };
        for body in ["{not json", "", "{\"action\":\"ping\""] {
            assert_eq!(
                bad(body),
                ("BAD_REQUEST", "Frame is not valid JSON".to_owned()),
                "{body}"
            );
        }
        for body in ["[1,2]", "\"ping\"", "5", "null"] {
            assert_eq!(
                bad(body),
                ("BAD_REQUEST", "Frame must be a JSON object".to_owned()),
                "{body}"
            );
        }
    }

    #[test]
    fn a_room_that_is_missing_or_not_a_string_is_required() {
        for action in ["chat.join", "chat.leave", "chat.send"] {
            for room in [None, Some(json!(null)), Some(json!(5)), Some(json!(["r"]))] {
                let mut frame = json!({"action": action, "text": "hi"});
                if let Some(room) = room {
                    frame["room"] = room;
                }
                assert_eq!(
                    refused(frame),
                    ("VALIDATION_ERROR", ROOM_REQUIRED.to_owned())
                );
            }
        }
    }

    #[test]
    fn a_room_breaking_the_rule_is_refused() {
        for bad in ["", "a b", "bad room!", "ü", &"x".repeat(65)] {
            assert_eq!(
                refused(json!({"action": "chat.join", "room": bad})),
                ("VALIDATION_ERROR", ROOM_RULE.to_owned()),
                "{bad}"
            );
        }
        assert!(parse(json!({"action": "chat.join", "room": "x".repeat(64)})).is_ok());
    }

    #[test]
    fn text_is_checked_after_the_room() {
        let send = |text: Value| json!({"action": "chat.send", "room": "r", "text": text});
        assert_eq!(
            refused(json!({"action": "chat.send", "room": "r"})),
            ("VALIDATION_ERROR", TEXT_REQUIRED.to_owned())
        );
        for wrong in [json!(null), json!(["x"]), json!(7)] {
            assert_eq!(
                refused(send(wrong)),
                ("VALIDATION_ERROR", TEXT_REQUIRED.to_owned())
            );
        }
        for bad in [json!(""), json!("  \n"), json!("x".repeat(2001))] {
            assert_eq!(
                refused(send(bad)),
                ("VALIDATION_ERROR", TEXT_RULE.to_owned())
            );
        }
        assert!(parse(send(json!("é".repeat(2000)))).is_ok());
        // Both wrong: the room is named, whether it is missing or bad.
        assert_eq!(
            refused(json!({"action": "chat.send", "text": ""})),
            ("VALIDATION_ERROR", ROOM_REQUIRED.to_owned())
        );
        assert_eq!(
            refused(json!({"action": "chat.send", "room": "a b", "text": 5})),
            ("VALIDATION_ERROR", ROOM_RULE.to_owned())
        );
    }

    #[test]
    fn frame_errors_are_their_row_of_the_error_table() {
        let err = FrameError::from(AppError::Forbidden(
            "Join room r before sending to it".into(),
        ));
        assert_eq!(
            err.to_frame(),
            OutgoingFrame::error(ErrorCode::Forbidden, "Join room r before sending to it")
        );
        let err = FrameError::from(AppError::unavailable("dynamodb", "down"));
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        assert_eq!(err.message, "Service temporarily unavailable, please retry");
    }
}
