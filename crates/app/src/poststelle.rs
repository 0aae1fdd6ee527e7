//! The authority's own ePoststelle: a worker subscribed to the destinations the platform
//! holds. For each submission it records the fetch, decrypts every part with the
//! destination's key, checks metadata (schema), hashes and the attachment list
//! (`poststelle` crate), scans data and attachments with ClamAV, and decides: an accept or
//! reject SET signed with the destination's key, recorded through the Zustelldienst's own
//! decision path (event log, sender callback). It files accepted submissions for the clerks
//! (contents wrapped under the authority's team data key) and signs an Eingangsbestätigung
//! with the service key for every decision.
//!
//! Nothing is accepted unscanned: without a reachable scanner a submission waits (deferred
//! with backoff, the reason in readiness and the admin view).
//!
//! Several nodes may run the worker: each submission's work is leased (`ps_work`), and the
//! receipt is filed before the decision is recorded, so an interrupted run finishes the
//! same decision on retry instead of deciding twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use poststelle::{
    Checks, Decision, PartDigest, ReceiptSubject, RejectProblem, ScanVerdict, attachment_instance,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zustelldienst::event::EventKind;

use crate::zustelldienst::{key_aad, stored_tags};
use crate::{ApiClient, App, AppError, Result};

/// How long one node may hold a submission before another may take it over.
const LEASE: time::Duration = time::Duration::minutes(5);
/// How often the worker looks for work without being woken.
const POLL: Duration = Duration::from_secs(3);
/// Submissions in flight per core. Each alternates between RSA work on a blocking thread
/// (decryption, signing) and waiting (group commit, clamd); with two per core the cores
/// were idle 17 % of the time (`bench/epoststelle.sh`), with four they always have RSA work.
const IN_FLIGHT_PER_CORE: usize = 4;
/// How many rounds of `limit` due ids one query fetches ahead.
const DUE_AHEAD: usize = 8;

pub const REASON_NO_SCANNER: &str = "pending-scan: no virus scanner configured (set RATHAUS_CLAMD_URL to unix:///… or tcp://host:port); submissions wait until one is";

/// What the worker last found, for readiness and the admin view.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<HealthState>,
}

#[derive(Debug, Default, Clone)]
struct HealthState {
    running: bool,
    scanner_url: Option<String>,
    scanner_version: Option<String>,
    problem: Option<String>,
}

impl Health {
    fn update(&self, f: impl FnOnce(&mut HealthState)) {
        // A poisoned lock only means a panic elsewhere while updating; the state is still
        // a consistent set of strings.
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g);
    }

    fn get(&self) -> HealthState {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The ePoststelle as readiness and admins see it.
#[derive(Debug, Clone)]
pub struct PoststelleStatus {
    /// The worker runs on this node.
    pub running: bool,
    pub scanner_url: Option<String>,
    pub scanner_version: Option<String>,
    /// Why submissions cannot be accepted now (scanner missing or unreachable).
    pub problem: Option<String>,
    /// Submissions waiting, by reason.
    pub waiting: Vec<(String, i64)>,
}

impl PoststelleStatus {
    pub fn to_json(&self) -> Value {
        json!({
            "running": self.running,
            "scanner": {"url": self.scanner_url, "version": self.scanner_version},
            "problem": self.problem,
            "waiting": self.waiting.iter().map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        })
    }
}

/// Destination private keys already unwrapped and parsed, per (destination, kid). A kid's key
/// never changes (rotation adds kids), so entries stay valid; parsing a 4096-bit key and
/// setting up its blinding costs about as much as a private-key operation, which the
/// worker paid three times per submission before.
#[derive(Default)]
pub(crate) struct KeyCache {
    decryption: Mutex<HashMap<(String, String), Arc<crypto::RsaDecryptionKey>>>,
    signing: Mutex<HashMap<(String, String), Arc<crypto::RsaSigningKey>>>,
}

/// Entries per map; beyond it the map starts over (far more than the platform's
/// destinations' keys, so it never happens in practice).
const KEY_CACHE_MAX: usize = 4096;

fn cached<K>(
    map: &Mutex<HashMap<(String, String), Arc<K>>>,
    key: &(String, String),
) -> Option<Arc<K>> {
    map.lock().ok().and_then(|m| m.get(key).cloned())
}

fn remember<K>(
    map: &Mutex<HashMap<(String, String), Arc<K>>>,
    key: (String, String),
    value: Arc<K>,
) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= KEY_CACHE_MAX {
            m.clear();
        }
        m.insert(key, value);
    }
}

