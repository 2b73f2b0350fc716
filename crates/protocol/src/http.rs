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
