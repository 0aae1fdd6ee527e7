//! Destinations: what a subscriber registers and senders look up. Stored as one JSON
//! document ([`Destination`]) so that v1 (`services`) and v2 (`publicServices`) are two views
//! of the same record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::problem::{Problem, ProblemKind};
use crate::submission::{ApiVersion, parse_callback, valid_region, valid_service_identifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatus {
    Created,
    Active,
    Inactive,
    Decommissioned,
}

impl DestinationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationStatus::Created => "created",
            DestinationStatus::Active => "active",
            DestinationStatus::Inactive => "inactive",
            DestinationStatus::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => DestinationStatus::Created,
            "active" => DestinationStatus::Active,
            "inactive" => DestinationStatus::Inactive,
            "decommissioned" => DestinationStatus::Decommissioned,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionSchema {
    #[serde(rename = "schemaUri")]
    pub schema_uri: String,
    #[serde(rename = "mimeType")]
    pub mime_type: String,
}

/// A service the destination accepts, with its data schemas and regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOffer {
    pub identifier: String,
    #[serde(rename = "submissionSchemas")]
    pub submission_schemas: Vec<SubmissionSchema>,
    pub regions: Vec<String>,
}

/// The stored destination (everything but keys and the callback secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub destination_id: String,
    pub status: DestinationStatus,
    pub encryption_kid: String,
    pub metadata_versions: Vec<String>,
    pub services: Vec<ServiceOffer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_channels: Option<Value>,
    pub contact_information: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

impl Destination {
    /// What senders see (FIT-Connect `PublicDestination`).
    pub fn public_view(&self, version: ApiVersion) -> Value {
        let mut v = json!({
            "destinationId": self.destination_id,
            "status": self.status.as_str(),
            "encryptionKid": self.encryption_kid,
            "metadataVersions": self.metadata_versions,
        });
        v[version.services_field()] = json!(self.services);
        if let Some(rc) = &self.reply_channels {
            v["replyChannels"] = rc.clone();
        }
        v
    }

    /// What the owning subscriber sees: the public view plus contact and callback URL (the
    /// callback secret is write-only).
    pub fn private_view(&self, version: ApiVersion) -> Value {
        let mut v = self.public_view(version);
        v["contactInformation"] = self.contact_information.clone();
        if let Some(url) = &self.callback_url {
            v["callback"] = json!({ "url": url });
        }
        v
    }

    /// Does this destination accept `service` (and, if given, `region`)?
    pub fn accepts(&self, service: &str, region: Option<&str>) -> bool {
        self.services.iter().any(|s| {
            s.identifier == service
                && region.is_none_or(|r| s.regions.iter().any(|x| r.starts_with(x.as_str())))
        })
    }

    /// The technical contact's e-mail address, for deadline notices.
    pub fn contact_email(&self) -> Option<&str> {
        self.contact_information
            .get("email")
            .and_then(Value::as_str)
    }
}

/// The writable fields of a destination as sent in POST (create), PUT (update) or PATCH.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DestinationInput {
    pub status: Option<DestinationStatus>,
    pub encryption_kid: Option<String>,
    pub metadata_versions: Option<Vec<String>>,
    pub services: Option<Vec<ServiceOffer>>,
    pub reply_channels: Option<Option<Value>>,
    pub contact_information: Option<Value>,
    /// `Some(None)`: remove the callback.
    pub callback: Option<Option<crate::submission::Callback>>,
    pub encryption_public_key: Option<Value>,
    pub signing_public_key: Option<Value>,
}

/// How the body is meant: which fields are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Create,
    Update,
    Patch,
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidRequest, detail)
}

