//! The Zustelldienst's tables: destinations, their keys and subscribers, submissions with
//! their encrypted parts, the SET event log and the callback outbox.
//!
//! Every write that a sender or subscriber is told about goes through the write queue
//! (`Store::write`): durable before acknowledged, grouped on SQLite. The state checks run
//! inside the same transaction as the change they guard, so two racing requests can never
//! both pass them.

use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::{Result, Store, StoreError, conflict, ts};

// The intake's statements, shared by both paths: sqlx (PostgreSQL, and SQLite without a
// file) and the synchronous SQLite writer (`sync_writer.rs`), which binds `$n` by name.
const SQL_SUBMISSION_INSERT: &str = "INSERT INTO zd_submissions (id, case_id, destination_id, sender_client_id, api_version, \
     service_identifier, service_name, region, status, announced, callback_url, callback_secret, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'incomplete', $9, $10, $11, $12)";
const SQL_EVENT_INSERT: &str = "INSERT INTO zd_events (case_id, submission_id, event, issuer, jti, iat, claims, token, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const SQL_SUBMISSION_DESTINATION: &str = "SELECT destination_id FROM zd_submissions WHERE id = $1";
const SQL_CALLBACK_INSERT: &str = "INSERT INTO zd_callbacks (url, secret, body, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)";
const SQL_ATTACHMENT_BLOB: &str =
    "SELECT blob_key FROM zd_attachments WHERE submission_id = $1 AND attachment_id = $2";
const SQL_ATTACHMENT_UPSERT: &str = "INSERT INTO zd_attachments (submission_id, attachment_id, size, auth_tag, body, blob_key, uploaded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (submission_id, attachment_id) DO UPDATE SET size = excluded.size, \
     auth_tag = excluded.auth_tag, body = excluded.body, blob_key = excluded.blob_key, uploaded_at = excluded.uploaded_at";
const SQL_ATTACHMENT_TAGS: &str = "SELECT attachment_id, auth_tag FROM zd_attachments WHERE submission_id = $1 ORDER BY attachment_id";
const SQL_SUBMIT: &str = "UPDATE zd_submissions SET status = 'submitted', encrypted_metadata = $2, encrypted_data = $3, \
     tags = $4, submitted_at = $5 WHERE id = $1 AND status = 'incomplete'";

/// A destination as stored.
#[derive(Debug, Clone)]
pub struct DestinationRecord {
    pub id: String,
    /// The platform holds the private keys (an authority's own ePoststelle).
    pub held_by_platform: bool,
    pub authority_ars: Option<String>,
    pub status: String,
    /// `zustelldienst::Destination` as JSON.
    pub doc: String,
    /// Wrapped under the KEK.
    pub callback_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct DestinationKeyRecord {
    pub destination_id: String,
    pub kid: String,
    /// `encryption` or `signature`.
    pub key_use: String,
    pub public_jwk: String,
    /// Only for destinations the platform holds; wrapped under the KEK.
    pub wrapped_private: Option<Vec<u8>>,
    pub created_at: String,
    pub retired_at: Option<String>,
}

/// A new event of a submission's log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub jti: String,
    pub case_id: String,
    pub submission_id: String,
    /// The event's short name (`submit-submission`).
    pub event: String,
    /// `service` for the Zustelldienst's own events, else the destination id.
    pub issuer: String,
    pub iat: i64,
    /// The claims to sign (service events) or the verified claims (subscriber events).
    pub claims: String,
    /// The compact SET when already signed (subscriber events always are).
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub case_id: String,
    pub submission_id: String,
    pub event: String,
    pub issuer: String,
    pub iat: i64,
    pub claims: String,
    pub token: Option<String>,
}

/// A callback to deliver (with its secret wrapped under the KEK).
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub url: String,
    pub secret: Vec<u8>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub id: i64,
    pub url: String,
    pub secret: Vec<u8>,
    pub body: String,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub id: String,
    pub case_id: String,
    pub destination_id: String,
    pub sender_client_id: String,
    pub api_version: String,
    pub service_identifier: String,
    pub service_name: String,
    pub region: Option<String>,
    /// Distinct attachment ids as JSON array.
    pub announced: String,
    pub callback_url: Option<String>,
    pub callback_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct SubmissionRecord {
    pub id: String,
    pub case_id: String,
    pub destination_id: String,
    pub sender_client_id: String,
    pub api_version: String,
    pub service_identifier: String,
    pub service_name: String,
    pub region: Option<String>,
    pub status: String,
    pub announced: String,
    pub callback_url: Option<String>,
    pub callback_secret: Option<Vec<u8>>,
    pub encrypted_metadata: Option<String>,
    pub encrypted_data: Option<String>,
    pub tags: Option<String>,
    pub created_at: String,
    pub submitted_at: Option<String>,
    pub content_deleted_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    pub attachment_id: String,
    pub size: i64,
    pub auth_tag: String,
    /// Small attachments are stored inline; larger ones in blob storage.
    pub body: Option<String>,
    pub blob_key: Option<String>,
}

/// The outcome of a guarded write: done, or why not (for the caller to explain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<T> {
    Done(T),
    NotFound,
    /// The submission belongs to another client.
    NotYours,
    /// The submission's status does not allow this (the current status).
    WrongState(String),
    NotAnnounced,
    /// Submit before these announced attachments were uploaded.
    Missing(Vec<String>),
}

