//! The Eingangsbestätigung in two forms and two places: the PDF view of a receipt's signed
//! claims ([`receipt_document`], [`render_receipt_pdf`]; the web layer serves it to
//! senders), and its delivery into the citizen's Postfach when the sender is the
//! platform's own portal ([`App::run_receipt_delivery`]).
//!
//! Who gets a receipt in a Postfach: only submissions of clients holding the scope
//! [`SCOPE_RECEIPTS_TO_POSTFACH`] (the portal, which signed the citizen in and names the
//! citizen's Postfach), whose metadata names a FINK reply channel of this Servicekonto.
//! Any other sender could otherwise drop messages into Postfächer of its choosing.
//!
//! Exactly once: the ePoststelle files the target with the receipt; this worker places the
//! message after the decision is recorded, under a message id derived from the submission
//! id (a retry after a crash meets its own earlier message), then notes the outcome.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::postfach::Incoming;
use crate::poststelle::Receipt;
use crate::{App, AppError, Result};

/// The scope that makes the ePoststelle deliver a sender's receipts into the Postfach its
/// metadata names (`replyChannel.fink`).
pub const SCOPE_RECEIPTS_TO_POSTFACH: &str = "postfach:receipts";

/// How long a receipt waits for its decision's journal proof before it is placed without
/// one (the proof stays fetchable through the sender API and the journal).
const PROOF_WAIT: time::Duration = time::Duration::seconds(20);
const POLL: Duration = Duration::from_millis(500);
const BATCH: i64 = 32;

/// Namespace of the Postfach message ids derived from submission ids.
const RECEIPT_MESSAGE_NS: uuid::Uuid =
    uuid::Uuid::from_u128(0x5261_7468_6175_7352_6563_6569_7074_0001);

/// The Postfach message id of a submission's receipt (UUIDv5: the same id on every retry).
pub fn receipt_message_id(submission_id: &str) -> String {
    uuid::Uuid::new_v5(&RECEIPT_MESSAGE_NS, submission_id.as_bytes()).to_string()
}

/// Renders the PDF/A receipt (CPU work of some milliseconds: call it on a blocking thread).
pub fn render_receipt_pdf(r: &Receipt, lang: receipt_pdf::Language) -> Result<Vec<u8>> {
    let doc = receipt_document(&r.claims, &r.jws, r.journal_proof.as_ref(), lang);
    receipt_pdf::render(&doc).map_err(|e| AppError::Internal(format!("receipt PDF: {e}")))
}

impl App {
    /// The Postfach a submission's receipt should go to: the FINK reply channel of its
    /// metadata, if the sender may ask for that and the Postfach is one of ours.
    pub(crate) async fn receipt_postfach_target(
        &self,
        sender_client_id: &str,
        metadata: Option<&Value>,
    ) -> Result<Option<String>> {
        let Some(fink) = metadata.map(|m| &m["replyChannel"]["fink"]) else {
            return Ok(None);
        };
        let Some(postfach_ref) = fink["finkPostfachRef"].as_str() else {
            return Ok(None);
        };
        let ours = match fink["host"].as_str() {
            None => true,
            Some(host) => {
                host.trim_end_matches('/') == self.settings.public_url.trim_end_matches('/')
            }
        };
        if !ours || !crate::postfach::is_valid_ref(postfach_ref) {
            return Ok(None);
        }
        let allowed = self
            .store
            .oauth_client(sender_client_id)
            .await?
            .is_some_and(|c| {
                c.scopes
                    .split_whitespace()
                    .any(|s| s == SCOPE_RECEIPTS_TO_POSTFACH)
            });
        Ok(allowed.then(|| postfach_ref.to_owned()))
    }