impl DestinationInput {
    /// Parses a create/update/patch body of the given version.
    ///
    /// # Errors
    /// `invalid-request` naming the field.
    pub fn parse(version: ApiVersion, mode: InputMode, body: &Value) -> Result<Self, Problem> {
        let obj = body
            .as_object()
            .ok_or_else(|| bad("the body must be a JSON object"))?;
        let required = |name: &str| -> Result<&Value, Problem> {
            obj.get(name).ok_or_else(|| {
                bad(format!(
                    "{name} is required when {} a destination",
                    match mode {
                        InputMode::Create => "creating",
                        InputMode::Update => "replacing (PUT)",
                        InputMode::Patch => "patching",
                    }
                ))
            })
        };
        let get = |name: &str| -> Result<Option<&Value>, Problem> {
            match mode {
                InputMode::Patch => Ok(obj.get(name)),
                InputMode::Create if name == "status" => Ok(None),
                _ => required(name).map(Some),
            }
        };
        let mut input = DestinationInput::default();
        if let Some(s) = get("status")? {
            let s = s
                .as_str()
                .and_then(DestinationStatus::parse)
                .filter(|s| *s != DestinationStatus::Created || mode == InputMode::Update)
                .ok_or_else(|| {
                    bad("status must be \"active\", \"inactive\" or \"decommissioned\"")
                })?;
            input.status = Some(s);
        }
        if let Some(k) = get("encryptionKid")? {
            let k = k
                .as_str()
                .filter(|k| !k.is_empty() && k.len() <= 64)
                .ok_or_else(|| bad("encryptionKid must be a string of 1 to 64 characters (the kid of the encryption key)"))?;
            input.encryption_kid = Some(k.to_owned());
        }
        if let Some(m) = get("metadataVersions")? {
            let list = m
                .as_array()
                .filter(|a| !a.is_empty() && a.len() <= 20)
                .ok_or_else(|| {
                    bad("metadataVersions must list 1 to 20 versions such as \"1.0.0\"")
                })?;
            let mut out = Vec::new();
            for v in list {
                let s = v.as_str().filter(|s| is_semver(s)).ok_or_else(|| {
                    bad("metadataVersions entries must be versions such as \"1.0.0\"")
                })?;
                if !out.iter().any(|x: &String| x == s) {
                    out.push(s.to_owned());
                }
            }
            input.metadata_versions = Some(out);
        }
        let sf = version.services_field();
        let services = match mode {
            InputMode::Patch => obj.get(sf),
            _ => Some(obj.get(sf).ok_or_else(|| {
                bad(format!(
                    "{sf} is required: [{{\"identifier\": \"urn:de:fim:leika:leistung:…\", \"submissionSchemas\": [{{\"schemaUri\": \"https://…\", \"mimeType\": \"application/json\"}}], \"regions\": [\"DE03257\"]}}]"
                ))
            })?),
        };
        if let Some(s) = services {
            input.services = Some(parse_services(sf, s)?);
        }
        if let Some(rc) = obj.get("replyChannels").or_else(|| obj.get("replyChannel")) {
            input.reply_channels = Some(if rc.is_null() {
                None
            } else {
                Some(parse_reply_channels(rc)?)
            });
        }
        if let Some(ci) = get("contactInformation")? {
            input.contact_information = Some(parse_contact(ci)?);
        }
        if let Some(cb) = obj.get("callback") {
            input.callback = Some(if cb.is_null() {
                None
            } else {
                Some(parse_callback("callback", cb)?)
            });
        }
        if mode == InputMode::Create {
            input.encryption_public_key = Some(check_public_jwk(
                "encryptionPublicKey",
                required("encryptionPublicKey")?,
                KeyUse::Encryption,
            )?);
            input.signing_public_key = Some(check_public_jwk(
                "signingPublicKey",
                required("signingPublicKey")?,
                KeyUse::Signature,
            )?);
            let kid = input.encryption_kid.as_deref().unwrap_or_default();
            if input
                .encryption_public_key
                .as_ref()
                .and_then(|k| k.get("kid"))
                .and_then(Value::as_str)
                != Some(kid)
            {
                return Err(bad(
                    "encryptionKid must equal the kid of encryptionPublicKey",
                ));
            }
        }
        Ok(input)
    }

