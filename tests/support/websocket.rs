//! A real WebSocket client against the local gateway, with helpers that
//! wait for a given frame type, or for the server's close, with a deadline.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, protocol::CloseFrame},
};

use crate::TestApp;

/// How the server ended a socket, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// With a close frame of this code and reason (1005: without a code).
    Frame(u16, String),
    /// Without a close frame.
    Dropped,
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestApp {
    /// Opens a socket with `?token=`; the handshake's HTTP status on refusal.
    pub async fn ws_connect(&self, token: Option<&str>) -> Result<WsClient, u16> {
        let url = match token {
            Some(token) => format!("ws://{}/?token={token}", self.ws_address),
            None => format!("ws://{}/", self.ws_address),
        };
        match connect_async(url).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("websocket connect failed: {other}"),
        }
    }
}

impl WsClient {
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next JSON frame within `wait`, if any.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("JSON frame"));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// Waits for a frame of `kind`, skipping others; panics after `wait`.
    pub async fn expect(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline
                .checked_duration_since(tokio::time::Instant::now())
                .unwrap_or_else(|| panic!("no {kind} frame within {wait:?}"));
            match self.next_json(left).await {
                Some(frame) if frame["type"] == kind => return frame,
                Some(_) => continue,
                None => panic!("no {kind} frame within {wait:?}"),
            }
        }
    }

    /// Collects every frame that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_json(wait).await {
            frames.push(frame);
        }
        frames
    }

    /// The text frames that arrive until the server closes the socket;
    /// `None` if it is still open after `wait`.
    pub async fn frames_until_closed(&mut self, wait: Duration) -> Option<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    frames.push(serde_json::from_str(&text).expect("JSON frame"));
                }
                Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return Some(frames),
                Ok(Some(Ok(_))) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends a WebSocket ping control frame (not the `ping` action).
    pub async fn send_ping(&mut self) {
        self.stream
            .send(Message::Ping(Vec::new().into()))
            .await
            .expect("send");
    }

    /// Reads (and drops) frames until the server closes the socket, then
    /// completes the close handshake; `None` if it is still open after
    /// `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<Closed> {
        let deadline = tokio::time::Instant::now() + wait;
        let closed = loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    break Closed::Frame(u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Some(Ok(Message::Close(None)))) => break Closed::Frame(1005, String::new()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Some(Closed::Dropped),
                Err(_) => return None,
            }
        };
        // Reading on sends the answer to the server's close frame.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.stream.next().await.is_some() {}
        })
        .await;
        Some(closed)
    }

    /// Closes cleanly with a close frame of `code` and `reason`.
    pub async fn close_with(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = self.stream.close(Some(frame)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.stream.next().await.is_some() {}
        })
        .await;
    }

    /// Closes cleanly, with a close frame.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.stream.next().await.is_some() {}
        })
        .await;
    }

    /// Drops the TCP connection without a close frame, as a killed client does.
    pub fn kill(self) {
        drop(self.stream);
    }
}
