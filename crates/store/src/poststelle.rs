//! The ePoststelle's tables: the work queue (leases, so that of several nodes exactly one
//! processes a submission; waiting submissions with their reason), the signed receipts and
//! the cases filed for the clerks. Contents arrive wrapped (team data key) and leave wrapped.

use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::zustelldienst::{Decision, Guarded, apply_decision};
use crate::{Result, Store, conflict, ts};

/// A decided submission's receipt, with the destination's signed decision.
#[derive(Debug, Clone)]
pub struct ReceiptRecord {
    pub submission_id: String,
    pub case_id: String,
    pub destination_id: String,
    pub sender_client_id: String,
    /// `accepted` or `rejected`.
    pub decision: String,
    pub claims: String,
    /// The compact JWS over `claims` (service key).
    pub jws: String,
    pub set_jti: String,
    pub set_iat: i64,
    pub set_claims: String,
    pub set_token: String,
    pub check_report: String,
    pub journal_proof: Option<String>,
    pub created_at: String,
    /// The citizen's Postfach the receipt goes to (portal senders only, see
    /// `app::receipt_delivery`).
    pub postfach_ref: Option<String>,
    /// Once placed: the Postfach message id, or `undeliverable: <why>`.
    pub postfach_outcome: Option<String>,
}

/// An accepted submission filed for the clerks.
#[derive(Debug, Clone)]
pub struct FiledCase {
    pub submission_id: String,
    pub authority_ars: Option<String>,
    pub destination_id: String,
    pub case_id: String,
    pub service_identifier: String,
    pub service_name: String,
    pub received_at: String,
    pub decided_at: String,
    /// The decrypted metadata (JSON).
    pub metadata: String,
    /// The decrypted data, wrapped under the team data key.
    pub data_wrapped: Option<Vec<u8>>,
    pub data_sha512: Option<String>,
    pub check_report: String,
    pub attachments: Vec<FiledAttachment>,
}

#[derive(Debug, Clone)]
pub struct FiledAttachment {
    pub attachment_id: String,
    pub filename: Option<String>,
    pub mime_type: String,
    pub size: i64,
    pub sha512: String,
    /// Wrapped under the team data key.
    pub content_wrapped: Vec<u8>,
}

/// Waiting submissions by reason (`None`: being processed or due).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCount {
    pub reason: Option<String>,
    pub count: i64,
}

const RECEIPT_COLUMNS: &str = "submission_id, case_id, destination_id, sender_client_id, decision, claims, jws, \
     set_jti, set_iat, set_claims, set_token, check_report, journal_proof, created_at, postfach_ref, postfach_outcome";

/// [`RECEIPT_COLUMNS`] qualified with the alias `r` (for joins).
pub(crate) const RECEIPT_COLUMNS_R: &str = "r.submission_id, r.case_id, r.destination_id, r.sender_client_id, r.decision, \
     r.claims, r.jws, r.set_jti, r.set_iat, r.set_claims, r.set_token, r.check_report, r.journal_proof, \
     r.created_at, r.postfach_ref, r.postfach_outcome";

pub(crate) fn receipt_row(r: &sqlx::any::AnyRow) -> Result<ReceiptRecord> {
    Ok(ReceiptRecord {
        submission_id: r.try_get("submission_id")?,
        case_id: r.try_get("case_id")?,
        destination_id: r.try_get("destination_id")?,
        sender_client_id: r.try_get("sender_client_id")?,
        decision: r.try_get("decision")?,
        claims: r.try_get("claims")?,
        jws: r.try_get("jws")?,
        set_jti: r.try_get("set_jti")?,
        set_iat: r.try_get("set_iat")?,
        set_claims: r.try_get("set_claims")?,
        set_token: r.try_get("set_token")?,
        check_report: r.try_get("check_report")?,
        journal_proof: r.try_get("journal_proof")?,
        created_at: r.try_get("created_at")?,
        postfach_ref: r.try_get("postfach_ref")?,
        postfach_outcome: r.try_get("postfach_outcome")?,
    })
}

