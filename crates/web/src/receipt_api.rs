//! The ePoststelle's Eingangsbestätigung for senders:
//! `GET /submission-api/v{1,2}/submissions/{id}/receipt` with the sender's bearer token.
//! JSON by default (`{"receipt": <claims>, "jws": "<compact JWS, PS512, service key>"}`,
//! verifiable with `/.well-known/jwks.json`), the tagged PDF/A with `Accept: application/pdf`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zustelldienst::ProblemKind;

use crate::AppState;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/submission-api/v1/submissions/{id}/receipt", get(receipt))
        .route("/submission-api/v2/submissions/{id}/receipt", get(receipt))
}

fn fc(kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem::from(app::AppError::Problem(zustelldienst::Problem::new(
        kind, detail,
    )))
}

fn wants_pdf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|m| {
                m.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pdf"))
            })
        })
}

async fn receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let client = match token {
        Some(t) => state.app.api_client(t).await?,
        None => None,
    };
    let Some(client) = client else {
        let mut res = fc(
            ProblemKind::Unauthorized,
            "send `Authorization: Bearer <token>` of the client that sent the submission",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return Ok(res);
    };
    let r = state.app.poststelle_receipt(&client, &id).await?;
    let mut res = if wants_pdf(&headers) {
        let lang = match crate::i18n::Lang::negotiate(None, &headers) {
            crate::i18n::Lang::En => receipt_pdf::Language::En,
            _ => receipt_pdf::Language::De,
        };
        let doc = document(&r.claims, &r.jws, r.journal_proof.as_ref(), lang);
        let pdf = tokio::task::spawn_blocking(move || receipt_pdf::render(&doc))
            .await
            .map_err(|e| Problem::from(app::AppError::Internal(e.to_string())))?
            .map_err(|e| Problem::from(app::AppError::Internal(format!("receipt PDF: {e}"))))?;
        let mut res = pdf.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        res.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(match lang {
                receipt_pdf::Language::En => "en",
                receipt_pdf::Language::De => "de",
            }),
        );
        res
    } else {
        axum::Json(json!({"receipt": r.claims, "jws": r.jws, "journalProof": r.journal_proof}))
            .into_response()
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Language"),
    );
    Ok(res)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// The PDF's labels in German and English (Leichte Sprache readers get German: the receipt
/// is a legal record whose wording the JSON fixes).
fn label(lang: receipt_pdf::Language, key: &str) -> &'static str {
    use receipt_pdf::Language::{De, En};
    match (key, lang) {
        ("sender", De) => "Absender (Client)",
        ("sender", En) => "Sender (client)",
        ("service", De) => "Leistung",
        ("service", En) => "Service",
        ("authority", De) => "Behörde (ARS)",
        ("authority", En) => "Authority (ARS)",
        ("destination", De) => "Zustellpunkt",
        ("destination", En) => "Destination",
        ("submission", De) => "Einreichung",
        ("submission", En) => "Submission",
        ("case", De) => "Vorgangsnummer",
        ("case", En) => "Case number",
        ("received", De) => "Eingegangen am",
        ("received", En) => "Received at",
        ("decided", De) => "Entschieden am",
        ("decided", En) => "Decided at",
        ("scanner", De) => "Virenscanner",
        ("scanner", En) => "Virus scanner",
        ("metadata", De) => "Metadaten (SHA-512)",
        ("metadata", En) => "Metadata (SHA-512)",
        ("data", De) => "Fachdaten",
        ("data", En) => "Application data",
        ("valid", De) => "gültig nach",
        ("valid", En) => "valid against",
        ("invalid", De) => "ungültig nach",
        ("invalid", En) => "invalid against",
        ("unchecked", De) => "nicht geprüft",
        ("unchecked", En) => "not checked",
        ("clean", De) => "ohne Befund",
        ("clean", En) => "clean",
        ("hash-ok", De) => "Prüfsumme stimmt",
        ("hash-ok", En) => "checksum matches",
        ("hash-bad", De) => "Prüfsumme stimmt nicht",
        ("hash-bad", En) => "checksum differs",
        _ => "",
    }
}

