use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::{Backend, DbConnection, DbError};

/// A pool of connections to one database.
pub type DbPool = r2d2::Pool<Manager>;

/// A connection borrowed from a [`DbPool`]; it dereferences to [`DbConnection`].
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// How many connections to keep and how long a caller may wait for one.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_size: u32,
    /// r2d2 waits 30 s by default; a request that waits that long has already failed for its
    /// user, so callers get a clear error much sooner.
    pub connection_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_size: 8, connection_timeout: Duration::from_secs(2) }
    }
}

/// Opens a pool to the database the URL names and checks that one connection works.
pub fn connect(url: &str, settings: &PoolSettings) -> Result<DbPool, DbError> {
    let (backend, driver_url) = Backend::from_url(url)?;
    let manager = Manager { backend, url: driver_url };
    let pool = r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(1))
        .connection_timeout(settings.connection_timeout)
        .test_on_check_out(false)
        .build(manager)?;
    Ok(pool)
}

/// Opens connections for r2d2, choosing the driver from the URL instead of trying each one:
/// SQLite accepts any string as a file name, so trying it first would create stray files.
#[derive(Debug)]
pub struct Manager {
    backend: Backend,
    url: String,
}

impl Manager {
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let mut conn = match self.backend {
            Backend::Sqlite => DbConnection::Sqlite(
                diesel::SqliteConnection::establish(&self.url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?,
            ),
            Backend::Postgres => DbConnection::Postgres(
                diesel::PgConnection::establish(&self.url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?,
            ),
            #[cfg(feature = "mysql")]
            Backend::Mysql => DbConnection::Mysql(
                diesel::MysqlConnection::establish(&self.url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?,
            ),
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => {
                return Err(diesel::r2d2::Error::ConnectionError(
                    diesel::ConnectionError::BadConnection("mysql support not compiled in".into()),
                ));
            }
        };
        conn.batch_execute(session_settings(self.backend))
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// The per-connection settings that make a commit durable and concurrency predictable.
///
/// - SQLite: WAL lets readers run beside the one writer; `synchronous=FULL` syncs the WAL on
///   every commit (NORMAL would lose the last commits on power loss); `busy_timeout` makes a
///   writer wait for the lock instead of failing at once.
/// - PostgreSQL: `synchronous_commit=on` is the server default; it is set here so that a
///   server configured otherwise still gives Tern durable commits.
/// - MySQL: durability is the server's global `innodb_flush_log_at_trx_commit=1` (the default);
///   READ COMMITTED avoids the gap locks that make concurrent inserts deadlock.
fn session_settings(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;"
        }
        Backend::Postgres => "SET synchronous_commit = on;",
        Backend::Mysql => {
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'; \
             SET NAMES utf8mb4;"
        }
    }
}
