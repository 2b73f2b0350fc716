//! Opening WebSocket sessions from many loopback source addresses.
//!
//! One source address can hold only as many connections to the server's port as there are
//! ephemeral ports (about 28,000 by default), so connection `i` binds to
//! `127.0.0.(2 + i % sources)` first. Linux routes all of 127.0.0.0/8 to the loopback device,
//! so these addresses need no setup.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tern_protocol::codec::{self, Encoding};
use tern_protocol::{ClientFrame, ConversationId, ServerFrame};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub type Socket = WebSocketStream<TcpStream>;

/// How long the `session` and `sync_done` frames may take after `connect`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where connections go and where they come from.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub server: SocketAddr,
    pub sources: usize,
    pub encoding: Encoding,
}

/// What the server said once a session was live.
#[derive(Debug)]
pub struct Live {
    pub socket: Socket,
    pub heartbeat: Duration,
    /// Each conversation's last seq, from `sync_done`.
    pub positions: HashMap<ConversationId, u64>,
    /// Messages replayed before `sync_done` (left over from earlier runs).
    pub replayed: usize,
}

impl Endpoint {
    /// Refuses anything but loopback: this tool only loads servers on the same machine.
    pub fn new(server: SocketAddr, sources: usize, encoding: Encoding) -> anyhow::Result<Endpoint> {
        if !server.ip().is_loopback() {
            bail!(
                "{server} is not a loopback address; the load generator only targets this machine"
            );
        }
        Ok(Endpoint {
            server,
            sources: sources.max(1),
            encoding,
        })
    }

    fn source(&self, index: usize) -> IpAddr {
        match self.server.ip() {
            IpAddr::V4(_) => {
                let k = (index % self.sources) as u32;
                IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + k))
            }
            IpAddr::V6(v6) => IpAddr::V6(v6),
        }
    }

    /// Opens connection `index` and completes the WebSocket handshake.
    pub async fn open(&self, index: usize) -> anyhow::Result<Socket> {
        let source = SocketAddr::new(self.source(index), 0);
        let socket = match source {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket
            .bind(source)
            .with_context(|| format!("binding {source}"))?;
        let stream = socket
            .connect(self.server)
            .await
            .with_context(|| format!("connecting from {source}"))?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{}/ws", self.server).into_client_request()?;
        if self.encoding == Encoding::MessagePack {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("tern.msgpack"),
            );
        }
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(small_buffers()))
                .await
                .context("WebSocket handshake")?;
        Ok(socket)
    }

    /// Opens connection `index`, sends `connect` and reads through the replay.
    pub async fn session(&self, index: usize, token: &str, device: &str) -> anyhow::Result<Live> {
        let mut socket = self.open(index).await?;
        let connect = ClientFrame::Connect {
            token: token.to_owned(),
            device_id: device.to_owned(),
            client_version: Some(concat!("tern-loadgen/", env!("CARGO_PKG_VERSION")).into()),
            positions: Vec::new(),
        };
        send(&mut socket, self.encoding, &connect).await?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_until_live(socket))
            .await
            .context("no session and sync_done within 30 s")?
    }
}

async fn read_until_live(mut socket: Socket) -> anyhow::Result<Live> {
    let mut heartbeat = Duration::from_secs(30);
    let mut replayed = 0;
    loop {
        match next_frame(&mut socket).await? {
            Some(ServerFrame::Session { heartbeat_ms, .. }) => {
                heartbeat = Duration::from_millis(heartbeat_ms)
            }
            Some(ServerFrame::Message(_)) => replayed += 1,
            Some(ServerFrame::SyncDone { conversations }) => {
                let positions = conversations
                    .iter()
                    .map(|c| (c.conversation_id, c.last_seq))
                    .collect();
                return Ok(Live {
                    socket,
                    heartbeat,
                    positions,
                    replayed,
                });
            }
            Some(ServerFrame::Error(err)) => {
                bail!("connect refused: {} {}", code_name(err.code), err.message)
            }
            Some(_) => {}
            None => bail!("connection closed during connect"),
        }
    }
}

/// Small client buffers: with tens of thousands of connections in this process, the default
/// 128 KiB read buffer each would cost gigabytes here and distort nothing but our own memory.
fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Encodes a frame for the connection's encoding.
pub fn message(encoding: Encoding, frame: &ClientFrame) -> Message {
    match encoding {
        Encoding::Json => Message::Text(Utf8Bytes::from(codec::encode_text(frame))),
        Encoding::MessagePack => Message::binary(codec::encode_binary(frame)),
    }
}

pub async fn send(
    socket: &mut Socket,
    encoding: Encoding,
    frame: &ClientFrame,
) -> anyhow::Result<()> {
    socket
        .send(message(encoding, frame))
        .await
        .context("sending a frame")
}

/// Decodes one WebSocket message; `Ok(None)` for control frames.
pub fn decode(message: &Message) -> anyhow::Result<Option<ServerFrame>> {
    match message {
        Message::Text(text) => codec::decode_server_text(text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("unreadable frame: {}", e.message)),
        Message::Binary(bytes) => codec::decode_server_binary(bytes)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("unreadable frame: {}", e.message)),
        _ => Ok(None),
    }
}

/// The next server frame; `None` once the connection is closed.
pub async fn next_frame(socket: &mut Socket) -> anyhow::Result<Option<ServerFrame>> {
    loop {
        let message = match socket.next().await {
            None => return Ok(None),
            Some(message) => message.context("reading")?,
        };
        if let Message::Close(_) = message {
            return Ok(None);
        }
        if let Some(frame) = decode(&message)? {
            return Ok(Some(frame));
        }
    }
}

/// An error code as it travels on the wire (`rate_limited`, `unavailable`, ...).
pub fn code_name(code: tern_protocol::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}