const SUBMISSION_COLUMNS: &str = "id, case_id, destination_id, sender_client_id, api_version, \
     service_identifier, service_name, region, status, announced, callback_url, callback_secret, \
     encrypted_metadata, encrypted_data, tags, created_at, submitted_at, content_deleted_at";

fn submission_row(r: &sqlx::any::AnyRow) -> Result<SubmissionRecord> {
    Ok(SubmissionRecord {
        id: r.try_get("id")?,
        case_id: r.try_get("case_id")?,
        destination_id: r.try_get("destination_id")?,
        sender_client_id: r.try_get("sender_client_id")?,
        api_version: r.try_get("api_version")?,
        service_identifier: r.try_get("service_identifier")?,
        service_name: r.try_get("service_name")?,
        region: r.try_get("region")?,
        status: r.try_get("status")?,
        announced: r.try_get("announced")?,
        callback_url: r.try_get("callback_url")?,
        callback_secret: r.try_get("callback_secret")?,
        encrypted_metadata: r.try_get("encrypted_metadata")?,
        encrypted_data: r.try_get("encrypted_data")?,
        tags: r.try_get("tags")?,
        created_at: r.try_get("created_at")?,
        submitted_at: r.try_get("submitted_at")?,
        content_deleted_at: r.try_get("content_deleted_at")?,
    })
}

const DESTINATION_COLUMNS: &str =
    "id, held_by_platform, authority_ars, status, doc, callback_secret";

fn destination_row(r: &sqlx::any::AnyRow) -> Result<DestinationRecord> {
    Ok(DestinationRecord {
        id: r.try_get("id")?,
        held_by_platform: r.try_get::<i64, _>("held_by_platform")? != 0,
        authority_ars: r.try_get("authority_ars")?,
        status: r.try_get("status")?,
        doc: r.try_get("doc")?,
        callback_secret: r.try_get("callback_secret")?,
    })
}

fn key_row(r: &sqlx::any::AnyRow) -> Result<DestinationKeyRecord> {
    Ok(DestinationKeyRecord {
        destination_id: r.try_get("destination_id")?,
        kid: r.try_get("kid")?,
        key_use: r.try_get("key_use")?,
        public_jwk: r.try_get("public_jwk")?,
        wrapped_private: r.try_get("wrapped_private")?,
        created_at: r.try_get("created_at")?,
        retired_at: r.try_get("retired_at")?,
    })
}

fn event_row(r: &sqlx::any::AnyRow) -> Result<EventRecord> {
    Ok(EventRecord {
        id: r.try_get("id")?,
        case_id: r.try_get("case_id")?,
        submission_id: r.try_get("submission_id")?,
        event: r.try_get("event")?,
        issuer: r.try_get("issuer")?,
        iat: r.try_get("iat")?,
        claims: r.try_get("claims")?,
        token: r.try_get("token")?,
    })
}

async fn insert_event(c: &mut AnyConnection, e: &NewEvent, now: &str) -> Result<()> {
    sqlx::query(SQL_EVENT_INSERT)
        .bind(&e.case_id)
        .bind(&e.submission_id)
        .bind(&e.event)
        .bind(&e.issuer)
        .bind(&e.jti)
        .bind(e.iat)
        .bind(&e.claims)
        .bind(&e.token)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(|err| {
            conflict(err, || {
                format!("event {} was already recorded (jti must be unique)", e.jti)
            })
        })?;
    if let Some(entry) = journal_entry_of(c, e, now).await? {
        crate::journal::enqueue_journal_entry(c, &entry).await?;
    }
    Ok(())
}

/// Records a decision inside the caller's transaction if the submission is in one of
/// `d.from`; changes nothing otherwise.
pub(crate) async fn apply_decision(
    c: &mut AnyConnection,
    d: &Decision,
    now: &str,
) -> Result<Guarded<()>> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM zd_submissions WHERE id = $1")
            .bind(&d.submission_id)
            .fetch_optional(&mut *c)
            .await?;
    let Some(status) = status else {
        return Ok(Guarded::NotFound);
    };
    if !d.from.contains(&status) {
        return Ok(Guarded::WrongState(status));
    }
    sqlx::query("UPDATE zd_submissions SET status = $2, decided_at = $3 WHERE id = $1")
        .bind(&d.submission_id)
        .bind(&d.to)
        .bind(now)
        .execute(&mut *c)
        .await?;
    insert_event(c, &d.event, now).await?;
    if let Some(cb) = &d.callback {
        insert_callback(c, cb, now).await?;
    }
    Ok(Guarded::Done(()))
}

