//! The data-schema registry: JSON Schemas for Fachdaten by URI, which the ePoststelle
//! validates submitted data against (the form definitions of the portal register theirs
//! here too). Registered URIs keep their body, so compiled validators are cached for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use time::OffsetDateTime;

use crate::{App, AppError, Result};

/// Compiled validators by URI (registered bodies never change, so entries never go stale).
#[derive(Default)]
pub(crate) struct SchemaCache {
    compiled: Mutex<HashMap<String, Arc<CompiledSchema>>>,
}

pub(crate) struct CompiledSchema {
    pub sha512: String,
    pub validator: poststelle::DataSchemaValidator,
}

/// What a registration did, for the caller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub uri: String,
    pub sha512: String,
    /// `false` when the same body was registered before.
    pub created: bool,
}

/// Cache entries kept at most (schemas are small; this bounds a registry run wild).
const CACHE_LIMIT: usize = 1024;

impl App {
    /// Registers a JSON Schema under its `$id`. The body must be a usable, self-contained
    /// JSON Schema; a URI already holding a different body is a conflict (publish a new
    /// version under a new `$id`).
    pub async fn register_data_schema(&self, body: &[u8]) -> Result<RegisteredSchema> {
        if body.len() > poststelle::MAX_SCHEMA_BYTES {
            return Err(AppError::Invalid(format!(
                "the schema has {} bytes; at most {} are accepted",
                body.len(),
                poststelle::MAX_SCHEMA_BYTES
            )));
        }
        let schema: Value = serde_json::from_slice(body).map_err(|e| {
            AppError::Invalid(format!(
                "the schema is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let uri = schema
            .get("$id")
            .and_then(Value::as_str)
            .filter(|id| is_absolute_uri(id))
            .ok_or_else(|| AppError::InvalidField {
                field: "$id",
                message: "the schema needs an absolute \"$id\" (https://… or urn:…): senders name it as contentStructure.data.submissionSchema.schemaUri".into(),
            })?
            .to_owned();
        poststelle::compile_schema(&schema).map_err(AppError::Invalid)?;
        let sha512 = poststelle::sha512_hex(body);
        let body = std::str::from_utf8(body)
            .map_err(|_| AppError::Invalid("the schema must be UTF-8".into()))?;
        let outcome = self
            .store()
            .data_schema_register(
                &uri,
                "application/schema+json",
                body,
                &sha512,
                OffsetDateTime::now_utc(),
            )
            .await?;
        match outcome {
            store::SchemaRegistration::Registered => Ok(RegisteredSchema {
                uri,
                sha512,
                created: true,
            }),
            store::SchemaRegistration::Unchanged => Ok(RegisteredSchema {
                uri,
                sha512,
                created: false,
            }),
            store::SchemaRegistration::Different => Err(AppError::Conflict(format!(
                "{uri} is registered with a different schema; receipts cite it, so it cannot change: give the new version a new \"$id\""
            ))),
        }
    }

    /// The registered schema under `uri`, compiled (`None`: not registered).
    pub(crate) async fn compiled_data_schema(
        &self,
        uri: &str,
    ) -> Result<Option<Arc<CompiledSchema>>> {
        if let Some(c) = self.schema_cache.get(uri) {
            return Ok(Some(c));
        }
        let Some(rec) = self.store().data_schema(uri).await? else {
            return Ok(None);
        };
        let schema: Value = serde_json::from_str(&rec.body)
            .map_err(|e| AppError::Internal(format!("stored schema {uri}: {e}")))?;
        let validator = poststelle::compile_schema(&schema)
            .map_err(|e| AppError::Internal(format!("stored schema {uri}: {e}")))?;
        let compiled = Arc::new(CompiledSchema {
            sha512: rec.sha512,
            validator,
        });
        self.schema_cache.put(uri, compiled.clone());
        Ok(Some(compiled))
    }

    /// The registered schemas (without bodies).
    pub async fn data_schemas(&self) -> Result<Vec<store::DataSchemaRecord>> {
        Ok(self.store().data_schemas().await?)
    }

    /// One registered schema with its body.
    pub async fn data_schema(&self, uri: &str) -> Result<store::DataSchemaRecord> {
        self.store()
            .data_schema(uri)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no data schema is registered as {uri}")))
    }
}

impl SchemaCache {
    fn get(&self, uri: &str) -> Option<Arc<CompiledSchema>> {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uri)
            .cloned()
    }

    fn put(&self, uri: &str, c: Arc<CompiledSchema>) {
        let mut m = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= CACHE_LIMIT {
            m.clear();
        }
        m.insert(uri.to_owned(), c);
    }
}

fn is_absolute_uri(s: &str) -> bool {
    s.len() <= 2048
        && !s.chars().any(char::is_whitespace)
        && (s.starts_with("https://") || s.starts_with("http://") || s.starts_with("urn:"))
        && !s.contains('#')
}
