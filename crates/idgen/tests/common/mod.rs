//! Databases for the integration tests, from `tern-testkit`: a temporary SQLite file always,
//! and a fresh PostgreSQL or MySQL database when `TERN_TEST_POSTGRES_URL` or
//! `TERN_TEST_MYSQL_URL` names a server (created for the test, dropped after it).

#![allow(dead_code)]

use std::sync::Arc;

use tern_db::{Backend, DbPool, PoolSettings};
use tern_idgen::DieselSegmentStore;
use tern_testkit::TestDatabase;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A migrated database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub label: &'static str,
    _db: TestDatabase,
}

impl TestDb {
    pub fn create(backend: Backend) -> Result<TestDb, Box<dyn std::error::Error>> {
        let db = TestDatabase::create(backend);
        let test_db = TestDb {
            url: db.url.clone(),
            label: backend.name(),
            _db: db,
        };
        tern_storage::run_migrations(&test_db.pool()?)?;
        Ok(test_db)
    }

    pub fn sqlite() -> Result<TestDb, Box<dyn std::error::Error>> {
        TestDb::create(Backend::Sqlite)
    }

    /// One database on every backend the environment offers.
    pub fn all() -> Result<Vec<TestDb>, Box<dyn std::error::Error>> {
        tern_testkit::backends()
            .into_iter()
            .map(TestDb::create)
            .collect()
    }

    pub fn pool(&self) -> Result<DbPool, tern_db::DbError> {
        tern_db::connect(&self.url, &PoolSettings::default())
    }

    pub fn store(&self) -> Result<Arc<DieselSegmentStore>, tern_db::DbError> {
        Ok(Arc::new(DieselSegmentStore::new(self.pool()?)))
    }
}
