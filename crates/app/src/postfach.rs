//! The Postfach: authorities deliver messages with attachments (through the API, with
//! OAuth2 client credentials), citizens read them at the trust level each message needs, and
//! answer where the authority allows it. OZG § 9: *placed*, *notified* (the notice mail has
//! left), *first opened* are each recorded once, in the hash-chained delivery log, and shown
//! to the sending authority with the deemed delivery date.

use domain::TrustLevel;
use store::{AttachmentRecord, NewMail, NewPostfachMessage, PostfachLogEntry, PostfachMessage};
use time::OffsetDateTime;

use crate::mails::MailLang;
use crate::oauth::ApiClient;
use crate::{App, AppError, Result, Session};

/// Limits of the Postfach; the defaults beat BundID's 5 × 2 MB by far.
#[derive(Debug, Clone)]
pub struct PostfachSettings {
    pub max_files: usize,
    pub max_file_bytes: u64,
    pub max_subject_chars: usize,
    pub max_body_chars: usize,
}

impl Default for PostfachSettings {
    fn default() -> Self {
        PostfachSettings {
            max_files: 20,
            max_file_bytes: 20 * 1024 * 1024,
            max_subject_chars: 250,
            max_body_chars: 100_000,
        }
    }
}

/// What an authority (or a replying citizen) sends, before attachments.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub min_trust_level: TrustLevel,
    pub reply_allowed: bool,
}

/// An attachment already written to blob storage.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub id: String,
    pub filename: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub blob_key: String,
}

/// A message as its reader (or its sender) sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    #[serde(flatten)]
    pub message: PostfachMessage,
    /// Hidden because the session's trust level is too low.
    pub locked: bool,
    pub deemed_delivery: String,
}

/// Whom a Postfach reference belongs to, and who is told of new messages.
pub(crate) struct Owner {
    notify: Vec<(String, MailLang)>,
}

/// An incoming message to place (see [`App::place_incoming`]).
pub(crate) struct Incoming<'a> {
    pub id: &'a str,
    pub recipient: &'a str,
    pub sender_client_id: Option<&'a str>,
    pub sender_name: &'a str,
    pub sender_ars: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub min_trust_level: i64,
    pub reply_allowed: bool,
}

pub(crate) fn is_valid_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 150
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~/".contains(c))
}

/// A file name safe to store and to offer for download: no paths, no control characters.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*'))
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "anhang".into()
    } else {
        cleaned
    }
}

/// A media type as `type/subtype`, or `application/octet-stream` if it is not one.
pub fn clean_media_type(mt: &str) -> String {
    let mt = mt
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = mt.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && mt.len() <= 100
            && mt
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-.+".contains(c))
    });
    if ok {
        mt
    } else {
        "application/octet-stream".into()
    }
}

fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn deemed(m: &PostfachMessage) -> String {
    match parse_ts(&m.placed_at) {
        Some(placed) => domain::postfach::deemed_delivery(
            placed,
            m.first_opened_at.as_deref().and_then(parse_ts),
        )
        .to_string(),
        None => String::new(),
    }
}

impl App {
    pub fn postfach_settings(&self) -> &PostfachSettings {
        &self.settings.postfach
    }

    pub fn blobs(&self) -> &blobs::Blobs {
        &self.blobs
    }

    /// A new blob key for an attachment of a message that is being delivered.
    pub fn new_attachment_key(&self) -> (String, String) {
        let id = uuid::Uuid::new_v4().to_string();
        let key = format!("postfach/{}/{id}", &id[..2]);
        (id, key)
    }

    pub(crate) async fn postfach_owner(&self, postfach_ref: &str) -> Result<Option<Owner>> {
        if let Some(a) = self.store.account_by_postfach_ref(postfach_ref).await? {
            return Ok(Some(Owner {
                notify: vec![(a.email, MailLang::parse(&a.lang))],
            }));
        }
        if let Some(org) = self
            .store
            .organisation_by_postfach_ref(postfach_ref)
            .await?
        {
            let members = self.store.organisation_members(&org.id).await?;
            return Ok(Some(Owner {
                notify: members
                    .into_iter()
                    .filter(|m| m.postfach_access)
                    .map(|m| (m.email, MailLang::De))
                    .collect(),
            }));
        }
        Ok(None)
    }

    /// The Postfach references this session may read: its own, and those of organisations
    /// where it has Postfach access. (reference, label)
    pub async fn readable_postfaecher(&self, session: &Session) -> Result<Vec<(String, String)>> {
        let mut refs = vec![(session.postfach_ref.clone(), session.email.clone())];
        refs.extend(
            self.store
                .organisation_postfach_refs(&session.account_id)
                .await?,
        );
        Ok(refs)
    }

