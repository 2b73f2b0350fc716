//! One WebSocket connection, from its first frame to its close.
//!
//! The task is written against any `Stream + Sink` of WebSocket messages, so it runs the same
//! over a real socket and in tests. Its life has three steps:
//!
//! 1. wait (at most `auth_timeout`) for `connect`, check the token, register in the hub;
//! 2. replay what the device missed: registering first and replaying second means a message
//!    committed meanwhile is in the replay, in the live queue, or both, and the copy already
//!    replayed is dropped by seq;
//! 3. move frames both ways until the client leaves, goes silent past `idle_timeout`, is
//!    kicked, or the server shuts down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tern_chat::hub::{Outgoing, Registration};
use tern_chat::{Authenticated, ChatError, Origin, Reply, SendRequest, Target, clock};
use tern_protocol::codec::{self, Encoding};
use tern_protocol::frames::Position;
use tern_protocol::{ClientFrame, ConversationId, ErrorCode, PROTOCOL_VERSION, ServerFrame, WireError};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tracing::Instrument;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::Gateway;
use crate::rate::RateLimiter;

/// How long the last frames to a leaving client (kicked, going away) may take to write.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// What one inbound WebSocket message turned out to be.
enum Inbound {
    Frame(ClientFrame),
    Bad(WireError),
    /// Ping, pong or an empty frame: nothing to answer at this level.
    Control,
    Closed,
}

struct Connection<S> {
    socket: S,
    encoding: Encoding,
    gateway: Arc<Gateway>,
}

/// Runs one connection to its end.
pub async fn run<S>(gateway: Arc<Gateway>, socket: S, encoding: Encoding)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let mut conn = Connection { socket, encoding, gateway };
    let Some((auth, device, positions)) = conn.await_connect().await else { return };
    let span = tracing::info_span!("session", user.id = auth.user.0, device.id = %device);
    // Instrumenting the future, not entering the span, keeps log lines of different sessions
    // apart when their tasks interleave on one thread.
    async move {
        let Some(registration) = conn.register(&auth, &device).await else { return };
        let Some(replayed) = conn.replay(&auth, &device, positions).await else { return };
        tracing::debug!(conversations = replayed.len(), "session live");
        conn.live(registration, &device, replayed).await;
    }
    .instrument(span)
    .await;
}

