//! The ePoststelle's e-mail channel (NDIG § 4 (1)): a received message becomes a submission
//! to the authority's platform-held destination, through the same Zustelldienst use cases a
//! FIT-Connect sender calls — encrypted to the destination's key at once, then checked,
//! scanned, journaled and filed by the ePoststelle like any other application.
//!
//! What a submission of a message holds: the Fachdaten (schema [`EMAIL_SCHEMA_URI`]: the
//! envelope, header fields, the text, DKIM/SPF/DMARC and signature results), every MIME
//! attachment under its own name and type, the HTML body as `nachricht.html`, and the
//! original message as `original.eml` (evidence; S/MIME or PGP signatures stay verifiable
//! there).
//!
//! The SMTP server answers `250` only after [`App::receive_email`] returned, i.e. after the
//! submission is durably submitted. A message sent again because the client lost our `250`
//! (same bytes, same destination, within a day) is recognised and not submitted twice.
//!
//! The answer to the sender ([`App::run_email_answers`]): after the ePoststelle's decision,
//! an Eingangsbestätigung with the check report, or the reason the message was not accepted
//! (it then counts as not received). Never to machines (RFC 3834: null sender, auto-replies,
//! lists, bounces) and at most [`EmailSettings::answers_per_address_per_hour`] per address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::oauth::ApiClient;
use crate::zustelldienst::SCOPE_SEND;
use crate::{App, AppError, Result};

/// The service an e-mail is submitted as (destinations of the platform offer it).
pub const EMAIL_SERVICE: &str = "urn:rathaus:service:e-mail";
pub const EMAIL_SERVICE_NAME: &str = "E-Mail an die ePoststelle";
/// The Fachdaten schema of a received e-mail.
pub const EMAIL_SCHEMA_URI: &str = "urn:rathaus:schema:e-mail:1.0.0";
pub const EMAIL_SCHEMA: &str = include_str!("../../../data/fachdaten-e-mail-1.0.0.schema.json");
/// The sender the channel submits as (no OAuth client: the channel is part of the platform).
pub const EMAIL_CHANNEL_CLIENT: &str = "rathaus:e-mail-channel";

/// Characters of the text body carried in the Fachdaten (the whole text is in `original.eml`).
const MAX_TEXT_CHARS: usize = 512 * 1024;
/// A message sent again within this time is the same message.
const DUPLICATE_WINDOW: time::Duration = time::Duration::days(1);
const ANSWER_BATCH: i64 = 32;
const ANSWER_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The domain of the ePoststelle addresses (`poststelle+<ARS>@<domain>`).
    pub domain: String,
    /// The local part before `+<ARS>`.
    pub local_prefix: String,
    /// Extra addresses (`poststelle@samtgemeinde-nenndorf.de` → ARS), lowercase.
    pub aliases: BTreeMap<String, String>,
    /// DKIM/SPF/DMARC checks; `None`: not checked (recorded as such).
    pub authenticator: Option<mail_check::Authenticator>,
    pub answers_per_address_per_hour: i64,
}

impl EmailSettings {
    pub fn new(domain: impl Into<String>) -> EmailSettings {
        EmailSettings {
            domain: domain.into().to_ascii_lowercase(),
            local_prefix: "poststelle".into(),
            aliases: BTreeMap::new(),
            authenticator: None,
            answers_per_address_per_hour: 20,
        }
    }
}

/// What the SMTP conversation established.
#[derive(Debug, Clone)]
pub struct MailEnvelope {
    pub client_ip: IpAddr,
    pub helo: String,
    /// `""` for the null sender `<>`.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub tls: bool,
}

/// What the answer needs to know of a message (wrapped under the KEK until it is sent).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AnswerInfo {
    /// `None`: no answer, for the reason in `suppressed`.
    answer_to: Option<String>,
    suppressed: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
    /// Attachment id → (file name, type, size) as the sender sent them.
    files: BTreeMap<String, (String, String, u64)>,
    auth: Value,
    signature: Value,
}

fn answer_aad(submission_id: &str) -> Vec<u8> {
    format!("email-answer/{submission_id}").into_bytes()
}

impl App {
    fn email(&self) -> &EmailSettings {
        &self.settings.email
    }

