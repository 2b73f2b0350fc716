use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;

/// One connection to whichever backend the configuration names.
///
/// Queries written with Diesel's DSL against this type run on every backend. Where the SQL
/// really differs, code matches on the variant; [`crate::transaction`] is that place.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
    Mysql(diesel::mysql::MysqlConnection),
}

/// One connection to whichever backend the configuration names (this build leaves MySQL out).
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs the same Diesel expression on the concrete connection inside a [`DbConnection`].
///
/// For the few statements Diesel cannot build for its multi-backend (multi-row `INSERT`
/// is the main one): the expression is written once and compiled for each backend. The macro
/// is defined per build so its arms always match the variants this build has.
#[cfg(feature = "mysql")]
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Postgres($c) => $body,
            $crate::DbConnection::Mysql($c) => $body,
        }
    };
}

/// Runs the same Diesel expression on the concrete connection inside a [`DbConnection`].
#[cfg(not(feature = "mysql"))]
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Postgres($c) => $body,
        }
    };
}
