//! Tern's tables and the repositories that read and write them.
//!
//! Messages are stored once, keyed by `(conversation_id, seq)`, so a conversation's history is
//! one range scan of the primary key. Members carry their read and delivered positions; device
//! cursors remember what each device signed for; attachments describe uploaded files, whose
//! content lives on disk. The id allocator's table belongs to `tern-idgen`; its migration
//! lives with the others under `migrations/`.

pub mod attachments;
pub mod conversations;
pub mod cursors;
pub mod friends;
pub mod messages;
mod migrate;
mod schema;
pub mod users;

pub use migrate::run_migrations;
pub use diesel::result::Error as DieselError;
pub use tern_db::{DbConnection, DbPool, write_transaction};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A row with the same unique key exists.
    #[error("already exists")]
    Conflict,
    /// Another writer committed a higher seq in the conversation first; these seqs would
    /// break commit order and were not stored.
    #[error("seqs of conversation {conversation} are behind its last seq {last_seq}")]
    SeqBehind { conversation: tern_protocol::ConversationId, last_seq: i64 },
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl StorageError {
    /// Maps a unique-key violation to [`StorageError::Conflict`], so callers can tell
    /// "exists already" from a real failure.
    pub fn from_insert(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StorageError::Conflict,
            other => StorageError::Query(other),
        }
    }
}

impl From<tern_db::DbError> for StorageError {
    fn from(err: tern_db::DbError) -> Self {
        match err {
            tern_db::DbError::Query(q) => StorageError::Query(q),
            other => StorageError::Unavailable(other.to_string()),
        }
    }
}

impl From<r2d2::Error> for StorageError {
    fn from(err: r2d2::Error) -> Self {
        StorageError::Unavailable(err.to_string())
    }
}
