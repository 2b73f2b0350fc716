//! JSON bodies of the HTTP API.

use serde::{Deserialize, Serialize};

use crate::frames::MessageView;
use crate::ids::{ConversationId, UserId};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub user_id: UserId,
    pub username: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub user_id: UserId,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// A page of a conversation's history, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    pub conversation_id: ConversationId,
    pub messages: Vec<MessageView>,
    /// True when more messages lie beyond this page in the direction asked for.
    pub has_more: bool,
}

/// The body of every HTTP error response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: crate::WireError,
}

/// One entry of the conversation list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub conversation_id: ConversationId,
    /// `direct` or `group`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The other person, in a one-to-one conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Account>,
    /// The newest message the caller may see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView>,
    /// Messages after the caller's read position, not counting their own, system notices or
    /// recalled ones.
    pub unread: u64,
    pub read_seq: u64,
    pub last_seq: u64,
    pub last_activity_at: i64,
    /// False once the caller has left or been removed; the history up to then stays readable.
    pub active: bool,
}

/// A page of the conversation list, most recently active first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `before` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}
