//! The Zustelldienst: FIT-Connect's Submission API (v1 and v2) over the store. Senders
//! create submissions, upload encrypted attachments and submit; subscribers fetch and
//! accept or reject with signed events; the service signs a Security Event Token for each
//! state change, calls callbacks and enforces the deadlines.
//!
//! The service never decrypts: it checks the JWE structure, stores ciphertext and
//! authentication tags, and compares tags when a subscriber accepts.
//!
//! Signing: a state change writes the event's claims in its own transaction; the PS512
//! signature (an RSA-4096 private-key operation, ~4 ms) is made by the signer worker right
//! after, or on demand when someone reads the log first — with the event's true `iat`.
//! So a burst of submissions is acknowledged at the speed of the database, and signing
//! catches up.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use zustelldienst::destination::{InputMode, KeyUse, check_public_jwk};
use zustelldienst::event::{
    AuthenticationTags, EventKind, SetCheck, check_accept_tags, check_set_header,
    check_subscriber_claims, service_set_claims,
};
use zustelldienst::submission::submission_ref;
use zustelldienst::{
    ApiVersion, CreateSubmission, Destination, DestinationInput, DestinationStatus, Problem,
    ProblemKind, SubmitSubmission,
};

use crate::{ApiClient, App, AppError, Result};

/// Scopes as FIT-Connect's token service issues them today.
pub const SCOPE_SEND: &str = "https://schema.fitko.de/fit-connect/oauth/scopes/send-submissions";
pub const SCOPE_SUBSCRIBE: &str =
    "https://schema.fitko.de/fit-connect/oauth/scopes/subscribe-destinations";
pub const SCOPE_MANAGE: &str =
    "https://schema.fitko.de/fit-connect/oauth/scopes/manage-destinations";

const CALLBACK_NEW_SUBMISSIONS: &str =
    "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions";
const CALLBACK_NEW_EVENTS: &str =
    "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events";

/// Associated data of wrapped callback secrets (destination and sender callbacks alike, so
/// the outbox worker needs no second column to unwrap them).
const CALLBACK_SECRET_AAD: &[u8] = b"zd-callback-secret";
/// Callbacks are retried with exponential backoff (30 s, 1 min, … capped at 6 h) and given
/// up after this many attempts (about three days).
const CALLBACK_MAX_ATTEMPTS: i64 = 20;

/// Unsigned events beyond which the signer no longer yields to intake requests: a burst of
/// a minute at 2,000 submissions/s (two SETs each) is taken in full and signed afterwards
/// (about ten minutes on two cores; reads of an event log sign on demand meanwhile).
const SIGNING_BACKLOG_MAX: i64 = 250_000;

/// Intake requests in flight and when the last one ended, so that the signer can yield to
/// senders. "Arrived recently" alone is not enough: while every sender waits for a slow
/// commit no request arrives, and a signing batch started then starves the commit.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: std::sync::atomic::AtomicU64,
    last_ms: std::sync::atomic::AtomicU64,
}

/// Marks an intake request in flight until dropped.
pub(crate) struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.0.last_ms.store(Activity::now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn now_ms() -> u64 {
        u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }

    /// An intake request begins; it counts as in flight until the guard is dropped.
    pub(crate) fn enter(&self) -> Busy<'_> {
        use std::sync::atomic::Ordering;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(Self::now_ms(), Ordering::Relaxed);
        Busy(self)
    }

    /// An intake request is in flight or ended within the last 100 ms.
    pub fn busy(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.in_flight.load(Ordering::Relaxed) > 0
            || Self::now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)) < 100
    }
}

/// Settings of the Zustelldienst.
#[derive(Debug, Clone)]
pub struct ZustelldienstSettings {
    pub limits: zustelldienst::Limits,
    /// Attachments up to this size are kept in the database (one transaction, group
    /// commit); larger ones in blob storage.
    pub inline_attachment_max: u64,
    /// The destination's technical contact is told after this long unfetched.
    pub notify_unfetched_after: time::Duration,
    /// A submission still `submitted` after this long is rejected automatically.
    pub expire_after: time::Duration,
    /// Content of decided submissions is deleted after this long (the event log stays).
    pub retention: time::Duration,
}

impl Default for ZustelldienstSettings {
    fn default() -> Self {
        ZustelldienstSettings {
            limits: zustelldienst::Limits::default(),
            inline_attachment_max: 256 * 1024,
            notify_unfetched_after: time::Duration::days(3),
            expire_after: time::Duration::days(14),
            retention: time::Duration::days(30),
        }
    }
}

fn p(kind: ProblemKind, detail: impl Into<String>) -> AppError {
    AppError::Problem(Problem::new(kind, detail))
}

impl From<Problem> for AppError {
    fn from(p: Problem) -> Self {
        AppError::Problem(p)
    }
}

/// What a client may do, from its scopes (the URI form and the v1 forms).
fn may_send(c: &ApiClient) -> bool {
    c.scopes
        .iter()
        .any(|s| s == SCOPE_SEND || s.starts_with("send:region:"))
}

fn may_subscribe(c: &ApiClient) -> bool {
    c.scopes
        .iter()
        .any(|s| s == SCOPE_SUBSCRIBE || s.starts_with("subscribe:destination:"))
}

fn may_manage(c: &ApiClient) -> bool {
    c.scopes.iter().any(|s| {
        s == SCOPE_MANAGE || s.starts_with("manage:destination:") || s == "create:destination"
    })
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn parse_doc(r: &store::DestinationRecord) -> Result<Destination> {
    serde_json::from_str(&r.doc)
        .map_err(|e| AppError::Internal(format!("destination {} document: {e}", r.id)))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// A page of a list, clamped to FIT-Connect's bounds.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> std::result::Result<(i64, i64), Problem> {
    let limit = limit.unwrap_or(100);
    let offset = offset.unwrap_or(0);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid("limit must be between 1 and 500"));
    }
    if offset < 0 {
        return Err(Problem::invalid("offset must be 0 or more"));
    }
    Ok((limit, offset))
}

/// Where a downloaded attachment comes from.
pub enum AttachmentBody {
    Inline(String),
    Blob(String),
}

impl App {
    fn zd(&self) -> &ZustelldienstSettings {
        &self.settings.zustelldienst
    }

    /// The `iss` of the service's own SETs: clients pick the service JWKS when `iss` starts
    /// with `http`.
    pub fn zd_issuer(&self) -> String {
        format!("{}/submission-api", self.settings.public_url)
    }

    pub(crate) fn service_event(
        &self,
        kind: EventKind,
        submission_id: &str,
        case_id: &str,
        now: OffsetDateTime,
        payload: Value,
    ) -> store::NewEvent {
        let jti = new_id();
        let claims = service_set_claims(
            &self.zd_issuer(),
            &jti,
            unix(now),
            submission_id,
            case_id,
            kind,
            payload,
        );
        store::NewEvent {
            jti,
            case_id: case_id.to_owned(),
            submission_id: submission_id.to_owned(),
            event: kind.name().to_owned(),
            issuer: "service".into(),
            iat: unix(now),
            claims: claims.to_string(),
            token: None,
        }
    }

    fn wrap_secret(&self, secret: &str) -> Vec<u8> {
        self.kek.wrap(CALLBACK_SECRET_AAD, secret.as_bytes())
    }