    /// Applies the input to a stored destination (update and patch).
    pub fn apply(self, d: &mut Destination) {
        if let Some(s) = self.status {
            d.status = s;
        }
        if let Some(k) = self.encryption_kid {
            d.encryption_kid = k;
        }
        if let Some(m) = self.metadata_versions {
            d.metadata_versions = m;
        }
        if let Some(s) = self.services {
            d.services = s;
        }
        if let Some(rc) = self.reply_channels {
            d.reply_channels = rc;
        }
        if let Some(ci) = self.contact_information {
            d.contact_information = ci;
        }
        if let Some(cb) = &self.callback {
            d.callback_url = cb.as_ref().map(|c| c.url.clone());
        }
    }
}

fn is_semver(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    s.len() <= 20
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_services(field: &str, v: &Value) -> Result<Vec<ServiceOffer>, Problem> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 500)
        .ok_or_else(|| bad(format!("{field} must list 1 to 500 services")))?;
    let mut out: Vec<ServiceOffer> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let identifier = s
            .get("identifier")
            .and_then(Value::as_str)
            .filter(|id| valid_service_identifier(id))
            .ok_or_else(|| bad(format!("{field}[{i}].identifier must be a service URN such as urn:de:fim:leika:leistung:99115005104000")))?;
        let schemas = s
            .get("submissionSchemas")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty() && a.len() <= 50)
            .ok_or_else(|| {
                bad(format!(
                    "{field}[{i}].submissionSchemas must list 1 to 50 {{schemaUri, mimeType}}"
                ))
            })?;
        let mut submission_schemas = Vec::new();
        for (j, sc) in schemas.iter().enumerate() {
            let uri = sc
                .get("schemaUri")
                .and_then(Value::as_str)
                .filter(|u| u.len() <= 2000 && url::Url::parse(u).is_ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{field}[{i}].submissionSchemas[{j}].schemaUri must be a URI"
                    ))
                })?;
            let mime = sc
                .get("mimeType")
                .and_then(Value::as_str)
                .filter(|m| matches!(*m, "application/json" | "application/xml"))
                .ok_or_else(|| bad(format!("{field}[{i}].submissionSchemas[{j}].mimeType must be application/json or application/xml")))?;
            submission_schemas.push(SubmissionSchema {
                schema_uri: uri.to_owned(),
                mime_type: mime.to_owned(),
            });
        }
        let regions_v = s
            .get("regions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty() && a.len() <= 2000)
            .ok_or_else(|| {
                bad(format!(
                    "{field}[{i}].regions must list 1 to 2000 regions such as \"DE03257\""
                ))
            })?;
        let mut regions = Vec::new();
        for r in regions_v {
            let r = r
                .as_str()
                .filter(|r| r.len() >= 2 && valid_region(r))
                .ok_or_else(|| {
                    bad(format!(
                        "{field}[{i}].regions entries must be \"DE\" plus up to 12 ARS digits"
                    ))
                })?;
            if !regions.iter().any(|x: &String| x == r) {
                regions.push(r.to_owned());
            }
        }
        if out.iter().any(|o| o.identifier == identifier) {
            return Err(bad(format!("{field} names {identifier} twice")));
        }
        out.push(ServiceOffer {
            identifier: identifier.to_owned(),
            submission_schemas,
            regions,
        });
    }
    Ok(out)
}

