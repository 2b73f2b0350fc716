//! A fresh database per test, on every backend the environment offers.
//!
//! SQLite always runs, in a temporary folder. PostgreSQL runs when `TERN_TEST_POSTGRES_URL`
//! names a server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) and MySQL/MariaDB when
//! `TERN_TEST_MYSQL_URL` does (e.g. `mysql://root@127.0.0.1:3306/mysql`, which needs the
//! `mysql` feature). Each test database gets a random name and is dropped when the guard is.
//! With `TERN_TEST_REQUIRE_BACKENDS=sqlite,postgres,mysql` (as CI sets it) a backend that is
//! not configured, or not reachable, fails the test instead of being skipped.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::Rng;
use tern_db::Backend;

/// A database that exists for one test.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

/// The backends this run tests, from the environment.
pub fn backends() -> Vec<Backend> {
    let mut found = vec![Backend::Sqlite];
    if std::env::var("TERN_TEST_POSTGRES_URL").is_ok() {
        found.push(Backend::Postgres);
    }
    if std::env::var("TERN_TEST_MYSQL_URL").is_ok() {
        found.push(Backend::Mysql);
    }
    let required = std::env::var("TERN_TEST_REQUIRE_BACKENDS").unwrap_or_default();
    for name in required.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        assert!(
            found.iter().any(|b| b.name() == name),
            "backend {name} is required (TERN_TEST_REQUIRE_BACKENDS) but its TERN_TEST_*_URL is not set"
        );
    }
    found
}

impl TestDatabase {
    /// Creates an empty database on `backend`; panics with the reason when it cannot, since a
    /// configured backend that is unreachable must fail the run, not skip it.
    pub fn create(backend: Backend) -> TestDatabase {
        let name = format!("tern_test_{:016x}", rand::rng().random::<u64>());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("tern.db").display());
                TestDatabase { backend, url, admin_url: None, name, _dir: Some(dir) }
            }
            Backend::Postgres | Backend::Mysql => {
                let var = if backend == Backend::Postgres { "TERN_TEST_POSTGRES_URL" } else { "TERN_TEST_MYSQL_URL" };
                let admin = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
                run_admin(backend, &admin, &format!("CREATE DATABASE {name}"));
                let url = replace_database(&admin, &name);
                TestDatabase { backend, url, admin_url: Some(admin), name, _dir: None }
            }
        }
    }

    /// A second, independent database on the same backend (for tests that need two).
    pub fn folder(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin) = &self.admin_url else { return };
        let sql = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        run_admin(self.backend, admin, &sql);
    }
}

fn replace_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{root}/{name}{query}")
}

fn run_admin(backend: Backend, admin: &str, sql: &str) {
    let outcome = match backend {
        Backend::Postgres => diesel::PgConnection::establish(admin)
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.batch_execute(sql).map_err(|e| e.to_string())),
        #[cfg(feature = "mysql")]
        Backend::Mysql => diesel::MysqlConnection::establish(admin)
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.batch_execute(sql).map_err(|e| e.to_string())),
        #[cfg(not(feature = "mysql"))]
        Backend::Mysql => Err("TERN_TEST_MYSQL_URL is set but this build lacks --features mysql".into()),
        Backend::Sqlite => Ok(()),
    };
    if let Err(err) = outcome {
        panic!("{} admin statement failed ({sql}): {err}", backend.name());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_replaces_the_admin_one() {
        assert_eq!(
            super::replace_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(super::replace_database("mysql://root@h:3306/mysql?x=1", "t2"), "mysql://root@h:3306/t2?x=1");
        assert_eq!(super::replace_database("mysql://root@h:3306", "t3"), "mysql://root@h:3306/t3");
    }
}

/// The NATS server for cluster tests, from `TERN_TEST_NATS_URL`. `None` means the cluster
/// tests have nothing to run against; with `TERN_TEST_REQUIRE_NATS=1` (as CI sets it) that
/// fails the test instead.
pub fn nats_url() -> Option<String> {
    let url = std::env::var("TERN_TEST_NATS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("TERN_TEST_REQUIRE_NATS").is_ok_and(|v| v == "1") {
        panic!("TERN_TEST_REQUIRE_NATS=1 but TERN_TEST_NATS_URL is not set");
    }
    url
}
