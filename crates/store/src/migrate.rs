//! A small migration runner: numbered SQL files per backend, embedded in the binary, each
//! applied once in its own transaction and recorded with its checksum. On PostgreSQL an
//! advisory lock keeps several starting nodes from migrating at the same time.

use sqlx::{AnyPool, Row};

use crate::{Backend, Result, StoreError};

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "servicekonto",
        sql: include_str!("../migrations/sqlite/0002_servicekonto.sql"),
    },
    Migration {
        version: 3,
        name: "postfach_organisations",
        sql: include_str!("../migrations/sqlite/0003_postfach_organisations.sql"),
    },
    Migration {
        version: 4,
        name: "postfach_indexes",
        sql: include_str!("../migrations/sqlite/0004_postfach_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "oidc",
        sql: include_str!("../migrations/sqlite/0005_oidc.sql"),
    },
    Migration {
        version: 6,
        name: "journal",
        sql: include_str!("../migrations/sqlite/0006_journal.sql"),
    },
    Migration {
        version: 7,
        name: "zustelldienst",
        sql: include_str!("../migrations/sqlite/0007_zustelldienst.sql"),
    },
    Migration {
        version: 8,
        name: "poststelle",
        sql: include_str!("../migrations/sqlite/0008_poststelle.sql"),
    },
    Migration {
        version: 9,
        name: "data_schemas",
        sql: include_str!("../migrations/sqlite/0009_data_schemas.sql"),
    },
    Migration {
        version: 10,
        name: "postfach_journal",
        sql: include_str!("../migrations/sqlite/0010_postfach_journal.sql"),
    },
    Migration {
        version: 11,
        name: "email_intake",
        sql: include_str!("../migrations/sqlite/0011_email_intake.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "servicekonto",
        sql: include_str!("../migrations/postgres/0002_servicekonto.sql"),
    },
    Migration {
        version: 3,
        name: "postfach_organisations",
        sql: include_str!("../migrations/postgres/0003_postfach_organisations.sql"),
    },
    Migration {
        version: 4,
        name: "postfach_indexes",
        sql: include_str!("../migrations/postgres/0004_postfach_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "oidc",
        sql: include_str!("../migrations/postgres/0005_oidc.sql"),
    },
    Migration {
        version: 6,
        name: "journal",
        sql: include_str!("../migrations/postgres/0006_journal.sql"),
    },
    Migration {
        version: 7,
        name: "zustelldienst",
        sql: include_str!("../migrations/postgres/0007_zustelldienst.sql"),
    },
    Migration {
        version: 8,
        name: "poststelle",
        sql: include_str!("../migrations/postgres/0008_poststelle.sql"),
    },
    Migration {
        version: 9,
        name: "data_schemas",
        sql: include_str!("../migrations/postgres/0009_data_schemas.sql"),
    },
    Migration {
        version: 10,
        name: "postfach_journal",
        sql: include_str!("../migrations/postgres/0010_postfach_journal.sql"),
    },
    Migration {
        version: 11,
        name: "email_intake",
        sql: include_str!("../migrations/postgres/0011_email_intake.sql"),
    },
];

pub(crate) fn known(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

const LOCK_ID: i64 = 0x0052_4154_4841_5553; // "RATHAUS" in ASCII

pub(crate) async fn applied(pool: &AnyPool) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(pool)
        .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect(),
        // No table yet: nothing applied.
        Err(sqlx::Error::Database(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn checksum(sql: &str) -> String {
    // FNV-1a is enough to notice an edited migration file; it is not a security measure.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<Vec<i64>> {
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    let result = run_locked(pool, backend).await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn run_locked(pool: &AnyPool, backend: Backend) -> Result<Vec<i64>> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
         version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, \
         applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let done = applied(pool).await?;
    let migrations = known(backend);
    if let Some((v, _)) = done
        .iter()
        .find(|(v, _)| !migrations.iter().any(|m| m.version == *v))
    {
        return Err(StoreError::SchemaTooNew(*v));
    }
    let mut newly = Vec::new();
    for m in migrations {
        if let Some((_, sum)) = done.iter().find(|(v, _)| *v == m.version) {
            if *sum != checksum(m.sql) {
                tracing::warn!(
                    version = m.version,
                    "applied migration differs from the embedded one"
                );
            }
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(checksum(m.sql))
        .bind(crate::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        newly.push(m.version);
    }
    Ok(newly)
}
