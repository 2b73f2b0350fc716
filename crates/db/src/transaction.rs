use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::DbConnection;

type Manager = <DbConnection as Connection>::TransactionManager;

/// Runs `work` in a transaction that is known to write.
///
/// On SQLite it begins with `BEGIN IMMEDIATE`, taking the write lock up front: a deferred
/// transaction that reads and then writes fails with "database is locked" when another writer
/// got there first, and `busy_timeout` does not help that case. Other backends use a plain
/// `BEGIN`; their row locks are taken by the statements themselves.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        _ => Manager::begin_transaction(conn)?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The work's error is the one worth reporting; a failed rollback leaves the
            // connection marked broken, and the pool discards it.
            let _ = Manager::rollback_transaction(conn);
            Err(err)
        }
    }
}

#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The id of the row this connection inserted last, read the way each backend offers it.
pub fn last_insert_id(conn: &mut DbConnection) -> QueryResult<i64> {
    let sql = match conn {
        DbConnection::Sqlite(_) => "SELECT last_insert_rowid() AS id",
        DbConnection::Postgres(_) => "SELECT lastval() AS id",
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(_) => "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id",
    };
    Ok(diesel::sql_query(sql).get_result::<InsertedId>(conn)?.id)
}