/// Inserts a receipt and its case inside the caller's transaction.
async fn insert_filed(
    c: &mut AnyConnection,
    receipt: &ReceiptRecord,
    case: Option<&FiledCase>,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ps_receipts (submission_id, case_id, destination_id, sender_client_id, decision, claims, jws, \
         set_jti, set_iat, set_claims, set_token, check_report, journal_proof, created_at, postfach_ref) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&receipt.submission_id)
    .bind(&receipt.case_id)
    .bind(&receipt.destination_id)
    .bind(&receipt.sender_client_id)
    .bind(&receipt.decision)
    .bind(&receipt.claims)
    .bind(&receipt.jws)
    .bind(&receipt.set_jti)
    .bind(receipt.set_iat)
    .bind(&receipt.set_claims)
    .bind(&receipt.set_token)
    .bind(&receipt.check_report)
    .bind(&receipt.journal_proof)
    .bind(now)
    .bind(&receipt.postfach_ref)
    .execute(&mut *c)
    .await
    .map_err(|e| {
        conflict(e, || {
            format!("submission {} has a receipt already", receipt.submission_id)
        })
    })?;
    let Some(f) = case else { return Ok(()) };
    sqlx::query(
        "INSERT INTO ps_cases (submission_id, authority_ars, destination_id, case_id, service_identifier, \
         service_name, received_at, decided_at, metadata, data_wrapped, data_sha512, check_report, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&f.submission_id)
    .bind(&f.authority_ars)
    .bind(&f.destination_id)
    .bind(&f.case_id)
    .bind(&f.service_identifier)
    .bind(&f.service_name)
    .bind(&f.received_at)
    .bind(&f.decided_at)
    .bind(&f.metadata)
    .bind(&f.data_wrapped)
    .bind(&f.data_sha512)
    .bind(&f.check_report)
    .bind(now)
    .execute(&mut *c)
    .await?;
    for a in &f.attachments {
        sqlx::query(
            "INSERT INTO ps_case_attachments (submission_id, attachment_id, filename, mime_type, size, sha512, content_wrapped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&f.submission_id)
        .bind(&a.attachment_id)
        .bind(&a.filename)
        .bind(&a.mime_type)
        .bind(a.size)
        .bind(&a.sha512)
        .bind(&a.content_wrapped)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Submissions waiting for the ePoststelle (`submitted`, or `forwarded` by it before an
    /// interruption) at destinations the platform holds, whose work is neither leased nor
    /// deferred, oldest first. Destinations drive the query (`CROSS JOIN` keeps SQLite
    /// from starting at the submissions): the queues of external subscribers can hold many
    /// thousands of submitted submissions, which this must not walk on every wake-up.
    pub async fn poststelle_due(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT s.id FROM zd_destinations d \
             CROSS JOIN zd_submissions s \
             LEFT JOIN ps_work w ON w.submission_id = s.id \
             WHERE d.held_by_platform = 1 AND s.destination_id = d.id \
             AND s.status IN ('submitted', 'forwarded') \
             AND (w.submission_id IS NULL OR (w.lease_until < $1 AND w.next_attempt_at <= $1)) \
             ORDER BY s.submitted_at, s.id LIMIT $2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes the lease on a submission's work until `now + lease` and returns the number of
    /// attempts so far (this one included); `None` if another node holds it or it is deferred.
    pub async fn poststelle_claim(
        &self,
        submission_id: &str,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<i64>> {
        let (id, now_s, until) = (submission_id.to_owned(), ts(now), ts(now + lease));
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "INSERT INTO ps_work (submission_id, lease_until, next_attempt_at, attempts, updated_at) \
                     VALUES ($1, $2, $3, 1, $3) \
                     ON CONFLICT (submission_id) DO UPDATE SET lease_until = excluded.lease_until, \
                     attempts = ps_work.attempts + 1, updated_at = excluded.updated_at \
                     WHERE ps_work.lease_until < $3 AND ps_work.next_attempt_at <= $3 \
                     RETURNING attempts",
                )
                .bind(&id)
                .bind(&until)
                .bind(&now_s)
                .fetch_optional(&mut *c)
                .await?;
                Ok(match n {
                    Some(r) => Some(r.try_get::<i64, _>("attempts")?),
                    None => None,
                })
            })
        })
        .await
    }

    /// Gives the lease back and defers the work to `next`, saying why it waits.
    pub async fn poststelle_defer(
        &self,
        submission_id: &str,
        reason: &str,
        next: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()> {
        let reason: String = reason.chars().take(500).collect();
        sqlx::query(
            "UPDATE ps_work SET lease_until = $2, next_attempt_at = $3, pending_reason = $4, updated_at = $2 \
             WHERE submission_id = $1",
        )
        .bind(submission_id)
        .bind(ts(now))
        .bind(ts(next))
        .bind(&reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The work is done (decided, or no longer the ePoststelle's).
    pub async fn poststelle_done(&self, submission_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM ps_work WHERE submission_id = $1")
            .bind(submission_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many undecided submissions the ePoststelle has seen, by the reason they wait.
    pub async fn poststelle_pending(&self) -> Result<Vec<PendingCount>> {
        let rows = sqlx::query(
            "SELECT w.pending_reason, COUNT(*) AS n FROM ps_work w JOIN zd_submissions s ON s.id = w.submission_id \
             WHERE s.status IN ('submitted', 'forwarded') GROUP BY w.pending_reason ORDER BY w.pending_reason",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingCount {
                    reason: r.try_get("pending_reason")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Files the receipt and, for an accepted submission, the case with its wrapped
    /// contents — in one transaction. A receipt already filed (an earlier, interrupted run)
    /// is a conflict.
    pub async fn poststelle_file(
        &self,
        receipt: ReceiptRecord,
        case: Option<FiledCase>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = ts(now);
        self.write(move |c| {
            Box::pin(async move { insert_filed(c, &receipt, case.as_ref(), &now).await })
        })
        .await
    }

    /// Everything the ePoststelle's decision changes, in one transaction: the receipt and
    /// the case filed, the decision recorded through the Zustelldienst's path (status,
    /// event, journal entry, sender callback) and the work item ended. So no crash can leave
    /// a receipt without its decision, and one commit serves what took three. If the
    /// submission was decided otherwise meanwhile, nothing is written (`WrongState`); a
    /// receipt filed already (by a run of an older version) is a conflict.
    pub async fn poststelle_conclude(
        &self,
        receipt: ReceiptRecord,
        case: Option<FiledCase>,
        decision: Decision,
        now: OffsetDateTime,
    ) -> Result<Guarded<()>> {
        let now = ts(now);
        self.write(move |c| {
            Box::pin(async move {
                let outcome = apply_decision(c, &decision, &now).await?;
                if !matches!(outcome, Guarded::Done(())) {
                    return Ok(outcome);
                }
                insert_filed(c, &receipt, case.as_ref(), &now).await?;
                sqlx::query("DELETE FROM ps_work WHERE submission_id = $1")
                    .bind(&receipt.submission_id)
                    .execute(&mut *c)
                    .await?;
                Ok(outcome)
            })
        })
        .await
    }

    /// Removes a receipt (and its case) whose decision could not be recorded because the
    /// submission was decided otherwise in between.
    pub async fn poststelle_withdraw(&self, submission_id: &str) -> Result<()> {
        let id = submission_id.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                for sql in [
                    "DELETE FROM ps_case_attachments WHERE submission_id = $1",
                    "DELETE FROM ps_cases WHERE submission_id = $1",
                    "DELETE FROM ps_receipts WHERE submission_id = $1",
                ] {
                    sqlx::query(sql).bind(&id).execute(&mut *c).await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub async fn poststelle_receipt(&self, submission_id: &str) -> Result<Option<ReceiptRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RECEIPT_COLUMNS} FROM ps_receipts WHERE submission_id = $1"
        ))
        .bind(submission_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(receipt_row).transpose()
    }

    /// Receipts due for the citizen's Postfach: a Postfach named, not yet placed, and the
    /// decision recorded (the submission is no longer `submitted`/`forwarded`), oldest first.
    pub async fn receipts_due_for_postfach(&self, limit: i64) -> Result<Vec<ReceiptRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECEIPT_COLUMNS_R} FROM ps_receipts r \
             JOIN zd_submissions s ON s.id = r.submission_id \
             WHERE r.postfach_ref IS NOT NULL AND r.postfach_outcome IS NULL \
               AND s.status NOT IN ('submitted', 'forwarded') \
             ORDER BY r.created_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(receipt_row).collect()
    }

    /// Notes where a receipt went (a Postfach message id, or why it could not be placed).
    pub async fn set_receipt_postfach_outcome(
        &self,
        submission_id: &str,
        outcome: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE ps_receipts SET postfach_outcome = $2 \
             WHERE submission_id = $1 AND postfach_outcome IS NULL",
        )
        .bind(submission_id)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the journal's inclusion proof with the receipt (hook for the journal).
    pub async fn poststelle_set_journal_proof(
        &self,
        submission_id: &str,
        proof: &str,
    ) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE ps_receipts SET journal_proof = $2 WHERE submission_id = $1")
                .bind(submission_id)
                .bind(proof)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// A filed case with its (still wrapped) contents.
    pub async fn poststelle_case(&self, submission_id: &str) -> Result<Option<FiledCase>> {
        let Some(r) = sqlx::query(
            "SELECT submission_id, authority_ars, destination_id, case_id, service_identifier, service_name, \
             received_at, decided_at, metadata, data_wrapped, data_sha512, check_report FROM ps_cases WHERE submission_id = $1",
        )
        .bind(submission_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let atts = sqlx::query(
            "SELECT attachment_id, filename, mime_type, size, sha512, content_wrapped FROM ps_case_attachments \
             WHERE submission_id = $1 ORDER BY attachment_id",
        )
        .bind(submission_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(FiledCase {
            submission_id: r.try_get("submission_id")?,
            authority_ars: r.try_get("authority_ars")?,
            destination_id: r.try_get("destination_id")?,
            case_id: r.try_get("case_id")?,
            service_identifier: r.try_get("service_identifier")?,
            service_name: r.try_get("service_name")?,
            received_at: r.try_get("received_at")?,
            decided_at: r.try_get("decided_at")?,
            metadata: r.try_get("metadata")?,
            data_wrapped: r.try_get("data_wrapped")?,
            data_sha512: r.try_get("data_sha512")?,
            check_report: r.try_get("check_report")?,
            attachments: atts
                .iter()
                .map(|a| {
                    Ok(FiledAttachment {
                        attachment_id: a.try_get("attachment_id")?,
                        filename: a.try_get("filename")?,
                        mime_type: a.try_get("mime_type")?,
                        size: a.try_get("size")?,
                        sha512: a.try_get("sha512")?,
                        content_wrapped: a.try_get("content_wrapped")?,
                    })
                })
                .collect::<Result<_>>()?,
        }))
    }

    /// The cases filed for an authority, newest first (id, case id, received at).
    pub async fn poststelle_cases(
        &self,
        authority_ars: &str,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT submission_id, case_id, received_at FROM ps_cases WHERE authority_ars = $1 \
             ORDER BY received_at DESC, submission_id LIMIT $2",
        )
        .bind(authority_ars)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("submission_id")?,
                    r.try_get("case_id")?,
                    r.try_get("received_at")?,
                ))
            })
            .collect()
    }
}