    /// The destination as read within the last two seconds, for the intake path (a change
    /// made on another node reaches this one within that time; this node forgets its entry
    /// when it changes the destination). Read-modify-write paths use
    /// [`Self::destination_or_404`].
    pub(crate) async fn destination_cached(
        &self,
        id: &str,
    ) -> Result<Arc<(store::DestinationRecord, Destination)>> {
        if let Some(d) = self.zd_destinations.get(id) {
            return Ok(d);
        }
        let d = Arc::new(self.destination_or_404(id).await?);
        self.zd_destinations.put(&d.0.id, d.clone());
        Ok(d)
    }

    fn forget_destination(&self, id: &str) {
        self.zd_destinations.remove(id);
    }

    async fn destination_or_404(
        &self,
        id: &str,
    ) -> Result<(store::DestinationRecord, Destination)> {
        let id = zustelldienst::parse_id("destinationId", id)?;
        let rec = self.store.destination(&id).await?.ok_or_else(|| {
            p(
                ProblemKind::DestinationNotFound,
                format!("there is no destination {id}; the Routing API names the destination of a service and place"),
            )
        })?;
        let doc = parse_doc(&rec)?;
        Ok((rec, doc))
    }

    /// Is `client` linked to the destination (table, or a v1 scope naming it)?
    async fn linked(&self, client: &ApiClient, destination_id: &str) -> Result<bool> {
        let by_scope = client.scopes.iter().any(|s| {
            s.strip_prefix("subscribe:destination:")
                .or_else(|| s.strip_prefix("manage:destination:"))
                .is_some_and(|d| d.eq_ignore_ascii_case(destination_id))
        });
        Ok(by_scope
            || self
                .store
                .is_destination_client(destination_id, &client.client_id)
                .await?)
    }