/// The PDF's view of the signed claims (the JSON is the authoritative version).
fn document(
    c: &Value,
    jws: &str,
    proof: Option<&Value>,
    lang: receipt_pdf::Language,
) -> receipt_pdf::ReceiptDocument {
    let l = |key: &str| label(lang, key);
    let outcome = if c["decision"]["result"] == "accepted" {
        receipt_pdf::Outcome::Accepted
    } else {
        receipt_pdf::Outcome::Rejected {
            reasons: c["decision"]["problems"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{} ({}): {}",
                                s(&p["title"]),
                                s(&p["instance"]),
                                s(&p["detail"])
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let service = if c["service"]["name"].as_str().is_some_and(|n| !n.is_empty()) {
        format!(
            "{} ({})",
            s(&c["service"]["name"]),
            s(&c["service"]["identifier"])
        )
    } else {
        s(&c["service"]["identifier"])
    };
    let mut facts = vec![
        receipt_pdf::Fact::new(l("sender"), s(&c["sender"]["clientId"])),
        receipt_pdf::Fact::new(l("service"), service),
        receipt_pdf::Fact::new(l("authority"), s(&c["authority"]["ars"])),
        receipt_pdf::Fact::new(l("destination"), s(&c["destinationId"])),
        receipt_pdf::Fact::new(l("submission"), s(&c["submissionId"])),
        receipt_pdf::Fact::new(l("case"), s(&c["caseId"])),
        receipt_pdf::Fact::new(l("received"), s(&c["receivedAt"])),
        receipt_pdf::Fact::new(l("decided"), s(&c["decidedAt"])),
        receipt_pdf::Fact::new(l("scanner"), s(&c["scanner"]["engine"])),
        receipt_pdf::Fact::new(l("metadata"), s(&c["metadata"]["sha512"])),
    ];
    let dv = &c["dataValidation"];
    if dv.is_object() {
        let outcome = match dv["valid"].as_bool() {
            Some(true) => format!("{} {}", l("valid"), s(&dv["schema"])),
            Some(false) => format!("{} {}", l("invalid"), s(&dv["schema"])),
            None => format!("{} ({})", l("unchecked"), s(&dv["schema"])),
        };
        facts.push(receipt_pdf::Fact::new(l("data"), outcome));
    }
    let parts = c["parts"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| receipt_pdf::ReceiptPart {
                    name: p["filename"]
                        .as_str()
                        .map_or_else(|| s(&p["instance"]), str::to_owned),
                    media_type: s(&p["mimeType"]),
                    size: p["size"].as_u64().unwrap_or(0),
                    sha512_hex: s(&p["sha512"]),
                    scan_result: match p["scan"].as_str() {
                        Some("clean") => l("clean").into(),
                        Some(other) => other.to_owned(),
                        None => l("unchecked").into(),
                    },
                    validation_result: if p["hashOk"] == true {
                        l("hash-ok").into()
                    } else {
                        l("hash-bad").into()
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let issued_at = c["decidedAt"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let kid = crypto::jwt_header(jws)
        .ok()
        .and_then(|h| h["kid"].as_str().map(str::to_owned))
        .unwrap_or_default();
    receipt_pdf::ReceiptDocument {
        language: lang,
        title: String::new(),
        issued_at,
        outcome,
        facts,
        parts,
        journal: proof.map(|p| receipt_pdf::JournalProof {
            leaf_index: p["index"].as_u64().unwrap_or(0),
            tree_size: p["treeHead"]["treeSize"].as_u64().unwrap_or(0),
            root_hash: s(&p["treeHead"]["rootHash"]),
            tree_head_time: p["treeHead"]["timestamp"]
                .as_i64()
                .and_then(|ms| OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default(),
            key_id: s(&p["treeHead"]["keyId"]),
            audit_path: p["auditPath"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default(),
        }),
        signature_note: match lang {
            receipt_pdf::Language::De => format!(
                "Diese Bestätigung ist elektronisch gesiegelt; die JSON-Fassung trägt die Signatur (PS512, kid {kid})."
            ),
            receipt_pdf::Language::En => format!(
                "This confirmation is sealed electronically; the JSON version carries the signature (PS512, kid {kid})."
            ),
        },
        verify_hint: match lang {
            receipt_pdf::Language::De => format!(
                "Die JSON-Fassung (Accept: application/json) lässt sich mit dem Schlüssel {kid} aus /.well-known/jwks.json prüfen, der Journal-Nachweis mit dem Baumkopf von /journal/v1/tree-head."
            ),
            receipt_pdf::Language::En => format!(
                "Verify the JSON version (Accept: application/json) with key {kid} of /.well-known/jwks.json, and the journal proof with the tree head of /journal/v1/tree-head."
            ),
        },
    }
}
