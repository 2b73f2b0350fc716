use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tern_db::{DbConnection, DbPool};

use crate::StorageError;

// One folder per backend with identical migration names; `migrations_have_the_same_names`
// below fails when they drift apart.
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// Applies every pending migration for the pool's backend; run once at start.
pub fn run_migrations(pool: &DbPool) -> Result<usize, StorageError> {
    let mut conn = pool.get()?;
    let applied = match &mut *conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(|v| v.len()),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES).map(|v| v.len()),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL).map(|v| v.len()),
        // Reached only when another crate compiled MySQL into tern-db but this crate's
        // `mysql` feature is off, so its migrations were not embedded.
        #[allow(unreachable_patterns)]
        _ => return Err(StorageError::Migration("mysql migrations not compiled in".into())),
    };
    applied.map_err(|err| StorageError::Migration(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    fn names(backend: &str) -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(backend);
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("migrations folder exists") {
            let entry = entry.expect("readable entry");
            for file in ["up.sql", "down.sql"] {
                assert!(entry.path().join(file).exists(), "{:?} lacks {file}", entry.path());
            }
            found.insert(entry.file_name().to_string_lossy().into_owned());
        }
        found
    }

    #[test]
    fn migrations_have_the_same_names_on_every_backend() {
        let sqlite = names("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, names("postgres"), "postgres migrations differ from sqlite");
        assert_eq!(sqlite, names("mysql"), "mysql migrations differ from sqlite");
    }
}
