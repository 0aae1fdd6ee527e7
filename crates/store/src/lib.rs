//! Storage: the only crate that contains SQL.
//!
//! One implementation serves SQLite (the embedded default) and PostgreSQL (production), over
//! sqlx's `Any` driver with runtime queries: the same query text goes to both (`$1`
//! placeholders work in both), and the few places where the dialects differ are marked with
//! [`Backend`]. Migrations live per backend under `migrations/`. Callers never see a sqlx
//! type: they get domain types and [`StoreError`].

mod accounts;
mod data_schemas;
mod directory;
mod email;
mod journal;
mod keys;
mod legal;
mod migrate;
mod oauth;
mod organisations;
mod outbox;
mod passkeys;
mod postfach;
mod poststelle;
mod profiles;
mod sync_writer;
#[cfg(feature = "test-support")]
pub mod testing;
mod writer;
mod zustelldienst;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use self::journal::{InclusionProof, JournalLeaf};
pub use accounts::{AccountRecord, NewAccount, SecurityEvent, SessionRecord};
pub use data_schemas::{DataSchemaRecord, SchemaRegistration};
pub use directory::{AreaImportSummary, RuleChange};
pub use email::{EmailAnswerDue, NewEmailMessage};
pub use keys::StoredKey;
pub use legal::{Feedback, LegalPage};
pub use oauth::{
    CodeUse, IssueOutcome, LogoutNotice, OAuthClient, OidcKeyRecord, RefreshRecord, TokenIssue,
};
pub use organisations::{
    InvitationRecord, LAST_OWNER, MemberRecord, MembershipRecord, NewInvitation, OrganisationRecord,
};
pub use outbox::{NewMail, OutboxMail};
pub use passkeys::PasskeyRecord;
pub use postfach::{
    AttachmentRecord, NewPostfachMessage, PostfachLogEntry, PostfachMessage,
    postfach_content_digest,
};
pub use poststelle::{FiledAttachment, FiledCase, PendingCount, ReceiptRecord};
pub use profiles::{ConsentRecord, StoredProfile};
pub use writer::BoxFut;
pub use zustelldienst::{
    AttachmentRecord as SubmissionAttachment, CallbackRecord, Decision, DestinationKeyRecord,
    DestinationRecord, EventRecord, Guarded, NewCallback, NewEvent, NewSubmission,
    SubmissionRecord, SubmitParts,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or reference rule of the data was violated; the text says which.
    #[error("{0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data that does not parse: a bug or a hand-edited database.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("the database schema is newer than this program (migration {0} unknown)")]
    SchemaTooNew(i64),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A failure of the synchronous SQLite writer (I/O, a broken connection): not the
    /// caller's fault, like `Database`.
    #[error("database error: {0}")]
    Unavailable(String),
}

impl StoreError {
    fn corrupt(e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: token issuances are committed in groups by one task (see `oauth.rs`).
    issue_queue: Option<tokio::sync::mpsc::Sender<oauth::IssueJob>>,
    /// SQLite file databases: the group-commit write queue (see `writer.rs`).
    writer: Option<tokio::sync::mpsc::Sender<writer::WriteJob>>,
    /// SQLite file databases: the intake's synchronous writer (see `sync_writer.rs`).
    sync_writer: Option<tokio::sync::mpsc::Sender<sync_writer::SyncJob>>,
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Fixed-width RFC 3339 UTC with microseconds: in the tables that use it, text order is
/// time order, so SQL can compare and sort times on both backends.
pub fn ts(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// WAL lets readers run beside the one writer; FULL makes every commit durable before it is
/// acknowledged; foreign keys are off by default in SQLite. Every commit of the writer
/// empties the other connections' page caches, so readers map the file instead of copying
/// pages in with `pread` (a third of the intake's CPU time went to those copies).
pub(crate) async fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
) -> std::result::Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
         PRAGMA cache_size = -4096; PRAGMA mmap_size = 1073741824;",
    )
    .await?;
    Ok(())
}

/// The file of a `sqlite://PATH[?…]` URL (`None` for in-memory databases).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Reads a time written by [`ts`] (or any RFC 3339 time).
pub(crate) fn parse_ts(s: &str) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::corrupt(format!("time {s:?}: {e}")))
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Store {
    /// Connects to `sqlite://path` or `postgres://…`. A SQLite file is created if missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Conflict(format!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
                redact_url(url)
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let connect = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _| Box::pin(sqlite_pragmas(conn)));
        }
        let pool = pool.connect_with(connect.clone()).await?;
        // The token writer gets a connection of its own, so that it never waits for one
        // behind the readers of a busy pool.
        let issue_queue = match (backend, sqlite_path(&url)) {
            (Backend::Sqlite, Some(path)) => Some(
                oauth::spawn_issue_writer(path)
                    .map_err(|e| StoreError::Conflict(format!("token writer thread: {e}")))?,
            ),
            _ => None,
        };
        let writer = match (backend, sqlite_path(&url)) {
            (Backend::Sqlite, Some(_)) => Some(writer::spawn_writer(url.clone())),
            _ => None,
        };
        let sync_writer = match (backend, sqlite_path(&url)) {
            (Backend::Sqlite, Some(path)) => Some(
                sync_writer::spawn_sync_writer(path)
                    .map_err(|e| StoreError::Conflict(format!("intake writer thread: {e}")))?,
            ),
            _ => None,
        };
        Ok(Store {
            pool,
            backend,
            issue_queue,
            writer,
            sync_writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// (open connections, idle connections), for the metrics page.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. SQLite must take the write lock at the start (`IMMEDIATE`):
    /// a deferred transaction that reads first and writes later fails at once under
    /// contention instead of waiting.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Ready when the database answers and every known migration is applied.
    pub async fn check_ready(&self) -> Result<()> {
        let applied = migrate::applied(&self.pool).await?;
        let known = migrate::known(self.backend).len();
        if applied.len() < known {
            return Err(StoreError::Conflict(format!(
                "{} of {known} migrations applied",
                applied.len()
            )));
        }
        Ok(())
    }

    pub async fn migrate(&self) -> Result<Vec<i64>> {
        migrate::run(&self.pool, self.backend).await
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Sets `key` unless it is set already (several nodes starting at once agree on the
    /// first value).
    pub async fn meta_set_if_absent(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Maps a violated constraint to a conflict the caller can explain.
pub(crate) fn conflict(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db)
            if db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation() =>
        {
            StoreError::Conflict(what())
        }
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
