//! The Postfach: messages from authorities and replies, their attachments (as blob keys),
//! and the delivery steps of OZG § 9 (placed, notified, first opened, replied). The steps are
//! recorded in the journal (RFC 9162 Merkle log, `store::journal`), queued in the same
//! transaction as the change: a step is journalled if and only if it happened, and anyone
//! holding a signed tree head can check it. (Migration 0010 froze the older hash chain
//! `postfach_log`; nothing writes to it any more.)

use sqlx::Row;
use time::OffsetDateTime;

use crate::{NewMail, Result, Store, ts};

#[derive(Debug, Clone)]
pub struct NewPostfachMessage<'a> {
    pub id: &'a str,
    pub postfach_ref: &'a str,
    /// `in` (from an authority) or `reply` (from the citizen to the authority).
    pub direction: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub sender_client_id: Option<&'a str>,
    pub sender_name: &'a str,
    pub sender_ars: Option<&'a str>,
    pub author_account_id: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub min_trust_level: i64,
    pub reply_allowed: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachmentRecord {
    pub id: String,
    pub message_id: String,
    pub position: i64,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub blob_key: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PostfachMessage {
    pub id: String,
    pub postfach_ref: String,
    pub direction: String,
    pub in_reply_to: Option<String>,
    pub sender_client_id: Option<String>,
    pub sender_name: String,
    pub sender_ars: Option<String>,
    pub author_account_id: Option<String>,
    pub subject: String,
    pub body: String,
    pub min_trust_level: i64,
    pub reply_allowed: bool,
    pub placed_at: String,
    pub notified_at: Option<String>,
    pub first_opened_at: Option<String>,
    /// The salt of the `content` digest in the journal (`None` for messages placed before
    /// migration 0010).
    pub content_salt: Option<String>,
    pub attachment_count: i64,
}

/// One delivery step of a message as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostfachLogEntry {
    /// `placed`, `replied`, `notified` or `opened`.
    pub event: String,
    /// RFC 3339, from the entry's milliseconds.
    pub at: String,
    /// The leaf index in the journal; `None` while the entry waits for the sequencer
    /// (seconds at most).
    pub journal_index: Option<u64>,
    /// Hex SHA-256 leaf hash (RFC 9162: over `0x00 ‖ entry`), the same before and after
    /// sequencing.
    pub leaf_hash: String,
    /// The entry's canonical JSON, the exact bytes the leaf hash covers.
    pub entry: String,
}

/// The digest a `placed`/`replied` journal entry holds as `content`: SHA-256 over the JSON
/// `{"attachments":[{"filename","sha256","size"}…],"body","id","salt","subject"}` (keys in
/// this order, serde_json's escaping, no whitespace). The random salt keeps short, guessable
/// messages from being found by trying candidates against the public journal; sender and
/// recipient get it with the message, and with it can show a third party what was placed.
pub fn postfach_content_digest(
    id: &str,
    salt: &str,
    subject: &str,
    body: &str,
    attachments: &[AttachmentRecord],
) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        filename: &'a str,
        sha256: &'a str,
        size: i64,
    }
    #[derive(serde::Serialize)]
    struct Content<'a> {
        attachments: Vec<File<'a>>,
        body: &'a str,
        id: &'a str,
        salt: &'a str,
        subject: &'a str,
    }
    let content = Content {
        attachments: attachments
            .iter()
            .map(|a| File {
                filename: &a.filename,
                sha256: &a.sha256,
                size: a.size,
            })
            .collect(),
        body,
        id,
        salt,
        subject,
    };
    // Serialising plain strings and integers cannot fail.
    let json = serde_json::to_vec(&content).unwrap_or_default();
    crypto::sha256_hex(&json)
}

fn journal_kind(event: &str) -> Option<journal::Kind> {
    match event {
        "placed" | "replied" => Some(journal::Kind::PostfachPlaced),
        "notified" => Some(journal::Kind::PostfachNotified),
        "opened" => Some(journal::Kind::PostfachOpened),
        _ => None,
    }
}

fn log_entry_from_journal(
    entry_text: &str,
    journal_index: Option<u64>,
) -> Result<Option<PostfachLogEntry>> {
    let entry = journal::Entry::from_canonical(entry_text.as_bytes())
        .map_err(|e| crate::StoreError::Corrupt(format!("journal entry: {e}")))?;
    let event = match (entry.kind, entry.detail.as_deref()) {
        (journal::Kind::PostfachPlaced, Some("reply")) => "replied",
        (journal::Kind::PostfachPlaced, _) => "placed",
        (journal::Kind::PostfachNotified, _) => "notified",
        (journal::Kind::PostfachOpened, _) => "opened",
        _ => return Ok(None),
    };
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(entry.at) * 1_000_000)
        .map_err(|e| crate::StoreError::Corrupt(format!("journal entry time: {e}")))?;
    Ok(Some(PostfachLogEntry {
        event: event.to_owned(),
        at: ts(at),
        journal_index,
        leaf_hash: journal::leaf_hash(entry_text.as_bytes()).to_hex(),
        entry: entry_text.to_owned(),
    }))
}

