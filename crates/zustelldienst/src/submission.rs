//! Senders' request bodies. Parsed from `serde_json::Value` by hand so that every error names
//! the field and says what to send instead (serde's messages do not).

use serde_json::{Value, json};

use crate::problem::{Problem, ProblemKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    /// The name of the service field: `serviceType` in v1, `publicService` in v2.
    pub fn service_field(self) -> &'static str {
        match self {
            ApiVersion::V1 => "serviceType",
            ApiVersion::V2 => "publicService",
        }
    }

    /// The name of a destination's service list: `services` in v1, `publicServices` in v2.
    pub fn services_field(self) -> &'static str {
        match self {
            ApiVersion::V1 => "services",
            ApiVersion::V2 => "publicServices",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        }
    }
}

/// Limits on what a submission may carry. The defaults cover the portal (20 MB per upload)
/// and the e-mail channel (30 MB messages kept whole as `.eml`), with the base64url growth of
/// JWE (4/3) on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest attachment JWE in bytes.
    pub max_attachment_bytes: u64,
    /// Largest `encryptedMetadata` in bytes.
    pub max_metadata_bytes: u64,
    /// Largest `encryptedData` in bytes.
    pub max_data_bytes: u64,
    /// Most distinct attachments per submission.
    pub max_attachments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attachment_bytes: 48 * 1024 * 1024,
            max_metadata_bytes: 2 * 1024 * 1024,
            max_data_bytes: 16 * 1024 * 1024,
            max_attachments: 100,
        }
    }
}

/// A sender's `POST /submissions`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSubmission {
    pub destination_id: String,
    /// Distinct, lowercase, in first-seen order (clients in the field repeat ids).
    pub announced_attachments: Vec<String>,
    pub service_identifier: String,
    pub service_name: String,
    pub case_id: Option<String>,
    pub region: Option<String>,
    pub callback: Option<Callback>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    pub secret: String,
}

fn field_err(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidRequest, detail)
}

/// FIT-Connect's service identifier pattern: `urn:<nid>:<nss>`, 7 to 255 characters.
pub fn valid_service_identifier(s: &str) -> bool {
    if s.len() < 7 || s.len() > 255 {
        return false;
    }
    let Some(rest) = s.strip_prefix("urn:") else {
        return false;
    };
    let Some((nid, nss)) = rest.split_once(':') else {
        return false;
    };
    let nid_ok = !nid.is_empty()
        && nid.len() <= 32
        && nid
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b == b'-'));
    let nss_ok = !nss.is_empty()
        && nss.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"()+,.:=@;$_!*'%/?#-".contains(&b)
        });
    nid_ok && nss_ok
}

/// Parses a callback object (`{url, secret}`): HTTPS only, secret of 32 to 512 characters.
///
/// # Errors
/// A problem naming `field`.
pub fn parse_callback(field: &str, v: &Value) -> Result<Callback, Problem> {
    let url = v
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err(format!("{field}.url is required (an https:// URL)")))?;
    let parsed =
        url::Url::parse(url).map_err(|_| field_err(format!("{field}.url is not a valid URL")))?;
    // Plain http only to loopback, so that tests and local development work.
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.len() > 2000 || !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
    {
        return Err(field_err(format!(
            "{field}.url must be an https:// URL of at most 2000 characters"
        )));
    }
    let secret = v
        .get("secret")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err(format!("{field}.secret is required (32 to 512 characters)")))?;
    let n = secret.chars().count();
    if !(32..=512).contains(&n) {
        return Err(field_err(format!(
            "{field}.secret must have 32 to 512 characters, it has {n}"
        )));
    }
    Ok(Callback {
        url: url.to_owned(),
        secret: secret.to_owned(),
    })
}

