//! The profile for prefill (one JSON document, wrapped under the key-encryption key before it
//! arrives here) and the consents of online services to read parts of it.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, ts};

/// A stored profile: still wrapped.
#[derive(Debug, Clone)]
pub struct StoredProfile {
    pub wrapped: Vec<u8>,
    pub updated_at: String,
}

/// The consent of an account to an online service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsentRecord {
    pub client_id: String,
    pub client_name: String,
    /// Space-separated scope names.
    pub scopes: String,
    pub granted_at: String,
}

impl Store {
    pub async fn profile(&self, account_id: &str) -> Result<Option<StoredProfile>> {
        let row = sqlx::query("SELECT wrapped, updated_at FROM profiles WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredProfile {
                wrapped: r.try_get("wrapped")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// Stores (or replaces) the account's wrapped profile.
    pub async fn put_profile(
        &self,
        account_id: &str,
        wrapped: &[u8],
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO profiles (account_id, wrapped, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET wrapped = excluded.wrapped, \
                 updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(wrapped.to_vec())
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict(e, || "the account does not exist".into()))?;
        Ok(())
    }

    /// Records (or renews, with new scopes) the account's consent to a service.
    pub async fn put_consent(&self, account_id: &str, consent: &ConsentRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO consents (account_id, client_id, client_name, scopes, granted_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, client_id) DO UPDATE SET client_name = excluded.client_name, \
                 scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(account_id)
        .bind(&consent.client_id)
        .bind(&consent.client_name)
        .bind(&consent.scopes)
        .bind(&consent.granted_at)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict(e, || "the account does not exist".into()))?;
        Ok(())
    }

    /// The account's consents, by service name.
    pub async fn consents(&self, account_id: &str) -> Result<Vec<ConsentRecord>> {
        let rows = sqlx::query(
            "SELECT client_id, client_name, scopes, granted_at FROM consents \
             WHERE account_id = $1 ORDER BY client_name, client_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(consent_from_row).collect()
    }

    pub async fn consent(
        &self,
        account_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>> {
        let row = sqlx::query(
            "SELECT client_id, client_name, scopes, granted_at FROM consents \
             WHERE account_id = $1 AND client_id = $2",
        )
        .bind(account_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(consent_from_row).transpose()
    }

    /// Withdraws a consent; returns it (for the record) or `None` if there was none.
    pub async fn delete_consent(
        &self,
        account_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>> {
        let row = sqlx::query(
            "DELETE FROM consents WHERE account_id = $1 AND client_id = $2 \
             RETURNING client_id, client_name, scopes, granted_at",
        )
        .bind(account_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(consent_from_row).transpose()
    }
}

fn consent_from_row(row: &sqlx::any::AnyRow) -> Result<ConsentRecord> {
    Ok(ConsentRecord {
        client_id: row.try_get("client_id")?,
        client_name: row.try_get("client_name")?,
        scopes: row.try_get("scopes")?,
        granted_at: row.try_get("granted_at")?,
    })
}
