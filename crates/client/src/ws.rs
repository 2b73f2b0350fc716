//! A WebSocket session to a Tern server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tern_protocol::codec::{self, Encoding, decode_server_binary, decode_server_text};
use tern_protocol::frames::{Content, Position};
use tern_protocol::{ClientFrame, ConversationId, ServerFrame, UserId, WireError};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The server refused with an error frame.
    #[error("refused: {0}")]
    Refused(WireError),
    /// The server closed the connection.
    #[error("closed: {code:?} {reason}")]
    Closed { code: Option<CloseCode>, reason: String },
    #[error("timed out waiting for a frame")]
    Timeout,
    #[error("unreadable frame: {0}")]
    Unreadable(String),
    #[error("transport: {0}")]
    Transport(String),
}

impl From<tungstenite::Error> for WsError {
    fn from(err: tungstenite::Error) -> Self {
        WsError::Transport(err.to_string())
    }
}

/// What the server said in its `session` frame.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub user_id: UserId,
    pub heartbeat_ms: u64,
    pub idle_timeout_ms: u64,
}

pub struct WsClient {
    socket: WebSocketStream<TcpStream>,
    encoding: Encoding,
}

impl WsClient {
    /// Opens the socket without sending `connect`; `origin` imitates a browser page.
    pub async fn open(host: &str, encoding: Encoding, origin: Option<&str>) -> Result<WsClient, WsError> {
        let mut request = format!("ws://{host}/ws").into_client_request()?;
        if encoding == Encoding::MessagePack {
            request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("tern.msgpack"));
        }
        if let Some(origin) = origin {
            let value = HeaderValue::from_str(origin).map_err(|e| WsError::Transport(e.to_string()))?;
            request.headers_mut().insert("origin", value);
        }
        let stream = TcpStream::connect(host).await.map_err(|e| WsError::Transport(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (socket, _response) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(WsClient { socket, encoding })
    }

    /// Opens the socket, sends `connect` and waits for the `session` frame.
    pub async fn connect(
        host: &str,
        token: &str,
        device: &str,
        positions: Vec<Position>,
    ) -> Result<(WsClient, SessionInfo), WsError> {
        Self::connect_with(host, token, device, positions, Encoding::Json).await
    }

    pub async fn connect_with(
        host: &str,
        token: &str,
        device: &str,
        positions: Vec<Position>,
        encoding: Encoding,
    ) -> Result<(WsClient, SessionInfo), WsError> {
        let mut client = Self::open(host, encoding, None).await?;
        let connect = ClientFrame::Connect {
            token: token.into(),
            device_id: device.into(),
            client_version: Some(concat!("tern-client/", env!("CARGO_PKG_VERSION")).into()),
            positions,
        };
        client.send(&connect).await?;
        match client.next_within(Duration::from_secs(10)).await? {
            ServerFrame::Session { user_id, heartbeat_ms, idle_timeout_ms, .. } => {
                Ok((client, SessionInfo { user_id, heartbeat_ms, idle_timeout_ms }))
            }
            ServerFrame::Error(err) => Err(WsError::Refused(err)),
            other => Err(WsError::Unreadable(format!("expected session, got {other:?}"))),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), WsError> {
        let message = match self.encoding {
            Encoding::Json => Message::text(codec::encode_text(frame)),
            Encoding::MessagePack => Message::binary(codec::encode_binary(frame)),
        };
        self.send_raw(message).await
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<(), WsError> {
        Ok(self.socket.send(message).await?)
    }

    /// Sends a text message to a user.
    pub async fn send_text(&mut self, to: UserId, client_msg_id: &str, text: &str) -> Result<(), WsError> {
        let frame = ClientFrame::Send {
            client_msg_id: client_msg_id.into(),
            to_user: Some(to),
            conversation_id: None,
            content: Content::Text { text: text.into() },
        };
        self.send(&frame).await
    }

    pub async fn receipt(&mut self, conversation: ConversationId, seq: u64) -> Result<(), WsError> {
        self.send(&ClientFrame::Receipt { conversation_id: conversation, seq }).await
    }

    /// The next frame from the server; a close becomes [`WsError::Closed`].
    pub async fn next(&mut self) -> Result<ServerFrame, WsError> {
        loop {
            let message = match self.socket.next().await {
                None => return Err(WsError::Closed { code: None, reason: String::new() }),
                Some(message) => message?,
            };
            return match message {
                Message::Text(text) => decode_server_text(&text).map_err(|e| WsError::Unreadable(e.message)),
                Message::Binary(bytes) => decode_server_binary(&bytes).map_err(|e| WsError::Unreadable(e.message)),
                Message::Close(frame) => Err(WsError::Closed {
                    code: frame.as_ref().map(|f| f.code),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                }),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
        }
    }

    /// The next frame, or [`WsError::Timeout`] after `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Result<ServerFrame, WsError> {
        tokio::time::timeout(limit, self.next()).await.map_err(|_| WsError::Timeout)?
    }

    /// Reads frames until one satisfies `wanted`, returning it and the frames skipped on the
    /// way.
    pub async fn until(
        &mut self,
        limit: Duration,
        mut wanted: impl FnMut(&ServerFrame) -> bool,
    ) -> Result<(ServerFrame, Vec<ServerFrame>), WsError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_within(left).await?;
            if wanted(&frame) {
                return Ok((frame, skipped));
            }
            skipped.push(frame);
        }
    }

    pub async fn close(mut self) -> Result<(), WsError> {
        Ok(self.socket.close(None).await?)
    }
}