fn parse_reply_channels(v: &Value) -> Result<Value, Problem> {
    let obj = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        bad("replyChannels must be an object with at least one of eMail, deMail, elster, fink")
    })?;
    let mut out = Map::new();
    for (k, val) in obj {
        match k.as_str() {
            "eMail" => {
                let use_pgp = val.get("usePgp").and_then(Value::as_bool);
                out.insert(
                    k.clone(),
                    use_pgp.map_or_else(|| json!({}), |p| json!({ "usePgp": p })),
                );
            }
            "deMail" | "elster" | "fink" | "fitConnect" => {
                out.insert(k.clone(), json!({}));
            }
            _ => {
                return Err(bad(format!(
                    "replyChannels.{k} is unknown; allowed: eMail, deMail, elster, fink, fitConnect"
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

fn parse_contact(v: &Value) -> Result<Value, Problem> {
    let obj = v.as_object().ok_or_else(|| {
        bad("contactInformation must be an object {legalName, address, phone, email, unit?}")
    })?;
    let mut out = Map::new();
    for name in ["legalName", "address", "phone", "email"] {
        let s = obj
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty() && s.chars().count() <= 500)
            .ok_or_else(|| {
                bad(format!(
                    "contactInformation.{name} is required (1 to 500 characters)"
                ))
            })?;
        out.insert(name.into(), Value::String(s.to_owned()));
    }
    if let Some(u) = obj.get("unit").and_then(Value::as_str) {
        out.insert("unit".into(), Value::String(u.chars().take(500).collect()));
    }
    let email = out.get("email").and_then(Value::as_str).unwrap_or_default();
    if !email.contains('@') {
        return Err(bad(
            "contactInformation.email must be an e-mail address (deadline notices go there)",
        ));
    }
    Ok(Value::Object(out))
}

/// Which key a JWK is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Encryption,
    Signature,
}

/// Checks a public JWK against FIT-Connect's key rules (RSA ≥ 4096 bit, `e` = AQAB, the one
/// `key_op` and `alg` of its use, `kid` of 8..64 characters, `x5c` present) and returns it
/// reduced to the standard members.
///
/// # Errors
/// `invalid-request` naming the member that is wrong.
pub fn check_public_jwk(field: &str, jwk: &Value, key_use: KeyUse) -> Result<Value, Problem> {
    let s = |m: &str| jwk.get(m).and_then(Value::as_str);
    if s("kty") != Some("RSA") {
        return Err(bad(format!("{field}.kty must be \"RSA\"")));
    }
    let (op, alg) = match key_use {
        KeyUse::Encryption => ("wrapKey", "RSA-OAEP-256"),
        KeyUse::Signature => ("verify", "PS512"),
    };
    let ops = jwk.get("key_ops").and_then(Value::as_array);
    if ops.is_none_or(|o| o.len() != 1 || o[0].as_str() != Some(op)) {
        return Err(bad(format!("{field}.key_ops must be [\"{op}\"]")));
    }
    if s("alg") != Some(alg) {
        return Err(bad(format!("{field}.alg must be \"{alg}\"")));
    }
    if s("e") != Some("AQAB") {
        return Err(bad(format!("{field}.e must be \"AQAB\"")));
    }
    let n = s("n").unwrap_or_default();
    if n.len() < 683 || n.len() > 1400 {
        return Err(bad(format!(
            "{field}.n must be an RSA modulus of 4096 to 8192 bits (683 or more base64url characters)"
        )));
    }
    if jwk.get("d").is_some() || jwk.get("p").is_some() {
        return Err(bad(format!(
            "{field} contains private key material: send only the public key"
        )));
    }
    let kid = s("kid")
        .filter(|k| (8..=64).contains(&k.len()))
        .ok_or_else(|| bad(format!("{field}.kid must have 8 to 64 characters")))?;
    let x5c = jwk
        .get("x5c")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= 10 && a.iter().all(Value::is_string))
        .ok_or_else(|| {
            bad(format!(
                "{field}.x5c must hold the certificate chain (base64 DER strings)"
            ))
        })?;
    Ok(json!({
        "kty": "RSA",
        "key_ops": [op],
        "alg": alg,
        "kid": kid,
        "n": n,
        "e": "AQAB",
        "x5c": x5c,
    }))
}
