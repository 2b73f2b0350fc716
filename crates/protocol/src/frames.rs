//! WebSocket frames, one enum per direction, tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::WireError;

use crate::ids::{ConversationId, MessageId, UserId};

/// Where a client left off in one conversation: the highest seq it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub conversation_id: ConversationId,
    pub seq: u64,
}

/// Frames a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame on every connection.
    Connect {
        token: String,
        device_id: String,
        #[serde(default)]
        client_version: Option<String>,
        /// Where this device left off; conversations not listed resume from the last position
        /// this device signed for with a receipt.
        #[serde(default)]
        positions: Vec<Position>,
    },
    /// A message to a user (`to_user`) or into a conversation (`conversation_id`).
    Send {
        client_msg_id: String,
        #[serde(default)]
        to_user: Option<UserId>,
        #[serde(default)]
        conversation_id: Option<ConversationId>,
        #[serde(flatten)]
        content: Content,
    },
    /// The device has received everything up to `seq` in the conversation (cumulative).
    Receipt { conversation_id: ConversationId, seq: u64 },
    /// The user has read the conversation up to `seq` (cumulative, for all their devices).
    Read { conversation_id: ConversationId, seq: u64 },
    /// Takes back one of the user's own messages, within the recall window.
    Recall { conversation_id: ConversationId, seq: u64 },
    /// The user is typing in the conversation; relayed to the other members, never stored.
    Typing { conversation_id: ConversationId },
    /// Asks for the friend list and pending requests changed since `since_version`
    /// (0 for everything).
    FriendPull {
        #[serde(default)]
        since_version: u64,
    },
    /// A heartbeat; the server answers `pong` with the same nonce.
    Ping {
        #[serde(default)]
        nonce: Option<String>,
    },
}

impl ClientFrame {
    /// The frame type names this server accepts, for telling an unknown type from a bad field.
    pub const TYPES: &'static [&'static str] =
        &["connect", "send", "receipt", "read", "recall", "typing", "friend_pull", "ping"];
}

/// What a message carries. Clients send `text` and `custom`; pictures and files are created
/// by an HTTP upload; `system` and `recalled` are written by the server only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text { text: String },
    /// A picture, with its dimensions and a thumbnail.
    Image { attachment: Attachment },
    /// Any other file, video included.
    File { attachment: Attachment },
    /// An application-defined payload, stored and delivered unchanged.
    Custom { custom_type: String, payload: String },
    /// A notice the server wrote into the conversation.
    System { event: SystemEvent },
    /// What a recalled message shows in place of its content.
    Recalled {},
}

/// An uploaded file as messages describe it. Download it from
/// `/api/v1/attachments/{attachment_id}` (and `/thumbnail` for pictures).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub attachment_id: String,
    /// The file name as uploaded, cleaned of path parts.
    pub name: String,
    /// For pictures, the type read from the bytes; for files, what the uploader declared.
    pub mime: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default)]
    pub thumbnail: bool,
}

/// Something that happened, told by the server: inside a conversation as a `system` message,
/// or to a user directly as a `notice` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    GroupCreated { title: String, by: UserId },
    MemberJoined { user_id: UserId, by: UserId },
    MemberLeft { user_id: UserId, by: UserId },
    MessageRecalled { seq: u64, by: UserId },
    FriendRequested { user_id: UserId },
    FriendAccepted { user_id: UserId },
    FriendRejected { user_id: UserId },
    FriendRemoved { user_id: UserId },
}

/// Where the caller stands with another user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FriendState {
    Friend,
    /// They asked; the caller may accept or reject.
    Incoming,
    /// The caller asked; waiting for them.
    Outgoing,
    /// The caller blocked them.
    Blocked,
    /// No relation any more (removed, rejected or unblocked): drop the entry.
    None,
}

/// One entry of the friend list as changed at `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendEntry {
    pub user_id: UserId,
    pub username: String,
    pub state: FriendState,
    pub version: u64,
}

/// A stored message as every device sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: u64,
    /// The seq of the message before this one in the conversation (0 for the first). A client
    /// holding `prev_seq` has missed nothing; seqs skipped between the two were never used.
    pub prev_seq: u64,
    pub sender_id: UserId,
    pub client_msg_id: String,
    #[serde(flatten)]
    pub content: Content,
    /// Milliseconds since the Unix epoch, by the server's clock.
    pub created_at: i64,
    /// When the sender recalled it; the content is then `recalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled_at: Option<i64>,
}

/// Per-conversation outcome of the replay that follows `connect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub conversation_id: ConversationId,
    pub last_seq: u64,
    /// More was missed than one replay sends; page the rest with the history API.
    pub truncated: bool,
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to a good `connect`.
    Session {
        user_id: UserId,
        device_id: String,
        protocol_version: u32,
        /// Send a ping at least this often; the server closes a silent connection after
        /// `idle_timeout_ms`.
        heartbeat_ms: u64,
        idle_timeout_ms: u64,
        server_time: i64,
    },
    /// The missed messages have all been sent; live delivery follows.
    SyncDone { conversations: Vec<SyncState> },
    /// The message was durably stored. A retried send gets the first ack again, with
    /// `duplicate: true`.
    Ack {
        client_msg_id: String,
        message_id: MessageId,
        conversation_id: ConversationId,
        seq: u64,
        server_time: i64,
        duplicate: bool,
    },
    /// A message for this device: sent by someone else, or by this user on another device.
    Message(MessageView),
    /// `user_id`'s devices have received the conversation up to `seq`.
    Delivered { conversation_id: ConversationId, user_id: UserId, seq: u64 },
    /// `user_id` has read the conversation up to `seq` (sent to the other members and to the
    /// reader's own other devices).
    Read { conversation_id: ConversationId, user_id: UserId, seq: u64 },
    /// `user_id` is typing in the conversation.
    Typing { conversation_id: ConversationId, user_id: UserId },
    /// The answer to `friend_pull`: entries changed after the version asked for, and the
    /// version to ask from next time.
    Friends { version: u64, entries: Vec<FriendEntry> },
    /// Something happened that concerns this user outside any conversation (friend requests).
    Notice { event: SystemEvent },
    Pong {
        #[serde(default)]
        nonce: Option<String>,
    },
    Error(WireError),
    /// The session was ended by the server: a logout, the same device connecting again, or
    /// a client too slow to read its messages. The connection closes after this frame.
    Kicked { reason: String },
    /// The server is shutting down; reconnect (to another node, or this one once it is back)
    /// after the hinted delay. The connection closes after this frame.
    GoingAway { reconnect_after_ms: u64 },
}
