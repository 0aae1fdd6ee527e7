//! Security Event Tokens (RFC 8417) as FIT-Connect uses them: the claims the Zustelldienst
//! signs for every state change, and the checks on the `accept-submission` and
//! `reject-submission` events subscribers post.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::problem::{Problem, ProblemKind};

pub const EVENT_BASE: &str = "https://schema.fitko.de/fit-connect/events/";
/// The set-payload schema version we write (the live service writes 1.2.x; see the wire notes).
pub const SET_SCHEMA: &str =
    "https://schema.fitko.de/fit-connect/set-payload/1.2.2/set-payload.schema.json";
const SET_SCHEMA_PREFIX: &str = "https://schema.fitko.de/fit-connect/set-payload/";
pub const SET_TYP: &str = "secevent+jwt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    CreateSubmission,
    SubmitSubmission,
    NotifySubmission,
    ForwardSubmission,
    AcceptSubmission,
    RejectSubmission,
    DeleteSubmission,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CreateSubmission => "create-submission",
            EventKind::SubmitSubmission => "submit-submission",
            EventKind::NotifySubmission => "notify-submission",
            EventKind::ForwardSubmission => "forward-submission",
            EventKind::AcceptSubmission => "accept-submission",
            EventKind::RejectSubmission => "reject-submission",
            EventKind::DeleteSubmission => "delete-submission",
        }
    }

    pub fn uri(self) -> String {
        format!("{EVENT_BASE}{}", self.name())
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "create-submission" => EventKind::CreateSubmission,
            "submit-submission" => EventKind::SubmitSubmission,
            "notify-submission" => EventKind::NotifySubmission,
            "forward-submission" => EventKind::ForwardSubmission,
            "accept-submission" => EventKind::AcceptSubmission,
            "reject-submission" => EventKind::RejectSubmission,
            "delete-submission" => EventKind::DeleteSubmission,
            _ => return None,
        })
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        uri.strip_prefix(EVENT_BASE).and_then(Self::from_name)
    }
}

/// The GCM authentication tags of a submission's parts, as `submit-submission` publishes them
/// and `accept-submission` must repeat them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationTags {
    pub metadata: String,
    pub data: Option<String>,
    pub attachments: BTreeMap<String, String>,
}

impl AuthenticationTags {
    pub fn to_json(&self) -> Value {
        let mut tags = Map::new();
        tags.insert("metadata".into(), Value::String(self.metadata.clone()));
        if let Some(d) = &self.data {
            tags.insert("data".into(), Value::String(d.clone()));
        }
        if !self.attachments.is_empty() {
            tags.insert(
                "attachments".into(),
                Value::Object(
                    self.attachments
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
            );
        }
        Value::Object(tags)
    }
}

/// The claims of a SET the Zustelldienst issues. `iss` is the service's URL (clients pick
/// the service JWKS when `iss` starts with `http`), `iat` the event's true time even when
/// the signature is made later.
pub fn service_set_claims(
    iss: &str,
    jti: &str,
    iat: i64,
    submission_id: &str,
    case_id: &str,
    kind: EventKind,
    payload: Value,
) -> Value {
    json!({
        "$schema": SET_SCHEMA,
        "jti": jti,
        "iss": iss,
        "iat": iat,
        "sub": format!("submission:{submission_id}"),
        "txn": format!("case:{case_id}"),
        "events": { kind.uri(): payload },
    })
}

/// What a subscriber's verified SET says.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberEvent {
    pub kind: EventKind,
    pub jti: String,
    pub iat: i64,
    pub submission_id: String,
    /// The event's payload as sent (tags or problems), stored with the event.
    pub payload: Value,
    /// `accept-submission` without tags (legacy subscribers, no `$schema`).
    pub legacy_without_tags: bool,
}

/// What the caller knows about the case, to check a subscriber's SET against.
pub struct SetCheck<'a> {
    pub destination_id: &'a str,
    pub case_id: &'a str,
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidEvent, detail)
}