    fn check_message(&self, m: &NewMessage) -> Result<()> {
        let limits = &self.settings.postfach;
        if m.subject.trim().is_empty() {
            return Err(AppError::InvalidField {
                field: "subject",
                message: "subject is empty".into(),
            });
        }
        if m.subject.chars().count() > limits.max_subject_chars {
            return Err(AppError::InvalidField {
                field: "subject",
                message: format!(
                    "subject has more than {} characters",
                    limits.max_subject_chars
                ),
            });
        }
        if m.body.trim().is_empty() {
            return Err(AppError::InvalidField {
                field: "body",
                message: "body is empty".into(),
            });
        }
        if m.body.chars().count() > limits.max_body_chars {
            return Err(AppError::InvalidField {
                field: "body",
                message: format!("body has more than {} characters", limits.max_body_chars),
            });
        }
        Ok(())
    }

    /// An authority delivers a message. Attachments must already be in blob storage; they
    /// are deleted again if the message cannot be placed.
    pub async fn deliver_postfach_message(
        &self,
        client: &ApiClient,
        m: &NewMessage,
        attachments: &[StoredAttachment],
    ) -> Result<PostfachMessage> {
        let result = self.deliver_inner(client, m, attachments).await;
        if result.is_err() {
            for a in attachments {
                let _ = self.blobs.delete(&a.blob_key).await;
            }
        }
        result
    }

