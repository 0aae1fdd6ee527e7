//! The platform's signing keys, stored wrapped under the key-encryption key: this crate
//! only ever sees ciphertext.

use sqlx::Row;

use crate::{Result, Store, conflict, now};

#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub wrapped_pkcs8: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredKey({})", self.kid)
    }
}

impl Store {
    /// The active keys for a purpose, newest first.
    pub async fn signing_keys(&self, purpose: &str) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT kid, wrapped_pkcs8, cert_der FROM signing_keys \
             WHERE purpose = $1 AND active = 1 ORDER BY created_at DESC, kid",
        )
        .bind(purpose)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(StoredKey {
                    kid: r.try_get(0)?,
                    wrapped_pkcs8: r.try_get(1)?,
                    cert_der: r.try_get(2)?,
                })
            })
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn insert_signing_key(&self, purpose: &str, key: &StoredKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, purpose, wrapped_pkcs8, cert_der, active, created_at) \
             VALUES ($1, $2, $3, $4, 1, $5)",
        )
        .bind(&key.kid)
        .bind(purpose)
        .bind(&key.wrapped_pkcs8)
        .bind(&key.cert_der)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("key {} exists already", key.kid)))?;
        Ok(())
    }
}
