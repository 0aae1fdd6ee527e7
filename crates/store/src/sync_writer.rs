//! Group commit on a synchronous SQLite connection, for the writes on the Zustelldienst's
//! intake path (create, upload, submit).
//!
//! The general write queue (`writer.rs`) runs its jobs through sqlx, which hands every
//! statement to a worker thread of its own and waits for the answer: on a busy two-core
//! machine each hand-off costs a scheduling delay, and one submission's three requests make
//! about twenty of them inside the one serial writer — which capped the intake at roughly
//! 450 submissions/s with the cores half idle. Here a thread owns a rusqlite connection
//! (the same SQLite library sqlx links) and runs each job's statements directly: prepared
//! once, microseconds each.
//!
//! Same guarantees as the general queue: every job runs in a savepoint of the group's
//! transaction, so a failing job rolls back alone; nobody hears "done" before the COMMIT
//! (`synchronous = FULL`) returned. The SQL text is shared with the PostgreSQL path, which
//! runs the same statements through sqlx; placeholders are `$n`, bound here by name, so
//! their order in the text does not matter.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ToSql};
use tokio::sync::{mpsc, oneshot};

use crate::{Result, Store, StoreError};

/// A job's work on the connection, returning whether it succeeded and what to do after the
/// COMMIT with the commit's outcome.
type Done = Box<dyn FnOnce(Result<()>) + Send>;
type Work = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;
pub(crate) struct SyncJob(Work);

/// Most jobs per transaction: bounds the latency one group adds to its last member.
const MAX_GROUP: usize = 512;

pub(crate) fn spawn_sync_writer(path: PathBuf) -> std::io::Result<mpsc::Sender<SyncJob>> {
    let (tx, mut rx) = mpsc::channel::<SyncJob>(4096);
    std::thread::Builder::new()
        .name("rathaus-intake-writer".into())
        .spawn(move || {
            let mut conn: Option<Connection> = None;
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                if conn.is_none() {
                    match open(&path) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tracing::error!(error = %e, "intake writer: cannot open the database");
                        }
                    }
                }
                let Some(c) = conn.as_ref() else {
                    // Dropping a job drops its reply channel: the caller hears "unavailable".
                    drop(jobs);
                    continue;
                };
                if let Err(e) = run_group(c, jobs) {
                    tracing::warn!(error = %e, "intake writer: group failed; reopening the connection");
                    conn = None;
                }
            }
        })?;
    Ok(tx)
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // The pool's settings (`crate::sqlite_pragmas`), except the busy handler below.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -8192;",
    )?;
    // Other writers (the general queue, the token writer, the journal sequencer) hold the
    // lock for milliseconds. SQLite's own busy timeout sleeps in steps up to 100 ms, which
    // would show as latency spikes on every intake request of the group; retry every
    // 200 µs instead, for up to 10 s like the pool.
    conn.busy_handler(Some(|attempt: i32| {
        std::thread::sleep(Duration::from_micros(200));
        attempt < 50_000
    }))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn run_group(conn: &Connection, jobs: Vec<SyncJob>) -> rusqlite::Result<()> {
    let mut done: Vec<Done> = Vec::with_capacity(jobs.len());
    let fail_all = |done: Vec<Done>, e: &rusqlite::Error| {
        let msg = e.to_string();
        for d in done {
            d(Err(StoreError::Unavailable(format!(
                "the database did not commit: {msg}"
            ))));
        }
    };
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Not run: dropping the jobs tells their callers.
        drop(jobs);
        return Err(e);
    }
    for SyncJob(work) in jobs {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(done, &e);
            return Err(e);
        }
        let (ok, d) = work(conn);
        let end = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        done.push(d);
        if let Err(e) = end {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(done, &e);
            return Err(e);
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for d in done {
                d(Ok(()));
            }
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(done, &e);
            Err(e)
        }
    }
}

/// Runs `sql` (with `$1`, `$2`, … placeholders) with `params` bound by number; the
/// number of changed rows.
pub(crate) fn exec(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    stmt.raw_execute()
}

/// The first row of `sql`, mapped by `f`; `None` if there is none.
pub(crate) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// Every row of `sql`, mapped by `f`.
pub(crate) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: &[&dyn ToSql]) -> rusqlite::Result<()> {
    stmt.clear_bindings();
    for (i, p) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, p)?;
    }
    Ok(())
}

/// A rusqlite error as the store's: constraint violations are conflicts (`what` says
/// which), anything else the database's failure.
pub(crate) fn store_error(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(what()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl Store {
    /// Whether the intake's writes go through the synchronous writer (SQLite files).
    pub(crate) fn has_sync_writer(&self) -> bool {
        self.sync_writer.is_some()
    }

    /// Runs `f` in the synchronous writer's group transaction and returns its result once
    /// committed. Only for SQLite files (see [`Store::has_sync_writer`]); `f` must not
    /// commit or roll back, and an `Err` rolls back `f`'s own writes only.
    pub(crate) async fn write_sync<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let Some(queue) = &self.sync_writer else {
            return Err(StoreError::Unavailable(
                "no synchronous writer on this database".into(),
            ));
        };
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let job = SyncJob(Box::new(move |conn| {
            let outcome = f(conn);
            let ok = outcome.is_ok();
            let done: Done = Box::new(move |commit| {
                let _ = tx.send(match (outcome, commit) {
                    (Ok(r), Ok(())) => Ok(r),
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                });
            });
            (ok, done)
        }));
        queue
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the intake writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the database is unavailable (write not committed)".into())
        })?
    }
}