const MESSAGE_COLUMNS: &str = "m.id, m.postfach_ref, m.direction, m.in_reply_to, m.sender_client_id, \
     m.sender_name, m.sender_ars, m.author_account_id, m.subject, m.body, m.min_trust_level, \
     m.reply_allowed, m.placed_at, m.notified_at, m.first_opened_at, m.content_salt, \
     (SELECT COUNT(*) FROM postfach_attachments a WHERE a.message_id = m.id) AS attachment_count";

fn message_from_row(r: &sqlx::any::AnyRow) -> Result<PostfachMessage> {
    Ok(PostfachMessage {
        id: r.try_get("id")?,
        postfach_ref: r.try_get("postfach_ref")?,
        direction: r.try_get("direction")?,
        in_reply_to: r.try_get("in_reply_to")?,
        sender_client_id: r.try_get("sender_client_id")?,
        sender_name: r.try_get("sender_name")?,
        sender_ars: r.try_get("sender_ars")?,
        author_account_id: r.try_get("author_account_id")?,
        subject: r.try_get("subject")?,
        body: r.try_get("body")?,
        min_trust_level: r.try_get("min_trust_level")?,
        reply_allowed: r.try_get::<i64, _>("reply_allowed")? != 0,
        placed_at: r.try_get("placed_at")?,
        notified_at: r.try_get("notified_at")?,
        first_opened_at: r.try_get("first_opened_at")?,
        content_salt: r.try_get("content_salt")?,
        attachment_count: r.try_get("attachment_count")?,
    })
}

/// Queues the journal entry of one delivery step inside the caller's write transaction.
/// No lock: the journal's sequencer orders entries, so Postfach writes of different
/// messages (and nodes) no longer wait for each other.
async fn journal_step(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    message_id: &str,
    tenant: &str,
    event: &str,
    content_digest: Option<&str>,
    at: &str,
) -> Result<()> {
    let Some(kind) = journal_kind(event) else {
        return Ok(());
    };
    let at_ms = crate::parse_ts(at)?.unix_timestamp_nanos() / 1_000_000;
    let entry = journal::Entry {
        at: i64::try_from(at_ms).unwrap_or(i64::MAX),
        detail: (event == "replied").then(|| "reply".to_owned()),
        digests: content_digest
            .map(|d| ("content".to_owned(), d.to_owned()))
            .into_iter()
            .collect(),
        kind,
        subject: format!("postfach:{message_id}"),
        tenant: tenant.to_owned(),
    };
    crate::journal::enqueue_journal_entry(tx, &entry).await
}

/// Whose a message's steps are in the journal: the sending authority's ARS, else the
/// Servicekonto (replies, messages of clients without an ARS).
fn journal_tenant(sender_ars: Option<&str>) -> &str {
    sender_ars.unwrap_or("servicekonto")
}

