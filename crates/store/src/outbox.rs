//! The outbox of e-mails: written in the same moment as the change that causes a mail, sent
//! later by a worker on any node. A mail is claimed with a lease (a conditional update), so
//! two nodes never send the same mail at the same time, and a node that dies mid-send only
//! delays it until the lease runs out.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, ts};

#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    /// What the mail is for (`verify`, `reset`, …): rate limits count per purpose.
    pub purpose: &'a str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxMail {
    pub id: String,
    pub created_at: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub purpose: String,
    /// `pending`, `sent` or `failed` (given up).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

const COLUMNS: &str =
    "id, created_at, recipient, subject, body_text, purpose, status, attempts, last_error, sent_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<OutboxMail> {
    Ok(OutboxMail {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        body_text: r.try_get("body_text")?,
        purpose: r.try_get("purpose")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// Queues a mail inside a caller's transaction (the change that causes it commits with it);
/// `ref_id` names what it is about (a Postfach message, a submission).
pub(crate) async fn enqueue_mail_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: &NewMail<'_>,
    at: &str,
    ref_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, created_at, recipient, subject, body_text, purpose, status, next_attempt_at, ref_id) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $2, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(at)
    .bind(m.recipient)
    .bind(m.subject)
    .bind(m.body_text)
    .bind(m.purpose)
    .bind(ref_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn enqueue_mail(&self, m: &NewMail<'_>, now: OffsetDateTime) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = ts(now);
        sqlx::query(
            "INSERT INTO mail_outbox (id, created_at, recipient, subject, body_text, purpose, status, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $2)",
        )
        .bind(&id)
        .bind(&now)
        .bind(m.recipient)
        .bind(m.subject)
        .bind(m.body_text)
        .bind(m.purpose)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// How many mails for this recipient and purpose were queued since `since`.
    pub async fn count_mails_since(
        &self,
        recipient: &str,
        purpose: &str,
        since: OffsetDateTime,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_outbox WHERE recipient = $1 AND purpose = $2 AND created_at > $3",
        )
        .bind(recipient)
        .bind(purpose)
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Claims the next due mail for `lease`: nobody else gets it until the lease runs out
    /// or it is marked sent or failed. A claim lost to another node is retried with the next
    /// candidate, so `None` means that no mail is due (or, after many lost races in a row,
    /// that the other nodes are busy with them).
    pub async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<OutboxMail>> {
        let now_s = ts(now);
        let until = ts(now + lease);
        for _ in 0..32 {
            let candidate: Option<String> = sqlx::query_scalar(
                "SELECT id FROM mail_outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (locked_until IS NULL OR locked_until < $1) \
                 ORDER BY next_attempt_at, created_at, id LIMIT 1",
            )
            .bind(&now_s)
            .fetch_optional(&self.pool)
            .await?;
            let Some(id) = candidate else {
                return Ok(None);
            };
            // The conditions again: only one of several nodes that chose this mail wins it.
            let row = sqlx::query(&format!(
                "UPDATE mail_outbox SET locked_until = $2, attempts = attempts + 1 \
                 WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $3 \
                   AND (locked_until IS NULL OR locked_until < $3) \
                 RETURNING {COLUMNS}"
            ))
            .bind(&id)
            .bind(&until)
            .bind(&now_s)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return from_row(&row).map(Some);
            }
            // Another node won this one: look for the next.
        }
        Ok(None)
    }

    /// Marks a mail sent. `keep_body: false` drops the text (it may hold a one-time link)
    /// once it has left.
    pub async fn mail_sent(&self, id: &str, now: OffsetDateTime, keep_body: bool) -> Result<()> {
        sqlx::query(
            "UPDATE mail_outbox SET status = 'sent', sent_at = $2, locked_until = NULL, last_error = NULL, \
                 body_text = CASE WHEN $3 = 1 THEN body_text ELSE '' END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(ts(now))
        .bind(i64::from(keep_body))
        .execute(&self.pool)
        .await?;
        // A Postfach notice that left makes the message "notified" (OZG § 9).
        let notice: Option<String> = sqlx::query_scalar(
            "SELECT ref_id FROM mail_outbox WHERE id = $1 AND purpose = 'postfach_notice'",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        if let Some(message_id) = notice {
            self.mark_postfach_notified(&message_id, now).await?;
        }
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    pub async fn mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE mail_outbox SET next_attempt_at = $2, locked_until = NULL, last_error = $3 \
                     WHERE id = $1",
            )
            .bind(id)
            .bind(ts(at))
            .bind(error)
            .execute(&self.pool)
            .await?,
            None => sqlx::query(
                "UPDATE mail_outbox SET status = 'failed', locked_until = NULL, last_error = $2 \
                     WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .execute(&self.pool)
            .await?,
        };
        Ok(())
    }

    /// The newest mails, for the admin's outbox view and the demo's mail page.
    pub async fn list_mails(&self, limit: i64) -> Result<Vec<OutboxMail>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_outbox ORDER BY created_at DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
