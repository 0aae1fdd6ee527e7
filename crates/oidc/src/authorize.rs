//! Validation of an authorization request, in the order that decides where an error may go:
//! until client and redirect URI are known to match a registration, errors are shown at the
//! provider (an attacker must never make us redirect to an unregistered place, RFC 6749
//! § 4.1.2.1); after that they go to the redirect URI with `state` and `iss`.

use std::collections::HashMap;

use domain::TrustLevel;
use serde::{Deserialize, Serialize};

use crate::{ClientConfig, ClientKind};

const MAX_PARAM: usize = 2048;
const MAX_STATE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    #[default]
    Default,
    /// Answer without showing anything, or fail with `login_required`/`consent_required`.
    None,
    /// Authenticate again even with a live session.
    Login,
    /// Ask for consent even if it was given before.
    Consent,
}

/// A validated authorization request. Carried (sealed) through login and consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Known scopes only, in request order, without duplicates.
    pub scopes: Vec<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    pub code_challenge: String,
    #[serde(default)]
    pub prompt: Prompt,
    #[serde(default)]
    pub max_age: Option<i64>,
    #[serde(default)]
    pub login_hint: Option<String>,
    /// The lowest trust level among the recognised `acr_values` (they are the levels the
    /// client accepts; we treat the weakest as the requirement, as BundID does).
    #[serde(default)]
    pub required_level: Option<u8>,
    #[serde(default)]
    pub ui_locales: Vec<String>,
}

/// Where an error of an authorization request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorTarget {
    /// Shown at the provider: the client or redirect URI cannot be trusted.
    Page,
    /// Sent to this (registered) redirect URI, with the request's `state`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
    },
}

/// An error of an authorization request, with the code of OIDC Core § 3.1.2.6 / RFC 6749
/// § 4.1.2.1 and a description that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub target: ErrorTarget,
    pub error: &'static str,
    pub description: String,
}

