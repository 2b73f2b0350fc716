//! Databases for the integration tests: a temporary SQLite file always, and a fresh
//! PostgreSQL database when `TERN_TEST_POSTGRES_URL` is set (created for the test, dropped
//! after it).

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::RunQueryDsl;
use tern_db::{DbPool, PoolSettings};
use tern_idgen::DieselSegmentStore;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub label: &'static str,
    _dir: Option<tempfile::TempDir>,
    drop_from: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> Result<TestDb, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("idgen.db").display());
        let db = TestDb {
            url,
            label: "sqlite",
            _dir: Some(dir),
            drop_from: None,
        };
        tern_storage::run_migrations(&db.pool()?)?;
        Ok(db)
    }

    /// A fresh database on the server `base_url` points at.
    pub fn postgres(base_url: &str) -> Result<TestDb, Box<dyn std::error::Error>> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
        let name = format!(
            "tern_idgen_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = tern_db::connect(base_url, &PoolSettings::default())?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut *admin.get()?)?;
        let url = with_database(base_url, &name);
        let db = TestDb {
            url,
            label: "postgres",
            _dir: None,
            drop_from: Some((base_url.to_owned(), name)),
        };
        tern_storage::run_migrations(&db.pool()?)?;
        Ok(db)
    }

    /// SQLite, plus PostgreSQL when the environment names a server.
    pub fn all() -> Result<Vec<TestDb>, Box<dyn std::error::Error>> {
        let mut dbs = vec![TestDb::sqlite()?];
        let postgres = std::env::var("TERN_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty());
        if let Some(base) = postgres {
            dbs.push(TestDb::postgres(&base)?);
        }
        Ok(dbs)
    }

    pub fn pool(&self) -> Result<DbPool, tern_db::DbError> {
        tern_db::connect(&self.url, &PoolSettings::default())
    }

    pub fn store(&self) -> Result<Arc<DieselSegmentStore>, tern_db::DbError> {
        Ok(Arc::new(DieselSegmentStore::new(self.pool()?)))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.drop_from {
            let dropped = tern_db::connect(base, &PoolSettings::default()).map(|admin| {
                admin.get().map(|mut conn| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut *conn)
                })
            });
            if !matches!(dropped, Ok(Ok(Ok(_)))) {
                eprintln!("could not drop test database {name}");
            }
        }
    }
}

/// `base_url` with its database path replaced by `name`.
fn with_database(base_url: &str, name: &str) -> String {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("postgres", base_url));
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let host = authority.split('/').next().unwrap_or(authority);
    match query {
        Some(query) => format!("{scheme}://{host}/{name}?{query}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}
