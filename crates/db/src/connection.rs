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