impl AuthorizationRequest {
    /// Validates request parameters (query or form, in arrival order) against the client
    /// found by `find_client` (None: unknown or inactive client).
    ///
    /// # Errors
    /// [`RequestError`] saying where the error may be sent.
    pub fn validate<'a>(
        params: &[(String, String)],
        find_client: impl FnOnce(&str) -> Option<&'a ClientConfig>,
    ) -> Result<Self, RequestError> {
        let page = |error: &'static str, description: String| RequestError {
            target: ErrorTarget::Page,
            error,
            description,
        };
        let mut map: HashMap<&str, &str> = HashMap::new();
        let mut duplicate = None;
        for (k, v) in params {
            if map.insert(k.as_str(), v.as_str()).is_some() {
                duplicate = Some(k.as_str());
            }
            if v.len() > MAX_PARAM {
                return Err(page(
                    "invalid_request",
                    format!("parameter {k} is longer than {MAX_PARAM} characters"),
                ));
            }
        }
        let get = |k: &str| map.get(k).copied().filter(|v| !v.is_empty());
        let client_id = get("client_id").ok_or_else(|| {
            page(
                "invalid_request",
                "client_id is missing: the service that sent you here is misconfigured".into(),
            )
        })?;
        let client = find_client(client_id).ok_or_else(|| {
            page(
                "invalid_client",
                "this service is not registered with the Servicekonto (unknown client_id)".into(),
            )
        })?;
        if client.kind != ClientKind::Web {
            return Err(page(
                "unauthorized_client",
                "this client is an API client; it cannot sign users in".into(),
            ));
        }
        let redirect_uri = match get("redirect_uri") {
            Some(uri) if client.has_redirect_uri(uri) => uri,
            Some(_) => {
                return Err(page(
                    "invalid_request",
                    "redirect_uri does not match any URI registered for this client (they are compared exactly)".into(),
                ));
            }
            None => {
                return Err(page(
                    "invalid_request",
                    "redirect_uri is missing; it is required and must be registered".into(),
                ));
            }
        };
        let state = get("state").map(str::to_owned);
        let redirect = |error: &'static str, description: String| RequestError {
            target: ErrorTarget::Redirect {
                redirect_uri: redirect_uri.to_owned(),
                state: state.clone(),
            },
            error,
            description,
        };
        if let Some(k) = duplicate {
            return Err(redirect(
                "invalid_request",
                format!("parameter {k} appears more than once"),
            ));
        }
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(redirect(
                "invalid_request",
                format!("state is longer than {MAX_STATE} characters"),
            ));
        }
        if get("request").is_some() {
            return Err(redirect(
                "request_not_supported",
                "request objects are not supported; send the parameters in the query".into(),
            ));
        }
        if get("request_uri").is_some() {
            return Err(redirect(
                "request_uri_not_supported",
                "request_uri is not supported; send the parameters in the query".into(),
            ));
        }
        if get("registration").is_some() {
            return Err(redirect(
                "registration_not_supported",
                "the registration parameter is not supported".into(),
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None => {
                return Err(redirect(
                    "invalid_request",
                    "response_type is missing; use response_type=code".into(),
                ));
            }
            Some(_) => {
                return Err(redirect(
                    "unsupported_response_type",
                    "only the authorization code flow is offered: use response_type=code".into(),
                ));
            }
        }
        if let Some(mode) = get("response_mode")
            && mode != "query"
        {
            return Err(redirect(
                "invalid_request",
                "response_mode: only query is supported".into(),
            ));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in get("scope")
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
        {
            // Unknown scopes are ignored (OIDC Core § 3.1.2.1), duplicates collapsed.
            if crate::is_known_scope(s) && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(redirect(
                "invalid_scope",
                "scope must contain openid".into(),
            ));
        }
        let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
            (None, _) => {
                return Err(redirect(
                    "invalid_request",
                    "PKCE is required: send code_challenge and code_challenge_method=S256".into(),
                ));
            }
            (Some(_), Some("S256")) => get("code_challenge").unwrap_or_default(),
            (Some(_), None | Some("plain")) => {
                return Err(redirect(
                    "invalid_request",
                    "code_challenge_method must be S256; plain is not accepted".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(redirect(
                    "invalid_request",
                    "unknown code_challenge_method; use S256".into(),
                ));
            }
        };
        if code_challenge.len() != 43 || !code_challenge.bytes().all(is_b64url) {
            return Err(redirect(
                "invalid_request",
                "code_challenge must be base64url(SHA-256(code_verifier)) without padding (43 characters)".into(),
            ));
        }
        let mut prompt = Prompt::Default;
        if let Some(p) = get("prompt") {
            let values: Vec<&str> = p.split(' ').filter(|s| !s.is_empty()).collect();
            if values.contains(&"none") && values.len() > 1 {
                return Err(redirect(
                    "invalid_request",
                    "prompt=none cannot be combined with other prompt values".into(),
                ));
            }
            for v in &values {
                prompt = match *v {
                    "none" => Prompt::None,
                    // select_account: one account per session, so signing in again is the
                    // way to choose another.
                    "login" | "select_account" => Prompt::Login,
                    "consent" if prompt != Prompt::Login => Prompt::Consent,
                    "consent" => prompt,
                    _ => {
                        return Err(redirect(
                            "invalid_request",
                            format!(
                                "unknown prompt value {v:?}; use none, login, consent or select_account"
                            ),
                        ));
                    }
                };
            }
            // "login consent": both must happen; login is checked first and consent is asked
            // after a fresh login anyway unless remembered, so ask it explicitly.
            if values.contains(&"login") && values.contains(&"consent") {
                prompt = Prompt::Login;
            }
        }
        let max_age = match get("max_age") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    return Err(redirect(
                        "invalid_request",
                        "max_age must be a non-negative number of seconds".into(),
                    ));
                }
            },
        };
        let required_level = get("acr_values").and_then(|v| {
            v.split(' ')
                .filter_map(TrustLevel::from_acr)
                .map(TrustLevel::as_u8)
                .min()
        });
        let ui_locales = get("ui_locales")
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .take(10)
            .map(str::to_owned)
            .collect();
        Ok(Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state,
            nonce: get("nonce").map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
            prompt,
            max_age,
            login_hint: get("login_hint").map(str::to_owned),
            required_level,
            ui_locales,
        })
    }

    /// The first of `ui_locales` we have pages in (`de`, `en`, `ls` for Leichte Sprache;
    /// regional variants like `de-DE` count).
    #[must_use]
    pub fn page_lang(&self) -> Option<&'static str> {
        self.ui_locales.iter().find_map(|l| {
            let base = l.split('-').next().unwrap_or("").to_ascii_lowercase();
            match base.as_str() {
                "de" if l.eq_ignore_ascii_case("de-x-ls") => Some("ls"),
                "de" => Some("de"),
                "en" => Some("en"),
                "ls" => Some("ls"),
                _ => None,
            }
        })
    }

    /// An error to send back to this request's redirect URI.
    #[must_use]
    pub fn error(&self, error: &'static str, description: impl Into<String>) -> RequestError {
        RequestError {
            target: ErrorTarget::Redirect {
                redirect_uri: self.redirect_uri.clone(),
                state: self.state.clone(),
            },
            error,
            description: description.into(),
        }
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// PKCE S256 (RFC 7636 § 4.6): the verifier is 43–128 unreserved characters and hashes to
/// the challenge.
#[must_use]
pub fn verify_pkce(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && crypto::constant_time_eq(
            crypto::sha256_b64url(verifier.as_bytes()).as_bytes(),
            challenge.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientConfig {
        ClientConfig {
            kind: ClientKind::Web,
            redirect_uris: vec!["https://rp.example/cb".into()],
            ..ClientConfig::default()
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("client_id", "c1"),
            ("redirect_uri", "https://rp.example/cb"),
            ("response_type", "code"),
            ("scope", "openid profile unknown openid"),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                p.push(((*k).into(), (*v).into()));
            }
        }
        p
    }

    fn run(extra: &[(&str, &str)]) -> Result<AuthorizationRequest, RequestError> {
        let c = client();
        AuthorizationRequest::validate(&params(extra), |id| (id == "c1").then_some(&c))
    }

    #[test]
    fn rfc7636_appendix_b_example() {
        assert!(verify_pkce(CHALLENGE, VERIFIER));
        assert!(!verify_pkce(CHALLENGE, &VERIFIER.replace('d', "e")));
        assert!(!verify_pkce(CHALLENGE, "short"));
    }

    #[test]
    fn a_good_request_is_normalised() {
        let r = run(&[
            (
                "acr_values",
                "http://eidas.europa.eu/LoA/high STORK-QAA-Level-3 x",
            ),
            ("ui_locales", "fr en-GB"),
        ])
        .expect("valid");
        assert_eq!(r.scopes, vec!["openid", "profile"]);
        assert_eq!(r.required_level, Some(3));
        assert_eq!(r.page_lang(), Some("en"));
        assert_eq!(r.prompt, Prompt::Default);
    }

    #[test]
    fn errors_before_the_redirect_uri_is_trusted_stay_at_the_provider() {
        for extra in [
            [("client_id", "")],
            [("client_id", "other")],
            [("redirect_uri", "https://evil.example/cb")],
            [("redirect_uri", "")],
        ] {
            let e = run(&extra).expect_err("refused");
            assert_eq!(e.target, ErrorTarget::Page, "{extra:?}");
        }
    }

    #[test]
    fn errors_after_it_go_to_the_redirect_uri() {
        for (extra, code) in [
            (
                vec![("response_type", "token")],
                "unsupported_response_type",
            ),
            (vec![("response_type", "")], "invalid_request"),
            (vec![("scope", "profile")], "invalid_scope"),
            (vec![("code_challenge", "")], "invalid_request"),
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (vec![("code_challenge_method", "")], "invalid_request"),
            (vec![("prompt", "none login")], "invalid_request"),
            (vec![("max_age", "-1")], "invalid_request"),
            (vec![("request", "eyJ")], "request_not_supported"),
        ] {
            let e = run(&extra).expect_err("refused");
            assert_eq!(e.error, code, "{extra:?}");
            assert_eq!(
                e.target,
                ErrorTarget::Redirect {
                    redirect_uri: "https://rp.example/cb".into(),
                    state: Some("s".into())
                }
            );
        }
    }

    #[test]
    fn prompts() {
        assert_eq!(run(&[("prompt", "none")]).expect("ok").prompt, Prompt::None);
        assert_eq!(
            run(&[("prompt", "consent")]).expect("ok").prompt,
            Prompt::Consent
        );
        assert_eq!(
            run(&[("prompt", "consent login")]).expect("ok").prompt,
            Prompt::Login
        );
    }
}
