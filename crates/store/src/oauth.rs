//! OAuth2 clients and their access tokens (client credentials grant). Secrets and tokens
//! are random and long, so they are stored as SHA-256 hashes: a leaked table reveals none.

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
}

impl Store {
    pub async fn create_oauth_client(&self, c: &OAuthClient, now: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, name, authority_ars, scopes, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.client_id)
        .bind(&c.secret_hash)
        .bind(&c.name)
        .bind(&c.authority_ars)
        .bind(&c.scopes)
        .bind(i64::from(c.active))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("client {} exists", c.client_id)))?;
        Ok(())
    }

    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        let row = sqlx::query(
            "SELECT client_id, secret_hash, name, authority_ars, scopes, active, created_at \
             FROM oauth_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OAuthClient {
                client_id: r.try_get("client_id")?,
                secret_hash: r.try_get("secret_hash")?,
                name: r.try_get("name")?,
                authority_ars: r.try_get("authority_ars")?,
                scopes: r.try_get("scopes")?,
                active: r.try_get::<i64, _>("active")? != 0,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    pub async fn insert_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
        scopes: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_access_tokens (token_hash, client_id, scopes, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(client_id)
        .bind(scopes)
        .bind(ts(expires_at))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// (client id, scopes) of a live token of an active client.
    pub async fn access_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT t.client_id, t.scopes FROM oauth_access_tokens t \
             JOIN oauth_clients c ON c.client_id = t.client_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2 AND c.active = 1",
        )
        .bind(token_hash)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("client_id")?, r.try_get("scopes")?)))
            .transpose()
    }

    pub async fn purge_access_tokens(&self, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oauth_access_tokens WHERE expires_at < $1")
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

impl Store {
    pub async fn set_oauth_client_secret(&self, client_id: &str, secret_hash: &str) -> Result<()> {
        sqlx::query("UPDATE oauth_clients SET secret_hash = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(secret_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
