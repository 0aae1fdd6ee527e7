//! The ePoststelle's rules, pure: what the authority's own mail room checks in a submission
//! it has decrypted, and what it answers. No I/O, no clock, no keys — the caller (app)
//! decrypts, scans, signs and stores, and passes times in.
//!
//! * [`check_metadata`]: JSON syntax and the FIT-Connect metadata schema (v1.0.0, bundled).
//! * [`check_data`]: the Fachdaten against the schema the metadata names (when registered),
//!   and [`check_schema_accepted`]: that schema against the destination's list.
//! * [`check_content`]: the SHA-512 hashes the metadata gives for data and attachments, and
//!   the metadata's attachment list against the uploaded attachments.
//! * [`RejectProblem`]: the problems a `reject-submission` carries, with FIT-Connect's types.
//! * [`check_report`] and [`receipt_claims`]: what is filed with the case and what the
//!   sender's signed Eingangsbestätigung says.
//!
//! Infected parts count as not received (DOMAIN.md § 6): a submission with malware is
//! rejected with [`Reason::MalwareDetected`], never accepted in part.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{Value, json};
use sha2::{Digest, Sha512};

mod data;
pub use data::{
    DataSchemaValidator, DataValidation, KnownSchema, MAX_SCHEMA_BYTES, check_data,
    check_schema_accepted, compile_schema, named_data_schema,
};

/// Where FIT-Connect's reject problem types live.
pub const PROBLEM_BASE: &str = "https://schema.fitko.de/fit-connect/events/problems/";

/// The metadata schema this ePoststelle validates against.
pub const METADATA_SCHEMA_ID: &str =
    "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json";

const METADATA_SCHEMA: &str = include_str!("../schemas/metadata.schema.v1.0.0.json");

/// Schema errors listed in a problem's detail and the report (the rest are counted).
const MAX_SCHEMA_ERRORS: usize = 10;

/// Why a submission is rejected (wire notes § 7.2; `malware-detected` is ours, see
/// `docs/decisions.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A part could not be decrypted with any of the destination's keys.
    EncryptionIssue,
    /// Metadata or data is not well-formed JSON.
    SyntaxViolation,
    /// The metadata violates the FIT-Connect metadata schema.
    SchemaViolation,
    /// A part's SHA-512 differs from the one in the metadata.
    HashMismatch,
    /// The metadata names an attachment that was not uploaded.
    MissingAttachment,
    /// An attachment was uploaded that the metadata does not name.
    AttachmentsMismatch,
    /// Data was announced in the metadata but not sent.
    MissingData,
    /// The metadata's `publicServiceType` differs from the service the submission was
    /// sent for.
    ServiceMismatch,
    /// The data follows a schema the destination does not accept for the service.
    UnsupportedSchema,
    /// The virus scanner found malware: the part counts as not received.
    MalwareDetected,
    /// A part could not be checked at all (e.g. larger than the scanner accepts).
    TechnicalError,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::EncryptionIssue => "encryption-issue",
            Reason::SyntaxViolation => "syntax-violation",
            Reason::SchemaViolation => "schema-violation",
            Reason::HashMismatch => "hash-mismatch",
            Reason::MissingAttachment => "missing-attachment",
            Reason::AttachmentsMismatch => "attachments-mismatch",
            Reason::MissingData => "missing-data",
            Reason::ServiceMismatch => "service-mismatch",
            Reason::UnsupportedSchema => "unsupported-schema",
            Reason::MalwareDetected => "malware-detected",
            Reason::TechnicalError => "technical-error",
        }
    }

    /// The title subscribers are asked to copy as documented.
    pub fn title(self) -> &'static str {
        match self {
            Reason::EncryptionIssue => "Entschlüsselungsfehler",
            Reason::SyntaxViolation => "Syntax-Fehler",
            Reason::SchemaViolation => "Schema-Fehler",
            Reason::HashMismatch => "Prüfsumme stimmt nicht",
            Reason::MissingAttachment => "Anlage fehlt",
            Reason::AttachmentsMismatch => "Anlagen stimmen nicht überein",
            Reason::MissingData => "Fachdaten fehlen",
            Reason::ServiceMismatch => "Leistung stimmt nicht überein",
            Reason::UnsupportedSchema => "Schema nicht unterstützt",
            Reason::MalwareDetected => "Schadsoftware gefunden",
            Reason::TechnicalError => "Technischer Fehler",
        }
    }

    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.name())
    }
}

