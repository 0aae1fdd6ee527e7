//! OAuth2 / OpenID Connect state: clients, signing keys, authorization codes, refresh
//! tokens, revoked access tokens, client-assertion replay protection, the services a session
//! signed in to, and the back-channel logout outbox.
//!
//! Secrets (client secrets, codes, refresh tokens) are stored only as keyed digests or
//! hashes; signing keys only wrapped under the KEK.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, conflict, ts};

#[derive(Debug, Clone, serde::Serialize)]
pub struct OAuthClient {
    pub client_id: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub name: String,
    pub authority_ars: Option<String>,
    /// Space-separated scopes the client may ask for.
    pub scopes: String,
    pub active: bool,
    pub created_at: String,
    /// The registration as JSON (`oidc::ClientConfig`).
    pub config: String,
}

/// A signing key of the OpenID provider.
#[derive(Debug, Clone)]
pub struct OidcKeyRecord {
    pub kid: String,
    pub alg: String,
    pub wrapped: Vec<u8>,
    pub public_jwk: String,
    pub created_at: String,
    /// Set when a newer key took over signing; the key stays published until `expires_at`.
    pub retired_at: Option<String>,
    pub expires_at: Option<String>,
}

/// A refresh token as stored.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub account_id: String,
    pub session_id: Option<String>,
    pub grant_data: String,
    pub expires_at: OffsetDateTime,
}

/// A pending back-channel logout notification.
#[derive(Debug, Clone)]
pub struct LogoutNotice {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub logout_token: String,
    pub attempts: i64,
}

const CLIENT_COLUMNS: &str =
    "client_id, secret_hash, name, authority_ars, scopes, active, created_at, config";

fn client_row(r: &sqlx::any::AnyRow) -> Result<OAuthClient> {
    Ok(OAuthClient {
        client_id: r.try_get("client_id")?,
        secret_hash: r.try_get("secret_hash")?,
        name: r.try_get("name")?,
        authority_ars: r.try_get("authority_ars")?,
        scopes: r.try_get("scopes")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_at: r.try_get("created_at")?,
        config: r.try_get("config")?,
    })
}

