//! The database connection shared by every Tern layer that touches SQL.
//!
//! Tern runs on SQLite (the embedded default), PostgreSQL and MySQL/MariaDB from one codebase.
//! This crate owns what differs between them at the connection level, in one visible place:
//! which backend a URL names, how a connection is opened, the settings that make a commit
//! durable, how a write transaction begins, and how an inserted row's id is read back.
//! Schemas, queries and migrations belong to the crates that own the tables.

mod backend;
mod connection;
mod pool;
mod transaction;

pub use backend::{Backend, redact as redact_url};
pub use connection::DbConnection;
pub use pool::{DbPool, PoolSettings, PooledConn, connect};
pub use transaction::{last_insert_id, write_transaction};

/// Why the database layer could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no backend this build supports.
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
    /// A connection could not be opened or taken from the pool in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl From<r2d2::Error> for DbError {
    fn from(err: r2d2::Error) -> Self {
        DbError::Unavailable(err.to_string())
    }
}