impl Store {
    /// Places a message with its attachments (already in blob storage), logs `placed` (or
    /// `replied`), and queues the notification mails — all in one transaction, so a message
    /// is never placed without its notice being due.
    pub async fn place_postfach_message(
        &self,
        m: &NewPostfachMessage<'_>,
        attachments: &[AttachmentRecord],
        notify: &[NewMail<'_>],
        now: OffsetDateTime,
    ) -> Result<String> {
        let at = ts(now);
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO postfach_messages (id, postfach_ref, direction, in_reply_to, sender_client_id, \
                 sender_name, sender_ars, author_account_id, subject, body, min_trust_level, reply_allowed, placed_at, \
                 content_salt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(m.id)
        .bind(m.postfach_ref)
        .bind(m.direction)
        .bind(m.in_reply_to)
        .bind(m.sender_client_id)
        .bind(m.sender_name)
        .bind(m.sender_ars)
        .bind(m.author_account_id)
        .bind(m.subject)
        .bind(m.body)
        .bind(m.min_trust_level)
        .bind(i64::from(m.reply_allowed))
        .bind(&at)
        .bind(&salt)
        .execute(&mut *tx)
        .await?;
        for a in attachments {
            sqlx::query(
                "INSERT INTO postfach_attachments (id, message_id, position, filename, media_type, size, sha256, blob_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&a.id)
            .bind(m.id)
            .bind(a.position)
            .bind(&a.filename)
            .bind(&a.media_type)
            .bind(a.size)
            .bind(&a.sha256)
            .bind(&a.blob_key)
            .execute(&mut *tx)
            .await?;
        }
        let event = if m.in_reply_to.is_some() {
            "replied"
        } else {
            "placed"
        };
        let digest = postfach_content_digest(m.id, &salt, m.subject, m.body, attachments);
        journal_step(
            &mut tx,
            m.id,
            journal_tenant(m.sender_ars),
            event,
            Some(&digest),
            &at,
        )
        .await?;
        for mail in notify {
            crate::outbox::enqueue_mail_in(&mut tx, mail, &at, m.id).await?;
        }
        tx.commit().await?;
        Ok(at)
    }

    pub async fn postfach_message(&self, id: &str) -> Result<Option<PostfachMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM postfach_messages m WHERE m.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// One page of a Postfach's incoming messages, newest first. The page's ids come from
    /// the index alone; only those rows are read (and their attachments counted).
    pub async fn postfach_inbox(
        &self,
        postfach_ref: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<PostfachMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM postfach_messages m \
             WHERE m.id IN (SELECT p.id FROM postfach_messages p \
                 WHERE p.postfach_ref = $1 AND p.direction = 'in' \
                 ORDER BY p.placed_at DESC, p.id DESC LIMIT $2 OFFSET $3) \
             ORDER BY m.placed_at DESC, m.id DESC"
        ))
        .bind(postfach_ref)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// (all incoming, unopened) messages of a Postfach, counted in one pass over an index
    /// that holds every column the count needs.
    pub async fn postfach_counts(&self, postfach_ref: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, \
                    COALESCE(SUM(CASE WHEN first_opened_at IS NULL THEN 1 ELSE 0 END), 0) AS unread \
             FROM postfach_messages WHERE postfach_ref = $1 AND direction = 'in'",
        )
        .bind(postfach_ref)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("total")?, row.try_get("unread")?))
    }

    pub async fn postfach_replies(&self, message_id: &str) -> Result<Vec<PostfachMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM postfach_messages m \
             WHERE m.in_reply_to = $1 ORDER BY m.placed_at"
        ))
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Replies to messages this client sent, oldest first, after `since` (a `placed_at`).
    pub async fn postfach_replies_for_client(
        &self,
        client_id: &str,
        since: &str,
        limit: i64,
    ) -> Result<Vec<PostfachMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM postfach_messages m \
             JOIN postfach_messages o ON o.id = m.in_reply_to \
             WHERE o.sender_client_id = $1 AND m.direction = 'reply' AND m.placed_at > $2 \
             ORDER BY m.placed_at LIMIT $3"
        ))
        .bind(client_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn postfach_attachments(&self, message_id: &str) -> Result<Vec<AttachmentRecord>> {
        let rows = sqlx::query(
            "SELECT id, message_id, position, filename, media_type, size, sha256, blob_key \
             FROM postfach_attachments WHERE message_id = $1 ORDER BY position",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttachmentRecord {
                    id: r.try_get("id")?,
                    message_id: r.try_get("message_id")?,
                    position: r.try_get("position")?,
                    filename: r.try_get("filename")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get("size")?,
                    sha256: r.try_get("sha256")?,
                    blob_key: r.try_get("blob_key")?,
                })
            })
            .collect()
    }

    /// Records the first opening (and logs it). False if it was opened before.
    pub async fn mark_postfach_opened(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        self.mark_postfach_once(id, "first_opened_at", "opened", now)
            .await
    }

    /// Records that the notification mail left (and logs it). False if recorded before.
    pub async fn mark_postfach_notified(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        self.mark_postfach_once(id, "notified_at", "notified", now)
            .await
    }

    async fn mark_postfach_once(
        &self,
        id: &str,
        column: &'static str,
        event: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let at = ts(now);
        let mut tx = self.begin_write().await?;
        // RETURNING tells in one statement whether this call made the change, and whose
        // message it is (the journal entry's tenant).
        let changed = sqlx::query(&format!(
            "UPDATE postfach_messages SET {column} = $2 WHERE id = $1 AND {column} IS NULL \
             RETURNING sender_ars"
        ))
        .bind(id)
        .bind(&at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = &changed {
            let ars: Option<String> = row.try_get("sender_ars")?;
            journal_step(
                &mut tx,
                id,
                journal_tenant(ars.as_deref()),
                event,
                None,
                &at,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed.is_some())
    }

    /// The delivery steps of a message from the journal, in order: the sequenced entries,
    /// then those still queued for the sequencer.
    pub async fn postfach_log(&self, message_id: &str) -> Result<Vec<PostfachLogEntry>> {
        let subject = format!("postfach:{message_id}");
        // The queue first: an entry the sequencer moves in between is then seen in both
        // reads (and kept once), never in neither.
        let queued = self.journal_queued_for_subject(&subject).await?;
        let leaves = self.journal_entries_for_subject(&subject).await?;
        let mut out = Vec::with_capacity(leaves.len() + queued.len());
        for leaf in &leaves {
            if let Some(e) = log_entry_from_journal(&leaf.entry, Some(leaf.seq))? {
                out.push(e);
            }
        }
        for text in queued {
            if leaves.iter().any(|l| l.entry == text) {
                continue;
            }
            if let Some(e) = log_entry_from_journal(&text, None)? {
                out.push(e);
            }
        }
        Ok(out)
    }
}
