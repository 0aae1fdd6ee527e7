//! The registry of data schemas (Fachdaten schemas by URI). A URI, once registered, keeps
//! its body: receipts cite it, so "the schema it was checked against" must stay answerable.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, ts};

/// A registered data schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSchemaRecord {
    pub uri: String,
    /// `application/schema+json` (JSON Schema for JSON data).
    pub mime_type: String,
    pub body: String,
    /// SHA-512 (hex) of `body`.
    pub sha512: String,
    pub registered_at: String,
}

/// What registering a schema did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaRegistration {
    Registered,
    /// The same body was registered under this URI before: nothing changed.
    Unchanged,
    /// The URI holds a different body; it was left as it is.
    Different,
}

fn schema_row(r: &sqlx::any::AnyRow) -> Result<DataSchemaRecord> {
    Ok(DataSchemaRecord {
        uri: r.try_get("uri")?,
        mime_type: r.try_get("mime_type")?,
        body: r.try_get("body")?,
        sha512: r.try_get("sha512")?,
        registered_at: r.try_get("registered_at")?,
    })
}

impl Store {
    /// Registers `body` under `uri` unless the URI is taken. `sha512` is the caller's hash of
    /// `body` (the store does not hash).
    pub async fn data_schema_register(
        &self,
        uri: &str,
        mime_type: &str,
        body: &str,
        sha512: &str,
        now: OffsetDateTime,
    ) -> Result<SchemaRegistration> {
        let inserted = sqlx::query(
            "INSERT INTO data_schemas (uri, mime_type, body, sha512, registered_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uri) DO NOTHING",
        )
        .bind(uri)
        .bind(mime_type)
        .bind(body)
        .bind(sha512)
        .bind(ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(SchemaRegistration::Registered);
        }
        let existing: Option<String> =
            sqlx::query_scalar("SELECT sha512 FROM data_schemas WHERE uri = $1")
                .bind(uri)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match existing {
            Some(h) if h == sha512 => SchemaRegistration::Unchanged,
            _ => SchemaRegistration::Different,
        })
    }

    pub async fn data_schema(&self, uri: &str) -> Result<Option<DataSchemaRecord>> {
        sqlx::query(
            "SELECT uri, mime_type, body, sha512, registered_at FROM data_schemas WHERE uri = $1",
        )
        .bind(uri)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(schema_row)
        .transpose()
    }

    /// All registered schemas without their bodies (`body` is empty), by URI.
    pub async fn data_schemas(&self) -> Result<Vec<DataSchemaRecord>> {
        sqlx::query(
            "SELECT uri, mime_type, '' AS body, sha512, registered_at FROM data_schemas ORDER BY uri",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(schema_row)
        .collect()
    }
}