/// One problem of a `reject-submission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectProblem {
    pub reason: Reason,
    /// `metadata`, `data` or `attachment:<id>`.
    pub instance: String,
    /// What is wrong, for the sender's developers. Never holds content of the submission.
    pub detail: String,
}

impl RejectProblem {
    pub fn new(reason: Reason, instance: impl Into<String>, detail: impl Into<String>) -> Self {
        RejectProblem {
            reason,
            instance: instance.into(),
            detail: detail.into(),
        }
    }

    /// The RFC 7807 object as the event payload carries it.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.reason.type_uri(),
            "title": self.reason.title(),
            "detail": self.detail,
            "instance": self.instance,
        })
    }
}

/// `attachment:<id>`.
pub fn attachment_instance(id: &str) -> String {
    format!("attachment:{id}")
}

/// Lowercase hex SHA-512, as the metadata writes hashes.
pub fn sha512_hex(bytes: &[u8]) -> String {
    let digest = Sha512::digest(bytes);
    let mut out = String::with_capacity(128);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn validator() -> Result<&'static jsonschema::Validator, String> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(METADATA_SCHEMA)
            .map_err(|e| format!("bundled metadata schema: {e}"))?;
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("bundled metadata schema: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The outcome of [`check_metadata`]: the parsed metadata, or why it cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataCheck {
    pub metadata: Option<Value>,
    pub problems: Vec<RejectProblem>,
    /// Schema errors as `path: message`, without the offending values (they may be
    /// personal data).
    pub schema_errors: Vec<String>,
}

/// Parses the decrypted metadata and validates it against the FIT-Connect metadata schema.
/// The metadata is usable only when there are no problems.
pub fn check_metadata(plaintext: &[u8]) -> MetadataCheck {
    let metadata: Value = match serde_json::from_slice(plaintext) {
        Ok(v) => v,
        Err(e) => {
            return MetadataCheck {
                metadata: None,
                problems: vec![RejectProblem::new(
                    Reason::SyntaxViolation,
                    "metadata",
                    format!(
                        "the metadata is not valid JSON (line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                )],
                schema_errors: Vec::new(),
            };
        }
    };
    let validator = match validator() {
        Ok(v) => v,
        Err(e) => {
            return MetadataCheck {
                metadata: None,
                problems: vec![RejectProblem::new(
                    Reason::TechnicalError,
                    "metadata",
                    format!("the metadata could not be validated: {e}"),
                )],
                schema_errors: Vec::new(),
            };
        }
    };
    let errors = data::schema_errors(validator, &metadata);
    if errors.is_empty() {
        MetadataCheck {
            metadata: Some(metadata),
            problems: Vec::new(),
            schema_errors: errors,
        }
    } else {
        MetadataCheck {
            metadata: None,
            problems: vec![RejectProblem::new(
                Reason::SchemaViolation,
                "metadata",
                format!(
                    "the metadata does not follow {METADATA_SCHEMA_ID}: {}",
                    errors.join("; ")
                ),
            )],
            schema_errors: errors,
        }
    }
}

/// The service the (schema-valid) metadata names must be the one the submission was sent
/// for, or the submission would reach the wrong office's queue.
pub fn check_service(metadata: &Value, service_identifier: &str) -> Option<RejectProblem> {
    let named = metadata["publicServiceType"]["identifier"].as_str()?;
    (named != service_identifier).then(|| {
        RejectProblem::new(
            Reason::ServiceMismatch,
            "metadata",
            format!(
                "publicServiceType.identifier is {named}, but the submission was sent for {service_identifier}"
            ),
        )
    })
}

/// What the metadata says about one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedAttachment {
    pub attachment_id: String,
    pub sha512: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub purpose: String,
}

/// The attachments the metadata describes, by lowercase id (the metadata is schema-valid,
/// so every field is there).
pub fn described_attachments(metadata: &Value) -> BTreeMap<String, DescribedAttachment> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    metadata["contentStructure"]["attachments"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let id = s(&a["attachmentId"]).to_ascii_lowercase();
                    (
                        id.clone(),
                        DescribedAttachment {
                            attachment_id: id,
                            sha512: s(&a["hash"]["content"]),
                            mime_type: s(&a["mimeType"]),
                            filename: a["filename"].as_str().map(str::to_owned),
                            purpose: s(&a["purpose"]),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A decrypted part as the checks see it (the bytes stay with the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDigest {
    pub sha512: String,
    pub size: u64,
}

impl PartDigest {
    pub fn of(bytes: &[u8]) -> Self {
        PartDigest {
            sha512: sha512_hex(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// One part's line in the check report and the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReport {
    /// `data` or `attachment:<id>`.
    pub instance: String,
    pub filename: Option<String>,
    pub mime_type: Option<String>,
    pub size: u64,
    /// SHA-512 of the decrypted content as received.
    pub sha512: String,
    /// SHA-512 the metadata gives, if any.
    pub expected_sha512: Option<String>,
    pub hash_ok: bool,
}

/// Checks data and attachments against the (schema-valid) metadata: hashes, the attachment
/// lists in both directions, JSON syntax of JSON data. `data`: the decrypted data, if sent.
/// `attachments`: the decrypted uploads by lowercase id.
pub fn check_content(
    metadata: &Value,
    data: Option<(&PartDigest, Option<&[u8]>)>,
    attachments: &BTreeMap<String, PartDigest>,
) -> (Vec<PartReport>, Vec<RejectProblem>) {
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    let described_data = metadata["contentStructure"].get("data");
    match (data, described_data) {
        (Some((digest, bytes)), described) => {
            let expected = described
                .and_then(|d| d["hash"]["content"].as_str())
                .map(str::to_owned);
            let mime = described
                .and_then(|d| d["submissionSchema"]["mimeType"].as_str())
                .map(str::to_owned);
            let hash_ok = expected.as_deref() == Some(digest.sha512.as_str());
            match &expected {
                None => problems.push(RejectProblem::new(
                    Reason::HashMismatch,
                    "data",
                    "data was sent, but the metadata has no contentStructure.data.hash for it",
                )),
                Some(_) if !hash_ok => problems.push(RejectProblem::new(
                    Reason::HashMismatch,
                    "data",
                    "the SHA-512 of the data differs from contentStructure.data.hash.content",
                )),
                Some(_) => {}
            }
            if mime.as_deref() == Some("application/json")
                && let Some(bytes) = bytes
                && serde_json::from_slice::<Value>(bytes).is_err()
            {
                problems.push(RejectProblem::new(
                    Reason::SyntaxViolation,
                    "data",
                    "the data is declared application/json but is not valid JSON",
                ));
            }
            parts.push(PartReport {
                instance: "data".into(),
                filename: None,
                mime_type: mime,
                size: digest.size,
                sha512: digest.sha512.clone(),
                expected_sha512: expected,
                hash_ok,
            });
        }
        (None, Some(_)) => problems.push(RejectProblem::new(
            Reason::MissingData,
            "data",
            "the metadata describes data (contentStructure.data), but no encryptedData was sent",
        )),
        (None, None) => {}
    }
    let described = described_attachments(metadata);
    for (id, d) in &described {
        let instance = attachment_instance(id);
        match attachments.get(id) {
            None => problems.push(RejectProblem::new(
                Reason::MissingAttachment,
                instance,
                format!("the metadata names attachment {id}, but it was not uploaded"),
            )),
            Some(digest) => {
                let hash_ok = digest.sha512 == d.sha512;
                if !hash_ok {
                    problems.push(RejectProblem::new(
                        Reason::HashMismatch,
                        instance.clone(),
                        format!(
                            "the SHA-512 of attachment {id} differs from its hash.content in the metadata"
                        ),
                    ));
                }
                parts.push(PartReport {
                    instance,
                    filename: d.filename.clone(),
                    mime_type: Some(d.mime_type.clone()),
                    size: digest.size,
                    sha512: digest.sha512.clone(),
                    expected_sha512: Some(d.sha512.clone()),
                    hash_ok,
                });
            }
        }
    }
    let named: BTreeSet<&String> = described.keys().collect();
    for (id, digest) in attachments {
        if !named.contains(id) {
            let instance = attachment_instance(id);
            problems.push(RejectProblem::new(
                Reason::AttachmentsMismatch,
                instance.clone(),
                format!(
                    "attachment {id} was uploaded, but contentStructure.attachments does not name it"
                ),
            ));
            parts.push(PartReport {
                instance,
                filename: None,
                mime_type: None,
                size: digest.size,
                sha512: digest.sha512.clone(),
                expected_sha512: None,
                hash_ok: false,
            });
        }
    }
    (parts, problems)
}

/// A virus scan's result for one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Clean,
    Infected {
        signature: String,
    },
    /// The scanner could not scan it (e.g. too large); counts as not accepted.
    Unscannable {
        why: String,
    },
}

impl ScanVerdict {
    pub fn label(&self) -> String {
        match self {
            ScanVerdict::Clean => "clean".into(),
            ScanVerdict::Infected { signature } => format!("infected: {signature}"),
            ScanVerdict::Unscannable { why } => format!("not scanned: {why}"),
        }
    }
}

/// The problems scan verdicts give (instance → verdict).
pub fn scan_problems(verdicts: &BTreeMap<String, ScanVerdict>) -> Vec<RejectProblem> {
    verdicts
        .iter()
        .filter_map(|(instance, v)| match v {
            ScanVerdict::Clean => None,
            ScanVerdict::Infected { signature } => Some(RejectProblem::new(
                Reason::MalwareDetected,
                instance.clone(),
                format!(
                    "the virus scanner found {signature}; the submission counts as not received — send it again without the infected file"
                ),
            )),
            ScanVerdict::Unscannable { why } => Some(RejectProblem::new(
                Reason::TechnicalError,
                instance.clone(),
                format!("the part could not be scanned for malware ({why}); nothing is accepted unscanned"),
            )),
        })
        .collect()
}

/// The decision: accept when nothing is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject(Vec<RejectProblem>),
}

impl Decision {
    pub fn from_problems(mut problems: Vec<RejectProblem>) -> Self {
        if problems.is_empty() {
            return Decision::Accept;
        }
        problems.sort_by(|a, b| (a.reason, &a.instance).cmp(&(b.reason, &b.instance)));
        problems.dedup();
        // FIT-Connect allows at most 100 problems per reject.
        problems.truncate(100);
        Decision::Reject(problems)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Decision::Accept => "accepted",
            Decision::Reject(_) => "rejected",
        }
    }

    /// The payload of the subscriber's event (`authenticationTags` for an accept, copied from
    /// what the Zustelldienst published).
    pub fn event_payload(&self, tags: &zustelldienst::event::AuthenticationTags) -> Value {
        match self {
            Decision::Accept => json!({ "authenticationTags": tags.to_json() }),
            Decision::Reject(problems) => json!({
                "problems": problems.iter().map(RejectProblem::to_json).collect::<Vec<_>>()
            }),
        }
    }

    pub fn event_kind(&self) -> zustelldienst::EventKind {
        match self {
            Decision::Accept => zustelldienst::EventKind::AcceptSubmission,
            Decision::Reject(_) => zustelldienst::EventKind::RejectSubmission,
        }
    }
}

/// The claims of the destination's SET (`iss` = destination id).
pub fn decision_set_claims(
    jti: &str,
    iat: i64,
    destination_id: &str,
    submission_id: &str,
    case_id: &str,
    decision: &Decision,
    tags: &zustelldienst::event::AuthenticationTags,
) -> Value {
    json!({
        "$schema": zustelldienst::event::SET_SCHEMA,
        "jti": jti,
        "iss": destination_id,
        "iat": iat,
        "sub": format!("submission:{submission_id}"),
        "txn": format!("case:{case_id}"),
        "events": { decision.event_kind().uri(): decision.event_payload(tags) },
    })
}

/// Everything checked, for the report and the receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    pub metadata_sha512: Option<String>,
    pub schema: &'static str,
    pub schema_errors: Vec<String>,
    /// The Fachdaten against their schema.
    pub data_validation: DataValidation,
    pub parts: Vec<PartReport>,
    /// Instance → verdict.
    pub scans: BTreeMap<String, ScanVerdict>,
    /// clamd's `VERSION` answer (engine / database version / date).
    pub scanner_version: Option<String>,
    pub decision: Decision,
}

impl Checks {
    fn schema_result(&self) -> Value {
        if self.metadata_sha512.is_none() {
            json!({"schema": self.schema, "valid": Value::Null, "note": "metadata could not be decrypted"})
        } else {
            json!({"schema": self.schema, "valid": self.schema_errors.is_empty(), "errors": self.schema_errors})
        }
    }

    fn parts_json(&self) -> Vec<Value> {
        self.parts
            .iter()
            .map(|p| {
                json!({
                    "instance": p.instance,
                    "filename": p.filename,
                    "mimeType": p.mime_type,
                    "size": p.size,
                    "sha512": p.sha512,
                    "expectedSha512": p.expected_sha512,
                    "hashOk": p.hash_ok,
                    "scan": self.scans.get(&p.instance).map(ScanVerdict::label),
                })
            })
            .collect()
    }

    fn decision_json(&self) -> Value {
        match &self.decision {
            Decision::Accept => json!({"result": "accepted"}),
            Decision::Reject(problems) => json!({
                "result": "rejected",
                "problems": problems.iter().map(RejectProblem::to_json).collect::<Vec<_>>(),
            }),
        }
    }
}

/// The check report filed with the case: hashes, schema result, scan verdicts with the
/// engine version, decision.
pub fn check_report(checks: &Checks, checked_at: &str) -> Value {
    json!({
        "checkedAt": checked_at,
        "metadata": {"sha512": checks.metadata_sha512, "validation": checks.schema_result()},
        "dataValidation": checks.data_validation.to_json(),
        "parts": checks.parts_json(),
        "scanner": {"engine": checks.scanner_version},
        "decision": checks.decision_json(),
    })
}

/// Who and what a receipt is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptSubject {
    /// The receipt's issuer (the service URL).
    pub issuer: String,
    pub sender_client_id: String,
    pub service_identifier: String,
    pub service_name: String,
    pub authority_ars: Option<String>,
    pub destination_id: String,
    pub submission_id: String,
    pub case_id: String,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339.
    pub decided_at: String,
}

pub const RECEIPT_TYPE: &str = "https://rathaus.example/schemas/eingangsbestaetigung/1";

/// The Eingangsbestätigung's claims (signed as compact JWS by the service key).
/// `journal` is left `null` here: the journal's inclusion proof is added once the entry is
/// sequenced (hook for the receipt journal).
pub fn receipt_claims(subject: &ReceiptSubject, checks: &Checks) -> Value {
    json!({
        "type": RECEIPT_TYPE,
        "iss": subject.issuer,
        "sender": {"clientId": subject.sender_client_id},
        "service": {"identifier": subject.service_identifier, "name": subject.service_name},
        "authority": {"ars": subject.authority_ars},
        "destinationId": subject.destination_id,
        "submissionId": subject.submission_id,
        "caseId": subject.case_id,
        "receivedAt": subject.received_at,
        "decidedAt": subject.decided_at,
        "metadata": {"sha512": checks.metadata_sha512, "validation": checks.schema_result()},
        "dataValidation": checks.data_validation.to_json(),
        "parts": checks.parts_json(),
        "scanner": {"engine": checks.scanner_version},
        "decision": checks.decision_json(),
        "journal": Value::Null,
    })
}

#[cfg(test)]
mod tests;