async fn insert_callback(c: &mut AnyConnection, cb: &NewCallback, now: &str) -> Result<()> {
    sqlx::query(SQL_CALLBACK_INSERT)
        .bind(&cb.url)
        .bind(&cb.secret)
        .bind(&cb.body)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

const SQL_LOAD_SUBMISSION: &str = "SELECT id, case_id, destination_id, sender_client_id, api_version, \
     service_identifier, service_name, region, status, announced, callback_url, callback_secret, \
     encrypted_metadata, encrypted_data, tags, created_at, submitted_at, content_deleted_at \
     FROM zd_submissions WHERE id = $1";

async fn load_submission(c: &mut AnyConnection, id: &str) -> Result<Option<SubmissionRecord>> {
    let row = sqlx::query(SQL_LOAD_SUBMISSION)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(submission_row).transpose()
}

fn announced_ids(s: &SubmissionRecord) -> Result<Vec<String>> {
    serde_json::from_str(&s.announced).map_err(StoreError::corrupt)
}

/// What the submit step stores.
#[derive(Debug, Clone)]
pub struct SubmitParts {
    pub encrypted_metadata: String,
    pub encrypted_data: Option<String>,
    /// `AuthenticationTags` as JSON, for the accept check.
    pub tags: String,
}

/// A subscriber's decision (or the service's automatic one) to record.
#[derive(Debug, Clone)]
pub struct Decision {
    pub submission_id: String,
    /// Statuses the submission may be in for this to apply.
    pub from: Vec<String>,
    pub to: String,
    pub event: NewEvent,
    pub callback: Option<NewCallback>,
}

impl Store {
    // ---------------------------------------------------------------- destinations

    pub async fn create_destination(
        &self,
        d: DestinationRecord,
        keys: Vec<DestinationKeyRecord>,
        clients: Vec<String>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = ts(now);
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO zd_destinations (id, held_by_platform, authority_ars, status, doc, callback_secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&d.id)
                .bind(i64::from(d.held_by_platform))
                .bind(&d.authority_ars)
                .bind(&d.status)
                .bind(&d.doc)
                .bind(&d.callback_secret)
                .bind(&now)
                .execute(&mut *c)
                .await
                .map_err(|e| conflict(e, || format!("destination {} exists already", d.id)))?;
                for k in &keys {
                    insert_key(c, &d.id, k, &now).await?;
                }
                for client in &clients {
                    sqlx::query("INSERT INTO zd_destination_clients (destination_id, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(&d.id)
                        .bind(client)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Replaces the destination document and status; `callback_secret`: `None` leaves it,
    /// `Some(x)` sets it to `x`.
    pub async fn update_destination(
        &self,
        id: &str,
        status: &str,
        doc: &str,
        callback_secret: Option<Option<Vec<u8>>>,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let (id, status, doc, now) = (id.to_owned(), status.to_owned(), doc.to_owned(), ts(now));
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query("UPDATE zd_destinations SET status = $2, doc = $3, updated_at = $4 WHERE id = $1")
                    .bind(&id)
                    .bind(&status)
                    .bind(&doc)
                    .bind(&now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if let Some(secret) = callback_secret {
                    sqlx::query("UPDATE zd_destinations SET callback_secret = $2 WHERE id = $1")
                        .bind(&id)
                        .bind(&secret)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }

    pub async fn destination(&self, id: &str) -> Result<Option<DestinationRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM zd_destinations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(destination_row).transpose()
    }

    /// The destination the platform holds for an authority (its ePoststelle), if any.
    pub async fn platform_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM zd_destinations WHERE held_by_platform = 1 ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(destination_row).collect()
    }

    /// The destinations a client subscribes to, with the total count.
    pub async fn client_destinations(
        &self,
        client_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DestinationRecord>, i64)> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM zd_destination_clients WHERE client_id = $1")
                .bind(client_id)
                .fetch_one(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT d.id, d.held_by_platform, d.authority_ars, d.status, d.doc, d.callback_secret \
             FROM zd_destinations d JOIN zd_destination_clients l ON l.destination_id = d.id \
             WHERE l.client_id = $1 ORDER BY d.id LIMIT $2 OFFSET $3",
        )
        .bind(client_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((
            rows.iter().map(destination_row).collect::<Result<_>>()?,
            total,
        ))
    }

    pub async fn is_destination_client(
        &self,
        destination_id: &str,
        client_id: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM zd_destination_clients WHERE destination_id = $1 AND client_id = $2",
        )
        .bind(destination_id)
        .bind(client_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    pub async fn destination_clients(&self, destination_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT client_id FROM zd_destination_clients WHERE destination_id = $1 ORDER BY client_id",
        )
        .bind(destination_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Links a subscriber client to a destination (idempotent).
    pub async fn link_destination_client(
        &self,
        destination_id: &str,
        client_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO zd_destination_clients (destination_id, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(destination_id)
        .bind(client_id)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("destination {destination_id} does not exist")))?;
        Ok(())
    }

    pub async fn unlink_destination_client(
        &self,
        destination_id: &str,
        client_id: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "DELETE FROM zd_destination_clients WHERE destination_id = $1 AND client_id = $2",
        )
        .bind(destination_id)
        .bind(client_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    pub async fn destination_key(
        &self,
        destination_id: &str,
        kid: &str,
    ) -> Result<Option<DestinationKeyRecord>> {
        let row = sqlx::query(
            "SELECT destination_id, kid, key_use, public_jwk, wrapped_private, created_at, retired_at \
             FROM zd_destination_keys WHERE destination_id = $1 AND kid = $2",
        )
        .bind(destination_id)
        .bind(kid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    /// All keys of a destination, current ones first, newest first.
    pub async fn destination_keys(
        &self,
        destination_id: &str,
    ) -> Result<Vec<DestinationKeyRecord>> {
        let rows = sqlx::query(
            "SELECT destination_id, kid, key_use, public_jwk, wrapped_private, created_at, retired_at \
             FROM zd_destination_keys WHERE destination_id = $1 \
             ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC",
        )
        .bind(destination_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// Adds a key; an existing `kid` is left as it is (FIT-Connect answers 201 for both).
    pub async fn add_destination_key(
        &self,
        k: DestinationKeyRecord,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = ts(now);
        self.write(move |c| {
            Box::pin(async move { insert_key(c, &k.destination_id.clone(), &k, &now).await })
        })
        .await
    }

    /// Marks the destination's current keys of `key_use` other than `keep_kid` as retired
    /// (they stay readable: older submissions were encrypted to them).
    pub async fn retire_destination_keys(
        &self,
        destination_id: &str,
        key_use: &str,
        keep_kid: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE zd_destination_keys SET retired_at = $4 \
             WHERE destination_id = $1 AND key_use = $2 AND kid <> $3 AND retired_at IS NULL",
        )
        .bind(destination_id)
        .bind(key_use)
        .bind(keep_kid)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- submissions

    pub async fn create_submission(
        &self,
        s: NewSubmission,
        event: NewEvent,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = ts(now);
        if self.has_sync_writer() {
            return self
                .write_sync(move |c| sync::create_submission(c, &s, &event, &now))
                .await;
        }
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(SQL_SUBMISSION_INSERT)
                    .bind(&s.id)
                    .bind(&s.case_id)
                    .bind(&s.destination_id)
                    .bind(&s.sender_client_id)
                    .bind(&s.api_version)
                    .bind(&s.service_identifier)
                    .bind(&s.service_name)
                    .bind(&s.region)
                    .bind(&s.announced)
                    .bind(&s.callback_url)
                    .bind(&s.callback_secret)
                    .bind(&now)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| conflict(e, || format!("submission {} exists already", s.id)))?;
                insert_event(c, &event, &now).await
            })
        })
        .await
    }

    /// The sender of an existing case (a new submission in a case must come from it).
    pub async fn case_sender(&self, case_id: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT sender_client_id, destination_id FROM zd_submissions WHERE case_id = $1 ORDER BY created_at LIMIT 1",
        )
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("sender_client_id")?, r.try_get("destination_id")?)),
            None => None,
        })
    }

    pub async fn submission(&self, id: &str) -> Result<Option<SubmissionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM zd_submissions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(submission_row).transpose()
    }

    /// Stores an uploaded attachment (replacing an earlier upload of the same id) if the
    /// submission is the sender's, still `incomplete`, and announced this id. Returns the
    /// blob key of a replaced upload, for the caller to delete.
    pub async fn put_attachment(
        &self,
        submission_id: &str,
        sender: &str,
        a: AttachmentRecord,
        now: OffsetDateTime,
    ) -> Result<Guarded<Option<String>>> {
        let (submission_id, sender, now) = (submission_id.to_owned(), sender.to_owned(), ts(now));
        if self.has_sync_writer() {
            return self
                .write_sync(move |c| sync::put_attachment(c, &submission_id, &sender, &a, &now))
                .await;
        }
        self.write(move |c| {
            Box::pin(async move {
                let Some(s) = load_submission(c, &submission_id).await? else {
                    return Ok(Guarded::NotFound);
                };
                if let Some(refused) = upload_refused(&s, &sender, &a.attachment_id)? {
                    return Ok(refused);
                }
                let old: Option<Option<String>> = sqlx::query_scalar(SQL_ATTACHMENT_BLOB)
                    .bind(&submission_id)
                    .bind(&a.attachment_id)
                    .fetch_optional(&mut *c)
                    .await?;
                sqlx::query(SQL_ATTACHMENT_UPSERT)
                    .bind(&submission_id)
                    .bind(&a.attachment_id)
                    .bind(a.size)
                    .bind(&a.auth_tag)
                    .bind(&a.body)
                    .bind(&a.blob_key)
                    .bind(&now)
                    .execute(&mut *c)
                    .await?;
                Ok(Guarded::Done(old.flatten()))
            })
        })
        .await
    }

    /// Tags of the uploaded attachments (id → tag).
    pub async fn attachment_tags(&self, submission_id: &str) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT attachment_id, auth_tag, size FROM zd_attachments WHERE submission_id = $1 ORDER BY attachment_id",
        )
        .bind(submission_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("attachment_id")?,
                    r.try_get("auth_tag")?,
                    r.try_get("size")?,
                ))
            })
            .collect()
    }

    /// Submits: requires status `incomplete`, the sender, and every announced attachment
    /// uploaded; stores the parts, moves to `submitted`, records the event and queues the
    /// destination's callback — all in one transaction. `make` builds the tags, event and
    /// callback from the uploaded attachments' tags (inside the transaction, so they match
    /// what is stored).
    pub async fn submit_submission<F>(
        &self,
        submission_id: &str,
        sender: &str,
        now: OffsetDateTime,
        make: F,
    ) -> Result<Guarded<SubmissionRecord>>
    where
        F: FnOnce(
                &SubmissionRecord,
                &[(String, String)],
            ) -> (SubmitParts, NewEvent, Option<NewCallback>)
            + Send
            + 'static,
    {
        let (submission_id, sender, now) = (submission_id.to_owned(), sender.to_owned(), ts(now));
        if self.has_sync_writer() {
            return self
                .write_sync(move |c| sync::submit(c, &submission_id, &sender, &now, make))
                .await;
        }
        self.write(move |c| {
            Box::pin(async move {
                let Some(s) = load_submission(c, &submission_id).await? else {
                    return Ok(Guarded::NotFound);
                };
                if let Some(refused) = submit_refused(&s, &sender) {
                    return Ok(refused);
                }
                let rows = sqlx::query(SQL_ATTACHMENT_TAGS)
                    .bind(&submission_id)
                    .fetch_all(&mut *c)
                    .await?;
                let uploaded: Vec<(String, String)> = rows
                    .iter()
                    .map(|r| Ok((r.try_get("attachment_id")?, r.try_get("auth_tag")?)))
                    .collect::<Result<_>>()?;
                let missing = missing_uploads(&s, &uploaded)?;
                if !missing.is_empty() {
                    return Ok(Guarded::Missing(missing));
                }
                let (parts, event, callback) = make(&s, &uploaded);
                sqlx::query(SQL_SUBMIT)
                    .bind(&submission_id)
                    .bind(&parts.encrypted_metadata)
                    .bind(&parts.encrypted_data)
                    .bind(&parts.tags)
                    .bind(&now)
                    .execute(&mut *c)
                    .await?;
                insert_event(c, &event, &now).await?;
                if let Some(cb) = &callback {
                    insert_callback(c, cb, &now).await?;
                }
                Ok(Guarded::Done(submitted(s, parts, now)))
            })
        })
        .await
    }

    /// Submissions waiting for pickup (`submitted`) at the given destinations, oldest first.
    pub async fn pickup_list(
        &self,
        destination_ids: &[String],
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(String, String, String)>, i64)> {
        if destination_ids.is_empty() {
            return Ok((Vec::new(), 0));
        }
        // Placeholders for the destination list: the same text serves both backends.
        let list = (0..destination_ids.len())
            .map(|i| format!("${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let n = destination_ids.len();
        let count_sql = format!(
            "SELECT COUNT(*) FROM zd_submissions WHERE status = 'submitted' AND destination_id IN ({list})"
        );
        let mut q = sqlx::query_scalar::<_, i64>(&count_sql);
        for d in destination_ids {
            q = q.bind(d);
        }
        let total = q.fetch_one(&self.pool).await?;
        let sql = format!(
            "SELECT destination_id, id, case_id FROM zd_submissions WHERE status = 'submitted' \
             AND destination_id IN ({list}) ORDER BY submitted_at, id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query(&sql);
        for d in destination_ids {
            q = q.bind(d);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("destination_id")?,
                    r.try_get("id")?,
                    r.try_get("case_id")?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok((items, total))
    }

    /// The subscriber fetched the submission: `submitted` → `forwarded`, with its event,
    /// once. Returns whether this call made the change.
    pub async fn mark_forwarded(
        &self,
        submission_id: &str,
        event: NewEvent,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let (submission_id, now) = (submission_id.to_owned(), ts(now));
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE zd_submissions SET status = 'forwarded', fetched_at = $2 WHERE id = $1 AND status = 'submitted'",
                )
                .bind(&submission_id)
                .bind(&now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                if n > 0 {
                    insert_event(c, &event, &now).await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }

    pub async fn attachment(
        &self,
        submission_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRecord>> {
        let row = sqlx::query(
            "SELECT attachment_id, size, auth_tag, body, blob_key FROM zd_attachments WHERE submission_id = $1 AND attachment_id = $2",
        )
        .bind(submission_id)
        .bind(attachment_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(AttachmentRecord {
                attachment_id: r.try_get("attachment_id")?,
                size: r.try_get("size")?,
                auth_tag: r.try_get("auth_tag")?,
                body: r.try_get("body")?,
                blob_key: r.try_get("blob_key")?,
            }),
            None => None,
        })
    }

    /// Records a decision if the submission is in one of `from`.
    pub async fn decide_submission(&self, d: Decision, now: OffsetDateTime) -> Result<Guarded<()>> {
        let now = ts(now);
        self.write(move |c| Box::pin(async move { apply_decision(c, &d, &now).await }))
            .await
    }

    // ---------------------------------------------------------------- events

    /// A case's events, oldest first, with the total count.
    pub async fn case_events(
        &self,
        case_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<EventRecord>, i64)> {
        self.events_by("case_id", case_id, limit, offset).await
    }

    pub async fn submission_events(
        &self,
        submission_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<EventRecord>, i64)> {
        self.events_by("submission_id", submission_id, limit, offset)
            .await
    }

    async fn events_by(
        &self,
        column: &'static str,
        value: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<EventRecord>, i64)> {
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM zd_events WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT id, case_id, submission_id, event, issuer, iat, claims, token FROM zd_events \
             WHERE {column} = $1 ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(value)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.iter().map(event_row).collect::<Result<_>>()?, total))
    }

    /// Service events whose SET has not been signed yet, oldest first.
    pub async fn unsigned_events(&self, limit: i64) -> Result<Vec<EventRecord>> {
        self.unsigned_events_after(0, limit).await
    }

    /// Unsigned events with an id above `after`, oldest first (the signer's cursor skips
    /// the batch whose tokens it is still writing).
    pub async fn unsigned_events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT id, case_id, submission_id, event, issuer, iat, claims, token FROM zd_events \
             WHERE token IS NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Stores signatures made for unsigned events; one signed first (by another node or an
    /// on-demand read) keeps its token. Returns the tokens stored for those events.
    pub async fn set_event_tokens(&self, tokens: Vec<(i64, String)>) -> Result<Vec<(i64, String)>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            Box::pin(async move {
                let mut stored = Vec::with_capacity(tokens.len());
                for (id, token) in &tokens {
                    sqlx::query("UPDATE zd_events SET token = $2 WHERE id = $1 AND token IS NULL")
                        .bind(id)
                        .bind(token)
                        .execute(&mut *c)
                        .await?;
                    // The token that counts: ours, or the one signed first elsewhere.
                    let t: String = sqlx::query_scalar("SELECT token FROM zd_events WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *c)
                        .await?;
                    stored.push((*id, t));
                }
                Ok(stored)
            })
        })
        .await
    }

    // ---------------------------------------------------------------- callbacks

    /// Leases due callbacks for `lease`; another node leasing at the same time gets others.
    pub async fn lease_callbacks(
        &self,
        n: i64,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Vec<CallbackRecord>> {
        let (now_s, until) = (ts(now), ts(now + lease));
        self.write(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT id, url, secret, body, attempts FROM zd_callbacks \
                     WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                     AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT $2",
                )
                .bind(&now_s)
                .bind(n)
                .fetch_all(&mut *c)
                .await?;
                let mut out = Vec::new();
                for r in &rows {
                    let id: i64 = r.try_get("id")?;
                    let taken = sqlx::query(
                        "UPDATE zd_callbacks SET lease_until = $2 WHERE id = $1 AND (lease_until IS NULL OR lease_until < $3)",
                    )
                    .bind(id)
                    .bind(&until)
                    .bind(&now_s)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if taken > 0 {
                        out.push(CallbackRecord {
                            id,
                            url: r.try_get("url")?,
                            secret: r.try_get("secret")?,
                            body: r.try_get("body")?,
                            attempts: r.try_get("attempts")?,
                        });
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    pub async fn callback_delivered(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE zd_callbacks SET delivered_at = $2, attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A failed attempt: retry at `next` or, with `None`, give up.
    pub async fn callback_failed(
        &self,
        id: i64,
        error: &str,
        next: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        match next {
            Some(next) => sqlx::query(
                "UPDATE zd_callbacks SET attempts = attempts + 1, next_attempt_at = $2, lease_until = NULL, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(ts(next))
            .bind(&error)
            .execute(&self.pool)
            .await?,
            None => sqlx::query(
                "UPDATE zd_callbacks SET attempts = attempts + 1, failed_at = $2, lease_until = NULL, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(ts(now))
            .bind(&error)
            .execute(&self.pool)
            .await?,
        };
        Ok(())
    }

    /// The blob keys a submission's attachments use.
    pub async fn submission_blob_keys(&self, submission_id: &str) -> Result<Vec<String>> {
        let keys: Vec<Option<String>> =
            sqlx::query_scalar("SELECT blob_key FROM zd_attachments WHERE submission_id = $1")
                .bind(submission_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(keys.into_iter().flatten().collect())
    }

    /// About how many events wait for their signature: the span between the oldest and the
    /// newest unsigned one (two index lookups; exact while they are signed in order). The
    /// signer asks this several times a second, where a `COUNT` would walk the backlog.
    pub async fn unsigned_event_span(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(id) FROM zd_events WHERE token IS NULL) \
             - (SELECT MIN(id) FROM zd_events WHERE token IS NULL) + 1, 0)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Service events still waiting for their signature.
    pub async fn unsigned_event_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM zd_events WHERE token IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Submissions per status.
    pub async fn submission_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM zd_submissions GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// (pending, failed) callbacks, for the admin view and readiness.
    pub async fn callback_counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed FROM zd_callbacks",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("pending")?, row.try_get("failed")?))
    }

    // ---------------------------------------------------------------- deadlines

    /// Submissions `submitted` since before `cutoff` whose destination contact was not yet
    /// told.
    pub async fn unfetched_to_notify(
        &self,
        cutoff: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<SubmissionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM zd_submissions WHERE status = 'submitted' \
             AND submitted_at < $1 AND contact_notified_at IS NULL ORDER BY submitted_at LIMIT $2"
        ))
        .bind(ts(cutoff))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(submission_row).collect()
    }

    /// Records that the destination's contact was told about `submission_id` (after the
    /// mail was queued: a crash in between tells twice rather than never).
    pub async fn mark_contact_notified(
        &self,
        submission_id: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE zd_submissions SET contact_notified_at = $2 WHERE id = $1")
            .bind(submission_id)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Submissions still `submitted` since before `cutoff` (to be rejected automatically).
    pub async fn expired_submissions(
        &self,
        cutoff: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<SubmissionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM zd_submissions WHERE status = 'submitted' AND submitted_at < $1 \
             ORDER BY submitted_at LIMIT $2"
        ))
        .bind(ts(cutoff))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(submission_row).collect()
    }

    /// Removes the encrypted content of submissions decided before `cutoff` (and of
    /// abandoned incomplete ones created before it); the event log stays. Returns the blob
    /// keys to delete.
    pub async fn delete_expired_content(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (cutoff, now) = (ts(cutoff), ts(now));
        self.write(move |c| {
            Box::pin(async move {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM zd_submissions WHERE content_deleted_at IS NULL AND \
                     ((status IN ('accepted', 'rejected') AND decided_at < $1) OR (status = 'incomplete' AND created_at < $1)) \
                     ORDER BY id LIMIT $2",
                )
                .bind(&cutoff)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?;
                let mut blobs = Vec::new();
                for id in &ids {
                    let keys: Vec<Option<String>> = sqlx::query_scalar("SELECT blob_key FROM zd_attachments WHERE submission_id = $1")
                        .bind(id)
                        .fetch_all(&mut *c)
                        .await?;
                    blobs.extend(keys.into_iter().flatten());
                    sqlx::query("DELETE FROM zd_attachments WHERE submission_id = $1")
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "UPDATE zd_submissions SET encrypted_metadata = NULL, encrypted_data = NULL, content_deleted_at = $2, \
                         status = CASE WHEN status = 'incomplete' THEN 'deleted' ELSE status END WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&now)
                    .execute(&mut *c)
                    .await?;
                }
                Ok((ids, blobs))
            })
        })
        .await
    }
}

async fn insert_key(
    c: &mut AnyConnection,
    destination_id: &str,
    k: &DestinationKeyRecord,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO zd_destination_keys (destination_id, kid, key_use, public_jwk, wrapped_private, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (destination_id, kid) DO NOTHING",
    )
    .bind(destination_id)
    .bind(&k.kid)
    .bind(&k.key_use)
    .bind(&k.public_jwk)
    .bind(&k.wrapped_private)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The journal kind of an event: every step of intake and delivery is journaled; the
/// creation of a submission (nothing received yet) is not.
fn journal_kind(event: &str) -> Option<journal::Kind> {
    Some(match event {
        "submit-submission" => journal::Kind::Received,
        "forward-submission" => journal::Kind::Fetched,
        "accept-submission" => journal::Kind::Accepted,
        "reject-submission" => journal::Kind::Rejected,
        "delete-submission" => journal::Kind::Deleted,
        _ => return None,
    })
}

/// The journal entry of an event, queued in the event's own transaction: it names the
/// submission and destination and commits to the event's claims (which carry the
/// authentication tags of the ciphertexts) and, for subscriber events, to their SET —
/// hashes only, nothing personal.
async fn journal_entry_of(
    c: &mut AnyConnection,
    e: &NewEvent,
    now: &str,
) -> Result<Option<journal::Entry>> {
    let Some(kind) = journal_kind(&e.event) else {
        return Ok(None);
    };
    let destination: Option<String> = sqlx::query_scalar(SQL_SUBMISSION_DESTINATION)
        .bind(&e.submission_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(Some(event_journal_entry(kind, e, destination, now)?))
}

/// The journal entry of an event of `kind` at a submission of `destination`.
fn event_journal_entry(
    kind: journal::Kind,
    e: &NewEvent,
    destination: Option<String>,
    now: &str,
) -> Result<journal::Entry> {
    let mut digests = std::collections::BTreeMap::new();
    digests.insert("claims".to_owned(), crypto::sha256_hex(e.claims.as_bytes()));
    if let Some(t) = &e.token {
        digests.insert("set".to_owned(), crypto::sha256_hex(t.as_bytes()));
    }
    let at = crate::parse_ts(now)?;
    Ok(journal::Entry {
        at: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        detail: None,
        digests,
        kind,
        subject: format!("submission:{}", e.submission_id),
        tenant: destination.unwrap_or_else(|| "unknown".into()),
    })
}

/// Why an upload is refused before anything is written (`None`: it may go ahead).
fn upload_refused<T>(
    s: &SubmissionRecord,
    sender: &str,
    attachment_id: &str,
) -> Result<Option<Guarded<T>>> {
    if s.sender_client_id != sender {
        return Ok(Some(Guarded::NotYours));
    }
    if s.status != "incomplete" {
        return Ok(Some(Guarded::WrongState(s.status.clone())));
    }
    if !announced_ids(s)?.iter().any(|a| a == attachment_id) {
        return Ok(Some(Guarded::NotAnnounced));
    }
    Ok(None)
}

/// Why a submit is refused before the uploads are looked at (`None`: go ahead).
fn submit_refused<T>(s: &SubmissionRecord, sender: &str) -> Option<Guarded<T>> {
    if s.sender_client_id != sender {
        return Some(Guarded::NotYours);
    }
    if s.status != "incomplete" {
        return Some(Guarded::WrongState(s.status.clone()));
    }
    None
}

/// The announced attachments not uploaded yet.
fn missing_uploads(s: &SubmissionRecord, uploaded: &[(String, String)]) -> Result<Vec<String>> {
    Ok(announced_ids(s)?
        .into_iter()
        .filter(|a| !uploaded.iter().any(|(u, _)| u == a))
        .collect())
}

/// The submission as it is after the submit step stored `parts`.
fn submitted(mut s: SubmissionRecord, parts: SubmitParts, now: String) -> SubmissionRecord {
    s.status = "submitted".into();
    s.encrypted_metadata = Some(parts.encrypted_metadata);
    s.encrypted_data = parts.encrypted_data;
    s.tags = Some(parts.tags);
    s.submitted_at = Some(now);
    s
}

/// The intake's writes on the synchronous SQLite writer: the same statements and checks
/// as the sqlx path above.
mod sync {
    use rusqlite::{Connection, OptionalExtension as _};

    use super::*;
    use crate::sync_writer::{exec, query_all, query_opt, store_error};

    fn db(e: rusqlite::Error) -> StoreError {
        store_error(e, || {
            "a row of the intake conflicts with a stored one".into()
        })
    }

    fn load_submission(c: &Connection, id: &str) -> Result<Option<SubmissionRecord>> {
        query_opt(c, SQL_LOAD_SUBMISSION, &[&id], |r| {
            Ok(SubmissionRecord {
                id: r.get("id")?,
                case_id: r.get("case_id")?,
                destination_id: r.get("destination_id")?,
                sender_client_id: r.get("sender_client_id")?,
                api_version: r.get("api_version")?,
                service_identifier: r.get("service_identifier")?,
                service_name: r.get("service_name")?,
                region: r.get("region")?,
                status: r.get("status")?,
                announced: r.get("announced")?,
                callback_url: r.get("callback_url")?,
                callback_secret: r.get("callback_secret")?,
                encrypted_metadata: r.get("encrypted_metadata")?,
                encrypted_data: r.get("encrypted_data")?,
                tags: r.get("tags")?,
                created_at: r.get("created_at")?,
                submitted_at: r.get("submitted_at")?,
                content_deleted_at: r.get("content_deleted_at")?,
            })
        })
        .map_err(db)
    }

    fn insert_event(c: &Connection, e: &NewEvent, now: &str) -> Result<()> {
        exec(
            c,
            SQL_EVENT_INSERT,
            &[
                &e.case_id,
                &e.submission_id,
                &e.event,
                &e.issuer,
                &e.jti,
                &e.iat,
                &e.claims,
                &e.token,
                &now,
            ],
        )
        .map_err(|err| {
            store_error(err, || {
                format!("event {} was already recorded (jti must be unique)", e.jti)
            })
        })?;
        let Some(kind) = journal_kind(&e.event) else {
            return Ok(());
        };
        let destination: Option<String> = c
            .prepare_cached(SQL_SUBMISSION_DESTINATION)
            .and_then(|mut st| st.query_row([&e.submission_id], |r| r.get(0)).optional())
            .map_err(db)?;
        let entry = event_journal_entry(kind, e, destination, now)?;
        let (key, text) = crate::journal::queue_row(&entry)?;
        exec(
            c,
            crate::journal::SQL_QUEUE_INSERT,
            &[&key, &text, &crate::now()],
        )
        .map_err(db)?;
        Ok(())
    }

    pub(super) fn create_submission(
        c: &Connection,
        s: &NewSubmission,
        event: &NewEvent,
        now: &str,
    ) -> Result<()> {
        exec(
            c,
            SQL_SUBMISSION_INSERT,
            &[
                &s.id,
                &s.case_id,
                &s.destination_id,
                &s.sender_client_id,
                &s.api_version,
                &s.service_identifier,
                &s.service_name,
                &s.region,
                &s.announced,
                &s.callback_url,
                &s.callback_secret,
                &now,
            ],
        )
        .map_err(|e| store_error(e, || format!("submission {} exists already", s.id)))?;
        insert_event(c, event, now)
    }

    pub(super) fn put_attachment(
        c: &Connection,
        submission_id: &str,
        sender: &str,
        a: &AttachmentRecord,
        now: &str,
    ) -> Result<Guarded<Option<String>>> {
        let Some(s) = load_submission(c, submission_id)? else {
            return Ok(Guarded::NotFound);
        };
        if let Some(refused) = upload_refused(&s, sender, &a.attachment_id)? {
            return Ok(refused);
        }
        let old: Option<Option<String>> = query_opt(
            c,
            SQL_ATTACHMENT_BLOB,
            &[&submission_id, &a.attachment_id],
            |r| r.get(0),
        )
        .map_err(db)?;
        exec(
            c,
            SQL_ATTACHMENT_UPSERT,
            &[
                &submission_id,
                &a.attachment_id,
                &a.size,
                &a.auth_tag,
                &a.body,
                &a.blob_key,
                &now,
            ],
        )
        .map_err(db)?;
        Ok(Guarded::Done(old.flatten()))
    }

    pub(super) fn submit<F>(
        c: &Connection,
        submission_id: &str,
        sender: &str,
        now: &str,
        make: F,
    ) -> Result<Guarded<SubmissionRecord>>
    where
        F: FnOnce(
            &SubmissionRecord,
            &[(String, String)],
        ) -> (SubmitParts, NewEvent, Option<NewCallback>),
    {
        let Some(s) = load_submission(c, submission_id)? else {
            return Ok(Guarded::NotFound);
        };
        if let Some(refused) = submit_refused(&s, sender) {
            return Ok(refused);
        }
        let uploaded: Vec<(String, String)> =
            query_all(c, SQL_ATTACHMENT_TAGS, &[&submission_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db)?;
        let missing = missing_uploads(&s, &uploaded)?;
        if !missing.is_empty() {
            return Ok(Guarded::Missing(missing));
        }
        let (parts, event, callback) = make(&s, &uploaded);
        exec(
            c,
            SQL_SUBMIT,
            &[
                &submission_id,
                &parts.encrypted_metadata,
                &parts.encrypted_data,
                &parts.tags,
                &now,
            ],
        )
        .map_err(db)?;
        insert_event(c, &event, now)?;
        if let Some(cb) = &callback {
            exec(
                c,
                SQL_CALLBACK_INSERT,
                &[&cb.url, &cb.secret, &cb.body, &now],
            )
            .map_err(db)?;
        }
        Ok(Guarded::Done(submitted(s, parts, now.to_owned())))
    }
}
