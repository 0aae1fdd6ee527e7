//! The Fachdaten against their schema: the schema the metadata names must be one the
//! destination accepts for the service, and JSON data is validated against that schema when
//! the platform knows it (the data-schema registry). Unknown schemas and XML data are not
//! guessed at: the report says they were not validated, and nothing is rejected for it.

use serde_json::{Value, json};

use crate::{MAX_SCHEMA_ERRORS, Reason, RejectProblem};

/// Largest schema body the registry takes.
pub const MAX_SCHEMA_BYTES: usize = 1024 * 1024;

/// The data schema the metadata names: `(schemaUri, mimeType)` of
/// `contentStructure.data.submissionSchema`.
pub fn named_data_schema(metadata: &Value) -> Option<(String, String)> {
    let s = &metadata["contentStructure"]["data"]["submissionSchema"];
    Some((
        s["schemaUri"].as_str()?.to_owned(),
        s["mimeType"].as_str()?.to_owned(),
    ))
}

/// The named schema must be among those the destination lists for the service
/// (`accepted`: `(schemaUri, mimeType)`), or the authority could not process the data.
pub fn check_schema_accepted(
    metadata: &Value,
    accepted: &[(String, String)],
) -> Option<RejectProblem> {
    let (uri, mime) = named_data_schema(metadata)?;
    if accepted.iter().any(|(u, m)| *u == uri && *m == mime) {
        return None;
    }
    let listed: Vec<String> = accepted.iter().map(|(u, m)| format!("{u} ({m})")).collect();
    Some(RejectProblem::new(
        Reason::UnsupportedSchema,
        "data",
        format!(
            "the data follows {uri} ({mime}), which this destination does not accept for the service; it accepts: {}",
            listed.join(", ")
        ),
    ))
}

/// A compiled data schema (callers need not know the JSON Schema library).
pub struct DataSchemaValidator(jsonschema::Validator);

impl std::fmt::Debug for DataSchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataSchemaValidator")
    }
}

/// Compiles a registered JSON Schema (draft 2020-12 unless its `$schema` says otherwise).
/// Remote references are not fetched: a schema must be complete in itself.
pub fn compile_schema(schema: &Value) -> Result<DataSchemaValidator, String> {
    if !schema.is_object() {
        return Err("a JSON Schema must be a JSON object".into());
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map(DataSchemaValidator)
        .map_err(|e| format!("not a usable JSON Schema: {e}"))
}

/// Schema errors as `path: message` (never the offending values: they are personal data),
/// at most [`MAX_SCHEMA_ERRORS`] plus a count of the rest.
pub(crate) fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    let mut errors: Vec<String> = Vec::new();
    let mut count = 0usize;
    for e in validator.iter_errors(instance) {
        count += 1;
        if errors.len() < MAX_SCHEMA_ERRORS {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            errors.push(format!("{path}: {}", e.masked()));
        }
    }
    if count > errors.len() {
        errors.push(format!("… and {} more", count - errors.len()));
    }
    errors
}

/// What became of the data's validation, for the report and the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataValidation {
    /// No data was sent, or it could not be decrypted.
    NoData,
    /// Validated against the registered schema with this SHA-512.
    Checked {
        schema_uri: String,
        schema_sha512: String,
        errors: Vec<String>,
    },
    /// Not validated, and why (unknown schema, XML data).
    NotChecked { schema_uri: String, why: String },
}

impl DataValidation {
    pub fn to_json(&self) -> Value {
        match self {
            DataValidation::NoData => Value::Null,
            DataValidation::Checked {
                schema_uri,
                schema_sha512,
                errors,
            } => json!({
                "schema": schema_uri,
                "schemaSha512": schema_sha512,
                "valid": errors.is_empty(),
                "errors": errors,
            }),
            DataValidation::NotChecked { schema_uri, why } => json!({
                "schema": schema_uri,
                "valid": Value::Null,
                "note": why,
            }),
        }
    }
}

/// A schema the caller looked up in the registry.
pub struct KnownSchema<'a> {
    pub sha512: &'a str,
    pub validator: &'a DataSchemaValidator,
}

/// Validates decrypted data against the schema the metadata names. `known`: the registered
/// schema under that URI, if any. JSON syntax errors are reported by `check_content`.
pub fn check_data(
    metadata: &Value,
    data: &[u8],
    known: Option<KnownSchema<'_>>,
) -> (DataValidation, Option<RejectProblem>) {
    let Some((uri, mime)) = named_data_schema(metadata) else {
        return (DataValidation::NoData, None);
    };
    if mime != "application/json" {
        return (
            DataValidation::NotChecked {
                schema_uri: uri,
                why: format!("{mime} data is not validated here (no XML Schema validator)"),
            },
            None,
        );
    }
    let Some(known) = known else {
        return (
            DataValidation::NotChecked {
                schema_uri: uri,
                why: "the schema is not registered with this platform".into(),
            },
            None,
        );
    };
    let Ok(instance) = serde_json::from_slice::<Value>(data) else {
        return (
            DataValidation::NotChecked {
                schema_uri: uri,
                why: "the data is not valid JSON".into(),
            },
            None,
        );
    };
    let errors = schema_errors(&known.validator.0, &instance);
    let problem = (!errors.is_empty()).then(|| {
        RejectProblem::new(
            Reason::SchemaViolation,
            "data",
            format!("the data does not follow {uri}: {}", errors.join("; ")),
        )
    });
    (
        DataValidation::Checked {
            schema_uri: uri,
            schema_sha512: known.sha512.to_owned(),
            errors,
        },
        problem,
    )
}