/// Checks the protected header of a subscriber's SET (before the signature: it names the key).
/// Returns the `kid`.
///
/// # Errors
/// `invalid-event` naming the wrong header field.
pub fn check_set_header(header: &Value) -> Result<String, Problem> {
    if header.get("typ").and_then(Value::as_str) != Some(SET_TYP) {
        return Err(invalid(
            "the SET header must have \"typ\": \"secevent+jwt\"",
        ));
    }
    if header.get("alg").and_then(Value::as_str) != Some("PS512") {
        return Err(invalid("the SET must be signed with \"alg\": \"PS512\""));
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(str::to_owned)
        .ok_or_else(|| {
            invalid("the SET header needs \"kid\": the id of the destination's signature key")
        })
}

/// Checks a subscriber's SET claims (signature already verified with the destination's key).
///
/// Policy for `$schema` (wire notes § 5.4): absent is accepted without payload validation
/// (legacy subscribers); any 1.x version under FIT-Connect's set-payload namespace is
/// accepted; anything else is refused.
///
/// # Errors
/// `invalid-event` saying which claim is wrong.
pub fn check_subscriber_claims(
    claims: &Value,
    check: &SetCheck<'_>,
) -> Result<SubscriberEvent, Problem> {
    let obj = claims
        .as_object()
        .ok_or_else(|| invalid("the SET payload must be a JSON object"))?;
    let has_schema = match obj.get("$schema") {
        None => false,
        Some(Value::String(s)) => {
            let version = s
                .strip_prefix(SET_SCHEMA_PREFIX)
                .and_then(|r| r.strip_suffix("/set-payload.schema.json"));
            match version {
                Some(v) if v.starts_with("1.") => true,
                _ => {
                    return Err(invalid(format!(
                        "\"$schema\" {s:?} is not supported; use {SET_SCHEMA} or leave it out"
                    )));
                }
            }
        }
        Some(_) => return Err(invalid("\"$schema\" must be a string")),
    };
    let str_claim = |name: &str| -> Result<&str, Problem> {
        obj.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("the SET needs the claim \"{name}\" (a string)")))
    };
    let jti = str_claim("jti")?;
    crate::parse_id("jti", jti).map_err(|_| invalid("\"jti\" must be a UUID"))?;
    let iss = str_claim("iss")?;
    if !iss.eq_ignore_ascii_case(check.destination_id) {
        return Err(invalid(format!(
            "\"iss\" must be the destination id {} (the subscriber signs as its destination)",
            check.destination_id
        )));
    }
    let iat = obj
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("the SET needs \"iat\" (Unix seconds)"))?;
    let sub = str_claim("sub")?;
    let submission_id = sub
        .strip_prefix("submission:")
        .ok_or_else(|| invalid("\"sub\" must be \"submission:<submissionId>\""))
        .and_then(|id| {
            crate::parse_id("sub", id).map_err(|_| invalid("\"sub\" must name a submission UUID"))
        })?;
    let txn = str_claim("txn")?;
    let case = txn
        .strip_prefix("case:")
        .ok_or_else(|| invalid("\"txn\" must be \"case:<caseId>\""))?;
    if !case.eq_ignore_ascii_case(check.case_id) {
        return Err(invalid(format!(
            "\"txn\" names case {case}, but the event was posted to case {}",
            check.case_id
        )));
    }
    let events = obj
        .get("events")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the SET needs \"events\": an object with exactly one event"))?;
    if events.len() != 1 {
        return Err(invalid(format!(
            "\"events\" must hold exactly one event, it holds {}",
            events.len()
        )));
    }
    let Some((uri, payload)) = events.iter().next() else {
        return Err(invalid("\"events\" is empty"));
    };
    let kind = EventKind::from_uri(uri).ok_or_else(|| {
        invalid(format!("unknown event {uri:?}: subscribers send {EVENT_BASE}accept-submission or …/reject-submission"))
    })?;
    if !matches!(
        kind,
        EventKind::AcceptSubmission | EventKind::RejectSubmission
    ) {
        return Err(invalid(format!(
            "subscribers may only send accept-submission or reject-submission, not {}",
            kind.name()
        )));
    }
    let payload_obj = payload
        .as_object()
        .ok_or_else(|| invalid("the event payload must be a JSON object"))?;
    let mut legacy_without_tags = false;
    match kind {
        EventKind::AcceptSubmission if payload_obj.get("authenticationTags").is_none() => {
            if has_schema {
                return Err(invalid(
                    "accept-submission with \"$schema\" must carry \"authenticationTags\" (metadata, data, attachments) copied from submit-submission",
                ));
            }
            legacy_without_tags = true;
        }
        EventKind::RejectSubmission => {
            let problems = payload_obj.get("problems").and_then(Value::as_array);
            match problems {
                Some(p) if !p.is_empty() && p.len() <= 100 => {
                    for (i, pr) in p.iter().enumerate() {
                        let ok = pr.get("type").and_then(Value::as_str).is_some()
                            && pr.get("title").and_then(Value::as_str).is_some();
                        if !ok {
                            return Err(invalid(format!(
                                "problem {i} of reject-submission needs \"type\" and \"title\" (strings)"
                            )));
                        }
                    }
                }
                _ if !has_schema && p_is_absent(payload_obj) => {}
                _ => {
                    return Err(invalid(
                        "reject-submission must carry \"problems\": 1 to 100 RFC 7807 problems",
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(SubscriberEvent {
        kind,
        jti: jti.to_ascii_lowercase(),
        iat,
        submission_id,
        payload: payload.clone(),
        legacy_without_tags,
    })
}

fn p_is_absent(payload: &Map<String, Value>) -> bool {
    !payload.contains_key("problems")
}

/// Compares the tags of an `accept-submission` with the stored ciphertexts' tags: they must
/// match exactly — the accept is the receipt for these very bytes.
///
/// # Errors
/// `invalid-event` naming the first part whose tag differs or is missing.
pub fn check_accept_tags(payload: &Value, stored: &AuthenticationTags) -> Result<(), Problem> {
    let Some(tags) = payload.get("authenticationTags") else {
        return Ok(());
    };
    let tags = tags
        .as_object()
        .ok_or_else(|| invalid("\"authenticationTags\" must be an object"))?;
    let get = |k: &str| tags.get(k).and_then(Value::as_str);
    if get("metadata") != Some(stored.metadata.as_str()) {
        return Err(invalid(
            "authenticationTags.metadata does not match the stored encryptedMetadata's tag (5th JWE segment)",
        ));
    }
    if get("data") != stored.data.as_deref() {
        return Err(invalid(
            "authenticationTags.data does not match the stored encryptedData's tag (5th JWE segment; leave it out if there is no data)",
        ));
    }
    let sent: BTreeMap<String, String> = match tags.get("attachments") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| {
                    invalid(format!(
                        "authenticationTags.attachments[{k}] must be a string"
                    ))
                })?;
                out.insert(k.to_ascii_lowercase(), v.to_owned());
            }
            out
        }
        Some(_) => return Err(invalid("authenticationTags.attachments must be an object")),
    };
    for (id, tag) in &stored.attachments {
        match sent.get(id) {
            Some(t) if t == tag => {}
            Some(_) => {
                return Err(invalid(format!(
                    "authenticationTags.attachments[{id}] does not match the stored attachment's tag"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "authenticationTags.attachments lacks attachment {id}"
                )));
            }
        }
    }
    if let Some(extra) = sent.keys().find(|k| !stored.attachments.contains_key(*k)) {
        return Err(invalid(format!(
            "authenticationTags.attachments names {extra}, which this submission does not have"
        )));
    }
    Ok(())
}