impl CreateSubmission {
    /// Parses `POST /submissions` of the given API version.
    ///
    /// # Errors
    /// `invalid-request` naming the field and what it must be.
    pub fn parse(version: ApiVersion, body: &Value, limits: &Limits) -> Result<Self, Problem> {
        let obj = body
            .as_object()
            .ok_or_else(|| field_err("the body must be a JSON object"))?;
        let destination_id = crate::parse_id(
            "destinationId",
            obj.get("destinationId")
                .and_then(Value::as_str)
                .ok_or_else(|| field_err("destinationId is required (the UUID of the destination, from the Routing API)"))?,
        )?;
        let announced = obj
            .get("announcedAttachments")
            .map(|v| {
                v.as_array().ok_or_else(|| {
                    field_err(
                        "announcedAttachments must be an array of attachment UUIDs (may be empty)",
                    )
                })
            })
            .transpose()?;
        let mut announced_attachments: Vec<String> = Vec::new();
        for (i, a) in announced.into_iter().flatten().enumerate() {
            let s = a.as_str().ok_or_else(|| {
                field_err(format!("announcedAttachments[{i}] must be a UUID string"))
            })?;
            let id = crate::parse_id(&format!("announcedAttachments[{i}]"), s)?;
            if !announced_attachments.contains(&id) {
                announced_attachments.push(id);
            }
            if announced_attachments.len() > limits.max_attachments {
                return Err(Problem::new(
                    ProblemKind::PayloadTooLarge,
                    format!(
                        "at most {} attachments per submission; put more files into one archive",
                        limits.max_attachments
                    ),
                ));
            }
        }
        let sf = version.service_field();
        let other = match version {
            ApiVersion::V1 => "publicService",
            ApiVersion::V2 => "serviceType",
        };
        let service = match obj.get(sf) {
            Some(s) => s,
            None if obj.contains_key(other) => {
                return Err(field_err(format!(
                    "{sf} is required: API {} names the service {sf}; {other} belongs to the other version",
                    version.as_str()
                )));
            }
            None => {
                return Err(field_err(format!(
                    "{sf} is required: {{\"identifier\": \"urn:de:fim:leika:leistung:<14 digits>\", \"name\": \"…\"}}"
                )));
            }
        };
        let identifier = service
            .get("identifier")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                field_err(format!(
                    "{sf}.identifier is required, e.g. urn:de:fim:leika:leistung:99115005104000"
                ))
            })?;
        if !valid_service_identifier(identifier) {
            return Err(field_err(format!(
                "{sf}.identifier {identifier:?} is not a service URN such as urn:de:fim:leika:leistung:99115005104000"
            )));
        }
        // Clients in the field send an empty name; it is informational.
        let name = match service.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.chars().count() <= 255 => s.clone(),
            Some(_) => {
                return Err(field_err(format!(
                    "{sf}.name must be a string of at most 255 characters"
                )));
            }
        };
        let case_id = match obj.get("caseId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(crate::parse_id("caseId", s)?),
            Some(_) => return Err(field_err("caseId must be a UUID string")),
        };
        let region = match obj.get("region") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) => {
                if !valid_region(r) {
                    return Err(field_err(format!(
                        "region {r:?} must be \"DE\" followed by up to 12 digits of an ARS"
                    )));
                }
                Some(r.clone())
            }
            Some(_) => return Err(field_err("region must be a string like DE03257")),
        };
        let callback = obj
            .get("callback")
            .filter(|v| !v.is_null())
            .map(|v| parse_callback("callback", v))
            .transpose()?;
        Ok(CreateSubmission {
            destination_id,
            announced_attachments,
            service_identifier: identifier.to_owned(),
            service_name: name,
            case_id,
            region,
            callback,
        })
    }
}

/// `^DE[0-9]{0,12}$`.
pub fn valid_region(r: &str) -> bool {
    r.len() <= 14
        && r.strip_prefix("DE")
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
}

/// A sender's `PUT /submissions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitSubmission {
    pub encrypted_metadata: String,
    pub encrypted_data: Option<String>,
}

impl SubmitSubmission {
    /// v1 allows metadata alone; v2 requires both parts (as the live v2 service does).
    ///
    /// # Errors
    /// `invalid-request` or `payload-too-large`.
    pub fn parse(version: ApiVersion, body: &Value, limits: &Limits) -> Result<Self, Problem> {
        let obj = body
            .as_object()
            .ok_or_else(|| field_err("the body must be a JSON object {\"encryptedMetadata\": \"<JWE>\", \"encryptedData\": \"<JWE>\"}"))?;
        let jwe = |name: &str, max: u64| -> Result<Option<String>, Problem> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => {
                    if s.len() as u64 > max {
                        return Err(Problem::new(
                            ProblemKind::PayloadTooLarge,
                            format!("{name} has {} bytes; the limit is {max}", s.len()),
                        ));
                    }
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(field_err(format!(
                    "{name} must be a string holding a compact JWE"
                ))),
            }
        };
        let encrypted_metadata = jwe("encryptedMetadata", limits.max_metadata_bytes)?
            .ok_or_else(|| field_err("encryptedMetadata is required: the metadata (FIT-Connect metadata schema) as compact JWE to the destination's encryption key"))?;
        let encrypted_data = jwe("encryptedData", limits.max_data_bytes)?;
        if version == ApiVersion::V2 && encrypted_data.is_none() {
            return Err(field_err(
                "encryptedData is required in API v2 (v1 allows metadata alone)",
            ));
        }
        Ok(SubmitSubmission {
            encrypted_metadata,
            encrypted_data,
        })
    }
}

/// The `{destinationId, submissionId, caseId}` triple of lists and callbacks.
pub fn submission_ref(destination_id: &str, submission_id: &str, case_id: &str) -> Value {
    json!({"destinationId": destination_id, "submissionId": submission_id, "caseId": case_id})
}
