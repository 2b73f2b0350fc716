use serde::{Deserialize, Serialize};

/// Every error a client can be told about, as a stable snake_case code.
///
/// The codes are the contract: clients branch on them, so a code is never renamed or reused.
/// The human message beside it may change freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON / MessagePack.
    BadFrame,
    /// The frame's `type` names no frame this server knows.
    UnknownType,
    /// A required field is missing or has the wrong type.
    InvalidField,
    /// The frame or message exceeds the configured size limit.
    FrameTooLarge,
    /// No valid token was presented, or it expired or was revoked.
    Unauthorized,
    /// A frame other than `connect` arrived before the session was established.
    NotConnected,
    /// `connect` was sent twice on one connection.
    AlreadyConnected,
    /// The caller is not a member of the conversation.
    NotMember,
    /// The user, conversation or message does not exist.
    NotFound,
    /// The request is well formed but not allowed (sending to oneself, for example).
    Forbidden,
    /// The username is taken, or the thing exists already.
    Conflict,
    /// An upload is not of a type this endpoint accepts (a `.png` that is really text).
    UnsupportedMedia,
    /// The request's values are out of range (empty text, limit too large...).
    InvalidRequest,
    /// The client sends faster than its per-connection allowance.
    RateLimited,
    /// The user has as many open connections as allowed.
    TooManyConnections,
    /// The server is overloaded or the database is unreachable; retry later.
    Unavailable,
    /// A bug on the server; the message carries no detail.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code maps to on the HTTP API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadFrame | ErrorCode::InvalidField | ErrorCode::InvalidRequest => 400,
            ErrorCode::UnknownType => 400,
            ErrorCode::FrameTooLarge => 413,
            ErrorCode::Unauthorized | ErrorCode::NotConnected => 401,
            ErrorCode::NotMember | ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::AlreadyConnected => 409,
            ErrorCode::UnsupportedMedia => 415,
            ErrorCode::RateLimited | ErrorCode::TooManyConnections => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// An error as it travels: the code, a message for people, and on WebSocket the
/// `client_msg_id` of the send it answers, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into(), client_msg_id: None }
    }

    pub fn answering(mut self, client_msg_id: Option<String>) -> Self {
        self.client_msg_id = client_msg_id;
        self
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}