    async fn require_linked(&self, client: &ApiClient, destination_id: &str) -> Result<()> {
        if !may_subscribe(client) && !may_manage(client) {
            return Err(p(
                ProblemKind::Forbidden,
                format!(
                    "client {} is not a subscriber (its token lacks {SCOPE_SUBSCRIBE}); register it with `rathaus clients add --fit-connect subscriber`",
                    client.client_id
                ),
            ));
        }
        if !self.linked(client, destination_id).await? {
            return Err(p(
                ProblemKind::Forbidden,
                format!(
                    "client {} is not linked to destination {destination_id}; an administrator links it with `rathaus clients link {} {destination_id}` or POST /api/admin/v1/destinations/{destination_id}/clients",
                    client.client_id, client.client_id
                ),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ destinations

    /// `POST /destinations`: a subscriber registers a destination with its own public keys.
    pub async fn zd_create_destination(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        body: &Value,
    ) -> Result<Value> {
        if !may_manage(client) {
            return Err(p(
                ProblemKind::Forbidden,
                format!("creating destinations needs the scope {SCOPE_MANAGE}"),
            ));
        }
        let input = DestinationInput::parse(version, InputMode::Create, body)?;
        let id = new_id();
        let now = OffsetDateTime::now_utc();
        let mut doc = Destination {
            destination_id: id.clone(),
            status: DestinationStatus::Created,
            encryption_kid: String::new(),
            metadata_versions: Vec::new(),
            services: Vec::new(),
            reply_channels: None,
            contact_information: Value::Null,
            callback_url: None,
        };
        let enc = input.encryption_public_key.clone();
        let sig = input.signing_public_key.clone();
        let secret = input
            .callback
            .clone()
            .flatten()
            .map(|c| self.wrap_secret(&c.secret));
        input.apply(&mut doc);
        let mut keys = Vec::new();
        for (jwk, key_use) in [(enc, "encryption"), (sig, "signature")] {
            let Some(jwk) = jwk else { continue };
            keys.push(store::DestinationKeyRecord {
                destination_id: id.clone(),
                kid: jwk["kid"].as_str().unwrap_or_default().to_owned(),
                key_use: key_use.into(),
                public_jwk: jwk.to_string(),
                wrapped_private: None,
                created_at: String::new(),
                retired_at: None,
            });
        }
        self.store
            .create_destination(
                store::DestinationRecord {
                    id: id.clone(),
                    held_by_platform: false,
                    authority_ars: client.authority_ars.clone(),
                    status: doc.status.as_str().into(),
                    doc: serde_json::to_string(&doc)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                    callback_secret: secret,
                },
                keys,
                vec![client.client_id.clone()],
                now,
            )
            .await?;
        Ok(doc.private_view(version))
    }

    /// `GET /destinations/{id}`: the private view for linked clients, the public one else.
    pub async fn zd_destination(
        &self,
        client: Option<&ApiClient>,
        version: ApiVersion,
        id: &str,
    ) -> Result<Value> {
        let (rec, doc) = self.destination_or_404(id).await?;
        if let Some(c) = client
            && self.linked(c, &rec.id).await?
        {
            return Ok(doc.private_view(version));
        }
        Ok(doc.public_view(version))
    }

    pub async fn zd_list_destinations(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        limit: i64,
        offset: i64,
    ) -> Result<Value> {
        let (recs, total) = self
            .store
            .client_destinations(&client.client_id, limit, offset)
            .await?;
        let mut items = Vec::new();
        for r in &recs {
            items.push(parse_doc(r)?.private_view(version));
        }
        Ok(
            json!({"count": items.len(), "offset": offset, "totalCount": total, "destinations": items}),
        )
    }

    /// `PUT`/`PATCH /destinations/{id}`.
    pub async fn zd_update_destination(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        id: &str,
        body: &Value,
        mode: InputMode,
    ) -> Result<Value> {
        let (rec, mut doc) = self.destination_or_404(id).await?;
        self.require_linked(client, &rec.id).await?;
        if doc.status == DestinationStatus::Decommissioned {
            return Err(p(
                ProblemKind::DestinationStateInvalid,
                "the destination is decommissioned and can no longer change",
            ));
        }
        let input = DestinationInput::parse(version, mode, body)?;
        if let Some(kid) = &input.encryption_kid {
            let key = self.store.destination_key(&rec.id, kid).await?;
            if key.as_ref().is_none_or(|k| k.key_use != "encryption") {
                return Err(p(
                    ProblemKind::InvalidRequest,
                    format!(
                        "encryptionKid {kid} names no encryption key of this destination; add it first with POST /destinations/{}/keys",
                        rec.id
                    ),
                ));
            }
        }
        let secret = input
            .callback
            .clone()
            .map(|cb| cb.map(|c| self.wrap_secret(&c.secret)));
        input.apply(&mut doc);
        let doc_s = serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .update_destination(
                &rec.id,
                doc.status.as_str(),
                &doc_s,
                secret,
                OffsetDateTime::now_utc(),
            )
            .await?;
        self.forget_destination(&rec.id);
        Ok(doc.private_view(version))
    }

    /// `DELETE /destinations/{id}`: decommissions (keys and history stay for older cases).
    pub async fn zd_delete_destination(&self, client: &ApiClient, id: &str) -> Result<()> {
        let (rec, mut doc) = self.destination_or_404(id).await?;
        self.require_linked(client, &rec.id).await?;
        doc.status = DestinationStatus::Decommissioned;
        let doc_s = serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .update_destination(
                &rec.id,
                doc.status.as_str(),
                &doc_s,
                None,
                OffsetDateTime::now_utc(),
            )
            .await?;
        self.forget_destination(&rec.id);
        Ok(())
    }

    /// `POST /destinations/{id}/keys`: adds a public key (encryption or signature, told
    /// apart by `key_ops`). Returns the kid.
    pub async fn zd_add_key(&self, client: &ApiClient, id: &str, jwk: &Value) -> Result<String> {
        let (rec, _) = self.destination_or_404(id).await?;
        self.require_linked(client, &rec.id).await?;
        let key_use = match jwk
            .get("key_ops")
            .and_then(Value::as_array)
            .and_then(|o| o.first())
            .and_then(Value::as_str)
        {
            Some("wrapKey") => KeyUse::Encryption,
            Some("verify") => KeyUse::Signature,
            _ => {
                return Err(p(
                    ProblemKind::InvalidRequest,
                    "key_ops must be [\"wrapKey\"] (encryption key) or [\"verify\"] (signature key)",
                ));
            }
        };
        let jwk = check_public_jwk("key", jwk, key_use)?;
        let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
        self.store
            .add_destination_key(
                store::DestinationKeyRecord {
                    destination_id: rec.id.clone(),
                    kid: kid.clone(),
                    key_use: match key_use {
                        KeyUse::Encryption => "encryption",
                        KeyUse::Signature => "signature",
                    }
                    .into(),
                    public_jwk: jwk.to_string(),
                    wrapped_private: None,
                    created_at: String::new(),
                    retired_at: None,
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(kid)
    }

    /// `GET /destinations/{id}/keys/{kid}` (public).
    pub async fn zd_key(&self, id: &str, kid: &str) -> Result<Value> {
        let (rec, _) = self.destination_or_404(id).await?;
        let key = self.store.destination_key(&rec.id, kid).await?.ok_or_else(|| {
            p(ProblemKind::KeyNotFound, format!("destination {} has no key {kid}; its encryptionKid names the current encryption key", rec.id))
        })?;
        serde_json::from_str(&key.public_jwk).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// `GET /destinations/{id}/keys`: the current encryption key first (v2 clients take
    /// `keys[0]`), then the signature keys, then retired keys.
    pub async fn zd_keys(&self, id: &str) -> Result<Value> {
        let (rec, doc) = self.destination_or_404(id).await?;
        let mut keys = self.store.destination_keys(&rec.id).await?;
        keys.sort_by_key(|k| {
            (
                k.kid != doc.encryption_kid,
                k.retired_at.is_some(),
                k.key_use != "encryption",
            )
        });
        let list: Vec<Value> = keys
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(json!({ "keys": list }))
    }

    // ------------------------------------------------------------------ submissions

    /// `POST /submissions`.
    pub async fn zd_create_submission(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        body: &Value,
    ) -> Result<Value> {
        let _busy = self.zd_activity.enter();
        if !may_send(client) {
            return Err(p(
                ProblemKind::Forbidden,
                format!(
                    "sending needs the scope {SCOPE_SEND}; register the client with `rathaus clients add --fit-connect sender`"
                ),
            ));
        }
        let c = CreateSubmission::parse(version, body, &self.zd().limits)?;
        let dest = self.destination_cached(&c.destination_id).await?;
        let (rec, doc) = (&dest.0, &dest.1);
        if doc.status != DestinationStatus::Active {
            return Err(p(
                ProblemKind::DestinationStateInvalid,
                format!(
                    "destination {} is {}, only active destinations accept submissions",
                    rec.id,
                    doc.status.as_str()
                ),
            ));
        }
        if !doc.accepts(&c.service_identifier, c.region.as_deref()) {
            let offered: Vec<&str> = doc.services.iter().map(|s| s.identifier.as_str()).collect();
            return Err(p(
                ProblemKind::ServiceNotOffered,
                format!(
                    "destination {} does not accept {}{}; it accepts: {}",
                    rec.id,
                    c.service_identifier,
                    c.region
                        .as_deref()
                        .map(|r| format!(" in region {r}"))
                        .unwrap_or_default(),
                    offered.join(", ")
                ),
            ));
        }
        let case_id = match &c.case_id {
            Some(case) => match self.store.case_sender(case).await? {
                Some((sender, dest)) if sender == client.client_id && dest == rec.id => {
                    case.clone()
                }
                Some(_) => {
                    return Err(p(
                        ProblemKind::Forbidden,
                        format!("case {case} belongs to another sender or destination"),
                    ));
                }
                None => {
                    return Err(p(
                        ProblemKind::CaseNotFound,
                        format!("there is no case {case}; leave caseId out to open a new case"),
                    ));
                }
            },
            None => new_id(),
        };
        let id = new_id();
        let now = OffsetDateTime::now_utc();
        let event = self.service_event(EventKind::CreateSubmission, &id, &case_id, now, json!({}));
        self.store
            .create_submission(
                store::NewSubmission {
                    id: id.clone(),
                    case_id: case_id.clone(),
                    destination_id: rec.id.clone(),
                    sender_client_id: client.client_id.clone(),
                    api_version: version.as_str().into(),
                    service_identifier: c.service_identifier.clone(),
                    service_name: c.service_name.clone(),
                    region: c.region.clone(),
                    announced: serde_json::to_string(&c.announced_attachments)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                    callback_url: c.callback.as_ref().map(|cb| cb.url.clone()),
                    callback_secret: c.callback.as_ref().map(|cb| self.wrap_secret(&cb.secret)),
                },
                event,
                now,
            )
            .await?;
        self.signer_wake.notify_one();
        self.journal.wake.notify_one();
        Ok(submission_ref(&rec.id, &id, &case_id))
    }

    async fn own_submission(
        &self,
        client: &ApiClient,
        id: &str,
    ) -> Result<store::SubmissionRecord> {
        let id = zustelldienst::parse_id("submissionId", id)?;
        match self.store.submission(&id).await? {
            Some(s) if s.sender_client_id == client.client_id => Ok(s),
            _ => Err(p(
                ProblemKind::SubmissionNotFound,
                format!("you have no submission {id}"),
            )),
        }
    }

    /// `PUT /submissions/{id}/attachments/{aid}`: stores the JWE (replacing an earlier
    /// upload of the same id).
    pub async fn zd_upload_attachment(
        &self,
        client: &ApiClient,
        submission_id: &str,
        attachment_id: &str,
        body: &[u8],
    ) -> Result<()> {
        let _busy = self.zd_activity.enter();
        if !may_send(client) {
            return Err(p(
                ProblemKind::Forbidden,
                format!("uploading needs the scope {SCOPE_SEND}"),
            ));
        }
        let submission_id = zustelldienst::parse_id("submissionId", submission_id)?;
        let attachment_id = zustelldienst::parse_id("attachmentId", attachment_id)?;
        let limits = self.zd().limits;
        if body.len() as u64 > limits.max_attachment_bytes {
            return Err(p(
                ProblemKind::PayloadTooLarge,
                format!(
                    "the attachment has {} bytes; the limit is {}",
                    body.len(),
                    limits.max_attachment_bytes
                ),
            ));
        }
        let text = std::str::from_utf8(body).map_err(|_| {
            p(
                ProblemKind::InvalidJwe,
                "the body must be a compact JWE (ASCII text)",
            )
        })?;
        let text = text.trim_end_matches(['\r', '\n']);
        let info = zustelldienst::jwe::check_structure("attachment", text, false)?;
        let now = OffsetDateTime::now_utc();
        let (inline, blob_key) = if text.len() as u64 <= self.zd().inline_attachment_max {
            (Some(text.to_owned()), None)
        } else {
            let key = format!("zd/{submission_id}/{attachment_id}/{}", new_id());
            self.blobs
                .put(&key, text.as_bytes())
                .await
                .map_err(|e| AppError::Internal(format!("storing the attachment: {e}")))?;
            (None, Some(key))
        };
        let outcome = self
            .store
            .put_attachment(
                &submission_id,
                &client.client_id,
                store::SubmissionAttachment {
                    attachment_id: attachment_id.clone(),
                    size: text.len() as i64,
                    auth_tag: info.authentication_tag,
                    body: inline,
                    blob_key: blob_key.clone(),
                },
                now,
            )
            .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if let Some(k) = &blob_key {
                    let _ = self.blobs.delete(k).await;
                }
                return Err(e.into());
            }
        };
        let err = match outcome {
            store::Guarded::Done(old) => {
                if let Some(old) = old {
                    let _ = self.blobs.delete(&old).await;
                }
                return Ok(());
            }
            store::Guarded::NotFound | store::Guarded::NotYours => p(
                ProblemKind::SubmissionNotFound,
                format!("you have no submission {submission_id}"),
            ),
            store::Guarded::WrongState(s) => p(
                ProblemKind::SubmissionStateInvalid,
                format!(
                    "submission {submission_id} is {s}; attachments can only be uploaded before it is submitted"
                ),
            ),
            store::Guarded::NotAnnounced => p(
                ProblemKind::AttachmentNotAnnounced,
                format!(
                    "attachment {attachment_id} was not announced in announcedAttachments when the submission was created"
                ),
            ),
            store::Guarded::Missing(_) => AppError::Internal("unexpected outcome".into()),
        };
        if let Some(k) = &blob_key {
            let _ = self.blobs.delete(k).await;
        }
        Err(err)
    }

    /// `PUT /submissions/{id}`: submits.
    pub async fn zd_submit(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        submission_id: &str,
        body: &Value,
    ) -> Result<Value> {
        let _busy = self.zd_activity.enter();
        if !may_send(client) {
            return Err(p(
                ProblemKind::Forbidden,
                format!("submitting needs the scope {SCOPE_SEND}"),
            ));
        }
        let submission_id = zustelldienst::parse_id("submissionId", submission_id)?;
        let parts = SubmitSubmission::parse(version, body, &self.zd().limits)?;
        let require_cty = version == ApiVersion::V2;
        let meta = zustelldienst::jwe::check_structure(
            "encryptedMetadata",
            &parts.encrypted_metadata,
            require_cty,
        )?;
        let data = parts
            .encrypted_data
            .as_deref()
            .map(|d| zustelldienst::jwe::check_structure("encryptedData", d, require_cty))
            .transpose()?;
        let now = OffsetDateTime::now_utc();
        let existing = self.own_submission(client, &submission_id).await?;
        let dest = self.destination_cached(&existing.destination_id).await?;
        let dest_callback = dest
            .1
            .callback_url
            .clone()
            .zip(dest.0.callback_secret.clone());
        let issuer = self.zd_issuer();
        let outcome = self
            .store
            .submit_submission(
                &submission_id,
                &client.client_id,
                now,
                move |s, uploaded| {
                    let tags = AuthenticationTags {
                        metadata: meta.authentication_tag,
                        data: data.map(|d| d.authentication_tag),
                        attachments: uploaded.iter().cloned().collect(),
                    };
                    let jti = new_id();
                    let claims = service_set_claims(
                        &issuer,
                        &jti,
                        unix(now),
                        &s.id,
                        &s.case_id,
                        EventKind::SubmitSubmission,
                        json!({"authenticationTags": tags.to_json()}),
                    );
                    let event = store::NewEvent {
                        jti,
                        case_id: s.case_id.clone(),
                        submission_id: s.id.clone(),
                        event: EventKind::SubmitSubmission.name().into(),
                        issuer: "service".into(),
                        iat: unix(now),
                        claims: claims.to_string(),
                        token: None,
                    };
                    let callback = dest_callback.map(|(url, secret)| store::NewCallback {
                        url,
                        secret,
                        body: json!({"type": CALLBACK_NEW_SUBMISSIONS, "submissionIds": [s.id],
                        "submissions": [submission_ref(&s.destination_id, &s.id, &s.case_id)]})
                        .to_string(),
                    });
                    (
                        store::SubmitParts {
                            encrypted_metadata: parts.encrypted_metadata,
                            encrypted_data: parts.encrypted_data,
                            tags: tags.to_json().to_string(),
                        },
                        event,
                        callback,
                    )
                },
            )
            .await?;
        match outcome {
            store::Guarded::Done(s) => {
                self.signer_wake.notify_one();
                self.journal.wake.notify_one();
                self.callback_wake.notify_one();
                self.zd_after_submit(&s, dest.0.held_by_platform).await;
                // Submitting needs every announced attachment uploaded and takes no other,
                // so the announced list is what was uploaded (no second read).
                let uploaded: Vec<String> = serde_json::from_str(&s.announced).map_err(|e| {
                    AppError::Internal(format!("announced attachments of {}: {e}", s.id))
                })?;
                Ok(reduced_view(version, &s, uploaded))
            }
            store::Guarded::NotFound | store::Guarded::NotYours => Err(p(
                ProblemKind::SubmissionNotFound,
                format!("you have no submission {submission_id}"),
            )),
            store::Guarded::WrongState(st) => Err(p(
                ProblemKind::SubmissionStateInvalid,
                format!(
                    "submission {submission_id} is {st}; only an incomplete submission can be submitted (once)"
                ),
            )),
            store::Guarded::Missing(ids) => Err(p(
                ProblemKind::MissingAttachments,
                format!("upload the announced attachments first: {}", ids.join(", ")),
            )),
            store::Guarded::NotAnnounced => Err(AppError::Internal("unexpected outcome".into())),
        }
    }

    /// Hook after a submission reached `submitted` (the ePoststelle wakes up for its own
    /// destinations).
    async fn zd_after_submit(&self, _s: &store::SubmissionRecord, held_by_platform: bool) {
        if held_by_platform {
            self.poststelle_wake.notify_one();
        }
    }

    async fn submission_reduced(
        &self,
        version: ApiVersion,
        s: &store::SubmissionRecord,
    ) -> Result<Value> {
        let attachments: Vec<String> = self
            .store
            .attachment_tags(&s.id)
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        Ok(reduced_view(version, s, attachments))
    }
}

/// FIT-Connect's `SubmissionReduced`/`Submission` head: ids, service, attachments.
fn reduced_view(
    version: ApiVersion,
    s: &store::SubmissionRecord,
    attachments: Vec<String>,
) -> Value {
    let mut v = json!({
        "destinationId": s.destination_id,
        "submissionId": s.id,
        "caseId": s.case_id,
        "attachments": attachments,
    });
    v[version.service_field()] =
        json!({"name": s.service_name, "identifier": s.service_identifier});
    if let Some(url) = &s.callback_url {
        v["callback"] = json!({"url": url});
    }
    if let Some(r) = &s.region {
        v["region"] = json!(r);
    }
    v
}

impl App {
    /// `GET /submissions`: submissions waiting at the given destination, or at all of the
    /// client's destinations.
    pub async fn zd_pickup_list(
        &self,
        client: &ApiClient,
        destination_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Value> {
        let dests = match destination_id {
            Some(d) => {
                let (rec, _) = self.destination_or_404(d).await?;
                self.require_linked(client, &rec.id).await?;
                vec![rec.id]
            }
            None => {
                if !may_subscribe(client) {
                    return Err(p(
                        ProblemKind::Forbidden,
                        format!("listing submissions needs the scope {SCOPE_SUBSCRIBE}"),
                    ));
                }
                let mut ids: Vec<String> = self
                    .store
                    .client_destinations(&client.client_id, 500, 0)
                    .await?
                    .0
                    .into_iter()
                    .map(|d| d.id)
                    .collect();
                for s in &client.scopes {
                    if let Some(d) = s.strip_prefix("subscribe:destination:") {
                        ids.push(d.to_ascii_lowercase());
                    }
                }
                ids
            }
        };
        let (items, total) = self.store.pickup_list(&dests, limit, offset).await?;
        let subs: Vec<Value> = items
            .iter()
            .map(|(d, s, c)| submission_ref(d, s, c))
            .collect();
        Ok(json!({"count": subs.len(), "offset": offset, "totalCount": total, "submissions": subs}))
    }

    async fn subscriber_submission(
        &self,
        client: &ApiClient,
        id: &str,
    ) -> Result<store::SubmissionRecord> {
        let id = zustelldienst::parse_id("submissionId", id)?;
        let s = self.store.submission(&id).await?.ok_or_else(|| {
            p(
                ProblemKind::SubmissionNotFound,
                format!("there is no submission {id}"),
            )
        })?;
        self.require_linked(client, &s.destination_id).await?;
        let status = zustelldienst::SubmissionStatus::parse(&s.status);
        if !status.is_some_and(zustelldienst::SubmissionStatus::readable_by_subscriber) {
            return Err(p(
                ProblemKind::SubmissionNotFound,
                format!(
                    "submission {id} is {}; subscribers can read submissions only while submitted or forwarded",
                    s.status
                ),
            ));
        }
        Ok(s)
    }

    /// `GET /submissions/{id}` for subscribers; the first fetch records `forward-submission`.
    pub async fn zd_get_submission(
        &self,
        client: &ApiClient,
        version: ApiVersion,
        id: &str,
    ) -> Result<Value> {
        let s = self.subscriber_submission(client, id).await?;
        if s.status == "submitted" {
            let now = OffsetDateTime::now_utc();
            let event = self.service_event(
                EventKind::ForwardSubmission,
                &s.id,
                &s.case_id,
                now,
                json!({}),
            );
            if self.store.mark_forwarded(&s.id, event, now).await? {
                self.signer_wake.notify_one();
                self.journal.wake.notify_one();
            }
        }
        let mut v = self.submission_reduced(version, &s).await?;
        v["encryptedMetadata"] = json!(s.encrypted_metadata);
        if let Some(d) = &s.encrypted_data {
            v["encryptedData"] = json!(d);
        }
        Ok(v)
    }

    /// `GET /submissions/{id}/attachments/{aid}`.
    pub async fn zd_get_attachment(
        &self,
        client: &ApiClient,
        id: &str,
        attachment_id: &str,
    ) -> Result<Vec<u8>> {
        let s = self.subscriber_submission(client, id).await?;
        let aid = zustelldienst::parse_id("attachmentId", attachment_id)?;
        let a = self.store.attachment(&s.id, &aid).await?.ok_or_else(|| {
            p(
                ProblemKind::AttachmentNotFound,
                format!("submission {} has no attachment {aid}", s.id),
            )
        })?;
        match (a.body, a.blob_key) {
            (Some(b), _) => Ok(b.into_bytes()),
            (None, Some(k)) => Ok(self
                .blobs
                .get(&k)
                .await
                .map_err(|e| AppError::Internal(format!("reading attachment: {e}")))?
                .to_vec()),
            _ => Err(AppError::Internal("attachment without content".into())),
        }
    }

    // ------------------------------------------------------------------ events

    /// `GET /cases/{caseId}/events` (or `/submissions/{id}/events`): the signed SETs,
    /// oldest first; unsigned ones are signed now, with their true `iat`.
    pub async fn zd_events(
        &self,
        client: &ApiClient,
        case_id: Option<&str>,
        submission_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Value> {
        let (records, total) = match (case_id, submission_id) {
            (Some(c), _) => {
                let c = zustelldienst::parse_id("caseId", c)?;
                let (sender, dest) =
                    self.store.case_sender(&c).await?.ok_or_else(|| {
                        p(ProblemKind::CaseNotFound, format!("there is no case {c}"))
                    })?;
                if sender != client.client_id {
                    self.require_linked(client, &dest).await?;
                }
                self.store.case_events(&c, limit, offset).await?
            }
            (None, Some(sid)) => {
                let sid = zustelldienst::parse_id("submissionId", sid)?;
                let s = self.store.submission(&sid).await?.ok_or_else(|| {
                    p(
                        ProblemKind::SubmissionNotFound,
                        format!("there is no submission {sid}"),
                    )
                })?;
                if s.sender_client_id != client.client_id {
                    self.require_linked(client, &s.destination_id).await?;
                }
                self.store.submission_events(&sid, limit, offset).await?
            }
            (None, None) => return Err(AppError::Internal("events of what?".into())),
        };
        let tokens = self.sign_missing(records).await?;
        Ok(
            json!({"count": tokens.len(), "offset": offset, "totalCount": total, "eventLog": tokens}),
        )
    }

    /// Tokens for the records, signing those not yet signed (and storing the signatures).
    async fn sign_missing(&self, records: Vec<store::EventRecord>) -> Result<Vec<String>> {
        let unsigned: Vec<(i64, String)> = records
            .iter()
            .filter(|r| r.token.is_none())
            .map(|r| (r.id, r.claims.clone()))
            .collect();
        let mut signed = std::collections::HashMap::new();
        if !unsigned.is_empty() {
            let made = self.sign_claims(unsigned).await?;
            // Another node may have signed the same event in between: the store answers
            // with the token it kept, so everyone sees one token per event.
            signed.extend(self.store.set_event_tokens(made).await?);
        }
        Ok(records
            .into_iter()
            .filter_map(|r| r.token.or_else(|| signed.remove(&r.id)))
            .collect())
    }

    async fn sign_claims(&self, items: Vec<(i64, String)>) -> Result<Vec<(i64, String)>> {
        let key = self
            .routing_keys
            .first()
            .cloned()
            .ok_or_else(|| AppError::Internal("no service signing key".into()))?;
        // Both cores: split the batch in two halves signed in parallel.
        let mid = items.len().div_ceil(2);
        let mut items = items;
        let second = items.split_off(mid);
        let sign = |key: Arc<crypto::RsaSigningKey>, part: Vec<(i64, String)>| {
            tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|(id, claims)| {
                        key.sign_compact(Some(zustelldienst::event::SET_TYP), claims.as_bytes())
                            .map(|t| (id, t))
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
        };
        let a = sign(key.clone(), items);
        let b = sign(key, second);
        let mut out = a.await.map_err(|e| AppError::Internal(e.to_string()))??;
        out.extend(b.await.map_err(|e| AppError::Internal(e.to_string()))??);
        Ok(out)
    }

    /// The signer worker: signs events written without signature (runs until the process
    /// ends; an interrupted batch is simply signed again — `set_event_tokens` keeps the
    /// first signature of each event).
    pub async fn run_set_signer(self: Arc<Self>) {
        // Signing and storing overlap: while one batch's tokens are being committed (an
        // fsync and a hundred updates), the next batch is already signing, so the cores do
        // not wait for the disk. `cursor` skips the batch in flight; after a failed write, or
        // when nothing is left above it, the scan starts again from the oldest.
        let mut writing: Option<tokio::task::JoinHandle<Result<()>>> = None;
        let mut cursor = 0i64;
        loop {
            // Senders first: while intake requests arrive, signing waits (reads of the
            // event log sign on demand), unless the backlog grows beyond the bound.
            // Without senders, batches of 128 (about 0.4 s on two cores) keep both cores
            // signing; with them, the backlog bound lets through batches of 8.
            let mut batch = 128;
            if self.zd_activity.busy() {
                match self.store.unsigned_event_span().await {
                    Ok(n) if n < SIGNING_BACKLOG_MAX => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                    _ => batch = 8,
                }
            }
            let pending = match self.store.unsigned_events_after(cursor, batch).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "SET signer");
                    Vec::new()
                }
            };
            if pending.is_empty() {
                if let Some(w) = writing.take() {
                    finish_token_write(w).await;
                }
                if cursor > 0 {
                    cursor = 0;
                    continue;
                }
                tokio::select! {
                    () = self.signer_wake.notified() => {}
                    () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
                continue;
            }
            cursor = pending.last().map_or(cursor, |e| e.id);
            let made = match self
                .sign_claims(pending.into_iter().map(|r| (r.id, r.claims)).collect())
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "SET signer");
                    cursor = 0;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Some(w) = writing.take()
                && !finish_token_write(w).await
            {
                cursor = 0;
            }
            let store = self.store.clone();
            writing = Some(tokio::spawn(async move {
                store
                    .set_event_tokens(made)
                    .await
                    .map(|_| ())
                    .map_err(AppError::from)
            }));
        }
    }

    /// The Zustelldienst's backlog, for operators (admin API) and benchmarks.
    pub async fn zd_status(&self) -> Result<Value> {
        let (pending, failed) = self.store.callback_counts().await?;
        let counts: serde_json::Map<String, Value> = self
            .store
            .submission_counts()
            .await?
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        Ok(json!({
            "unsignedEvents": self.store.unsigned_event_count().await?,
            "callbacks": {"pending": pending, "failed": failed},
            "submissions": counts,
        }))
    }

    /// Signs up to `n` pending events; returns how many.
    pub async fn sign_pending(&self, n: i64) -> Result<usize> {
        let pending = self.store.unsigned_events(n).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let count = pending.len();
        let made = self
            .sign_claims(pending.into_iter().map(|r| (r.id, r.claims)).collect())
            .await?;
        self.store.set_event_tokens(made).await?;
        Ok(count)
    }

    /// `POST /cases/{caseId}/events`: a subscriber's accept or reject.
    pub async fn zd_post_event(&self, client: &ApiClient, case_id: &str, set: &str) -> Result<()> {
        let case_id = zustelldienst::parse_id("caseId", case_id)?;
        let (_, dest) = self.store.case_sender(&case_id).await?.ok_or_else(|| {
            p(
                ProblemKind::CaseNotFound,
                format!("there is no case {case_id}"),
            )
        })?;
        self.require_linked(client, &dest).await?;
        let set = set.trim();
        if set.len() > 256 * 1024 {
            return Err(p(
                ProblemKind::PayloadTooLarge,
                "a SET may have at most 256 KiB",
            ));
        }
        let header = crypto::jwt_header(set).map_err(|_| {
            p(
                ProblemKind::InvalidEvent,
                "the body must be a compact JWS (header.payload.signature)",
            )
        })?;
        let kid = check_set_header(&header)?;
        let key = self.store.destination_key(&dest, &kid).await?.filter(|k| k.key_use == "signature").ok_or_else(|| {
            p(ProblemKind::InvalidEventSignature, format!("kid {kid} is not a signature key of destination {dest}; register it with POST /destinations/{dest}/keys"))
        })?;
        let jwk: Value =
            serde_json::from_str(&key.public_jwk).map_err(|e| AppError::Internal(e.to_string()))?;
        let (_, payload) = crypto::verify_compact_ps512(&jwk, set).map_err(|_| {
            p(
                ProblemKind::InvalidEventSignature,
                format!("the signature does not verify with key {kid} of destination {dest}"),
            )
        })?;
        let claims: Value = serde_json::from_slice(&payload)
            .map_err(|_| p(ProblemKind::InvalidEvent, "the SET payload is not JSON"))?;
        let ev = check_subscriber_claims(
            &claims,
            &SetCheck {
                destination_id: &dest,
                case_id: &case_id,
            },
        )?;
        let s = self
            .store
            .submission(&ev.submission_id)
            .await?
            .filter(|s| s.case_id == case_id)
            .ok_or_else(|| {
                p(
                    ProblemKind::SubmissionNotFound,
                    format!("case {case_id} has no submission {}", ev.submission_id),
                )
            })?;
        if ev.kind == EventKind::AcceptSubmission {
            let stored = stored_tags(&s)?;
            check_accept_tags(&ev.payload, &stored)?;
        }
        let decided = match ev.kind {
            EventKind::AcceptSubmission => "accepted",
            _ => "rejected",
        };
        let now = OffsetDateTime::now_utc();
        let callback = self.sender_callback(&s);
        let outcome = self
            .store
            .decide_submission(
                store::Decision {
                    submission_id: s.id.clone(),
                    from: vec!["submitted".into(), "forwarded".into()],
                    to: decided.into(),
                    event: store::NewEvent {
                        jti: ev.jti.clone(),
                        case_id: case_id.clone(),
                        submission_id: s.id.clone(),
                        event: ev.kind.name().into(),
                        issuer: dest.clone(),
                        iat: ev.iat,
                        claims: claims.to_string(),
                        token: Some(set.to_owned()),
                    },
                    callback,
                },
                now,
            )
            .await?;
        match outcome {
            store::Guarded::Done(()) => {
                self.callback_wake.notify_one();
                self.journal.wake.notify_one();
                Ok(())
            }
            store::Guarded::WrongState(st) => Err(p(
                ProblemKind::InvalidStateTransition,
                format!(
                    "submission {} is {st}; {} is possible only while it is submitted or forwarded",
                    s.id,
                    ev.kind.name()
                ),
            )),
            _ => Err(p(
                ProblemKind::SubmissionNotFound,
                format!("there is no submission {}", s.id),
            )),
        }
    }

    pub(crate) fn sender_callback(
        &self,
        s: &store::SubmissionRecord,
    ) -> Option<store::NewCallback> {
        let (url, secret) = (s.callback_url.clone()?, s.callback_secret.clone()?);
        Some(store::NewCallback {
            url,
            secret,
            body: json!({"type": CALLBACK_NEW_EVENTS, "submissionIds": [s.id],
                "submissions": [submission_ref(&s.destination_id, &s.id, &s.case_id)]})
            .to_string(),
        })
    }
}

/// The tags stored at submit.
pub fn stored_tags(s: &store::SubmissionRecord) -> Result<AuthenticationTags> {
    let v: Value = s
        .tags
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| AppError::Internal(format!("stored tags: {e}")))?
        .unwrap_or(Value::Null);
    Ok(AuthenticationTags {
        metadata: v["metadata"].as_str().unwrap_or_default().to_owned(),
        data: v["data"].as_str().map(str::to_owned),
        attachments: v["attachments"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, t)| (k.clone(), t.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Keys made for a destination: public JWKs to publish, private parts to wrap or hand out.
pub struct MadeKeys {
    pub encryption: crypto::RsaDecryptionKey,
    pub signing: crypto::RsaSigningKey,
}

/// A destination to set up for an authority.
pub struct DestinationSetup {
    pub authority_ars: Option<String>,
    pub services: Vec<zustelldienst::ServiceOffer>,
    pub contact: Value,
    /// The platform keeps the private keys (the authority's ePoststelle); otherwise they
    /// are returned once and never stored.
    pub held_by_platform: bool,
    /// Subscriber clients to link.
    pub clients: Vec<String>,
}

pub(crate) fn key_aad(destination_id: &str, kid: &str) -> Vec<u8> {
    format!("zd-destination-key/{destination_id}/{kid}").into_bytes()
}

impl App {
    /// Creates an active destination with freshly made RSA-4096 keys (encryption and
    /// signature). Returns its id and, for destinations the platform does not hold, the
    /// keys (whose private parts exist nowhere else).
    pub async fn zd_setup_destination(
        &self,
        setup: DestinationSetup,
    ) -> Result<(String, Option<MadeKeys>)> {
        let id = new_id();
        let cn = format!("Rathaus destination {id}");
        let keys =
            tokio::task::spawn_blocking(move || -> std::result::Result<MadeKeys, crypto::Error> {
                Ok(MadeKeys {
                    encryption: crypto::RsaDecryptionKey::generate(&cn)?,
                    signing: crypto::RsaSigningKey::generate(&cn)?,
                })
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        for c in &setup.clients {
            if self.store.oauth_client(c).await?.is_none() {
                return Err(AppError::InvalidField {
                    field: "clients",
                    message: format!("there is no client {c}"),
                });
            }
        }
        let enc_kid = keys.encryption.kid().to_owned();
        let sig_kid = keys.signing.kid().to_owned();
        let wrap = |kid: &str, der: &[u8]| {
            setup
                .held_by_platform
                .then(|| self.kek.wrap(&key_aad(&id, kid), der))
        };
        let records = vec![
            store::DestinationKeyRecord {
                destination_id: id.clone(),
                kid: enc_kid.clone(),
                key_use: "encryption".into(),
                public_jwk: keys.encryption.public_jwk().to_string(),
                wrapped_private: wrap(&enc_kid, &keys.encryption.pkcs8_der()),
                created_at: String::new(),
                retired_at: None,
            },
            store::DestinationKeyRecord {
                destination_id: id.clone(),
                kid: sig_kid.clone(),
                key_use: "signature".into(),
                public_jwk: keys.signing.public_jwk().to_string(),
                wrapped_private: wrap(&sig_kid, &keys.signing.pkcs8_der()),
                created_at: String::new(),
                retired_at: None,
            },
        ];
        let doc = Destination {
            destination_id: id.clone(),
            status: DestinationStatus::Active,
            encryption_kid: enc_kid,
            metadata_versions: vec!["1.0.0".into()],
            services: setup.services,
            reply_channels: None,
            contact_information: setup.contact,
            callback_url: None,
        };
        self.store
            .create_destination(
                store::DestinationRecord {
                    id: id.clone(),
                    held_by_platform: setup.held_by_platform,
                    authority_ars: setup.authority_ars,
                    status: doc.status.as_str().into(),
                    doc: serde_json::to_string(&doc)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                    callback_secret: None,
                },
                records,
                setup.clients,
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok((id, (!setup.held_by_platform).then_some(keys)))
    }

    /// Links a subscriber client to a destination (admin).
    pub async fn zd_link_client(&self, destination_id: &str, client_id: &str) -> Result<()> {
        let (rec, _) = self.destination_or_404(destination_id).await?;
        if self.store.oauth_client(client_id).await?.is_none() {
            return Err(AppError::NotFound(format!(
                "there is no client {client_id}"
            )));
        }
        self.store
            .link_destination_client(&rec.id, client_id)
            .await?;
        Ok(())
    }

    pub async fn zd_unlink_client(&self, destination_id: &str, client_id: &str) -> Result<bool> {
        let id = zustelldienst::parse_id("destinationId", destination_id)?;
        Ok(self.store.unlink_destination_client(&id, client_id).await?)
    }

    /// The private encryption key of a destination the platform holds, for `kid` (older
    /// submissions name retired keys: those stay usable).
    pub async fn zd_decryption_key(
        &self,
        destination_id: &str,
        kid: &str,
    ) -> Result<Option<crypto::RsaDecryptionKey>> {
        let Some(k) = self.store.destination_key(destination_id, kid).await? else {
            return Ok(None);
        };
        let Some(wrapped) = k.wrapped_private else {
            return Ok(None);
        };
        let der = self.kek.unwrap(&key_aad(destination_id, kid), &wrapped)?;
        let jwk: Value =
            serde_json::from_str(&k.public_jwk).map_err(|e| AppError::Internal(e.to_string()))?;
        let cert = jwk["x5c"][0].as_str().and_then(|c| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(c).ok()
        });
        let cert =
            cert.ok_or_else(|| AppError::Internal("stored key without certificate".into()))?;
        Ok(Some(crypto::RsaDecryptionKey::from_der(&der, &cert)?))
    }

    /// Rotates the encryption key of a destination the platform holds: new key, new
    /// `encryptionKid`; the old key stays (retired) so older submissions remain readable.
    pub async fn zd_rotate_encryption_key(&self, destination_id: &str) -> Result<String> {
        let (rec, mut doc) = self.destination_or_404(destination_id).await?;
        if !rec.held_by_platform {
            return Err(AppError::Invalid("only destinations the platform holds rotate here; external subscribers add keys with POST /destinations/{id}/keys".into()));
        }
        let cn = format!("Rathaus destination {}", rec.id);
        let key = tokio::task::spawn_blocking(move || crypto::RsaDecryptionKey::generate(&cn))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        let kid = key.kid().to_owned();
        let now = OffsetDateTime::now_utc();
        self.store
            .add_destination_key(
                store::DestinationKeyRecord {
                    destination_id: rec.id.clone(),
                    kid: kid.clone(),
                    key_use: "encryption".into(),
                    public_jwk: key.public_jwk().to_string(),
                    wrapped_private: Some(self.kek.wrap(&key_aad(&rec.id, &kid), &key.pkcs8_der())),
                    created_at: String::new(),
                    retired_at: None,
                },
                now,
            )
            .await?;
        doc.encryption_kid = kid.clone();
        let doc_s = serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .update_destination(&rec.id, doc.status.as_str(), &doc_s, None, now)
            .await?;
        self.forget_destination(&rec.id);
        self.store
            .retire_destination_keys(&rec.id, "encryption", &kid, now)
            .await?;
        Ok(kid)
    }
}

/// One callback request as the worker hands it to the HTTP sender.
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    pub url: String,
    /// `callback-authentication` (hex HMAC-SHA512) and `callback-timestamp`.
    pub headers: Vec<(&'static str, String)>,
    /// Compact one-line JSON (receivers re-reading it line by line still match the HMAC).
    pub body: String,
}

impl App {
    /// Delivers queued callbacks until the process ends: leased (several nodes never send
    /// one twice at once), signed fresh on every attempt (timestamp + HMAC-SHA512), retried
    /// with backoff. `post` sends one request and says whether a 2xx came back.
    pub async fn run_callback_worker<F, Fut>(self: Arc<Self>, post: F)
    where
        F: Fn(CallbackRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), String>> + Send,
    {
        loop {
            match self.deliver_callbacks(&post).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "callback worker"),
            }
            tokio::select! {
                () = self.callback_wake.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
        }
    }

    async fn deliver_callbacks<F, Fut>(&self, post: &F) -> Result<usize>
    where
        F: Fn(CallbackRequest) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), String>>,
    {
        let now = OffsetDateTime::now_utc();
        let due = self
            .store
            .lease_callbacks(16, now, time::Duration::minutes(2))
            .await?;
        let n = due.len();
        for cb in due {
            let secret = match self.kek.unwrap(CALLBACK_SECRET_AAD, &cb.secret) {
                Ok(s) => s,
                Err(_) => {
                    self.store
                        .callback_failed(
                            cb.id,
                            "the callback secret cannot be unwrapped",
                            None,
                            now,
                        )
                        .await?;
                    continue;
                }
            };
            let ts = OffsetDateTime::now_utc().unix_timestamp().to_string();
            let mac = crypto::hmac_sha512_hex(&secret, format!("{ts}.{}", cb.body).as_bytes());
            let req = CallbackRequest {
                url: cb.url.clone(),
                headers: vec![("callback-authentication", mac), ("callback-timestamp", ts)],
                body: cb.body.clone(),
            };
            let now = OffsetDateTime::now_utc();
            match post(req).await {
                Ok(()) => self.store.callback_delivered(cb.id, now).await?,
                Err(e) => {
                    let attempts = cb.attempts + 1;
                    let next = (attempts < CALLBACK_MAX_ATTEMPTS).then(|| {
                        let secs = (30_i64 << attempts.min(10)).min(6 * 3600);
                        now + time::Duration::seconds(secs)
                    });
                    tracing::info!(callback = cb.id, attempts, error = %e, "callback not delivered");
                    self.store.callback_failed(cb.id, &e, next, now).await?;
                }
            }
        }
        Ok(n)
    }
}

/// The problem of the automatic rejection after the pickup deadline (our name; FIT-Connect
/// lists no type for it).
pub const PROBLEM_EXPIRED: &str =
    "https://schema.fitko.de/fit-connect/events/problems/submission-expired";

impl App {
    /// Deadlines, every ten minutes until the process ends: tells destination contacts about
    /// submissions unfetched for `notify_unfetched_after`, rejects those still `submitted`
    /// after `expire_after`, and deletes the content of decided ones after `retention`.
    pub async fn run_zd_deadlines(self: Arc<Self>) {
        loop {
            if let Err(e) = self.zd_deadlines(OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %e, "Zustelldienst deadlines");
            }
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    }

    /// One pass of the deadlines at `now`; returns (notified, rejected, deleted).
    pub async fn zd_deadlines(&self, now: OffsetDateTime) -> Result<(usize, usize, usize)> {
        let zd = self.zd().clone();
        let mut notified = 0;
        for s in self
            .store
            .unfetched_to_notify(now - zd.notify_unfetched_after, 200)
            .await?
        {
            let doc = match self.store.destination(&s.destination_id).await? {
                Some(r) => parse_doc(&r)?,
                None => continue,
            };
            if let Some(to) = doc.contact_email() {
                let body = format!(
                    "Guten Tag,\n\ndie Einreichung {} (Vorgang {}, Leistung {}) wartet seit mehr als {} Tagen am Zustellpunkt {} darauf, abgeholt zu werden. Nach {} Tagen wird sie automatisch zurückgewiesen.\n\nSubmission {} (case {}) has been waiting at destination {} for more than {} days. It will be rejected automatically after {} days.\n",
                    s.id,
                    s.case_id,
                    s.service_identifier,
                    zd.notify_unfetched_after.whole_days(),
                    s.destination_id,
                    zd.expire_after.whole_days(),
                    s.id,
                    s.case_id,
                    s.destination_id,
                    zd.notify_unfetched_after.whole_days(),
                    zd.expire_after.whole_days(),
                );
                self.store
                    .enqueue_mail(
                        &store::NewMail {
                            recipient: to,
                            subject: "Einreichung nicht abgeholt / Submission not fetched",
                            body_text: &body,
                            purpose: "zd_unfetched",
                        },
                        now,
                    )
                    .await?;
                self.mail_wake.notify_one();
            }
            self.store.mark_contact_notified(&s.id, now).await?;
            notified += 1;
        }
        let mut rejected = 0;
        for s in self
            .store
            .expired_submissions(now - zd.expire_after, 200)
            .await?
        {
            let event = self.service_event(
                EventKind::RejectSubmission,
                &s.id,
                &s.case_id,
                now,
                json!({"problems": [{"type": PROBLEM_EXPIRED, "title": "Submission not fetched in time",
                    "detail": format!("the destination did not fetch the submission within {} days", zd.expire_after.whole_days()),
                    "instance": "submission"}]}),
            );
            let outcome = self
                .store
                .decide_submission(
                    store::Decision {
                        submission_id: s.id.clone(),
                        from: vec!["submitted".into()],
                        to: "rejected".into(),
                        event,
                        callback: self.sender_callback(&s),
                    },
                    now,
                )
                .await?;
            if matches!(outcome, store::Guarded::Done(())) {
                rejected += 1;
            }
        }
        if rejected > 0 {
            self.signer_wake.notify_one();
            self.journal.wake.notify_one();
            self.callback_wake.notify_one();
        }
        let (deleted, blobs) = self
            .store
            .delete_expired_content(now - zd.retention, now, 500)
            .await?;
        for b in blobs {
            let _ = self.blobs.delete(&b).await;
        }
        self.zd_sweep_orphan_blobs(now).await?;
        Ok((notified, rejected, deleted.len()))
    }

    /// Deletes attachment files that no row names, an hour after they were written: a crash
    /// between writing the file and committing its row (or between replacing an upload and
    /// deleting the old file) leaves them behind. Returns how many were deleted.
    pub async fn zd_sweep_orphan_blobs(&self, now: OffsetDateTime) -> Result<usize> {
        const MIN_AGE: time::Duration = time::Duration::hours(1);
        let keys = self
            .blobs
            .list_older("zd", (now - MIN_AGE).unix_timestamp(), 10_000)
            .await
            .map_err(|e| AppError::Internal(format!("listing attachment files: {e}")))?;
        // Keys are zd/<submission>/<attachment>/<unique>.
        let mut by_submission: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for k in keys {
            if let Some(sub) = k.split('/').nth(1) {
                by_submission.entry(sub.to_owned()).or_default().push(k);
            }
        }
        let mut deleted = 0;
        for (sub, keys) in by_submission {
            let used: std::collections::HashSet<String> = self
                .store
                .submission_blob_keys(&sub)
                .await?
                .into_iter()
                .collect();
            for k in keys.iter().filter(|k| !used.contains(*k)) {
                if self.blobs.delete(k).await.is_ok() {
                    deleted += 1;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted attachment files no submission names");
        }
        Ok(deleted)
    }
}

/// Waits for a token write of the signer; false if it failed (the batch is signed again).
async fn finish_token_write(w: tokio::task::JoinHandle<Result<()>>) -> bool {
    match w.await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "SET signer: storing tokens failed; signing again");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "SET signer: token write task failed");
            false
        }
    }
}
