//! Group commit for SQLite: writes that must be durable before they are acknowledged (the
//! Zustelldienst's intake above all) are queued to one task that owns a connection of its
//! own and commits whatever is waiting in one transaction — one fsync for many requests
//! instead of one each. Every job runs inside a savepoint, so a job that fails rolls back
//! alone and the others still commit. Nobody hears "done" before the COMMIT returned.
//!
//! On PostgreSQL each job is its own transaction on the pool: the server groups concurrent
//! commits' WAL flushes by itself, and several app nodes write at once.

use std::future::Future;
use std::pin::Pin;

use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::sync::{mpsc, oneshot};

use crate::{Backend, Result, Store, StoreError};

/// A future borrowing the connection it runs on.
pub type BoxFut<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// What the writer runs: the job's work, then (after COMMIT) its completion with the
/// commit's outcome.
type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Work = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFut<'c, (bool, Completion)> + Send>;

pub(crate) struct WriteJob(Work);

/// Most jobs per transaction: bounds the latency one group adds to its last member.
const MAX_GROUP: usize = 512;

pub(crate) fn spawn_writer(url: String) -> mpsc::Sender<WriteJob> {
    let (tx, mut rx) = mpsc::channel::<WriteJob>(4096);
    tokio::spawn(async move {
        let mut conn: Option<AnyConnection> = None;
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if conn.is_none() {
                match open(&url).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "write queue: cannot open the database");
                    }
                }
            }
            let Some(c) = conn.as_mut() else {
                for WriteJob(work) in jobs {
                    // Nothing ran: tell each job the database is unavailable.
                    fail_unrun(work);
                }
                continue;
            };
            match run_group(c, jobs).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "write queue: group failed; reopening the connection");
                    conn = None;
                }
            }
        }
    });
    tx
}

fn fail_unrun(work: Work) {
    // The work closure owns the job's reply channel; dropping it drops the sender, and the
    // waiting caller sees "writer gone", which maps to a database error.
    drop(work);
}

async fn open(url: &str) -> Result<AnyConnection> {
    let mut c = AnyConnection::connect(url).await?;
    crate::sqlite_pragmas(&mut c).await?;
    Ok(c)
}

async fn run_group(conn: &mut AnyConnection, jobs: Vec<WriteJob>) -> Result<()> {
    let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        let msg = e.to_string();
        for WriteJob(work) in jobs {
            drop(work);
        }
        return Err(StoreError::Unavailable(format!("begin: {msg}")));
    }
    for WriteJob(work) in jobs {
        if let Err(e) = conn.execute("SAVEPOINT job").await {
            let _ = conn.execute("ROLLBACK").await;
            let msg = e.to_string();
            for c in completions {
                c(Err(StoreError::Unavailable(format!("savepoint: {msg}"))));
            }
            return Err(StoreError::Unavailable(msg));
        }
        let (ok, completion) = work(conn).await;
        let end = if ok {
            conn.execute("RELEASE job").await
        } else {
            match conn.execute("ROLLBACK TO job").await {
                Ok(_) => conn.execute("RELEASE job").await,
                Err(e) => Err(e),
            }
        };
        completions.push(completion);
        if let Err(e) = end {
            let _ = conn.execute("ROLLBACK").await;
            let msg = e.to_string();
            for c in completions {
                c(Err(StoreError::Unavailable(format!(
                    "savepoint end: {msg}"
                ))));
            }
            return Err(StoreError::Unavailable(msg));
        }
    }
    match conn.execute("COMMIT").await {
        Ok(_) => {
            for c in completions {
                c(Ok(()));
            }
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            let msg = e.to_string();
            for c in completions {
                c(Err(StoreError::Unavailable(format!(
                    "commit failed: {msg}"
                ))));
            }
            Err(StoreError::Unavailable(msg))
        }
    }
}

impl Store {
    /// Runs `f` in a write transaction and returns its result once that transaction is
    /// durably committed. On SQLite, concurrent callers share one transaction (group commit);
    /// `f` must therefore not assume it is alone and must not commit or roll back itself. An
    /// `Err` from `f` rolls back `f`'s own writes only.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFut<'c, Result<R>> + Send + 'static,
    {
        match (&self.writer, self.backend) {
            (Some(queue), Backend::Sqlite) => {
                let (tx, rx) = oneshot::channel::<Result<R>>();
                let work: Work = Box::new(move |conn| {
                    Box::pin(async move {
                        let outcome = f(conn).await;
                        let ok = outcome.is_ok();
                        let completion: Completion = Box::new(move |commit: Result<()>| {
                            let _ = tx.send(match (outcome, commit) {
                                (Ok(r), Ok(())) => Ok(r),
                                (Err(e), _) => Err(e),
                                (Ok(_), Err(e)) => Err(e),
                            });
                        });
                        (ok, completion)
                    })
                });
                queue
                    .send(WriteJob(work))
                    .await
                    .map_err(|_| StoreError::Unavailable("the write queue has stopped".into()))?;
                rx.await.map_err(|_| {
                    StoreError::Unavailable(
                        "the database is unavailable (write not committed)".into(),
                    )
                })?
            }
            _ => {
                let mut tx = self.begin_write().await?;
                let r = f(&mut tx).await?;
                tx.commit().await?;
                Ok(r)
            }
        }
    }
}
