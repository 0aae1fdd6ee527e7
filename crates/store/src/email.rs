//! The e-mail channel's rows: which submission a received message became, whether the
//! sender was answered, and what recognises the same message sent again.

use sqlx::Row;
use time::OffsetDateTime;

use crate::poststelle::{RECEIPT_COLUMNS_R, receipt_row};
use crate::{NewMail, ReceiptRecord, Result, Store, ts};

#[derive(Debug, Clone)]
pub struct NewEmailMessage {
    pub submission_id: String,
    pub destination_id: String,
    pub content_sha256: String,
    /// What the answer needs (wrapped under the KEK by the caller).
    pub answer_wrapped: Vec<u8>,
}

/// A message whose submission the ePoststelle decided and whose sender waits for the answer.
#[derive(Debug, Clone)]
pub struct EmailAnswerDue {
    pub submission_id: String,
    pub answer_wrapped: Option<Vec<u8>>,
    pub receipt: ReceiptRecord,
}

impl Store {
    /// Records a message's submission before it is submitted, so the answer never misses it.
    pub async fn email_message_insert(
        &self,
        m: &NewEmailMessage,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO email_messages (submission_id, destination_id, content_sha256, received_at, answer_wrapped, answer_state) \
             VALUES ($1, $2, $3, $4, $5, 'pending')",
        )
        .bind(&m.submission_id)
        .bind(&m.destination_id)
        .bind(&m.content_sha256)
        .bind(ts(now))
        .bind(&m.answer_wrapped)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The submission already made of the same message for the same destination since
    /// `since` (a client that lost our 250 sends again), if it was submitted.
    pub async fn email_duplicate(
        &self,
        destination_id: &str,
        content_sha256: &str,
        since: OffsetDateTime,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT e.submission_id FROM email_messages e JOIN zd_submissions s ON s.id = e.submission_id \
             WHERE e.destination_id = $1 AND e.content_sha256 = $2 AND e.received_at > $3 \
               AND s.status <> 'incomplete' \
             ORDER BY e.received_at LIMIT 1",
        )
        .bind(destination_id)
        .bind(content_sha256)
        .bind(ts(since))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Messages whose decision is recorded and whose sender is not answered yet.
    pub async fn email_answers_due(&self, limit: i64) -> Result<Vec<EmailAnswerDue>> {
        let rows = sqlx::query(&format!(
            "SELECT e.answer_wrapped, {RECEIPT_COLUMNS_R} FROM email_messages e \
             JOIN ps_receipts r ON r.submission_id = e.submission_id \
             JOIN zd_submissions s ON s.id = e.submission_id \
             WHERE e.answer_state = 'pending' AND s.status NOT IN ('submitted', 'forwarded') \
             ORDER BY e.received_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let receipt = receipt_row(r)?;
                Ok(EmailAnswerDue {
                    submission_id: receipt.submission_id.clone(),
                    answer_wrapped: r.try_get("answer_wrapped")?,
                    receipt,
                })
            })
            .collect()
    }

    /// Ends a message's wait: queues the answer (if any) and notes the outcome in one
    /// transaction, so an answer is queued exactly once. `false`: it was ended before.
    pub async fn email_answer_done(
        &self,
        submission_id: &str,
        mail: Option<&NewMail<'_>>,
        state: &str,
        note: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let at = ts(now);
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE email_messages SET answer_state = $2, answered_at = $3, answer_note = $4, answer_wrapped = NULL \
             WHERE submission_id = $1 AND answer_state = 'pending'",
        )
        .bind(submission_id)
        .bind(state)
        .bind(&at)
        .bind(note)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1
            && let Some(mail) = mail
        {
            crate::outbox::enqueue_mail_in(&mut tx, mail, &at, submission_id).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Messages whose submission was never submitted (the node died between storing and
    /// submitting; the client got no 250 and sends again) stop waiting for an answer.
    pub async fn email_abandon_unsubmitted(&self, before: OffsetDateTime) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE email_messages SET answer_state = 'abandoned', answer_wrapped = NULL \
             WHERE answer_state = 'pending' AND received_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM zd_submissions s WHERE s.id = email_messages.submission_id AND s.status <> 'incomplete')",
        )
        .bind(ts(before))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// `(answer_state, count)` for metrics and tests.
    pub async fn email_message_states(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT answer_state, COUNT(*) AS n FROM email_messages GROUP BY answer_state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("answer_state")?, r.try_get("n")?)))
            .collect()
    }
}