    /// The ePoststelle address of an authority.
    pub fn email_address_of(&self, ars: &str) -> String {
        format!(
            "{}+{ars}@{}",
            self.email().local_prefix,
            self.email().domain
        )
    }

    /// The destination a recipient address names, or why it names none (the SMTP server
    /// refuses the recipient with that text).
    pub async fn email_recipient(&self, address: &str) -> Result<String> {
        let address = address.trim().to_ascii_lowercase();
        let unknown = |why: String| AppError::InvalidField {
            field: "recipient",
            message: why,
        };
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(unknown("the address has no domain".into()));
        };
        let ars = match self.email().aliases.get(&address) {
            Some(ars) => ars.clone(),
            None => {
                if domain != self.email().domain {
                    return Err(unknown(format!(
                        "this server accepts mail for @{} only",
                        self.email().domain
                    )));
                }
                let Some(ars) = local
                    .strip_prefix(self.email().local_prefix.as_str())
                    .and_then(|r| r.strip_prefix('+'))
                else {
                    return Err(unknown(format!(
                        "no such mailbox; ePoststelle addresses are {}+<ARS>@{}",
                        self.email().local_prefix,
                        self.email().domain
                    )));
                };
                ars.to_owned()
            }
        };
        let ars = domain::Ars::parse(&ars)
            .map_err(|_| unknown(format!("{ars} is not a regional key (ARS)")))?;
        self.email_destination(ars.as_str()).await?.ok_or_else(|| {
            unknown(format!(
                "the authority {} has no ePoststelle here",
                ars.as_str()
            ))
        })
    }

    /// The active platform-held destination of an authority that offers the e-mail service.
    async fn email_destination(&self, ars: &str) -> Result<Option<String>> {
        let key = format!("email-route/{ars}");
        if let Some(d) = self.zd_destinations.get(&key) {
            return Ok(Some(d.0.id.clone()));
        }
        for rec in self.store.platform_destinations().await? {
            if rec.authority_ars.as_deref() != Some(ars) || rec.status != "active" {
                continue;
            }
            let doc: zustelldienst::Destination = serde_json::from_str(&rec.doc)
                .map_err(|e| AppError::Internal(format!("destination {}: {e}", rec.id)))?;
            if doc.accepts(EMAIL_SERVICE, None) {
                let id = rec.id.clone();
                self.zd_destinations.put(&key, Arc::new((rec, doc)));
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Makes the channel usable: registers the e-mail Fachdaten schema and lets every
    /// platform-held destination offer the e-mail service. Idempotent; returns how many
    /// destinations were extended.
    pub async fn ensure_email_channel(&self) -> Result<usize> {
        self.register_data_schema(EMAIL_SCHEMA.as_bytes()).await?;
        let mut changed = 0;
        for rec in self.store.platform_destinations().await? {
            let mut doc: zustelldienst::Destination = serde_json::from_str(&rec.doc)
                .map_err(|e| AppError::Internal(format!("destination {}: {e}", rec.id)))?;
            if doc.services.iter().any(|s| s.identifier == EMAIL_SERVICE) {
                continue;
            }
            let mut regions: Vec<String> = doc
                .services
                .iter()
                .flat_map(|s| s.regions.clone())
                .collect();
            regions.sort();
            regions.dedup();
            doc.services.push(zustelldienst::destination::ServiceOffer {
                identifier: EMAIL_SERVICE.into(),
                submission_schemas: vec![zustelldienst::destination::SubmissionSchema {
                    schema_uri: EMAIL_SCHEMA_URI.into(),
                    mime_type: "application/json".into(),
                }],
                regions,
            });
            let body =
                serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
            self.store
                .update_destination(&rec.id, &rec.status, &body, None, OffsetDateTime::now_utc())
                .await?;
            self.zd_destinations.remove(&rec.id);
            changed += 1;
        }
        Ok(changed)
    }

    /// Takes a received message into the pipeline: one submission per destination among
    /// the recipients. Returns when every submission is durably submitted (then, and only
    /// then, the SMTP server may answer 250). Returns the submission ids.
    pub async fn receive_email(&self, env: &MailEnvelope, raw: Vec<u8>) -> Result<Vec<String>> {
        let raw = Arc::new(raw);
        let mut destinations: Vec<String> = Vec::new();
        for rcpt in &env.rcpt_to {
            let d = self.email_recipient(rcpt).await?;
            if !destinations.contains(&d) {
                destinations.push(d);
            }
        }
        let content_sha256 = crypto::sha256_hex(without_trace_header(&raw));
        let parsed = {
            let raw = raw.clone();
            tokio::task::spawn_blocking(move || {
                let limits = mail_check::Limits {
                    max_attachments: zustelldienst::Limits::default().max_attachments - 2,
                    ..mail_check::Limits::default()
                };
                mail_check::parse(&raw, &limits)
            })
            .await
            .map_err(|e| AppError::Internal(format!("parsing a message: {e}")))?
        };
        let auth = match &self.email().authenticator {
            Some(a) => serde_json::to_value(
                a.check(&raw, env.client_ip, &env.helo, &env.mail_from)
                    .await,
            )
            .unwrap_or(Value::Null),
            None => {
                json!({"dkim": [], "spf": {"result": "not-checked", "detail": "not configured"},
                           "dmarc": {"result": "not-checked", "detail": "not configured"}})
            }
        };
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for destination_id in destinations {
            let since = now - DUPLICATE_WINDOW;
            if let Some(id) = self
                .store
                .email_duplicate(&destination_id, &content_sha256, since)
                .await?
            {
                tracing::info!(submission = %id, "e-mail received again; already submitted");
                ids.push(id);
                continue;
            }
            let id = self
                .submit_email(
                    &destination_id,
                    env,
                    &raw,
                    &parsed,
                    &auth,
                    &content_sha256,
                    now,
                )
                .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    #[allow(clippy::too_many_arguments)]
    async fn submit_email(
        &self,
        destination_id: &str,
        env: &MailEnvelope,
        raw: &Arc<Vec<u8>>,
        parsed: &mail_check::ParsedMail,
        auth: &Value,
        content_sha256: &str,
        now: OffsetDateTime,
    ) -> Result<String> {
        let (rec, doc) = {
            let d = self.destination_cached(destination_id).await?;
            (d.0.clone(), d.1.clone())
        };
        let jwk = self.zd_key(&rec.id, &doc.encryption_kid).await?;
        let key = Arc::new(crypto::RsaEncryptionKey::from_jwk(&jwk)?);
        let kid = doc.encryption_kid.clone();

        // The parts: the sender's attachments, the HTML body, the original message.
        struct Part {
            id: String,
            filename: String,
            mime_type: String,
            bytes: Arc<Vec<u8>>,
            role: &'static str,
        }
        let mut parts: Vec<Part> = parsed
            .attachments
            .iter()
            .map(|a| Part {
                id: uuid::Uuid::new_v4().to_string(),
                filename: a.filename.clone(),
                mime_type: a.mime_type.clone(),
                bytes: Arc::new(a.content.clone()),
                role: if a.inline { "inline" } else { "attachment" },
            })
            .collect();
        if let Some(html) = &parsed.html {
            parts.push(Part {
                id: uuid::Uuid::new_v4().to_string(),
                filename: "nachricht.html".into(),
                mime_type: "text/html".into(),
                bytes: Arc::new(html.clone().into_bytes()),
                role: "html-body",
            });
        }
        parts.push(Part {
            id: uuid::Uuid::new_v4().to_string(),
            filename: "original.eml".into(),
            mime_type: "message/rfc822".into(),
            bytes: raw.clone(),
            role: "original",
        });

        let received_at = now.format(&Rfc3339).unwrap_or_default();
        let text = parsed.text.as_deref().map(|t| {
            if t.chars().count() > MAX_TEXT_CHARS {
                (t.chars().take(MAX_TEXT_CHARS).collect::<String>(), true)
            } else {
                (t.to_owned(), false)
            }
        });
        let mut problems = parsed.problems.clone();
        if text.as_ref().is_some_and(|(_, cut)| *cut) {
            problems.push(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters; the whole text is in original.eml"
            ));
        }
        let data = json!({
            "envelope": {
                "mailFrom": env.mail_from,
                "rcptTo": env.rcpt_to,
                "clientAddress": env.client_ip.to_string(),
                "helo": env.helo,
                "tls": env.tls,
                "receivedAt": received_at,
            },
            "header": {
                "messageId": parsed.message_id,
                "date": parsed.date,
                "subject": parsed.subject,
                "from": parsed.from,
                "sender": parsed.sender,
                "replyTo": parsed.reply_to,
                "to": parsed.to,
                "cc": parsed.cc,
            },
            "text": text.map(|(t, _)| t),
            "attachments": parts.iter().map(|p| json!({
                "attachmentId": p.id, "filename": p.filename, "mimeType": p.mime_type,
                "size": p.bytes.len(), "role": p.role,
            })).collect::<Vec<_>>(),
            "authentication": auth,
            "signature": parsed.signature,
            "automated": parsed.automated,
            "problems": problems,
        });
        let data = serde_json::to_vec(&data).map_err(|e| AppError::Internal(e.to_string()))?;
        let answer_to = plain_address(&env.mail_from);
        let suppressed = if env.mail_from.is_empty() {
            Some("null sender (a bounce or notification)".to_owned())
        } else if let Some(why) = &parsed.automated {
            Some(why.clone())
        } else if answer_to.is_none() {
            Some("the envelope sender is no plain address".to_owned())
        } else if is_machine_address(&env.mail_from) {
            Some("the sender address is a system mailbox".to_owned())
        } else {
            None
        };
        let mut metadata = json!({
            "contentStructure": {
                "data": {
                    "hash": {"type": "sha512", "content": poststelle::sha512_hex(&data)},
                    "submissionSchema": {"schemaUri": EMAIL_SCHEMA_URI, "mimeType": "application/json"},
                },
                "attachments": parts.iter().map(|p| json!({
                    "attachmentId": p.id,
                    "purpose": "attachment",
                    "filename": p.filename,
                    "mimeType": p.mime_type,
                    "hash": {"type": "sha512", "content": poststelle::sha512_hex(&p.bytes)},
                })).collect::<Vec<_>>(),
            },
            "publicServiceType": {"identifier": EMAIL_SERVICE, "name": EMAIL_SERVICE_NAME},
        });
        if suppressed.is_none()
            && let Some(a) = &answer_to
        {
            metadata["replyChannel"] = json!({"eMail": {"address": a}});
        }
        let metadata =
            serde_json::to_vec(&metadata).map_err(|e| AppError::Internal(e.to_string()))?;

        // Encryption to the destination's key: the public-key step and AES-GCM on a blocking
        // thread (a 30 MB message takes some milliseconds).
        let encrypted = {
            let key = key.clone();
            let kid = kid.clone();
            let inputs: Vec<(Arc<Vec<u8>>, String)> =
                std::iter::once((Arc::new(metadata), "application/json".to_owned()))
                    .chain(std::iter::once((
                        Arc::new(data),
                        "application/json".to_owned(),
                    )))
                    .chain(parts.iter().map(|p| (p.bytes.clone(), p.mime_type.clone())))
                    .collect();
            tokio::task::spawn_blocking(move || {
                inputs
                    .iter()
                    .map(|(b, cty)| crypto::jwe::encrypt(&key, b, Some(cty), Some(&kid), false))
                    .collect::<std::result::Result<Vec<String>, crypto::Error>>()
            })
            .await
            .map_err(|e| AppError::Internal(format!("encrypting a message: {e}")))??
        };
        let mut encrypted = encrypted.into_iter();
        let (Some(enc_metadata), Some(enc_data)) = (encrypted.next(), encrypted.next()) else {
            return Err(AppError::Internal(
                "encryption returned too few parts".into(),
            ));
        };

        let client = ApiClient {
            client_id: EMAIL_CHANNEL_CLIENT.into(),
            name: "E-Mail-Kanal der ePoststelle".into(),
            authority_ars: rec.authority_ars.clone(),
            scopes: vec![SCOPE_SEND.into()],
        };
        let version = zustelldienst::ApiVersion::V2;
        let created = self
            .zd_create_submission(
                &client,
                version,
                &json!({
                    "destinationId": rec.id,
                    "announcedAttachments": parts.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
                    "publicService": {"identifier": EMAIL_SERVICE, "name": EMAIL_SERVICE_NAME},
                }),
            )
            .await?;
        let submission_id = created["submissionId"]
            .as_str()
            .ok_or_else(|| AppError::Internal("created submission without id".into()))?
            .to_owned();
        for (p, jwe) in parts.iter().zip(encrypted) {
            self.zd_upload_attachment(&client, &submission_id, &p.id, jwe.as_bytes())
                .await?;
        }
        let info = AnswerInfo {
            answer_to: if suppressed.is_none() {
                answer_to
            } else {
                None
            },
            suppressed,
            subject: parsed.subject.clone(),
            message_id: parsed.message_id.clone(),
            files: parts
                .iter()
                .map(|p| {
                    (
                        p.id.clone(),
                        (
                            p.filename.clone(),
                            p.mime_type.clone(),
                            p.bytes.len() as u64,
                        ),
                    )
                })
                .collect(),
            auth: auth.clone(),
            signature: serde_json::to_value(&parsed.signature).unwrap_or(Value::Null),
        };
        let info = serde_json::to_vec(&info).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .email_message_insert(
                &store::NewEmailMessage {
                    submission_id: submission_id.clone(),
                    destination_id: rec.id.clone(),
                    content_sha256: content_sha256.to_owned(),
                    answer_wrapped: self.kek.wrap(&answer_aad(&submission_id), &info),
                },
                now,
            )
            .await?;
        self.zd_submit(
            &client,
            version,
            &submission_id,
            &json!({"encryptedMetadata": enc_metadata, "encryptedData": enc_data}),
        )
        .await?;
        Ok(submission_id)
    }

    /// Answers senders of decided messages until stopped.
    pub async fn run_email_answers(self: Arc<Self>) {
        let mut last_cleanup = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = std::time::Instant::now();
                let before = OffsetDateTime::now_utc() - DUPLICATE_WINDOW;
                if let Err(e) = self.store.email_abandon_unsubmitted(before).await {
                    tracing::warn!(error = %e, "e-mail channel cleanup");
                }
            }
            match self.answer_emails_once(OffsetDateTime::now_utc()).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "e-mail answers"),
            }
            tokio::select! {
                () = self.receipt_wake.notified() => {}
                () = tokio::time::sleep(ANSWER_POLL) => {}
            }
        }
    }

    /// One pass over decided messages: queues each answer (or notes why none goes out).
    pub async fn answer_emails_once(&self, now: OffsetDateTime) -> Result<usize> {
        let due = self.store.email_answers_due(ANSWER_BATCH).await?;
        let mut done = 0;
        for d in due {
            let info: Option<AnswerInfo> = d.answer_wrapped.as_deref().and_then(|w| {
                let plain = self.kek.unwrap(&answer_aad(&d.submission_id), w).ok()?;
                serde_json::from_slice(&plain).ok()
            });
            let Some(info) = info else {
                // Wrapped under another KEK (a restore with the wrong key file) or damaged:
                // the submission itself is fine, only its sender cannot be answered.
                tracing::warn!(submission = %d.submission_id, "the answer data of an e-mail cannot be read; the sender gets no answer");
                self.store
                    .email_answer_done(
                        &d.submission_id,
                        None,
                        "suppressed",
                        "answer data unreadable",
                        now,
                    )
                    .await?;
                done += 1;
                continue;
            };
            let (state, note, mail) = match (&info.answer_to, &info.suppressed) {
                (Some(to), None) => {
                    let since = now - time::Duration::hours(1);
                    let sent = self
                        .store
                        .count_mails_since(to, "email_answer", since)
                        .await?;
                    if sent >= self.email().answers_per_address_per_hour {
                        (
                            "suppressed",
                            format!("more than {sent} answers to this address in an hour"),
                            None,
                        )
                    } else {
                        let (subject, body) = self.email_answer_text(&d.receipt, &info);
                        (
                            "answered",
                            "queued".to_owned(),
                            Some((to.clone(), subject, body)),
                        )
                    }
                }
                (_, Some(why)) => ("suppressed", why.clone(), None),
                (None, None) => ("suppressed", "no answer address".to_owned(), None),
            };
            let new_mail = mail.as_ref().map(|(to, subject, body)| store::NewMail {
                recipient: to,
                subject,
                body_text: body,
                purpose: "email_answer",
            });
            if self
                .store
                .email_answer_done(&d.submission_id, new_mail.as_ref(), state, &note, now)
                .await?
                && new_mail.is_some()
            {
                self.mail_wake.notify_one();
            }
            done += 1;
        }
        Ok(done)
    }

    /// The answer's subject and text (German, with an English line for senders abroad).
    fn email_answer_text(&self, r: &store::ReceiptRecord, info: &AnswerInfo) -> (String, String) {
        let claims: Value = serde_json::from_str(&r.claims).unwrap_or(Value::Null);
        let authority = claims["authority"]["ars"]
            .as_str()
            .and_then(|a| domain::Ars::parse(a).ok())
            .and_then(|ars| self.directory().authority(&ars).map(|a| a.name.clone()))
            .unwrap_or_else(|| "der ePoststelle".to_owned());
        let received = claims["receivedAt"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(crate::receipt_delivery::german_datetime)
            .unwrap_or_default();
        let subject_line = info
            .subject
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "(ohne Betreff)".into());
        let accepted = r.decision == "accepted";
        let file_of = |instance: &str| -> String {
            instance
                .strip_prefix("attachment:")
                .and_then(|id| info.files.get(id))
                .map(|(name, _, _)| format!("„{name}“"))
                .unwrap_or_else(|| {
                    if instance == "data" {
                        "der Nachrichtentext".into()
                    } else {
                        instance.to_owned()
                    }
                })
        };
        let mut b = String::new();
        b.push_str("Guten Tag,\n\n");
        if accepted {
            b.push_str(&format!(
                "Ihre E-Mail ist am {received} bei {authority} eingegangen. Die ePoststelle hat sie geprüft und angenommen; sie liegt jetzt der zuständigen Stelle vor.\n\n"
            ));
        } else {
            b.push_str(&format!(
                "Ihre E-Mail vom {received} an {authority} konnte nicht angenommen werden. Sie gilt als nicht zugegangen.\n\nGründe:\n"
            ));
            for p in claims["decision"]["problems"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let instance = p["instance"].as_str().unwrap_or("");
                let title = p["title"].as_str().unwrap_or("");
                let detail = p["detail"].as_str().unwrap_or("");
                b.push_str(&format!("- {}: {title}. {detail}\n", file_of(instance)));
            }
            b.push_str(
                "\nBitte senden Sie Ihre Nachricht ohne die beanstandeten Teile erneut.\n\n",
            );
        }
        b.push_str(&format!(
            "Betreff: {subject_line}\nVorgangsnummer: {}\n\n",
            r.case_id
        ));
        b.push_str("Eingegangen sind:\n- der Nachrichtentext\n");
        let parts = claims["parts"].as_array().cloned().unwrap_or_default();
        for (id, (name, mime, size)) in &info.files {
            if name == "original.eml" || name == "nachricht.html" {
                continue;
            }
            let scan = parts
                .iter()
                .find(|p| p["instance"].as_str() == Some(&format!("attachment:{id}")))
                .and_then(|p| p["scan"].as_str().map(str::to_owned));
            let scan = match scan.as_deref() {
                Some("clean") => "ohne Befund".to_owned(),
                Some(s) if s.starts_with("infected") => format!(
                    "Schadsoftware gefunden ({})",
                    s.trim_start_matches("infected: ")
                ),
                Some(s) => s.to_owned(),
                None => "nicht geprüft".to_owned(),
            };
            b.push_str(&format!(
                "- {name} ({mime}, {}; Virenprüfung: {scan})\n",
                human_size(*size)
            ));
        }
        b.push_str("\nPrüfbericht:\n");
        let engine = claims["scanner"]["engine"].as_str().unwrap_or("ClamAV");
        b.push_str(&format!("- Virenprüfung: {engine}\n"));
        let hashes_ok = parts.iter().all(|p| p["hashOk"].as_bool() != Some(false));
        b.push_str(&format!(
            "- Unversehrtheit (SHA-512 jedes Teils): {}\n",
            if hashes_ok {
                "in Ordnung"
            } else {
                "Abweichung"
            }
        ));
        let dkim = info.auth["dkim"].as_array().cloned().unwrap_or_default();
        if dkim.is_empty() {
            b.push_str("- DKIM: die Nachricht ist nicht DKIM-signiert\n");
        }
        for d in &dkim {
            b.push_str(&format!(
                "- DKIM ({}): {}\n",
                d["domain"].as_str().unwrap_or("?"),
                auth_word(d["result"].as_str().unwrap_or(""))
            ));
        }
        for (name, key) in [("SPF", "spf"), ("DMARC", "dmarc")] {
            b.push_str(&format!(
                "- {name}: {}\n",
                auth_word(info.auth[key]["result"].as_str().unwrap_or("not-checked"))
            ));
        }
        if let Some(kind) = info.signature["kind"].as_str() {
            let kind = if kind == "smime" { "S/MIME" } else { "OpenPGP" };
            let result = match info.signature["result"].as_str() {
                Some("valid") => "gültig (Zertifikat nicht gegen eine Vertrauensstelle geprüft)",
                Some("invalid") => "ungültig",
                _ => "vorhanden, nicht prüfbar",
            };
            b.push_str(&format!("- Signatur der Nachricht ({kind}): {result}\n"));
        }
        b.push_str(&format!(
            "\nDiese Bestätigung ist im öffentlichen Journal der ePoststelle nachgewiesen (Eingang {}).\n\
             Dies ist eine automatisch erzeugte Nachricht.\n\n\
             This is an automatic {} from the authority's electronic mailroom (case {}).\n",
            r.submission_id,
            if accepted { "confirmation of receipt" } else { "notice: your message was NOT accepted and counts as not received" },
            r.case_id
        ));
        let subject = if accepted {
            format!("Eingangsbestätigung: {subject_line}")
        } else {
            format!("Nicht angenommen: {subject_line}")
        };
        (subject, b)
    }
}