impl<S> Connection<S>
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    /// Reads frames until a good `connect`; answers anything else with an error.
    async fn await_connect(&mut self) -> Option<(Authenticated, String, Vec<Position>)> {
        let deadline = Instant::now() + self.gateway.config.auth_timeout;
        loop {
            let inbound = match timeout_at(deadline, self.next_inbound()).await {
                Ok(inbound) => inbound,
                Err(_) => {
                    let err = WireError::new(ErrorCode::Unauthorized, "no connect frame in time");
                    self.refuse(err, CloseCode::Policy).await;
                    return None;
                }
            };
            match inbound {
                Inbound::Frame(ClientFrame::Connect { token, device_id, positions, .. }) => {
                    return self.authenticate(token, device_id, positions).await;
                }
                Inbound::Frame(_) => {
                    let err = WireError::new(ErrorCode::NotConnected, "send connect first");
                    self.send(&ServerFrame::Error(err)).await.ok()?;
                }
                Inbound::Bad(err) => self.send(&ServerFrame::Error(err)).await.ok()?,
                Inbound::Control => {}
                Inbound::Closed => return None,
            }
        }
    }

    async fn authenticate(
        &mut self,
        token: String,
        device: String,
        positions: Vec<Position>,
    ) -> Option<(Authenticated, String, Vec<Position>)> {
        if device.is_empty() || device.len() > 64 {
            let err = WireError::new(ErrorCode::InvalidField, "device_id must be 1 to 64 bytes");
            self.refuse(err, CloseCode::Policy).await;
            return None;
        }
        match self.gateway.chat.authenticate(&token).await {
            Ok(auth) => Some((auth, device, positions)),
            Err(err) => {
                self.refuse(err.to_wire(), CloseCode::Policy).await;
                None
            }
        }
    }

    async fn register(&mut self, auth: &Authenticated, device: &str) -> Option<Registration> {
        let config = &self.gateway.config;
        let registered = self.gateway.chat.hub().register(
            auth.user,
            device,
            &auth.token_hash,
            config.outbound_queue,
            config.max_connections_per_user,
        );
        let registration = match registered {
            Ok(registration) => registration,
            Err(err) => {
                self.refuse(err.to_wire(), CloseCode::Policy).await;
                return None;
            }
        };
        let session = ServerFrame::Session {
            user_id: auth.user,
            device_id: device.to_owned(),
            protocol_version: PROTOCOL_VERSION,
            heartbeat_ms: millis(config.heartbeat),
            idle_timeout_ms: millis(config.idle_timeout),
            server_time: clock::now_ms(),
        };
        self.send(&session).await.ok()?;
        Some(registration)
    }

    /// Sends what the device missed; returns the highest seq sent per conversation.
    async fn replay(
        &mut self,
        auth: &Authenticated,
        device: &str,
        positions: Vec<Position>,
    ) -> Option<HashMap<ConversationId, u64>> {
        let replay = match self.gateway.chat.replay(auth.user, device.to_owned(), positions).await {
            Ok(replay) => replay,
            Err(err) => {
                tracing::warn!(error = %err, "replay failed");
                self.refuse(err.to_wire(), CloseCode::Again).await;
                return None;
            }
        };
        let mut sent = HashMap::new();
        for message in replay.messages {
            sent.insert(message.conversation_id, message.seq);
            self.send(&ServerFrame::Message(message)).await.ok()?;
        }
        for state in &replay.conversations {
            sent.entry(state.conversation_id).or_insert(0);
        }
        let done = ServerFrame::SyncDone { conversations: replay.conversations };
        self.send(&done).await.ok()?;
        Some(sent)
    }

    /// The live part of the session.
    async fn live(
        &mut self,
        mut registration: Registration,
        device: &str,
        mut sent: HashMap<ConversationId, u64>,
    ) {
        let config = self.gateway.config.clone();
        let mut shutdown = self.gateway.shutdown.clone();
        let kick = registration.kick.clone();
        let mut limiter = RateLimiter::new(config.rate_per_second, config.rate_burst);
        let mut idle_deadline = Instant::now() + config.idle_timeout;
        loop {
            tokio::select! {
                reason = kick.kicked() => {
                    tracing::info!(reason = %reason, "session kicked");
                    self.farewell(&ServerFrame::Kicked { reason: reason.clone() }, CloseCode::Policy, &reason).await;
                    return;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        let frame = ServerFrame::GoingAway { reconnect_after_ms: 1000 };
                        self.farewell(&frame, CloseCode::Away, "server going away").await;
                        return;
                    }
                }
                queued = registration.queue.recv() => {
                    let Some(frame) = queued else {
                        // The hub dropped this connection's queue: it was replaced, and the
                        // kick that says so is already set.
                        let reason = timeout(FAREWELL_TIMEOUT, kick.kicked()).await.unwrap_or_default();
                        self.farewell(&ServerFrame::Kicked { reason: reason.clone() }, CloseCode::Policy, &reason).await;
                        return;
                    };
                    if already_sent(&mut sent, &frame) {
                        continue;
                    }
                    if self.send_outgoing(&frame).await.is_err() {
                        return;
                    }
                }
                () = sleep_until(idle_deadline) => {
                    tracing::debug!("idle timeout");
                    self.close(CloseCode::Away, "idle timeout").await;
                    return;
                }
                inbound = self.next_inbound() => {
                    idle_deadline = Instant::now() + config.idle_timeout;
                    let frame = match inbound {
                        Inbound::Frame(frame) => frame,
                        Inbound::Control => continue,
                        Inbound::Closed => return,
                        Inbound::Bad(err) => {
                            if self.send(&ServerFrame::Error(err)).await.is_err() { return; }
                            continue;
                        }
                    };
                    if !limiter.allow() {
                        let err = WireError::new(ErrorCode::RateLimited, "too many frames; slow down")
                            .answering(client_msg_id(&frame));
                        if self.send(&ServerFrame::Error(err)).await.is_err() { return; }
                        continue;
                    }
                    if let Some(answer) = self.handle(&registration, device, frame).await {
                        if self.send(&answer).await.is_err() { return; }
                    }
                }
            }
        }
    }

    /// Acts on one frame of a live session; returns the frame to answer with, if any.
    async fn handle(&mut self, registration: &Registration, device: &str, frame: ClientFrame) -> Option<ServerFrame> {
        let chat = &self.gateway.chat;
        let user = registration.user;
        match frame {
            ClientFrame::Ping { nonce } => Some(ServerFrame::Pong { nonce }),
            ClientFrame::Connect { .. } => Some(ServerFrame::Error(WireError::new(
                ErrorCode::AlreadyConnected,
                "this connection is already connected",
            ))),
            ClientFrame::Receipt { conversation_id, seq } => {
                let outcome = chat.receipt(user, device.to_owned(), conversation_id, seq).await;
                outcome.err().map(|err| ServerFrame::Error(err.to_wire()))
            }
            ClientFrame::Read { conversation_id, seq } => {
                let outcome = chat.read(user, conversation_id, seq, Some(registration.session)).await;
                outcome.err().map(|err| ServerFrame::Error(err.to_wire()))
            }
            ClientFrame::Typing { conversation_id } => {
                chat.typing(user, conversation_id).await.err().map(|err| ServerFrame::Error(err.to_wire()))
            }
            ClientFrame::Recall { conversation_id, seq } => {
                // Success is seen by every device as the `message_recalled` notice.
                chat.recall(user, conversation_id, seq).await.err().map(|err| ServerFrame::Error(err.to_wire()))
            }
            ClientFrame::FriendPull { since_version } => match chat.friends_since(user, since_version).await {
                Ok((version, entries)) => Some(ServerFrame::Friends { version, entries }),
                Err(err) => Some(ServerFrame::Error(err.to_wire())),
            },
            ClientFrame::Send { client_msg_id, to_user, conversation_id, content } => {
                let target = match (to_user, conversation_id) {
                    (Some(user), None) => Target::User(user),
                    (None, Some(conversation)) => Target::Conversation(conversation),
                    _ => {
                        let err = WireError::new(
                            ErrorCode::InvalidField,
                            "give exactly one of to_user and conversation_id",
                        );
                        return Some(ServerFrame::Error(err.answering(Some(client_msg_id))));
                    }
                };
                let request = SendRequest {
                    sender: user,
                    origin: Origin::Client,
                    effect: None,
                    sender_session: Some(registration.session),
                    target,
                    client_msg_id: client_msg_id.clone(),
                    content,
                    reply: Reply::Session { user, session: registration.session },
                };
                let queued: Result<(), ChatError> = chat.send_from_session(request).await;
                queued.err().map(|err| ServerFrame::Error(err.to_wire().answering(Some(client_msg_id))))
            }
        }
    }

    /// Reads the next message and classifies it. Transport errors end the connection; an
    /// over-limit message is answered with close code 1009 first.
    async fn next_inbound(&mut self) -> Inbound {
        let message = match self.socket.next().await {
            None => return Inbound::Closed,
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(err))) => {
                tracing::debug!(error = %err, "message over the transport limit");
                let reason = match err {
                    CapacityError::MessageTooLong { .. } => "message too big",
                    _ => "frame too big",
                };
                self.close(CloseCode::Size, reason).await;
                return Inbound::Closed;
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "socket error");
                return Inbound::Closed;
            }
        };
        let limit = self.gateway.config.max_frame_bytes;
        match message {
            Message::Text(text) if text.len() > limit => Inbound::Bad(too_large(limit, &text)),
            Message::Binary(bytes) if bytes.len() > limit => Inbound::Bad(WireError::new(
                ErrorCode::FrameTooLarge,
                format!("frame over {limit} bytes"),
            )),
            Message::Text(text) => match codec::decode_client_text(&text) {
                Ok(frame) => Inbound::Frame(frame),
                Err(err) => Inbound::Bad(err.answering(codec::client_msg_id_of_text(&text))),
            },
            Message::Binary(bytes) => match codec::decode_client_binary(&bytes) {
                Ok(frame) => Inbound::Frame(frame),
                Err(err) => Inbound::Bad(err),
            },
            Message::Close(_) => Inbound::Closed,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
        }
    }

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), WsError> {
        self.send_outgoing(&Outgoing::new(frame.clone())).await
    }

    async fn send_outgoing(&mut self, frame: &Outgoing) -> Result<(), WsError> {
        let message = match self.encoding {
            Encoding::Json => match Utf8Bytes::try_from(frame.json()) {
                Ok(text) => Message::Text(text),
                Err(_) => return Ok(()),
            },
            Encoding::MessagePack => Message::Binary(frame.binary()),
        };
        self.socket.send(message).await
    }

    /// Sends an error, then closes.
    async fn refuse(&mut self, err: WireError, code: CloseCode) {
        let reason = err.message.clone();
        self.farewell(&ServerFrame::Error(err), code, &reason).await;
    }

    /// Sends a last frame and closes, giving up after [`FAREWELL_TIMEOUT`] on a client that
    /// does not read.
    async fn farewell(&mut self, frame: &ServerFrame, code: CloseCode, reason: &str) {
        let _ = timeout(FAREWELL_TIMEOUT, self.send(frame)).await;
        self.close(code, reason).await;
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let reason: String = reason.chars().take(100).collect();
        let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
        let _ = timeout(FAREWELL_TIMEOUT, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

/// True for a replayed message arriving again through the live queue.
fn already_sent(sent: &mut HashMap<ConversationId, u64>, frame: &Outgoing) -> bool {
    let ServerFrame::Message(message) = frame.frame() else { return false };
    let highest = sent.entry(message.conversation_id).or_insert(0);
    if message.seq <= *highest {
        return true;
    }
    *highest = message.seq;
    false
}

fn too_large(limit: usize, text: &str) -> WireError {
    // Reading the client id out of a huge frame would parse it all; look only at the start.
    let head: String = text.chars().take(256).collect();
    let id = head.split("\"client_msg_id\"").nth(1).and_then(|rest| rest.split('"').nth(1)).map(str::to_owned);
    WireError::new(ErrorCode::FrameTooLarge, format!("frame over {limit} bytes")).answering(id)
}

fn client_msg_id(frame: &ClientFrame) -> Option<String> {
    match frame {
        ClientFrame::Send { client_msg_id, .. } => Some(client_msg_id.clone()),
        _ => None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
