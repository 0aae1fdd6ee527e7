//! Servicekonto storage: accounts, one-time e-mail tokens, sessions, second factors,
//! security events and login throttling. Secrets arrive here already hashed or wrapped.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, StoreError, conflict, ts};

/// An account as stored.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: String,
    pub email: String,
    pub email_verified_at: Option<String>,
    pub password_hash: Option<String>,
    pub lang: String,
    pub postfach_ref: String,
    /// The TOTP secret wrapped under the key-encryption key.
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub lang: &'a str,
    pub postfach_ref: &'a str,
}

/// A session as stored; the cookie's token is known only as its hash.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub public_id: String,
    pub account_id: String,
    /// `second_factor` (password checked, second factor pending) or `active`.
    pub stage: String,
    pub trust_level: i64,
    /// Comma-separated [`domain::AuthMethod`] names.
    pub auth_methods: String,
    pub created_at: String,
    pub authenticated_at: String,
    pub last_seen_at: String,
    pub idle_expires_at: String,
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SecurityEvent {
    pub at: String,
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "id, email, email_verified_at, password_hash, lang, postfach_ref, \
     totp_secret, totp_last_step, created_at";

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        email_verified_at: row.try_get("email_verified_at")?,
        password_hash: row.try_get("password_hash")?,
        lang: row.try_get("lang")?,
        postfach_ref: row.try_get("postfach_ref")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_last_step: row.try_get("totp_last_step")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn insert_session(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    token_hash: &str,
    s: &SessionRecord,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO sessions (token_hash, {SESSION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(token_hash)
    .bind(&s.public_id)
    .bind(&s.account_id)
    .bind(&s.stage)
    .bind(s.trust_level)
    .bind(&s.auth_methods)
    .bind(&s.created_at)
    .bind(&s.authenticated_at)
    .bind(&s.last_seen_at)
    .bind(&s.idle_expires_at)
    .bind(&s.expires_at)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SESSION_COLUMNS: &str = "public_id, account_id, stage, trust_level, auth_methods, \
     created_at, authenticated_at, last_seen_at, idle_expires_at, expires_at, ip, user_agent";

fn session_from_row(row: &sqlx::any::AnyRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        public_id: row.try_get("public_id")?,
        account_id: row.try_get("account_id")?,
        stage: row.try_get("stage")?,
        trust_level: row.try_get("trust_level")?,
        auth_methods: row.try_get("auth_methods")?,
        created_at: row.try_get("created_at")?,
        authenticated_at: row.try_get("authenticated_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        expires_at: row.try_get("expires_at")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

impl Store {
    /// Creates an account; `Conflict` if the e-mail address is taken.
    pub async fn create_account(&self, a: &NewAccount<'_>, now: OffsetDateTime) -> Result<()> {
        let now = ts(now);
        sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, lang, postfach_ref, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(a.id)
        .bind(a.email)
        .bind(a.password_hash)
        .bind(a.lang)
        .bind(a.postfach_ref)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || "an account with this e-mail address exists".into()))?;
        Ok(())
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub async fn account_by_id(&self, id: &str) -> Result<Option<AccountRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub async fn account_by_postfach_ref(&self, r: &str) -> Result<Option<AccountRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE postfach_ref = $1"
        ))
        .bind(r)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub async fn set_email_verified(&self, id: &str, now: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Changes the address (already verified by the caller); `Conflict` if it is taken.
    pub async fn set_email(&self, id: &str, email: &str, now: OffsetDateTime) -> Result<()> {
        let now = ts(now);
        sqlx::query(
            "UPDATE accounts SET email = $2, email_verified_at = $3, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(email)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || "an account with this e-mail address exists".into()))?;
        Ok(())
    }

    pub async fn set_password_hash(&self, id: &str, hash: &str, now: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_lang(&self, id: &str, lang: &str) -> Result<()> {
        sqlx::query("UPDATE accounts SET lang = $2 WHERE id = $1")
            .bind(id)
            .bind(lang)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Turns TOTP on (with its recovery codes, replacing old ones) or off (`None`).
    pub async fn set_totp(
        &self,
        id: &str,
        wrapped_secret: Option<&[u8]>,
        recovery_code_hashes: &[String],
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE accounts SET totp_secret = $2, totp_last_step = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(wrapped_secret.map(<[u8]>::to_vec))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for h in recovery_code_hashes {
            sqlx::query("INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)")
                .bind(id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the TOTP time step just used. False if that step (or a later one) was used
    /// before: the code is a replay. Atomic, so two nodes cannot both accept one code.
    pub async fn use_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET totp_last_step = $2 \
             WHERE id = $1 AND totp_secret IS NOT NULL \
               AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a recovery code used. False if unknown or used before.
    pub async fn use_recovery_code(
        &self,
        id: &str,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 \
             WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(id)
        .bind(code_hash)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn unused_recovery_codes(&self, id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes the account and, through the foreign keys, everything that hangs on it.
    pub async fn delete_account(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {id}")));
        }
        Ok(())
    }

    // ---- one-time tokens (verification, reset, e-mail change) ----

    pub async fn insert_account_token(
        &self,
        token_hash: &str,
        account_id: &str,
        purpose: &str,
        new_email: Option<&str>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_tokens (token_hash, account_id, purpose, new_email, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(account_id)
        .bind(purpose)
        .bind(new_email)
        .bind(ts(expires_at))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses a token once: returns (account id, new e-mail) if it exists, has this purpose,
    /// is unused and unexpired; then it can never be used again.
    pub async fn consume_account_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, Option<String>)>> {
        let now = ts(now);
        let row = sqlx::query(
            "UPDATE account_tokens SET used_at = $3 \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
             RETURNING account_id, new_email",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(&now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("account_id")?, r.try_get("new_email")?)))
            .transpose()
    }

    /// Whether a token is currently usable, without using it (to show the form behind a link).
    pub async fn account_token_valid(
        &self,
        token_hash: &str,
        purpose: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    // ---- sessions ----

    /// Creates a session and records its security event in one transaction: one commit
    /// (one fsync) per login instead of two.
    pub async fn create_session_with_event(
        &self,
        token_hash: &str,
        s: &SessionRecord,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, token_hash, s).await?;
        sqlx::query(
            "INSERT INTO security_events (id, account_id, at, kind, ip, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&s.account_id)
        .bind(&s.created_at)
        .bind(kind)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_session(&self, token_hash: &str, s: &SessionRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, token_hash, s).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live session with this token: not revoked, within both timeouts.
    pub async fn session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>> {
        let now = ts(now);
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2"
        ))
        .bind(token_hash)
        .bind(&now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Extends the idle timeout after activity. A session that has ended stays ended.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2",
        )
        .bind(token_hash)
        .bind(ts(now))
        .bind(ts(idle_expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives the session a new token and a new authentication state (after a login step or
    /// a change of level), so that a token seen before the change is worth nothing after it.
    /// Only a live session (at `authenticated_at`, the moment of the step) is rotated; false
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_session(
        &self,
        old_token_hash: &str,
        new_token_hash: &str,
        stage: &str,
        trust_level: i64,
        auth_methods: &str,
        authenticated_at: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET token_hash = $2, stage = $3, trust_level = $4, auth_methods = $5, \
                 authenticated_at = $6, last_seen_at = $6, idle_expires_at = $7 \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $6 AND idle_expires_at > $6",
        )
        .bind(old_token_hash)
        .bind(new_token_hash)
        .bind(stage)
        .bind(trust_level)
        .bind(auth_methods)
        .bind(ts(authenticated_at))
        .bind(ts(idle_expires_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_session_by_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes one of the account's sessions by its public id. False if there is none.
    pub async fn revoke_session(
        &self,
        account_id: &str,
        public_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 \
             WHERE account_id = $1 AND public_id = $2 AND revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(public_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes all sessions of the account except `keep` (a public id). Returns how many.
    pub async fn revoke_other_sessions(
        &self,
        account_id: &str,
        keep: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 \
             WHERE account_id = $1 AND revoked_at IS NULL AND public_id <> $2",
        )
        .bind(account_id)
        .bind(keep.unwrap_or(""))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The account's live sessions, most recently used first.
    pub async fn list_sessions(
        &self,
        account_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>> {
        let now = ts(now);
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2 \
             ORDER BY last_seen_at DESC LIMIT 100"
        ))
        .bind(account_id)
        .bind(&now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Removes sessions that ended more than a day ago.
    pub async fn purge_sessions(&self, now: OffsetDateTime) -> Result<u64> {
        let cutoff = ts(now - time::Duration::days(1));
        let done = sqlx::query(
            "DELETE FROM sessions WHERE expires_at < $1 OR idle_expires_at < $1 OR revoked_at < $1",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    // ---- security events ("Kontoaktivität") ----

    pub async fn add_security_event(
        &self,
        account_id: Option<&str>,
        kind: &str,
        ip: Option<&str>,
        user_agent: Option<&str>,
        detail: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO security_events (id, account_id, at, kind, ip, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account_id)
        .bind(ts(now))
        .bind(kind)
        .bind(ip)
        .bind(user_agent)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn security_events(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<SecurityEvent>> {
        let rows = sqlx::query(
            "SELECT at, kind, ip, user_agent, detail FROM security_events \
             WHERE account_id = $1 ORDER BY at DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecurityEvent {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    ip: r.try_get("ip")?,
                    user_agent: r.try_get("user_agent")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    // ---- login throttling (shared by all nodes) ----

    /// The latest time until which any of `keys` is blocked, if in the future.
    pub async fn throttle_blocked_until(
        &self,
        keys: &[&str],
        now: OffsetDateTime,
    ) -> Result<Option<String>> {
        let now = ts(now);
        let mut latest: Option<String> = None;
        for key in keys {
            let until: Option<String> = sqlx::query_scalar(
                "SELECT blocked_until FROM login_throttle WHERE key = $1 AND blocked_until > $2",
            )
            .bind(*key)
            .bind(&now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(u) = until
                && latest.as_ref().is_none_or(|l| u > *l)
            {
                latest = Some(u);
            }
        }
        Ok(latest)
    }

    /// Counts a failure for `key` (failures older than `forget_after` start over) and returns
    /// the new count; `block_for` turns the count into how long the key is then blocked.
    ///
    /// The count is incremented in one upsert, which locks the row: failures on several nodes
    /// at the same moment are all counted (a read followed by a write would lose some on
    /// PostgreSQL, where a transaction does not lock what it reads).
    pub async fn throttle_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        forget_after: time::Duration,
        block_for: impl Fn(u32) -> time::Duration,
    ) -> Result<u32> {
        let now_s = ts(now);
        let mut tx = self.begin_write().await?;
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO login_throttle (key, failures, last_failure_at, blocked_until) \
             VALUES ($1, 1, $2, $2) \
             ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 \
                                 ELSE login_throttle.failures + 1 END, \
                 last_failure_at = excluded.last_failure_at \
             RETURNING failures",
        )
        .bind(key)
        .bind(&now_s)
        .bind(ts(now - forget_after))
        .fetch_one(&mut *tx)
        .await?;
        let failures = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
        sqlx::query("UPDATE login_throttle SET blocked_until = $2 WHERE key = $1")
            .bind(key)
            .bind(ts(now + block_for(failures)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(failures)
    }

    pub async fn throttle_clear(&self, key: &str) -> Result<()> {
        // Almost always there is nothing to clear: a read, not a write, finds that out, so a
        // successful login does not queue for SQLite's write lock for nothing.
        let present: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        if present.is_none() {
            return Ok(());
        }
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Sets a session's absolute end (when a partial session becomes a full one).
    pub async fn set_session_expiry(
        &self,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE sessions SET expires_at = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(ts(expires_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The account a token belongs to, whatever its state.
    pub async fn account_token_owner(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT account_id FROM account_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

impl Store {
    /// Makes every unused token of these purposes worthless (after the password or the
    /// address changed, links sent before must not work any more).
    pub async fn revoke_account_tokens(
        &self,
        account_id: &str,
        purposes: &[&str],
        now: OffsetDateTime,
    ) -> Result<()> {
        for purpose in purposes {
            sqlx::query(
                "UPDATE account_tokens SET used_at = $3 \
                 WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL",
            )
            .bind(account_id)
            .bind(*purpose)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}
