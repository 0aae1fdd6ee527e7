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
        let doc = document(&r.claims, &r.jws, r.journal_proof.as_ref());
        let pdf = tokio::task::spawn_blocking(move || receipt_pdf::render(&doc))
            .await
            .map_err(|e| Problem::from(app::AppError::Internal(e.to_string())))?
            .map_err(|e| Problem::from(app::AppError::Internal(format!("receipt PDF: {e}"))))?;
        let mut res = pdf.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        res
    } else {
        axum::Json(json!({"receipt": r.claims, "jws": r.jws, "journalProof": r.journal_proof}))
            .into_response()
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(res)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// The PDF's view of the signed claims (German; the JSON is the authoritative version).
fn document(c: &Value, jws: &str, proof: Option<&Value>) -> receipt_pdf::ReceiptDocument {
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
        receipt_pdf::Fact::new("Absender (Client)", s(&c["sender"]["clientId"])),
        receipt_pdf::Fact::new("Leistung", service),
        receipt_pdf::Fact::new("Behörde (ARS)", s(&c["authority"]["ars"])),
        receipt_pdf::Fact::new("Zustellpunkt", s(&c["destinationId"])),
        receipt_pdf::Fact::new("Einreichung", s(&c["submissionId"])),
        receipt_pdf::Fact::new("Vorgangsnummer", s(&c["caseId"])),
        receipt_pdf::Fact::new("Eingegangen am", s(&c["receivedAt"])),
        receipt_pdf::Fact::new("Entschieden am", s(&c["decidedAt"])),
        receipt_pdf::Fact::new("Virenscanner", s(&c["scanner"]["engine"])),
        receipt_pdf::Fact::new("Metadaten (SHA-512)", s(&c["metadata"]["sha512"])),
    ];
    let dv = &c["dataValidation"];
    if dv.is_object() {
        let outcome = match dv["valid"].as_bool() {
            Some(true) => format!("gültig nach {}", s(&dv["schema"])),
            Some(false) => format!("ungültig nach {}", s(&dv["schema"])),
            None => format!("nicht geprüft ({})", s(&dv["schema"])),
        };
        facts.push(receipt_pdf::Fact::new("Fachdaten", outcome));
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
                        Some("clean") => "ohne Befund".into(),
                        Some(other) => other.to_owned(),
                        None => "nicht geprüft".into(),
                    },
                    validation_result: if p["hashOk"] == true {
                        "Prüfsumme stimmt".into()
                    } else {
                        "Prüfsumme stimmt nicht".into()
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
        language: receipt_pdf::Language::De,
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
        signature_note: format!(
            "Diese Bestätigung ist elektronisch gesiegelt; die JSON-Fassung trägt die Signatur (PS512, kid {kid})."
        ),
        verify_hint: format!(
            "Die JSON-Fassung (Accept: application/json) lässt sich mit dem Schlüssel {kid} aus /.well-known/jwks.json prüfen, der Journal-Nachweis mit dem Baumkopf von /journal/v1/tree-head."
        ),
    }
}