fn auth_word(r: &str) -> &'static str {
    match r {
        "pass" => "bestanden",
        "fail" => "nicht bestanden",
        "softfail" => "nicht bestanden (weich)",
        "neutral" => "neutral",
        "none" => "keine Angabe des Absenders",
        "temperror" => "vorübergehend nicht prüfbar",
        "permerror" => "fehlerhafte Angaben",
        _ => "nicht geprüft",
    }
}

fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{} KB", n.div_ceil(1024))
    } else {
        format!("{n} Bytes")
    }
}

/// The message as the client sent it: our own `Received:` trace field (the first field, with
/// its continuation lines) taken off, so that a message sent again hashes the same.
fn without_trace_header(raw: &[u8]) -> &[u8] {
    if !raw.starts_with(b"Received:") {
        return raw;
    }
    let mut i = 0;
    while let Some(pos) = raw[i..].iter().position(|&b| b == b'\n') {
        let next = i + pos + 1;
        match raw.get(next) {
            Some(b' ') | Some(b'\t') => i = next,
            _ => return &raw[next..],
        }
    }
    raw
}

/// An address the answer may go to: ASCII, one `@`, no spaces or brackets.
fn plain_address(a: &str) -> Option<String> {
    let a = a.trim();
    let (local, domain) = a.rsplit_once('@')?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && domain.len() <= 253
        && a.is_ascii()
        && !a
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b"<>()[],;:\\\"".contains(&b));
    ok.then(|| a.to_owned())
}

