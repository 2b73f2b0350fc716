use tern_protocol::{ErrorCode, WireError};
use tern_storage::StorageError;

/// Why a chat operation failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The client did something wrong; the code and message go back to it as they are.
    #[error("{0}")]
    Refused(WireError),
    /// The database or the allocator cannot serve now; the client should retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A failure the client cannot fix; details stay in the log.
    #[error("internal: {0}")]
    Internal(String),
}

impl ChatError {
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        ChatError::Refused(WireError::new(code, message))
    }

    /// The error as a client sees it: refusals verbatim, the rest without internal detail.
    pub fn to_wire(&self) -> WireError {
        match self {
            ChatError::Refused(err) => err.clone(),
            ChatError::Unavailable(_) => {
                WireError::new(ErrorCode::Unavailable, "temporarily unavailable, retry shortly")
            }
            ChatError::Internal(_) => WireError::new(ErrorCode::Internal, "internal error"),
        }
    }
}

impl From<StorageError> for ChatError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Unavailable(msg) => ChatError::Unavailable(msg),
            StorageError::Conflict => ChatError::refused(ErrorCode::Conflict, "already exists"),
            other => ChatError::Internal(other.to_string()),
        }
    }
}

impl From<tern_storage::DieselError> for ChatError {
    fn from(err: tern_storage::DieselError) -> Self {
        ChatError::from(StorageError::from(err))
    }
}

impl From<r2d2::Error> for ChatError {
    fn from(err: r2d2::Error) -> Self {
        ChatError::Unavailable(err.to_string())
    }
}

impl From<tern_idgen::IdgenError> for ChatError {
    fn from(err: tern_idgen::IdgenError) -> Self {
        ChatError::Unavailable(err.to_string())
    }
}