impl Store {
    pub async fn create_oauth_client(&self, c: &OAuthClient, now: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, name, authority_ars, scopes, active, created_at, config) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.client_id)
        .bind(&c.secret_hash)
        .bind(&c.name)
        .bind(&c.authority_ars)
        .bind(&c.scopes)
        .bind(i64::from(c.active))
        .bind(ts(now))
        .bind(&c.config)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("client {} exists", c.client_id)))?;
        Ok(())
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_row).transpose()
    }

    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY name, client_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_row).collect()
    }

    pub async fn set_oauth_client_secret(&self, client_id: &str, secret_hash: &str) -> Result<()> {
        sqlx::query("UPDATE oauth_clients SET secret_hash = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(secret_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// False if there is no such client.
    pub async fn set_oauth_client_active(&self, client_id: &str, active: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE oauth_clients SET active = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(i64::from(active))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- signing keys ----

    pub async fn insert_oidc_key(&self, k: &OidcKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_keys (kid, alg, wrapped, public_jwk, created_at, retired_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.wrapped)
        .bind(&k.public_jwk)
        .bind(&k.created_at)
        .bind(&k.retired_at)
        .bind(&k.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("key {} exists", k.kid)))?;
        Ok(())
    }

    /// Adds `new` as the current key of its algorithm and retires the previous ones (they
    /// stay published until `old_expire_at`), in one transaction.
    pub async fn rotate_oidc_key(
        &self,
        new: &OidcKeyRecord,
        now: OffsetDateTime,
        old_expire_at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE oidc_keys SET retired_at = $2, expires_at = $3 WHERE alg = $1 AND retired_at IS NULL",
        )
        .bind(&new.alg)
        .bind(ts(now))
        .bind(ts(old_expire_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO oidc_keys (kid, alg, wrapped, public_jwk, created_at, retired_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
        )
        .bind(&new.kid)
        .bind(&new.alg)
        .bind(&new.wrapped)
        .bind(&new.public_jwk)
        .bind(&new.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keys still published at `now` (current and retired-but-unexpired), newest first.
    pub async fn oidc_keys(&self, now: OffsetDateTime) -> Result<Vec<OidcKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, wrapped, public_jwk, created_at, retired_at, expires_at FROM oidc_keys \
             WHERE retired_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, kid",
        )
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OidcKeyRecord {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    wrapped: r.try_get("wrapped")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    // ---- refresh tokens ----

    pub async fn insert_refresh_token(&self, r: &RefreshRecord, now: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_refresh_tokens (token_hash, family_id, client_id, account_id, session_id, grant_data, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.token_hash)
        .bind(&r.family_id)
        .bind(&r.client_id)
        .bind(&r.account_id)
        .bind(&r.session_id)
        .bind(&r.grant_data)
        .bind(ts(now))
        .bind(ts(r.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A refresh token and whether it was used already; `None` if unknown.
    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<(bool, RefreshRecord)>> {
        let row = sqlx::query(
            "SELECT token_hash, family_id, client_id, account_id, session_id, grant_data, expires_at, used_at, revoked_at \
             FROM oidc_refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let expires: String = r.try_get("expires_at")?;
        let used = r.try_get::<Option<String>, _>("used_at")?.is_some();
        let revoked = r.try_get::<Option<String>, _>("revoked_at")?.is_some();
        let rec = RefreshRecord {
            token_hash: r.try_get("token_hash")?,
            family_id: r.try_get("family_id")?,
            client_id: r.try_get("client_id")?,
            account_id: r.try_get("account_id")?,
            session_id: r.try_get("session_id")?,
            grant_data: r.try_get("grant_data")?,
            expires_at: crate::parse_ts(&expires)?,
        };
        // A revoked token is reported as used: presenting it is reuse either way.
        Ok(Some((used || revoked, rec)))
    }

    /// Whether an access token is revoked: by its `jti`, or because its sign-in (refresh
    /// family) ended. One query, since every bearer request asks.
    pub async fn access_token_revoked(&self, jti: &str, family: Option<&str>) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM oauth_revoked_tokens WHERE jti = $1 \
             UNION ALL SELECT 1 AS one FROM oidc_refresh_tokens WHERE family_id = $2 AND revoked_at IS NOT NULL \
             LIMIT 1",
        )
        .bind(jti)
        .bind(family.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn revoke_refresh_family(&self, family_id: &str, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE oidc_refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Revokes the session-bound refresh tokens of a session (logout). Offline tokens
    /// (`offline_access`) carry no session and survive.
    pub async fn revoke_refresh_of_session(
        &self,
        session_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE oidc_refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Revokes every refresh token an account gave a client (consent withdrawn).
    pub async fn revoke_refresh_of_client(
        &self,
        account_id: &str,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE oidc_refresh_tokens SET revoked_at = $3 WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(client_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    // ---- access-token revocation and assertion replay ----

    pub async fn revoke_jti(&self, jti: &str, expires_at: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a client assertion's `jti`; false if it was seen before (a replay).
    pub async fn claim_assertion(&self, jti: &str, expires_at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO oauth_assertions (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(ts(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- sessions at services, logout ----

    /// Whether a session (by public id) is neither revoked nor past its absolute expiry.
    /// Idle expiry does not count: a service refreshing tokens is not the user being idle.
    pub async fn session_alive(&self, public_id: &str, now: OffsetDateTime) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM sessions WHERE public_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(public_id)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// (client id, sub) of every service the session signed in to.
    pub async fn session_clients(&self, session_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT client_id, sub FROM oidc_session_clients WHERE session_id = $1 ORDER BY created_at",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("sub")?)))
            .collect()
    }

    pub async fn enqueue_logout_notice(
        &self,
        id: &str,
        client_id: &str,
        uri: &str,
        logout_token: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_logout_outbox (id, client_id, uri, logout_token, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(id)
        .bind(client_id)
        .bind(uri)
        .bind(logout_token)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notices due at `now`, oldest first. Each is leased for `lease` by moving its next
    /// attempt forward, so a second node does not send it at the same time.
    pub async fn lease_logout_notices(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<LogoutNotice>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT id, client_id, uri, logout_token, attempts FROM oidc_logout_outbox \
             WHERE done_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let n = LogoutNotice {
                id: r.try_get("id")?,
                client_id: r.try_get("client_id")?,
                uri: r.try_get("uri")?,
                logout_token: r.try_get("logout_token")?,
                attempts: r.try_get("attempts")?,
            };
            sqlx::query("UPDATE oidc_logout_outbox SET next_attempt_at = $2 WHERE id = $1")
                .bind(&n.id)
                .bind(ts(now + lease))
                .execute(&mut *tx)
                .await?;
            out.push(n);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records an attempt: done, or failed with the time of the next try (`None`: give up).
    pub async fn finish_logout_notice(
        &self,
        id: &str,
        now: OffsetDateTime,
        error: Option<&str>,
        next_attempt: Option<OffsetDateTime>,
    ) -> Result<()> {
        let done_at = match (error, next_attempt) {
            (None, _) | (Some(_), None) => Some(ts(now)),
            (Some(_), Some(_)) => None,
        };
        sqlx::query(
            "UPDATE oidc_logout_outbox SET attempts = attempts + 1, done_at = $2, last_error = $3, \
             next_attempt_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(done_at)
        .bind(error)
        .bind(ts(next_attempt.unwrap_or(now)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes what expired: codes, refresh tokens, revocations and assertion ids.
    pub async fn purge_oauth(&self, now: OffsetDateTime) -> Result<u64> {
        let mut n = 0;
        for table in [
            "oidc_codes",
            "oidc_refresh_tokens",
            "oauth_revoked_tokens",
            "oauth_assertions",
        ] {
            n += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(ts(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}

// ---- token issuance, committed in groups ----

/// The single use of an authorization code, recorded when tokens are issued for it.
#[derive(Debug, Clone)]
pub struct CodeUse {
    pub code_hash: String,
    pub client_id: String,
    pub expires_at: OffsetDateTime,
    /// The tokens issued for it, revoked if the code comes again.
    pub family: Option<String>,
    pub jti: String,
    pub jti_exp: OffsetDateTime,
}

/// Everything one token issuance writes, in one transaction: the code's or refresh token's
/// single use, the new refresh token, the service the session signed in to, and the audit
/// entry of the data the tokens open.
#[derive(Debug, Clone, Default)]
pub struct TokenIssue {
    pub code: Option<CodeUse>,
    /// (hash, client id) of the refresh token presented.
    pub refresh_used: Option<(String, String)>,
    pub new_refresh: Option<RefreshRecord>,
    /// (session public id, client id, sub).
    pub session_client: Option<(String, String, String)>,
    /// (account id, kind, detail).
    pub event: Option<(String, String, String)>,
}

/// What a [`TokenIssue`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Written.
    Issued,
    /// The code or refresh token had been used: nothing was written; these are what the
    /// first use issued (refresh: its family).
    Reused {
        family: Option<String>,
        jti: Option<String>,
        jti_exp: Option<String>,
    },
    /// The refresh token is unknown, expired or revoked: nothing was written.
    Invalid,
}

pub(crate) struct IssueJob {
    issue: TokenIssue,
    now: OffsetDateTime,
    reply: tokio::sync::oneshot::Sender<Result<IssueOutcome>>,
}

/// Group commit for SQLite: one thread takes every issuance waiting and commits them in one
/// transaction (one fsync); if one fails, each is redone alone so it spoils no other.
///
/// The thread has its own connection through rusqlite (the same SQLite library sqlx links):
/// synchronous calls, so a group of inserts costs microseconds, where sqlx hands every
/// statement to a worker thread and back, which on a busy two-core machine cost a scheduling
/// delay each.
pub(crate) fn spawn_issue_writer(
    path: std::path::PathBuf,
) -> std::io::Result<tokio::sync::mpsc::Sender<IssueJob>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<IssueJob>(1024);
    std::thread::Builder::new()
        .name("rathaus-token-writer".into())
        .spawn(move || {
            let mut conn = match open_writer(&path) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "token writer: cannot open the database");
                    None
                }
            };
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < 256 {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                if conn.is_none() {
                    conn = open_writer(&path).ok();
                }
                let result = match conn.as_mut() {
                    Some(c) => run_issue_batch(c, &jobs),
                    None => Err(rusqlite::Error::InvalidPath(path.clone())),
                };
                match result {
                    Ok(results) => {
                        for (job, r) in jobs.into_iter().zip(results) {
                            let _ = job.reply.send(r);
                        }
                    }
                    Err(e) => {
                        // A broken connection is reopened for the next group.
                        conn = None;
                        let msg = e.to_string();
                        for job in jobs {
                            let _ = job.reply.send(Err(crate::StoreError::Conflict(format!(
                                "commit failed: {msg}"
                            ))));
                        }
                    }
                }
            }
        })?;
    Ok(tx)
}

fn open_writer(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    // The same settings as the pool's connections (`crate::sqlite_pragmas`).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = 10000; PRAGMA cache_size = -1024;",
    )?;
    Ok(conn)
}

fn run_issue_batch(
    conn: &mut rusqlite::Connection,
    jobs: &[IssueJob],
) -> rusqlite::Result<Vec<Result<IssueOutcome>>> {
    // Optimistic: all jobs in one transaction. A job that fails (rare: e.g. its account was
    // deleted meanwhile) would leave its earlier statements in it, so then the whole group
    // is rolled back and every job runs again in a transaction of its own.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut failed = false;
    for job in jobs {
        let r = apply_issue_sync(&tx, &job.issue, job.now);
        failed |= r.is_err();
        results.push(r.map_err(|e| crate::StoreError::Conflict(e.to_string())));
    }
    if !failed {
        tx.commit()?;
        return Ok(results);
    }
    tx.rollback()?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let r = apply_issue_sync(&tx, &job.issue, job.now);
        if r.is_ok() {
            tx.commit()?;
        } else {
            tx.rollback()?;
        }
        results.push(r.map_err(|e| crate::StoreError::Conflict(e.to_string())));
    }
    Ok(results)
}

fn apply_issue_sync(
    conn: &rusqlite::Connection,
    issue: &TokenIssue,
    now: OffsetDateTime,
) -> rusqlite::Result<IssueOutcome> {
    use rusqlite::OptionalExtension as _;
    if let Some(c) = &issue.code {
        let inserted = conn
            .prepare_cached(SQL_CODE_USE)?
            .execute(rusqlite::params![
                c.code_hash,
                c.client_id,
                ts(now),
                ts(c.expires_at),
                c.family,
                c.jti,
                ts(c.jti_exp)
            ])?;
        if inserted == 0 {
            return conn
                .prepare_cached(SQL_CODE_ISSUED)?
                .query_row([&c.code_hash], |r| {
                    Ok(IssueOutcome::Reused {
                        family: r.get(0)?,
                        jti: r.get(1)?,
                        jti_exp: r.get(2)?,
                    })
                });
        }
    }
    if let Some((hash, client_id)) = &issue.refresh_used {
        let used = conn
            .prepare_cached(SQL_REFRESH_USE)?
            .execute(rusqlite::params![ts(now), hash, client_id])?;
        if used == 0 {
            let row: Option<(String, Option<String>, Option<String>)> = conn
                .prepare_cached(SQL_REFRESH_STATE)?
                .query_row(rusqlite::params![hash, client_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            return Ok(match row {
                Some((family, used, revoked)) if used.is_some() || revoked.is_some() => {
                    IssueOutcome::Reused {
                        family: Some(family),
                        jti: None,
                        jti_exp: None,
                    }
                }
                _ => IssueOutcome::Invalid,
            });
        }
    }
    if let Some(r) = &issue.new_refresh {
        conn.prepare_cached(SQL_REFRESH_INSERT)?
            .execute(rusqlite::params![
                r.token_hash,
                r.family_id,
                r.client_id,
                r.account_id,
                r.session_id,
                r.grant_data,
                ts(now),
                ts(r.expires_at)
            ])?;
    }
    if let Some((sid, client_id, sub)) = &issue.session_client {
        conn.prepare_cached(SQL_SESSION_CLIENT)?
            .execute(rusqlite::params![sid, client_id, sub, ts(now)])?;
    }
    if let Some((account_id, kind, detail)) = &issue.event {
        conn.prepare_cached(SQL_EVENT)?.execute(rusqlite::params![
            uuid::Uuid::new_v4().to_string(),
            account_id,
            ts(now),
            kind,
            detail
        ])?;
    }
    Ok(IssueOutcome::Issued)
}

// The statements of a token issuance, shared by both backends (rusqlite on SQLite, sqlx on
// PostgreSQL). SQLite reads `$n` as a name and numbers names by first appearance, so each
// statement must mention $1, $2, … first in that order.
const SQL_CODE_USE: &str = "INSERT INTO oidc_codes (code_hash, client_id, grant_data, created_at, expires_at, used_at, issued_family, issued_jti, issued_exp) \
     VALUES ($1, $2, '', $3, $4, $3, $5, $6, $7) ON CONFLICT (code_hash) DO NOTHING";
const SQL_CODE_ISSUED: &str =
    "SELECT issued_family, issued_jti, issued_exp FROM oidc_codes WHERE code_hash = $1";
const SQL_REFRESH_USE: &str = "UPDATE oidc_refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND client_id = $3 \
     AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1";
const SQL_REFRESH_STATE: &str = "SELECT family_id, used_at, revoked_at FROM oidc_refresh_tokens WHERE token_hash = $1 AND client_id = $2";
const SQL_REFRESH_INSERT: &str = "INSERT INTO oidc_refresh_tokens (token_hash, family_id, client_id, account_id, session_id, grant_data, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SQL_SESSION_CLIENT: &str = "INSERT INTO oidc_session_clients (session_id, client_id, sub, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (session_id, client_id) DO NOTHING";
const SQL_EVENT: &str = "INSERT INTO security_events (id, account_id, at, kind, ip, user_agent, detail) \
     VALUES ($1, $2, $3, $4, NULL, NULL, $5)";

/// PostgreSQL: one issuance in the caller's transaction, with the same statements.
async fn apply_issue_pg(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    issue: &TokenIssue,
    now: OffsetDateTime,
) -> Result<IssueOutcome> {
    if let Some(c) = &issue.code {
        let done = sqlx::query(SQL_CODE_USE)
            .bind(&c.code_hash)
            .bind(&c.client_id)
            .bind(ts(now))
            .bind(ts(c.expires_at))
            .bind(&c.family)
            .bind(&c.jti)
            .bind(ts(c.jti_exp))
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            let row = sqlx::query(SQL_CODE_ISSUED)
                .bind(&c.code_hash)
                .fetch_one(&mut **tx)
                .await?;
            return Ok(IssueOutcome::Reused {
                family: row.try_get("issued_family")?,
                jti: row.try_get("issued_jti")?,
                jti_exp: row.try_get("issued_exp")?,
            });
        }
    }
    if let Some((hash, client_id)) = &issue.refresh_used {
        let done = sqlx::query(SQL_REFRESH_USE)
            .bind(ts(now))
            .bind(hash)
            .bind(client_id)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            let row = sqlx::query(SQL_REFRESH_STATE)
                .bind(hash)
                .bind(client_id)
                .fetch_optional(&mut **tx)
                .await?;
            return Ok(match row {
                Some(r)
                    if r.try_get::<Option<String>, _>("used_at")?.is_some()
                        || r.try_get::<Option<String>, _>("revoked_at")?.is_some() =>
                {
                    IssueOutcome::Reused {
                        family: r.try_get("family_id")?,
                        jti: None,
                        jti_exp: None,
                    }
                }
                _ => IssueOutcome::Invalid,
            });
        }
    }
    if let Some(r) = &issue.new_refresh {
        sqlx::query(SQL_REFRESH_INSERT)
            .bind(&r.token_hash)
            .bind(&r.family_id)
            .bind(&r.client_id)
            .bind(&r.account_id)
            .bind(&r.session_id)
            .bind(&r.grant_data)
            .bind(ts(now))
            .bind(ts(r.expires_at))
            .execute(&mut **tx)
            .await?;
    }
    if let Some((sid, client_id, sub)) = &issue.session_client {
        sqlx::query(SQL_SESSION_CLIENT)
            .bind(sid)
            .bind(client_id)
            .bind(sub)
            .bind(ts(now))
            .execute(&mut **tx)
            .await?;
    }
    if let Some((account_id, kind, detail)) = &issue.event {
        sqlx::query(SQL_EVENT)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(account_id)
            .bind(ts(now))
            .bind(kind)
            .bind(detail)
            .execute(&mut **tx)
            .await?;
    }
    Ok(IssueOutcome::Issued)
}

impl Store {
    /// Writes one token issuance atomically (see [`TokenIssue`]). On SQLite it joins the
    /// next group commit; on PostgreSQL it is its own transaction (the server groups
    /// commits itself).
    pub async fn issue_tokens(
        &self,
        issue: TokenIssue,
        now: OffsetDateTime,
    ) -> Result<IssueOutcome> {
        if let Some(queue) = &self.issue_queue {
            let (reply, rx) = tokio::sync::oneshot::channel();
            queue
                .send(IssueJob { issue, now, reply })
                .await
                .map_err(|_| crate::StoreError::Unavailable("the token writer stopped".into()))?;
            return rx
                .await
                .map_err(|_| crate::StoreError::Unavailable("the token writer stopped".into()))?;
        }
        let mut tx = self.begin_write().await?;
        let outcome = apply_issue_pg(&mut tx, &issue, now).await?;
        if outcome == IssueOutcome::Issued {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(outcome)
    }
}
