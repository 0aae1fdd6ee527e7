//! Fresh databases for tests, on every backend the environment offers.
//!
//! SQLite is always there. PostgreSQL is used when `RATHAUS_TEST_POSTGRES_URL` names a
//! server (`scripts/test` starts a throwaway one); each test then gets its own database with
//! a random name. With `RATHAUS_TEST_REQUIRE_POSTGRES=1` (as in CI) a missing URL fails
//! the test instead of silently testing SQLite alone.

use crate::{Backend, Store, StoreOptions};

/// A database that lives as long as this value (the SQLite file's directory is removed on
/// drop; PostgreSQL test databases are left to the throwaway server's removal).
pub struct TestDb {
    store: Store,
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

// Accessors rather than public fields: an `async move` block that touched only `db.store`
// would capture just that field and drop the rest, deleting the SQLite file's directory.
impl TestDb {
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The database URLs a test should run against: SQLite first, then PostgreSQL if configured.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    match std::env::var("RATHAUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => v.push(Backend::Postgres),
        _ => {
            if std::env::var("RATHAUS_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("RATHAUS_TEST_REQUIRE_POSTGRES=1 but RATHAUS_TEST_POSTGRES_URL is not set");
            }
        }
    }
    v
}

/// A URL for a new, empty database on `backend` (nothing is migrated yet).
pub async fn fresh_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("rathaus.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let base =
                std::env::var("RATHAUS_TEST_POSTGRES_URL").expect("RATHAUS_TEST_POSTGRES_URL");
            let name = format!("rathaus_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Store::connect(
                &base,
                &StoreOptions {
                    max_connections: 1,
                    ..Default::default()
                },
            )
            .await
            .expect("connect to the PostgreSQL test server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin.pool)
                .await
                .expect("create test database");
            admin.close().await;
            let (head, query) = match base.split_once('?') {
                Some((h, q)) => (h.to_owned(), format!("?{q}")),
                None => (base.clone(), String::new()),
            };
            let scheme_end = head.find("://").map_or(0, |i| i + 3);
            let host_part = match head[scheme_end..].find('/') {
                Some(i) => &head[..scheme_end + i],
                None => head.as_str(),
            };
            (format!("{host_part}/{name}{query}"), None)
        }
    }
}

/// A fresh, migrated database on `backend`.
pub async fn fresh(backend: Backend) -> TestDb {
    let (url, dir) = fresh_url(backend).await;
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    TestDb {
        store,
        url,
        backend,
        _dir: dir,
    }
}
