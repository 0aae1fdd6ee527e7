//! Passkeys (WebAuthn credentials) of Servicekonto accounts. A passkey is stored as the
//! JSON the WebAuthn library gives us (public key, counter, flags): nothing in it is secret,
//! but only its owner's account may list, rename or remove it.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, conflict, ts};

/// A passkey as stored.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    /// The credential id, base64url without padding.
    pub credential_id: String,
    pub account_id: String,
    /// The name its owner gave it ("Laptop", "Telefon").
    pub name: String,
    /// The credential as serialised by the WebAuthn library.
    pub passkey_json: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

const COLUMNS: &str = "credential_id, account_id, name, passkey_json, created_at, last_used_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<PasskeyRecord> {
    Ok(PasskeyRecord {
        credential_id: row.try_get("credential_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        passkey_json: row.try_get("passkey_json")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Adds a passkey; `Conflict` if the credential is registered already (to any account).
    pub async fn insert_passkey(
        &self,
        credential_id: &str,
        account_id: &str,
        name: &str,
        passkey_json: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO passkeys (credential_id, account_id, name, passkey_json, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(credential_id)
        .bind(account_id)
        .bind(name)
        .bind(passkey_json)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || "this passkey is registered already".into()))?;
        Ok(())
    }

    /// The account's passkeys, oldest first.
    pub async fn passkeys_of(&self, account_id: &str) -> Result<Vec<PasskeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE account_id = $1 \
             ORDER BY created_at, credential_id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The passkey with this credential id, whoever owns it.
    pub async fn passkey(&self, credential_id: &str) -> Result<Option<PasskeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn count_passkeys(&self, account_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Renames one of the account's passkeys. False if the account has no such passkey.
    pub async fn rename_passkey(
        &self,
        account_id: &str,
        credential_id: &str,
        name: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE passkeys SET name = $3 WHERE account_id = $1 AND credential_id = $2",
        )
        .bind(account_id)
        .bind(credential_id)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes one of the account's passkeys and returns its name; `None` if the account has
    /// no such passkey.
    pub async fn delete_passkey(
        &self,
        account_id: &str,
        credential_id: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "DELETE FROM passkeys WHERE account_id = $1 AND credential_id = $2 RETURNING name",
        )
        .bind(account_id)
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get("name")?)).transpose()
    }

    /// Records a successful authentication with the passkey: its new state (counter, backup
    /// flags) and the time of use. It succeeds only if the passkey has not been used since
    /// `challenge_issued_at`, the moment the server issued the challenge just answered: so
    /// one challenge logs in once, even on several nodes at the same moment (the update is
    /// one atomic statement), and even for passkeys without a signature counter.
    pub async fn use_passkey(
        &self,
        credential_id: &str,
        passkey_json: &str,
        challenge_issued_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE passkeys SET passkey_json = $2, last_used_at = $4 \
             WHERE credential_id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(credential_id)
        .bind(passkey_json)
        .bind(ts(challenge_issued_at))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