    async fn deliver_inner(
        &self,
        client: &ApiClient,
        m: &NewMessage,
        attachments: &[StoredAttachment],
    ) -> Result<PostfachMessage> {
        if !is_valid_ref(&m.recipient) {
            return Err(AppError::InvalidField {
                field: "recipient",
                message: "a Postfach reference consists of a-z, 0-9 and -._~/ (at most 150)".into(),
            });
        }
        self.check_message(m)?;
        let Some(owner) = self.postfach_owner(&m.recipient).await? else {
            return Err(AppError::InvalidField {
                field: "recipient",
                message: "no Postfach has this reference".into(),
            });
        };
        let id = uuid::Uuid::new_v4().to_string();
        let sender_name = match client
            .authority_ars
            .as_deref()
            .and_then(|a| domain::Ars::parse(a).ok())
        {
            Some(ars) => self
                .directory()
                .authority(&ars)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| client.name.clone()),
            None => client.name.clone(),
        };
        let records: Vec<AttachmentRecord> = attachments
            .iter()
            .enumerate()
            .map(|(i, a)| AttachmentRecord {
                id: a.id.clone(),
                message_id: id.clone(),
                position: i as i64,
                filename: a.filename.clone(),
                media_type: a.media_type.clone(),
                size: a.size as i64,
                sha256: a.sha256.clone(),
                blob_key: a.blob_key.clone(),
            })
            .collect();
        self.place_incoming(
            &Incoming {
                id: &id,
                recipient: &m.recipient,
                sender_client_id: Some(&client.client_id),
                sender_name: &sender_name,
                sender_ars: client.authority_ars.as_deref(),
                subject: m.subject.trim(),
                body: &m.body,
                min_trust_level: i64::from(m.min_trust_level.as_u8()),
                reply_allowed: m.reply_allowed,
            },
            &owner,
            &records,
        )
        .await?;
        self.store
            .postfach_message(&id)
            .await?
            .ok_or_else(|| AppError::Internal("placed message vanished".into()))
    }

    /// Places an incoming message (attachments already in blob storage) with the notice
    /// mails to its owner, in one transaction.
    pub(crate) async fn place_incoming(
        &self,
        m: &Incoming<'_>,
        owner: &Owner,
        records: &[AttachmentRecord],
    ) -> Result<()> {
        let texts: Vec<(String, crate::mails::MailText)> = owner
            .notify
            .iter()
            .map(|(to, lang)| {
                (
                    to.clone(),
                    crate::mails::postfach_notice(
                        *lang,
                        m.sender_name,
                        &format!("{}/postfach/{}", self.settings.public_url, m.id),
                    ),
                )
            })
            .collect();
        let notify: Vec<NewMail<'_>> = texts
            .iter()
            .map(|(to, t)| NewMail {
                recipient: to,
                subject: &t.subject,
                body_text: &t.body,
                purpose: "postfach_notice",
            })
            .collect();
        self.store
            .place_postfach_message(
                &NewPostfachMessage {
                    id: m.id,
                    postfach_ref: m.recipient,
                    direction: "in",
                    in_reply_to: None,
                    sender_client_id: m.sender_client_id,
                    sender_name: m.sender_name,
                    sender_ars: m.sender_ars,
                    author_account_id: None,
                    subject: m.subject,
                    body: m.body,
                    min_trust_level: m.min_trust_level,
                    reply_allowed: m.reply_allowed,
                },
                records,
                &notify,
                OffsetDateTime::now_utc(),
            )
            .await?;
        self.mail_wake.notify_one();
        Ok(())
    }

    /// The state of a message for the authority that sent it: delivery dates, replies, log.
    pub async fn postfach_status_for_sender(
        &self,
        client: &ApiClient,
        id: &str,
    ) -> Result<(MessageView, Vec<PostfachMessage>, Vec<PostfachLogEntry>)> {
        let m = self
            .store
            .postfach_message(id)
            .await?
            .filter(|m| m.sender_client_id.as_deref() == Some(client.client_id.as_str()))
            .ok_or_else(|| AppError::NotFound(format!("no message {id} sent by this client")))?;
        let replies = self.store.postfach_replies(id).await?;
        let log = self.store.postfach_log(id).await?;
        let deemed_delivery = deemed(&m);
        Ok((
            MessageView {
                message: m,
                locked: false,
                deemed_delivery,
            },
            replies,
            log,
        ))
    }

    /// Replies to this client's messages after `since` (a `placedAt` from an earlier page).
    pub async fn postfach_replies_for(
        &self,
        client: &ApiClient,
        since: &str,
    ) -> Result<Vec<PostfachMessage>> {
        Ok(self
            .store
            .postfach_replies_for_client(&client.client_id, since, 100)
            .await?)
    }

    /// One attachment of a message, if `client` sent the message or a reply to it went to them.
    pub async fn postfach_attachment_for_client(
        &self,
        client: &ApiClient,
        message_id: &str,
        position: i64,
    ) -> Result<AttachmentRecord> {
        let m = self
            .store
            .postfach_message(message_id)
            .await?
            .ok_or_else(|| AppError::NotFound("message".into()))?;
        let sender = match &m.in_reply_to {
            Some(original) => self
                .store
                .postfach_message(original)
                .await?
                .and_then(|o| o.sender_client_id),
            None => m.sender_client_id.clone(),
        };
        if sender.as_deref() != Some(client.client_id.as_str()) {
            return Err(AppError::NotFound("message".into()));
        }
        self.store
            .postfach_attachments(message_id)
            .await?
            .into_iter()
            .find(|a| a.position == position)
            .ok_or_else(|| AppError::NotFound("attachment".into()))
    }

    /// One page of a Postfach the session may read. Messages above the session's trust level
    /// are listed as locked, without subject and sender.
    pub async fn postfach_page(
        &self,
        session: &Session,
        postfach_ref: &str,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<MessageView>, i64, i64)> {
        self.check_readable(session, postfach_ref).await?;
        let (total, unread) = self.store.postfach_counts(postfach_ref).await?;
        let list = self
            .store
            .postfach_inbox(postfach_ref, per_page, page.max(0) * per_page)
            .await?;
        let views = list
            .into_iter()
            .map(|mut m| {
                let locked = !self.level_ok(session, m.min_trust_level);
                if locked {
                    m.subject = String::new();
                    m.body = String::new();
                }
                let deemed_delivery = deemed(&m);
                MessageView {
                    message: m,
                    locked,
                    deemed_delivery,
                }
            })
            .collect();
        Ok((views, total, unread))
    }

    fn level_ok(&self, session: &Session, min: i64) -> bool {
        let required = u8::try_from(min)
            .ok()
            .and_then(TrustLevel::from_u8)
            .unwrap_or(TrustLevel::Level4);
        session.trust_level.meets(required)
    }

    async fn check_readable(&self, session: &Session, postfach_ref: &str) -> Result<()> {
        if self
            .readable_postfaecher(session)
            .await?
            .iter()
            .any(|(r, _)| r == postfach_ref)
        {
            Ok(())
        } else {
            Err(AppError::NotFound("Postfach".into()))
        }
    }

    /// Opens a message: records the first opening (OZG § 9). `Err(Forbidden)` with the
    /// required level if the session's trust level is too low.
    pub async fn open_postfach_message(
        &self,
        session: &Session,
        id: &str,
        client: &crate::ClientInfo,
    ) -> Result<(MessageView, Vec<AttachmentRecord>, Vec<PostfachMessage>)> {
        let m = self
            .store
            .postfach_message(id)
            .await?
            .ok_or_else(|| AppError::NotFound("message".into()))?;
        self.check_readable(session, &m.postfach_ref).await?;
        if m.direction != "in" {
            return Err(AppError::NotFound("message".into()));
        }
        if !self.level_ok(session, m.min_trust_level) {
            return Err(AppError::TrustLevelTooLow {
                required: u8::try_from(m.min_trust_level).unwrap_or(4),
            });
        }
        let now = OffsetDateTime::now_utc();
        if self.store.mark_postfach_opened(id, now).await? {
            self.event_for_postfach(session, "postfach_opened", client, id)
                .await?;
        }
        let m = self
            .store
            .postfach_message(id)
            .await?
            .ok_or_else(|| AppError::NotFound("message".into()))?;
        let attachments = self.store.postfach_attachments(id).await?;
        let replies = self.store.postfach_replies(id).await?;
        let deemed_delivery = deemed(&m);
        Ok((
            MessageView {
                message: m,
                locked: false,
                deemed_delivery,
            },
            attachments,
            replies,
        ))
    }

    async fn event_for_postfach(
        &self,
        session: &Session,
        kind: &str,
        client: &crate::ClientInfo,
        id: &str,
    ) -> Result<()> {
        self.store
            .add_security_event(
                Some(&session.account_id),
                kind,
                client.ip.as_deref(),
                client.user_agent.as_deref(),
                Some(id),
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(())
    }

    /// An attachment of a message (or of a reply to it) the session may read.
    pub async fn postfach_attachment(
        &self,
        session: &Session,
        message_id: &str,
        position: i64,
    ) -> Result<AttachmentRecord> {
        let m = self
            .store
            .postfach_message(message_id)
            .await?
            .ok_or_else(|| AppError::NotFound("message".into()))?;
        self.check_readable(session, &m.postfach_ref).await?;
        let original_level = match &m.in_reply_to {
            Some(o) => self
                .store
                .postfach_message(o)
                .await?
                .map_or(m.min_trust_level, |o| o.min_trust_level),
            None => m.min_trust_level,
        };
        if !self.level_ok(session, original_level) {
            return Err(AppError::TrustLevelTooLow {
                required: u8::try_from(original_level).unwrap_or(4),
            });
        }
        self.store
            .postfach_attachments(message_id)
            .await?
            .into_iter()
            .find(|a| a.position == position)
            .ok_or_else(|| AppError::NotFound("attachment".into()))
    }

    /// The citizen answers a message that allows replies (the Rückkanal).
    pub async fn reply_postfach_message(
        &self,
        session: &Session,
        original_id: &str,
        body: &str,
        attachments: &[StoredAttachment],
        client: &crate::ClientInfo,
    ) -> Result<String> {
        let result = self
            .reply_inner(session, original_id, body, attachments, client)
            .await;
        if result.is_err() {
            for a in attachments {
                let _ = self.blobs.delete(&a.blob_key).await;
            }
        }
        result
    }

    async fn reply_inner(
        &self,
        session: &Session,
        original_id: &str,
        body: &str,
        attachments: &[StoredAttachment],
        client: &crate::ClientInfo,
    ) -> Result<String> {
        let original = self
            .store
            .postfach_message(original_id)
            .await?
            .ok_or_else(|| AppError::NotFound("message".into()))?;
        self.check_readable(session, &original.postfach_ref).await?;
        if !self.level_ok(session, original.min_trust_level) {
            return Err(AppError::TrustLevelTooLow {
                required: u8::try_from(original.min_trust_level).unwrap_or(4),
            });
        }
        if !original.reply_allowed || original.direction != "in" {
            return Err(AppError::Invalid("reply_not_allowed".into()));
        }
        let subject = format!("Re: {}", original.subject);
        let subject: String = subject
            .chars()
            .take(self.settings.postfach.max_subject_chars)
            .collect();
        self.check_message(&NewMessage {
            recipient: original.postfach_ref.clone(),
            subject: subject.clone(),
            body: body.into(),
            min_trust_level: TrustLevel::Level1,
            reply_allowed: false,
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let records: Vec<AttachmentRecord> = attachments
            .iter()
            .enumerate()
            .map(|(i, a)| AttachmentRecord {
                id: a.id.clone(),
                message_id: id.clone(),
                position: i as i64,
                filename: a.filename.clone(),
                media_type: a.media_type.clone(),
                size: a.size as i64,
                sha256: a.sha256.clone(),
                blob_key: a.blob_key.clone(),
            })
            .collect();
        self.store
            .place_postfach_message(
                &NewPostfachMessage {
                    id: &id,
                    postfach_ref: &original.postfach_ref,
                    direction: "reply",
                    in_reply_to: Some(original_id),
                    sender_client_id: None,
                    sender_name: &session.email,
                    sender_ars: None,
                    author_account_id: Some(&session.account_id),
                    subject: &subject,
                    body,
                    min_trust_level: original.min_trust_level,
                    reply_allowed: false,
                },
                &records,
                &[],
                OffsetDateTime::now_utc(),
            )
            .await?;
        self.event_for_postfach(session, "postfach_replied", client, original_id)
            .await?;
        Ok(id)
    }
}