/// Mailboxes of mail systems (RFC 3834 § 2: never answer them automatically).
fn is_machine_address(a: &str) -> bool {
    let local = a
        .rsplit_once('@')
        .map(|(l, _)| l)
        .unwrap_or(a)
        .to_ascii_lowercase();
    [
        "mailer-daemon",
        "postmaster",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "bounce",
        "bounces",
    ]
    .iter()
    .any(|m| {
        local == *m || local.starts_with(&format!("{m}+")) || local.starts_with(&format!("{m}-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_header_is_taken_off() {
        let raw = b"Received: from x ([192.0.2.1])\r\n\tby y; Fri, 4 Dec 2026\r\nFrom: a@b.example\r\n\r\nx\r\n";
        assert_eq!(without_trace_header(raw), b"From: a@b.example\r\n\r\nx\r\n");
        assert_eq!(without_trace_header(b"From: a\r\n\r\n"), b"From: a\r\n\r\n");
    }

    #[test]
    fn answers_go_to_people_only() {
        assert!(plain_address("erika@buerger.example").is_some());
        assert!(plain_address("erika@localhost").is_none());
        assert!(plain_address("a b@x.example").is_none());
        assert!(plain_address("").is_none());
        assert!(is_machine_address("MAILER-DAEMON@x.example"));
        assert!(is_machine_address("noreply+abc@x.example"));
        assert!(!is_machine_address("erika@x.example"));
    }
}