    /// Places due receipts in their Postfächer until stopped.
    pub async fn run_receipt_delivery(self: Arc<Self>) {
        loop {
            match self.deliver_receipts_once(OffsetDateTime::now_utc()).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "receipt delivery"),
            }
            tokio::select! {
                () = self.receipt_wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One pass: places every due receipt whose journal proof is there (or has been
    /// awaited long enough). Returns how many were placed or given up.
    pub async fn deliver_receipts_once(&self, now: OffsetDateTime) -> Result<usize> {
        let mut done = 0;
        for r in self.store.receipts_due_for_postfach(BATCH).await? {
            let Some(postfach_ref) = r.postfach_ref.clone() else {
                continue;
            };
            let proof = match r.journal_proof.as_deref() {
                Some(p) => serde_json::from_str(p).ok(),
                None => self.decision_journal_proof(&r.submission_id).await?,
            };
            let created = OffsetDateTime::parse(&r.created_at, &Rfc3339).unwrap_or(now);
            if proof.is_none() && now - created < PROOF_WAIT {
                continue;
            }
            let outcome = match self.place_receipt(&r, &postfach_ref, proof).await {
                Ok(id) => id,
                Err(AppError::InvalidField { message, .. }) => {
                    tracing::warn!(submission = %r.submission_id, %message, "receipt not placed in the Postfach");
                    format!("undeliverable: {message}")
                }
                // Stays due and is tried again on the next pass; the others go on.
                Err(e) => {
                    tracing::warn!(submission = %r.submission_id, error = %e, "receipt delivery failed; will retry");
                    continue;
                }
            };
            self.store
                .set_receipt_postfach_outcome(&r.submission_id, &outcome)
                .await?;
            done += 1;
        }
        Ok(done)
    }

    async fn place_receipt(
        &self,
        r: &store::ReceiptRecord,
        postfach_ref: &str,
        journal_proof: Option<Value>,
    ) -> Result<String> {
        let id = receipt_message_id(&r.submission_id);
        if self.store.postfach_message(&id).await?.is_some() {
            return Ok(id);
        }
        let Some(owner) = self.postfach_owner(postfach_ref).await? else {
            return Err(AppError::InvalidField {
                field: "postfach_ref",
                message: "no Postfach has this reference".into(),
            });
        };
        let receipt = Receipt {
            claims: serde_json::from_str(&r.claims)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            jws: r.jws.clone(),
            journal_proof,
        };
        let c = &receipt.claims;
        let authority = c["authority"]["ars"]
            .as_str()
            .and_then(|a| domain::Ars::parse(a).ok())
            .and_then(|ars| self.directory().authority(&ars).map(|a| a.name.clone()))
            .unwrap_or_else(|| "ePoststelle".to_owned());
        let service = c["service"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or_else(|| c["service"]["identifier"].as_str())
            .unwrap_or("Antrag")
            .to_owned();
        let received = c["receivedAt"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(german_datetime)
            .unwrap_or_default();
        let accepted = r.decision == "accepted";
        let subject = format!("Eingangsbestätigung: {service}");
        let mut body =
            format!("Ihr Antrag „{service}“ ist am {received} bei {authority} eingegangen.\n\n");
        if accepted {
            body.push_str(
                "Die ePoststelle hat ihn geprüft (Vollständigkeit, Prüfsummen, Virenprüfung) und angenommen. \
                 Er liegt jetzt der zuständigen Stelle zur Bearbeitung vor.\n",
            );
        } else {
            body.push_str("Die ePoststelle konnte ihn nicht annehmen. Gründe:\n");
            for p in c["decision"]["problems"].as_array().into_iter().flatten() {
                body.push_str(&format!(
                    "- {}: {}\n",
                    p["title"].as_str().unwrap_or(""),
                    p["detail"].as_str().unwrap_or("")
                ));
            }
            body.push_str("Bitte reichen Sie den Antrag erneut ein.\n");
        }
        body.push_str(&format!(
            "\nVorgangsnummer: {}\n\nDie gesiegelte Eingangsbestätigung liegt als PDF und als JSON bei. \
             Die JSON-Fassung ist mit dem Schlüssel des Zustelldienstes signiert und im öffentlichen Journal nachgewiesen.",
            c["caseId"].as_str().unwrap_or("")
        ));

        let pdf = {
            let receipt = receipt.clone();
            tokio::task::spawn_blocking(move || {
                render_receipt_pdf(&receipt, receipt_pdf::Language::De)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??
        };
        let json_doc = serde_json::to_vec_pretty(&json!({
            "receipt": receipt.claims,
            "jws": receipt.jws,
            "journalProof": receipt.journal_proof,
        }))
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut records = Vec::new();
        for (position, (filename, media_type, bytes)) in [
            ("Eingangsbestaetigung.pdf", "application/pdf", pdf),
            ("Eingangsbestaetigung.json", "application/json", json_doc),
        ]
        .into_iter()
        .enumerate()
        {
            // Blob keys derived from the message id: a retry overwrites its own files.
            let key = format!("postfach/{}/{id}-{position}", &id[..2]);
            let info = self
                .blobs
                .put(&key, &bytes)
                .await
                .map_err(|e| AppError::Internal(format!("receipt file {key}: {e}")))?;
            records.push(store::AttachmentRecord {
                id: format!("{id}-{position}"),
                message_id: id.clone(),
                position: position as i64,
                filename: filename.into(),
                media_type: media_type.into(),
                size: info.size as i64,
                sha256: info.sha256,
                blob_key: key,
            });
        }
        let placed = self
            .place_incoming(
                &Incoming {
                    id: &id,
                    recipient: postfach_ref,
                    sender_client_id: None,
                    sender_name: &authority,
                    sender_ars: c["authority"]["ars"].as_str(),
                    subject: &subject,
                    body: &body,
                    min_trust_level: 1,
                    reply_allowed: false,
                },
                &owner,
                &records,
            )
            .await;
        match placed {
            Ok(()) => Ok(id),
            // Placed by another node in between: the same message, by its id.
            Err(_) if self.store.postfach_message(&id).await?.is_some() => Ok(id),
            Err(e) => Err(e),
        }
    }
}

/// `3. Dezember 2026, 14:05 Uhr` (German civil time).
pub(crate) fn german_datetime(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ];
    let g = domain::postfach::german_time(t);
    format!(
        "{}. {} {}, {:02}:{:02} Uhr",
        g.day(),
        MONTHS[usize::from(u8::from(g.month())) - 1],
        g.year(),
        g.hour(),
        g.minute()
    )
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
pub fn receipt_document(
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
