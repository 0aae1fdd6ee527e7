//! The Postfach: messages from authorities and replies, their attachments (as blob keys),
//! and the delivery log of OZG § 9 (placed, notified, first opened, replied) — append-only
//! and hash-chained, so a changed or removed entry shows.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Backend, NewMail, Result, Store, ts};

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
    pub attachment_count: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PostfachLogEntry {
    pub seq: i64,
    pub message_id: String,
    pub event: String,
    pub at: String,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of the log's start.
pub const LOG_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one log entry: covers the previous hash and every field, each on its own line
/// (none of them can contain a newline: ids, event names, timestamps; `detail` is escaped).
pub fn log_entry_hash(
    prev_hash: &str,
    seq: i64,
    message_id: &str,
    event: &str,
    at: &str,
    detail: Option<&str>,
) -> String {
    let detail = detail
        .unwrap_or("")
        .replace('\\', "\\\\")
        .replace('\n', "\\n");
    crypto::sha256_hex(
        format!(
            "rathaus-postfach-log/1\n{prev_hash}\n{seq}\n{message_id}\n{event}\n{at}\n{detail}"
        )
        .as_bytes(),
    )
}

const MESSAGE_COLUMNS: &str = "m.id, m.postfach_ref, m.direction, m.in_reply_to, m.sender_client_id, \
     m.sender_name, m.sender_ars, m.author_account_id, m.subject, m.body, m.min_trust_level, \
     m.reply_allowed, m.placed_at, m.notified_at, m.first_opened_at, \
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
        attachment_count: r.try_get("attachment_count")?,
    })
}

/// Appends to the log inside the caller's write transaction. On PostgreSQL an advisory lock
/// serialises appends of all nodes (SQLite's write lock already does).
async fn append_log(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    message_id: &str,
    event: &str,
    detail: Option<&str>,
    at: &str,
) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7365612001)")
            .execute(&mut **tx)
            .await?;
    }
    let head = sqlx::query("SELECT seq, hash FROM postfach_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (seq, prev) = match head {
        Some(r) => (
            r.try_get::<i64, _>("seq")? + 1,
            r.try_get::<String, _>("hash")?,
        ),
        None => (1, LOG_GENESIS.to_owned()),
    };
    let hash = log_entry_hash(&prev, seq, message_id, event, at, detail);
    sqlx::query(
        "INSERT INTO postfach_log (seq, message_id, event, at, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(message_id)
    .bind(event)
    .bind(at)
    .bind(detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    // The step is anchored in the journal too, in the same transaction: the hash-chained
    // log stays the Postfach's own record, the journal makes it verifiable by third parties
    // with the platform's signed tree heads.
    let kind = match event {
        "placed" | "replied" => Some(journal::Kind::PostfachPlaced),
        "notified" => Some(journal::Kind::PostfachNotified),
        "opened" => Some(journal::Kind::PostfachOpened),
        _ => None,
    };
    if let Some(kind) = kind {
        let at_ms = crate::parse_ts(at)?.unix_timestamp_nanos() / 1_000_000;
        let entry = journal::Entry {
            at: i64::try_from(at_ms).unwrap_or(i64::MAX),
            detail: (event == "replied").then(|| "reply".to_owned()),
            digests: [("log".to_owned(), hash)].into_iter().collect(),
            kind,
            subject: format!("postfach:{message_id}"),
            tenant: "servicekonto".into(),
        };
        crate::journal::enqueue_journal_entry(tx, &entry).await?;
    }
    Ok(())
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
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO postfach_messages (id, postfach_ref, direction, in_reply_to, sender_client_id, \
                 sender_name, sender_ars, author_account_id, subject, body, min_trust_level, reply_allowed, placed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        let (event, detail) = match m.in_reply_to {
            Some(original) => ("replied", Some(format!("in reply to {original}"))),
            None => ("placed", None),
        };
        append_log(&mut tx, self.backend, m.id, event, detail.as_deref(), &at).await?;
        for mail in notify {
            sqlx::query(
                "INSERT INTO mail_outbox (id, created_at, recipient, subject, body_text, purpose, status, next_attempt_at, ref_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $2, $7)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&at)
            .bind(mail.recipient)
            .bind(mail.subject)
            .bind(mail.body_text)
            .bind(mail.purpose)
            .bind(m.id)
            .execute(&mut *tx)
            .await?;
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
        let done = sqlx::query(&format!(
            "UPDATE postfach_messages SET {column} = $2 WHERE id = $1 AND {column} IS NULL"
        ))
        .bind(id)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            append_log(&mut tx, self.backend, id, event, None, &at).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn postfach_log(&self, message_id: &str) -> Result<Vec<PostfachLogEntry>> {
        let rows = sqlx::query(
            "SELECT seq, message_id, event, at, detail, prev_hash, hash FROM postfach_log \
             WHERE message_id = $1 ORDER BY seq",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(log_from_row).collect()
    }

    /// Checks the whole log: every entry's hash, and that each names its predecessor's.
    /// Returns the number of entries, or the first broken sequence number.
    pub async fn verify_postfach_log(&self) -> Result<std::result::Result<i64, i64>> {
        let rows = sqlx::query(
            "SELECT seq, message_id, event, at, detail, prev_hash, hash FROM postfach_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut prev = LOG_GENESIS.to_owned();
        for (expected_seq, r) in (1i64..).zip(&rows) {
            let e = log_from_row(r)?;
            let recomputed = log_entry_hash(
                &e.prev_hash,
                e.seq,
                &e.message_id,
                &e.event,
                &e.at,
                e.detail.as_deref(),
            );
            if e.seq != expected_seq || e.prev_hash != prev || recomputed != e.hash {
                return Ok(Err(e.seq));
            }
            prev = e.hash;
        }
        Ok(Ok(rows.len() as i64))
    }
}

fn log_from_row(r: &sqlx::any::AnyRow) -> Result<PostfachLogEntry> {
    Ok(PostfachLogEntry {
        seq: r.try_get("seq")?,
        message_id: r.try_get("message_id")?,
        event: r.try_get("event")?,
        at: r.try_get("at")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}