/// A decided submission's receipt for its sender.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub claims: Value,
    pub jws: String,
    /// The journal's inclusion proof, once the receipt journal has sequenced it.
    pub journal_proof: Option<Value>,
}

/// A filed case with its contents unwrapped (for the clerks' view and tests).
#[derive(Debug, Clone)]
pub struct FiledContent {
    pub case: store::FiledCase,
    pub data: Option<Vec<u8>>,
    /// Attachment id → content.
    pub attachments: BTreeMap<String, Vec<u8>>,
}

enum Step {
    Done,
    /// Decided, and the work item ended in the same transaction.
    Concluded,
    /// Wait and retry later, with the reason shown to admins.
    Wait(String),
}

/// The result of decrypting one part.
type Opened = std::result::Result<Vec<u8>, String>;

struct Decrypted {
    metadata: Opened,
    data: Option<Opened>,
    attachments: BTreeMap<String, Opened>,
}

fn backoff(attempts: i64) -> time::Duration {
    let exp = attempts.clamp(1, 7) - 1;
    time::Duration::seconds((5i64 << exp).min(300))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn team_key_label(ars: Option<&str>, destination_id: &str) -> String {
    match ars {
        Some(a) => format!("team-data/{a}"),
        None => format!("team-data/destination/{destination_id}"),
    }
}

fn content_aad(submission_id: &str, part: &str) -> Vec<u8> {
    format!("ps-case/{submission_id}/{part}").into_bytes()
}

fn cert_of(public_jwk: &str) -> Result<Vec<u8>> {
    let jwk: Value =
        serde_json::from_str(public_jwk).map_err(|e| AppError::Internal(e.to_string()))?;
    jwk["x5c"][0]
        .as_str()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .ok_or_else(|| AppError::Internal("stored key without certificate".into()))
}

/// The data schemas `(schemaUri, mimeType)` the destination lists for the service.
fn accepted_schemas(
    dest: &store::DestinationRecord,
    service_identifier: &str,
) -> Result<Vec<(String, String)>> {
    let doc: zustelldienst::destination::Destination =
        serde_json::from_str(&dest.doc).map_err(internal)?;
    Ok(doc
        .services
        .iter()
        .filter(|svc| svc.identifier == service_identifier)
        .flat_map(|svc| {
            svc.submission_schemas
                .iter()
                .map(|sc| (sc.schema_uri.clone(), sc.mime_type.clone()))
        })
        .collect())
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

impl App {
    /// The ePoststelle worker (runs until the process ends). `scanner`: clamd; without it
    /// nothing is accepted and submissions wait.
    pub async fn run_poststelle(self: Arc<Self>, scanner: Option<scanner::Clamd>) {
        self.poststelle.update(|h| {
            h.running = true;
            h.scanner_url = scanner.as_ref().map(|c| c.url().to_string());
            h.problem = scanner.is_none().then(|| {
                REASON_NO_SCANNER
                    .trim_start_matches("pending-scan: ")
                    .to_owned()
            });
        });
        loop {
            if let Some(c) = &scanner {
                self.poststelle_check_scanner(c).await;
            }
            match self.poststelle_round(scanner.as_ref()).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ePoststelle"),
            }
            tokio::select! {
                () = self.poststelle_wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Asks clamd for its version; records whether it answers.
    async fn poststelle_check_scanner(&self, c: &scanner::Clamd) -> Option<String> {
        match c.version().await {
            Ok(v) => {
                self.poststelle.update(|h| {
                    h.scanner_version = Some(v.clone());
                    h.problem = None;
                });
                Some(v)
            }
            Err(e) => {
                let why = format!(
                    "the virus scanner does not answer ({e}); submissions wait unaccepted until it does"
                );
                self.poststelle.update(|h| h.problem = Some(why));
                None
            }
        }
    }

    /// What the ePoststelle is doing now.
    pub async fn poststelle_status(&self) -> Result<PoststelleStatus> {
        let h = self.poststelle.get();
        let waiting = self
            .store
            .poststelle_pending()
            .await?
            .into_iter()
            .map(|p| (p.reason.unwrap_or_else(|| "in progress".into()), p.count))
            .collect();
        Ok(PoststelleStatus {
            running: h.running,
            scanner_url: h.scanner_url,
            scanner_version: h.scanner_version,
            problem: h.problem,
            waiting,
        })
    }

    /// The reason the ePoststelle cannot accept submissions now, if the worker runs here and
    /// has one (cheap: no database access).
    pub fn poststelle_problem(&self) -> Option<String> {
        let h = self.poststelle.get();
        h.running.then_some(h.problem).flatten()
    }

    /// Processes the submissions that are due, several at a time (`IN_FLIGHT_PER_CORE`),
    /// until none is left; returns how many were decided.
    pub async fn poststelle_round(
        self: &Arc<Self>,
        scanner: Option<&scanner::Clamd>,
    ) -> Result<usize> {
        let limit =
            std::thread::available_parallelism().map_or(2, |n| n.get()) * IN_FLIGHT_PER_CORE;
        let mut running = tokio::task::JoinSet::new();
        let mut decided = 0;
        let mut more = true;
        let mut failed: Option<AppError> = None;
        // Due ids fetched ahead: the due query walks the whole backlog of the held
        // destinations, so asking it once per finished submission made a backlog cost
        // quadratic time. An id fetched ahead may be taken by another node meanwhile; the
        // claim (a lease) and the status check in `poststelle_process` settle that.
        let mut queue = std::collections::VecDeque::new();
        // Claims since the last fetch: a fetch none of whose ids could be claimed ends the
        // round, so ids that stay unclaimable cannot spin it.
        let mut claimed = 1;
        loop {
            // Top up: claim due submissions (those in flight hold a lease, so they are not
            // due) until `limit` run or none is left.
            while more && running.len() < limit {
                if queue.is_empty() {
                    if claimed == 0 {
                        more = false;
                        break;
                    }
                    claimed = 0;
                    let now = OffsetDateTime::now_utc();
                    let ahead = i64::try_from(limit * DUE_AHEAD).unwrap_or(i64::MAX);
                    match self.store.poststelle_due(now, ahead).await {
                        Ok(d) if d.is_empty() => {
                            more = false;
                            break;
                        }
                        Ok(d) => queue.extend(d),
                        Err(e) => {
                            failed.get_or_insert(e.into());
                            more = false;
                            break;
                        }
                    }
                }
                let Some(id) = queue.pop_front() else { break };
                match self
                    .store
                    .poststelle_claim(&id, OffsetDateTime::now_utc(), LEASE)
                    .await
                {
                    Ok(Some(attempts)) => {
                        claimed += 1;
                        let (app, scanner) = (self.clone(), scanner.cloned());
                        running.spawn(async move {
                            app.poststelle_item(&id, attempts, scanner.as_ref()).await
                        });
                    }
                    // Another node holds it, or it is deferred.
                    Ok(None) => {}
                    Err(e) => {
                        failed.get_or_insert(e.into());
                        more = false;
                    }
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok(Ok(true)) => decided += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    more = false;
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    more = false;
                    failed.get_or_insert(internal(e));
                }
            }
        }
        match failed {
            Some(e) if decided == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, decided, "ePoststelle: round ended early");
                Ok(decided)
            }
            None => Ok(decided),
        }
    }

    /// Processes one claimed submission and records the outcome; `true` if it was decided.
    async fn poststelle_item(
        &self,
        id: &str,
        attempts: i64,
        scanner: Option<&scanner::Clamd>,
    ) -> Result<bool> {
        let started = Instant::now();
        let step = self.poststelle_process(id, scanner).await;
        let now = OffsetDateTime::now_utc();
        match step {
            Ok(step @ (Step::Done | Step::Concluded)) => {
                if matches!(step, Step::Done) {
                    self.store.poststelle_done(id).await?;
                }
                tracing::info!(
                    submission = %id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ePoststelle: decided"
                );
                Ok(true)
            }
            Ok(Step::Wait(reason)) => {
                tracing::info!(submission = %id, attempts, %reason, "ePoststelle: waiting");
                self.store
                    .poststelle_defer(id, &reason, now + backoff(attempts), now)
                    .await?;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(submission = %id, attempts, error = %e, "ePoststelle: failed, will retry");
                self.store
                    .poststelle_defer(
                        id,
                        "internal error (see the log)",
                        now + backoff(attempts),
                        now,
                    )
                    .await?;
                Ok(false)
            }
        }
    }

    async fn poststelle_process(&self, id: &str, scanner: Option<&scanner::Clamd>) -> Result<Step> {
        let Some(s) = self.store.submission(id).await? else {
            return Ok(Step::Done);
        };
        if !matches!(s.status.as_str(), "submitted" | "forwarded") {
            return Ok(Step::Done);
        }
        let Some(dest) = self.store.destination(&s.destination_id).await? else {
            return Ok(Step::Done);
        };
        if !dest.held_by_platform {
            return Ok(Step::Done);
        }
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
            }
        }
        let Some(scanner) = scanner else {
            return Ok(Step::Wait(REASON_NO_SCANNER.into()));
        };
        // The scanner's version is asked once per round (`run_poststelle`), not once per
        // submission; only while it is known to fail is it asked again here. A scanner that
        // stops answering in between fails the scan itself, and the submission waits.
        let health = self.poststelle.get();
        let known = health
            .problem
            .is_none()
            .then_some(health.scanner_version)
            .flatten();
        let scanner_version = match known {
            Some(v) => Some(v),
            None => self.poststelle_check_scanner(scanner).await,
        };
        let Some(scanner_version) = scanner_version else {
            return Ok(Step::Wait(format!(
                "pending-scan: virus scanner at {} unreachable",
                scanner.url()
            )));
        };

        let keys = self.store.destination_keys(&s.destination_id).await?;
        let opened = self.poststelle_decrypt(&s, &keys).await?;
        let mut problems: Vec<RejectProblem> = Vec::new();
        let mut checks = Checks {
            metadata_sha512: None,
            schema: poststelle::METADATA_SCHEMA_ID,
            schema_errors: Vec::new(),
            data_validation: poststelle::DataValidation::NoData,
            parts: Vec::new(),
            scans: BTreeMap::new(),
            scanner_version: Some(scanner_version),
            decision: Decision::Accept,
        };
        let mut metadata: Option<Value> = None;
        match &opened.metadata {
            Ok(m) => {
                checks.metadata_sha512 = Some(poststelle::sha512_hex(m));
                let mc = poststelle::check_metadata(m);
                checks.schema_errors = mc.schema_errors;
                problems.extend(mc.problems);
                metadata = mc.metadata;
            }
            Err(why) => problems.push(RejectProblem::new(
                poststelle::Reason::EncryptionIssue,
                "metadata",
                why.clone(),
            )),
        }
        let data_digest = match &opened.data {
            Some(Ok(d)) => Some(PartDigest::of(d)),
            Some(Err(why)) => {
                problems.push(RejectProblem::new(
                    poststelle::Reason::EncryptionIssue,
                    "data",
                    why.clone(),
                ));
                None
            }
            None => None,
        };
        let mut digests = BTreeMap::new();
        for (aid, a) in &opened.attachments {
            match a {
                Ok(bytes) => {
                    digests.insert(aid.clone(), PartDigest::of(bytes));
                }
                Err(why) => problems.push(RejectProblem::new(
                    poststelle::Reason::EncryptionIssue,
                    attachment_instance(aid),
                    why.clone(),
                )),
            }
        }
        if let Some(m) = &metadata {
            let data = match (&data_digest, &opened.data) {
                (Some(d), Some(Ok(bytes))) => Some((d, Some(bytes.as_slice()))),
                _ => None,
            };
            // A part that could not be decrypted is already a problem; its hash is not
            // checked again.
            let data_failed = matches!(opened.data, Some(Err(_)));
            let (parts, content_problems) = poststelle::check_content(m, data, &digests);
            checks.parts = parts;
            problems.extend(poststelle::check_service(m, &s.service_identifier));
            let undecryptable = |instance: &str| {
                (data_failed && instance == "data")
                    || opened
                        .attachments
                        .iter()
                        .any(|(aid, a)| a.is_err() && instance == attachment_instance(aid))
            };
            problems.extend(
                content_problems
                    .into_iter()
                    .filter(|p| !undecryptable(&p.instance)),
            );
            let accepted = accepted_schemas(&dest, &s.service_identifier)?;
            problems.extend(poststelle::check_schema_accepted(m, &accepted));
            if let Some(Ok(bytes)) = &opened.data {
                let known = match poststelle::named_data_schema(m) {
                    Some((uri, _)) => self.compiled_data_schema(&uri).await?,
                    None => None,
                };
                let (validation, problem) = poststelle::check_data(
                    m,
                    bytes,
                    known.as_deref().map(|c| poststelle::KnownSchema {
                        sha512: &c.sha512,
                        validator: &c.validator,
                    }),
                );
                checks.data_validation = validation;
                problems.extend(problem);
            }
        }

        // Scan every decrypted part.
        let mut to_scan: Vec<(String, &[u8])> = Vec::new();
        if let Some(Ok(d)) = &opened.data {
            to_scan.push(("data".into(), d));
        }
        for (aid, a) in &opened.attachments {
            if let Ok(bytes) = a {
                to_scan.push((attachment_instance(aid), bytes));
            }
        }
        for (instance, bytes) in to_scan {
            let verdict = match scanner.scan_bytes(bytes).await {
                Ok(scanner::Verdict::Clean) => ScanVerdict::Clean,
                Ok(scanner::Verdict::Infected { signature }) => ScanVerdict::Infected { signature },
                Err(scanner::Error::TooLarge) => ScanVerdict::Unscannable {
                    why: "larger than the virus scanner accepts".into(),
                },
                Err(e) => {
                    if e.is_transient() {
                        self.poststelle.update(|h| {
                            h.problem = Some(format!(
                                "the virus scanner failed during a scan ({e}); submissions wait unaccepted"
                            ));
                        });
                    }
                    return Ok(Step::Wait(format!("pending-scan: virus scan failed: {e}")));
                }
            };
            checks.scans.insert(instance, verdict);
        }
        problems.extend(poststelle::scan_problems(&checks.scans));
        checks.decision = Decision::from_problems(problems);

        let mut receipt = self.poststelle_sign(&s, &dest, &keys, &checks).await?;
        receipt.postfach_ref = self
            .receipt_postfach_target(&s.sender_client_id, metadata.as_ref())
            .await?;
        let case = match (&checks.decision, &opened.metadata) {
            (Decision::Accept, Ok(meta_bytes)) => Some(self.poststelle_case_record(
                &s,
                &dest,
                &checks,
                meta_bytes,
                &opened,
                metadata.as_ref(),
                &receipt,
            )?),
            _ => None,
        };
        let decision = self.poststelle_decision(&s, &receipt);
        match self
            .store
            .poststelle_conclude(receipt, case, decision, OffsetDateTime::now_utc())
            .await
        {
            Ok(outcome) => Ok(self.poststelle_recorded(&s, outcome)),
            // A receipt filed by a run of an older version that did not record it: record
            // what was filed first.
            Err(store::StoreError::Conflict(_)) => match self.store.poststelle_receipt(id).await? {
                Some(r) => self.poststelle_record(&s, &r).await,
                None => Ok(Step::Done),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Decrypts metadata, data and attachments with the destination's encryption keys: the
    /// key the JWE's `kid` names first, then the current ones, then retired ones.
    async fn poststelle_decrypt(
        &self,
        s: &store::SubmissionRecord,
        keys: &[store::DestinationKeyRecord],
    ) -> Result<Decrypted> {
        // In the store's order (current keys, then retired), each parsed once per node.
        let mut slots: Vec<(String, Option<Arc<crypto::RsaDecryptionKey>>)> = Vec::new();
        let mut unparsed = Vec::new();
        for k in keys {
            if k.key_use != "encryption" {
                continue;
            }
            let Some(wrapped) = &k.wrapped_private else {
                continue;
            };
            let id = (s.destination_id.clone(), k.kid.clone());
            let key = cached(&self.poststelle_keys.decryption, &id);
            if key.is_none() {
                let der = self
                    .kek
                    .unwrap(&key_aad(&s.destination_id, &k.kid), wrapped)?;
                unparsed.push((id, der, cert_of(&k.public_jwk)?));
            }
            slots.push((k.kid.clone(), key));
        }
        if !unparsed.is_empty() {
            let parsed = tokio::task::spawn_blocking(move || {
                unparsed
                    .into_iter()
                    .filter_map(|(id, der, cert)| {
                        crypto::RsaDecryptionKey::from_der(&der, &cert)
                            .ok()
                            .map(|k| (id, Arc::new(k)))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(internal)?;
            for (id, key) in parsed {
                if let Some(slot) = slots.iter_mut().find(|(kid, _)| *kid == id.1) {
                    slot.1 = Some(key.clone());
                }
                remember(&self.poststelle_keys.decryption, id, key);
            }
        }
        let loaded: Vec<(String, Arc<crypto::RsaDecryptionKey>)> = slots
            .into_iter()
            .filter_map(|(kid, key)| key.map(|k| (kid, k)))
            .collect();
        let metadata = s.encrypted_metadata.clone().unwrap_or_default();
        let data = s.encrypted_data.clone();
        let mut attachments = Vec::new();
        for (aid, _, _) in self.store.attachment_tags(&s.id).await? {
            let a = self.store.attachment(&s.id, &aid).await?;
            let body = match a.and_then(|a| a.body.map(Ok).or(a.blob_key.map(Err))) {
                Some(Ok(inline)) => inline,
                Some(Err(key)) => String::from_utf8_lossy(
                    &self
                        .blobs
                        .get(&key)
                        .await
                        .map_err(|e| AppError::Internal(format!("reading attachment: {e}")))?,
                )
                .into_owned(),
                None => String::new(),
            };
            attachments.push((aid, body));
        }
        let limits = self.settings.zustelldienst.limits;
        tokio::task::spawn_blocking(move || {
            let open = |jwe: &str, max: u64| -> Opened {
                let parsed = crypto::JweCompact::parse(jwe.trim())
                    .map_err(|e| format!("not a usable JWE: {e}"))?;
                let named = parsed.header().kid().map(str::to_owned);
                let mut order: Vec<&(String, Arc<crypto::RsaDecryptionKey>)> =
                    loaded.iter().collect();
                order.sort_by_key(|(kid, _)| Some(kid) != named.as_ref());
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                for (_, key) in order {
                    match crypto::jwe::decrypt(key, &parsed, max) {
                        Ok(d) => return Ok(d.plaintext.to_vec()),
                        Err(crypto::Error::JwePlaintextTooLarge { limit }) => {
                            return Err(format!("the decrypted part exceeds {limit} bytes"));
                        }
                        Err(_) => {}
                    }
                }
                Err("cannot be decrypted with any encryption key of the destination (current or retired); encrypt to the key named by encryptionKid".into())
            };
            Decrypted {
                metadata: open(&metadata, limits.max_metadata_bytes),
                data: data.as_deref().map(|d| open(d, limits.max_data_bytes)),
                attachments: attachments
                    .iter()
                    .map(|(aid, body)| (aid.clone(), open(body, limits.max_attachment_bytes)))
                    .collect(),
            }
        })
        .await
        .map_err(internal)
    }

    /// Signs the decision (destination key) and the receipt (service key).
    async fn poststelle_sign(
        &self,
        s: &store::SubmissionRecord,
        dest: &store::DestinationRecord,
        keys: &[store::DestinationKeyRecord],
        checks: &Checks,
    ) -> Result<store::ReceiptRecord> {
        let sig = keys
            .iter()
            .find(|k| {
                k.key_use == "signature" && k.retired_at.is_none() && k.wrapped_private.is_some()
            })
            .ok_or_else(|| {
                AppError::Internal(format!("destination {} has no signing key", dest.id))
            })?;
        let id = (dest.id.clone(), sig.kid.clone());
        let dest_key = match cached(&self.poststelle_keys.signing, &id) {
            Some(k) => k,
            None => {
                let der = self.kek.unwrap(
                    &key_aad(&dest.id, &sig.kid),
                    sig.wrapped_private.as_deref().unwrap_or_default(),
                )?;
                let cert = cert_of(&sig.public_jwk)?;
                let key = tokio::task::spawn_blocking(move || {
                    crypto::RsaSigningKey::from_der(&der, &cert)
                })
                .await
                .map_err(internal)??;
                let key = Arc::new(key);
                remember(&self.poststelle_keys.signing, id, key.clone());
                key
            }
        };
        let service_key = self
            .routing_keys
            .first()
            .cloned()
            .ok_or_else(|| AppError::Internal("no service signing key".into()))?;
        let now = OffsetDateTime::now_utc();
        let jti = uuid::Uuid::new_v4().hyphenated().to_string();
        let tags = stored_tags(s)?;
        let set_claims = poststelle::decision_set_claims(
            &jti,
            now.unix_timestamp(),
            &dest.id,
            &s.id,
            &s.case_id,
            &checks.decision,
            &tags,
        );
        let subject = ReceiptSubject {
            issuer: self.zd_issuer(),
            sender_client_id: s.sender_client_id.clone(),
            service_identifier: s.service_identifier.clone(),
            service_name: s.service_name.clone(),
            authority_ars: dest.authority_ars.clone(),
            destination_id: dest.id.clone(),
            submission_id: s.id.clone(),
            case_id: s.case_id.clone(),
            received_at: s.submitted_at.clone().unwrap_or_default(),
            decided_at: rfc3339(now),
        };
        let claims = poststelle::receipt_claims(&subject, checks);
        let report = poststelle::check_report(checks, &rfc3339(now));
        let (set_s, claims_s) = (set_claims.to_string(), claims.to_string());
        let (set_token, jws) = {
            let (set_s, claims_s) = (set_s.clone(), claims_s.clone());
            tokio::task::spawn_blocking(move || -> std::result::Result<_, crypto::Error> {
                Ok((
                    dest_key.sign_compact(Some(zustelldienst::event::SET_TYP), set_s.as_bytes())?,
                    service_key.sign_compact(None, claims_s.as_bytes())?,
                ))
            })
            .await
            .map_err(internal)??
        };
        Ok(store::ReceiptRecord {
            submission_id: s.id.clone(),
            case_id: s.case_id.clone(),
            destination_id: dest.id.clone(),
            sender_client_id: s.sender_client_id.clone(),
            decision: checks.decision.name().into(),
            claims: claims_s,
            jws,
            set_jti: jti,
            set_iat: now.unix_timestamp(),
            set_claims: set_s,
            set_token,
            check_report: report.to_string(),
            journal_proof: None,
            created_at: String::new(),
            postfach_ref: None,
            postfach_outcome: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn poststelle_case_record(
        &self,
        s: &store::SubmissionRecord,
        dest: &store::DestinationRecord,
        checks: &Checks,
        meta_bytes: &[u8],
        opened: &Decrypted,
        metadata: Option<&Value>,
        receipt: &store::ReceiptRecord,
    ) -> Result<store::FiledCase> {
        let team = self
            .kek
            .derive(&team_key_label(dest.authority_ars.as_deref(), &dest.id));
        let described = metadata
            .map(poststelle::described_attachments)
            .unwrap_or_default();
        let mut attachments = Vec::new();
        for (aid, a) in &opened.attachments {
            let Ok(bytes) = a else { continue };
            let d = described.get(aid);
            attachments.push(store::FiledAttachment {
                attachment_id: aid.clone(),
                filename: d.and_then(|d| d.filename.clone()),
                mime_type: d
                    .map(|d| d.mime_type.clone())
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: bytes.len() as i64,
                sha512: poststelle::sha512_hex(bytes),
                content_wrapped: team.wrap(&content_aad(&s.id, &attachment_instance(aid)), bytes),
            });
        }
        let (data_wrapped, data_sha512) = match &opened.data {
            Some(Ok(d)) => (
                Some(team.wrap(&content_aad(&s.id, "data"), d)),
                Some(poststelle::sha512_hex(d)),
            ),
            _ => (None, None),
        };
        let claims: Value = serde_json::from_str(&receipt.claims).map_err(internal)?;
        Ok(store::FiledCase {
            submission_id: s.id.clone(),
            authority_ars: dest.authority_ars.clone(),
            destination_id: dest.id.clone(),
            case_id: s.case_id.clone(),
            service_identifier: s.service_identifier.clone(),
            service_name: s.service_name.clone(),
            received_at: s.submitted_at.clone().unwrap_or_default(),
            decided_at: claims["decidedAt"].as_str().unwrap_or_default().to_owned(),
            metadata: String::from_utf8_lossy(meta_bytes).into_owned(),
            data_wrapped,
            data_sha512,
            check_report: poststelle::check_report(
                checks,
                claims["decidedAt"].as_str().unwrap_or_default(),
            )
            .to_string(),
            attachments,
        })
    }

    /// The decision a receipt records, for the Zustelldienst's decision path (event log,
    /// sender callback).
    fn poststelle_decision(
        &self,
        s: &store::SubmissionRecord,
        r: &store::ReceiptRecord,
    ) -> store::Decision {
        let kind = if r.decision == "accepted" {
            EventKind::AcceptSubmission
        } else {
            EventKind::RejectSubmission
        };
        store::Decision {
            submission_id: s.id.clone(),
            from: vec!["submitted".into(), "forwarded".into()],
            to: r.decision.clone(),
            event: store::NewEvent {
                jti: r.set_jti.clone(),
                case_id: s.case_id.clone(),
                submission_id: s.id.clone(),
                event: kind.name().into(),
                issuer: r.destination_id.clone(),
                iat: r.set_iat,
                claims: r.set_claims.clone(),
                token: Some(r.set_token.clone()),
            },
            callback: self.sender_callback(s),
        }
    }

    /// After the decision is committed: wakes the callback and receipt workers.
    fn poststelle_recorded(
        &self,
        s: &store::SubmissionRecord,
        outcome: store::Guarded<()>,
    ) -> Step {
        match outcome {
            store::Guarded::Done(()) => {
                self.callback_wake.notify_one();
                self.receipt_wake.notify_one();
                Step::Concluded
            }
            store::Guarded::WrongState(st) => {
                tracing::warn!(submission = %s.id, status = %st, "ePoststelle: decided elsewhere; nothing filed");
                Step::Done
            }
            _ => Step::Done,
        }
    }

    /// Records a decision filed earlier without it (by a run of an older version).
    async fn poststelle_record(
        &self,
        s: &store::SubmissionRecord,
        r: &store::ReceiptRecord,
    ) -> Result<Step> {
        let outcome = self
            .store
            .decide_submission(self.poststelle_decision(s, r), OffsetDateTime::now_utc())
            .await?;
        if let store::Guarded::WrongState(st) = &outcome {
            tracing::warn!(submission = %s.id, status = %st, "ePoststelle: decided elsewhere; receipt withdrawn");
            self.store.poststelle_withdraw(&s.id).await?;
        }
        Ok(match self.poststelle_recorded(s, outcome) {
            Step::Concluded => Step::Done,
            other => other,
        })
    }

    /// `GET …/submissions/{id}/receipt`: the Eingangsbestätigung, for the submission's sender.
    pub async fn poststelle_receipt(&self, client: &ApiClient, id: &str) -> Result<Receipt> {
        let id = zustelldienst::parse_id("submissionId", id)?;
        let not_found = || {
            AppError::Problem(zustelldienst::Problem::new(
                zustelldienst::ProblemKind::SubmissionNotFound,
                format!("you have no submission {id}"),
            ))
        };
        let s = self
            .store
            .submission(&id)
            .await?
            .filter(|s| s.sender_client_id == client.client_id)
            .ok_or_else(not_found)?;
        let decided = matches!(s.status.as_str(), "accepted" | "rejected" | "deleted");
        let r = match self.store.poststelle_receipt(&id).await? {
            Some(r) if decided => r,
            None if decided => {
                return Err(AppError::Problem(zustelldienst::Problem::new(
                    zustelldienst::ProblemKind::SubmissionNotFound,
                    format!(
                        "submission {id} is {} without a decision of the ePoststelle (its event log says why); there is no receipt",
                        s.status
                    ),
                )));
            }
            _ => {
                return Err(AppError::Problem(zustelldienst::Problem::new(
                    zustelldienst::ProblemKind::SubmissionNotFound,
                    format!(
                        "submission {id} has no receipt: it is not decided yet (status {}); receipts exist once the authority's ePoststelle accepted or rejected it",
                        s.status
                    ),
                )));
            }
        };
        let claims: Value = serde_json::from_str(&r.claims).map_err(internal)?;
        let journal_proof = match r.journal_proof.as_deref() {
            Some(p) => serde_json::from_str(p).ok(),
            None => self.decision_journal_proof(&id).await?,
        };
        Ok(Receipt {
            claims,
            jws: r.jws,
            journal_proof,
        })
    }

    /// The inclusion proof of the decision's journal entry in the latest signed tree head,
    /// once the sequencer has put it there; kept with the receipt from then on (a proof
    /// against an older head stays valid: later heads are consistent with it).
    pub(crate) async fn decision_journal_proof(
        &self,
        submission_id: &str,
    ) -> Result<Option<Value>> {
        let entries = self
            .journal_subject(&format!("submission:{submission_id}"))
            .await?;
        let decision = entries["entries"].as_array().and_then(|es| {
            es.iter()
                .rev()
                .find(|e| matches!(e["entry"]["kind"].as_str(), Some("accepted" | "rejected")))
        });
        let Some(index) = decision.and_then(|e| e["index"].as_u64()) else {
            return Ok(None);
        };
        let proof = match self.journal_inclusion(index, None).await {
            Ok(p) => p,
            Err(AppError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.store
            .poststelle_set_journal_proof(submission_id, &proof.to_string())
            .await?;
        Ok(Some(proof))
    }

    /// A filed case with its contents unwrapped under the authority's team data key.
    pub async fn poststelle_filed(&self, submission_id: &str) -> Result<Option<FiledContent>> {
        let Some(case) = self.store.poststelle_case(submission_id).await? else {
            return Ok(None);
        };
        let team = self.kek.derive(&team_key_label(
            case.authority_ars.as_deref(),
            &case.destination_id,
        ));
        let data = case
            .data_wrapped
            .as_deref()
            .map(|w| team.unwrap(&content_aad(&case.submission_id, "data"), w))
            .transpose()?
            .map(|d| d.to_vec());
        let mut attachments = BTreeMap::new();
        for a in &case.attachments {
            let plain = team.unwrap(
                &content_aad(&case.submission_id, &attachment_instance(&a.attachment_id)),
                &a.content_wrapped,
            )?;
            attachments.insert(a.attachment_id.clone(), plain.to_vec());
        }
        Ok(Some(FiledContent {
            case,
            data,
            attachments,
        }))
    }
}
