//! The OpenID provider: signing keys and their rotation, the authorization code flow with
//! login, step-up and consent, the token endpoint's grants, userinfo, introspection,
//! revocation and logout (RP-initiated, front- and back-channel).
//!
//! Protocol rules that need no I/O live in the `oidc` crate; this module applies them to
//! sessions, consents and the store.
//!
//! Access tokens are sealed (AES-256-GCM under a key derived from the KEK): issuing one
//! writes nothing, checking one costs a decryption and one indexed read of the revocation
//! table. Codes and refresh tokens are stored (as SHA-256) because they are single-use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ttl_cache::TtlCache;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto::{JwtAlg, JwtSigningKey, Kek, MacKey};
use domain::TrustLevel;
use oidc::{AuthorizationRequest, ClientConfig, ClientKind, Prompt, SubjectType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{OidcKeyRecord, RefreshRecord};
use time::OffsetDateTime;

use crate::accounts::{ClientInfo, Session};
use crate::oauth::{ACCESS_TOKEN_LIFETIME, OAuthError};
use crate::{App, AppError, Result};

const CODE_LIFETIME: time::Duration = time::Duration::seconds(60);
const ID_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(10);
const REFRESH_LIFETIME: time::Duration = time::Duration::days(30);
/// How long an authorization request may wait for login and consent.
const INTERACTION_LIFETIME: i64 = 30 * 60;
/// How often a node looks for keys rotated by another node (or the CLI).
const KEY_RELOAD: Duration = Duration::from_secs(30);
/// How long a retired key stays in the JWKS by default: longer than any ID token lives and
/// than relying parties usually cache a key set.
pub const DEFAULT_KEY_OVERLAP: time::Duration = time::Duration::hours(24);
const ACCESS_TOKEN_PREFIX: &str = "rat1.";
/// How long a node trusts a client registration it read: a disabled client or a new secret
/// takes effect on other nodes within this time (at once on the node that changed it).
const CLIENT_CACHE: Duration = Duration::from_secs(5);
/// How long a node trusts that a client-credentials token is not revoked (revoking on
/// another node takes effect here within this time).
const UNREVOKED_CACHE: Duration = Duration::from_secs(2);
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Keys derived from the KEK for the provider, and its signing keys.
pub(crate) struct OidcState {
    token_key: Kek,
    code_key: Kek,
    /// (session, client) pairs this node recorded lately: a service signing in again in the
    /// same session (silent renewals) needs no second row.
    session_clients: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// Registrations read in the last few seconds: the token path reads them on every request.
    clients: TtlCache<Option<Arc<(store::OAuthClient, ClientConfig)>>>,
    /// Client-credentials tokens (by jti) found not revoked in the last few seconds.
    unrevoked: TtlCache<()>,
    interaction_key: Kek,
    pub(crate) secret_mac: MacKey,
    pairwise_mac: MacKey,
    signing: ArcSwap<SigningSet>,
    reload: tokio::sync::Mutex<()>,
}

struct SigningSet {
    current: HashMap<JwtAlg, Arc<JwtSigningKey>>,
    by_kid: HashMap<String, Arc<JwtSigningKey>>,
    jwks: Arc<[u8]>,
    loaded: Instant,
}

impl OidcState {
    pub(crate) async fn open(store: &store::Store, kek: &Kek) -> Result<OidcState> {
        let state = OidcState {
            token_key: kek.derive("oauth/access-token"),
            code_key: kek.derive("oidc/authorization-code"),
            session_clients: std::sync::Mutex::new(std::collections::HashSet::new()),
            clients: TtlCache::new(CLIENT_CACHE, 10_000),
            unrevoked: TtlCache::new(UNREVOKED_CACHE, 100_000),
            interaction_key: kek.derive("oidc/interaction"),
            secret_mac: kek.derive_mac("oauth/client-secret"),
            pairwise_mac: kek.derive_mac("oidc/pairwise-subject"),
            signing: ArcSwap::from_pointee(SigningSet {
                current: HashMap::new(),
                by_kid: HashMap::new(),
                jwks: Arc::from(&b"{\"keys\":[]}"[..]),
                loaded: Instant::now(),
            }),
            reload: tokio::sync::Mutex::new(()),
        };
        let now = OffsetDateTime::now_utc();
        let records = store.oidc_keys(now).await?;
        for alg in JwtAlg::ALL {
            if !records
                .iter()
                .any(|r| r.alg == alg.as_str() && r.retired_at.is_none())
            {
                let key = generate(alg).await?;
                store.insert_oidc_key(&key_record(kek, &key, now)).await?;
            }
        }
        state.load(store, kek).await?;
        Ok(state)
    }

    async fn load(&self, store: &store::Store, kek: &Kek) -> Result<()> {
        let records = store.oidc_keys(OffsetDateTime::now_utc()).await?;
        let mut current = HashMap::new();
        let mut by_kid = HashMap::new();
        let mut published = Vec::new();
        for r in records {
            let Some(alg) = JwtAlg::parse(&r.alg) else {
                continue;
            };
            let der = kek
                .unwrap(key_aad(&r.kid).as_bytes(), &r.wrapped)
                .map_err(|e| AppError::Internal(format!("OIDC key {}: {e}", r.kid)))?;
            let key = Arc::new(
                JwtSigningKey::from_pkcs8(alg, &der)
                    .map_err(|e| AppError::Internal(format!("OIDC key {}: {e}", r.kid)))?,
            );
            published.push(key.public_jwk().clone());
            // Newest first: the first current key of an algorithm signs.
            if r.retired_at.is_none() {
                current.entry(alg).or_insert_with(|| key.clone());
            }
            by_kid.insert(key.kid().to_owned(), key);
        }
        let jwks = serde_json::to_vec(&json!({ "keys": published }))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.signing.store(Arc::new(SigningSet {
            current,
            by_kid,
            jwks: jwks.into(),
            loaded: Instant::now(),
        }));
        Ok(())
    }
}

async fn generate(alg: JwtAlg) -> Result<JwtSigningKey> {
    tokio::task::spawn_blocking(move || JwtSigningKey::generate(alg))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))
}

fn key_aad(kid: &str) -> String {
    format!("oidc-signing-key:{kid}")
}

fn key_record(kek: &Kek, key: &JwtSigningKey, now: OffsetDateTime) -> OidcKeyRecord {
    OidcKeyRecord {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        wrapped: kek.wrap(key_aad(key.kid()).as_bytes(), &key.pkcs8_der()),
        public_jwk: key.public_jwk().to_string(),
        created_at: store::ts(now),
        retired_at: None,
        expires_at: None,
    }
}

/// What was granted, stored with a code or refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GrantData {
    account_id: String,
    /// The Servicekonto session (its public id, the `sid` claim).
    sid: String,
    scopes: Vec<String>,
    #[serde(default)]
    nonce: Option<String>,
    auth_time: i64,
    acr: u8,
    amr: Vec<String>,
    redirect_uri: String,
    code_challenge: String,
}

/// The contents of an authorization code.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealedCode {
    cid: String,
    exp: i64,
    /// Makes every code unique, so its hash can record its single use.
    id: String,
    grant: GrantData,
}

const CODE_PREFIX: &str = "rac1.";

/// The contents of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessClaims {
    cid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    scp: String,
    iat: i64,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr: Option<u8>,
    /// The refresh-token family of the sign-in: revoking it (logout, consent withdrawn,
    /// RFC 7009 revocation, detected reuse) ends this token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<String>,
}

/// An authorization request waiting for login or consent, sealed into the URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Interaction {
    req: AuthorizationRequest,
    /// Microseconds since the epoch: a login counts as fresh only if it came later, and
    /// whole seconds cannot tell "just before" from "just after".
    started: i64,
}

fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The next step of an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeStep {
    /// Answer the relying party: this URL (with a code or an error).
    Redirect(String),
    /// Sign in (again) and come back to `resume` (a path with the sealed request).
    Login {
        resume: String,
        login_hint: Option<String>,
        lang: Option<&'static str>,
    },
    /// Ask for consent.
    Consent(ConsentRequest),
    /// Show this error at the provider (client or redirect URI not trustworthy).
    ErrorPage { error: String, description: String },
}

/// What the consent page shows and posts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// The sealed request, posted back with the decision.
    pub interaction: String,
    pub client_name: String,
    pub client_host: String,
    /// Scopes to agree to (without `openid`).
    pub scopes: Vec<String>,
    pub lang: Option<&'static str>,
    /// Origin of the redirect URI: the consent form's answer redirects there, so the page's
    /// `form-action` must allow it.
    pub redirect_origin: Option<String>,
}

/// A client that authenticated at the token, introspection or revocation endpoint.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub config: ClientConfig,
}

/// How a client authenticates (RFC 6749 § 2.3, OIDC Core § 9).
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    Secret {
        client_id: String,
        secret: String,
    },
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
}

/// The answer of the token endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A parsed `id_token_hint`.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub client_id: String,
    pub sid: Option<String>,
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn hash(secret: &str) -> String {
    crypto::sha256_hex(secret.as_bytes())
}

impl App {
    fn oidc(&self) -> &OidcState {
        &self.oidc
    }

    /// The issuer: the public base URL.
    pub fn issuer(&self) -> &str {
        &self.settings.public_url
    }

    /// The OP's key set (JSON), current and retired-but-published keys.
    pub async fn oidc_jwks(&self) -> Result<Arc<[u8]>> {
        Ok(self.signing_set().await?.jwks.clone())
    }

    async fn signing_set(&self) -> Result<Arc<SigningSet>> {
        let set = self.oidc().signing.load_full();
        if set.loaded.elapsed() < KEY_RELOAD {
            return Ok(set);
        }
        // One reload at a time; the others keep using the loaded set meanwhile.
        if let Ok(_guard) = self.oidc().reload.try_lock() {
            self.oidc().load(&self.store, &self.kek).await?;
        }
        Ok(self.oidc().signing.load_full())
    }

    /// Replaces the signing keys of every algorithm; the old ones stay published for
    /// `overlap`. Returns the new key ids.
    pub async fn rotate_oidc_keys(&self, overlap: time::Duration) -> Result<Vec<String>> {
        let now = OffsetDateTime::now_utc();
        let mut kids = Vec::new();
        for alg in JwtAlg::ALL {
            let key = generate(alg).await?;
            self.store
                .rotate_oidc_key(&key_record(&self.kek, &key, now), now, now + overlap)
                .await?;
            kids.push(key.kid().to_owned());
        }
        self.oidc().load(&self.store, &self.kek).await?;
        Ok(kids)
    }

    /// The discovery document (OIDC Discovery 1.0 § 3).
    pub fn openid_configuration(&self) -> Value {
        let iss = self.issuer();
        json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oidc/authorize"),
            "token_endpoint": format!("{iss}/oauth/token"),
            "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
            "jwks_uri": format!("{iss}/oidc/jwks"),
            "end_session_endpoint": format!("{iss}/oidc/logout"),
            "introspection_endpoint": format!("{iss}/oauth/introspect"),
            "revocation_endpoint": format!("{iss}/oauth/revoke"),
            "scopes_supported": oidc::SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": TrustLevel::ALL.iter().map(|l| l.stork_uri()).chain(
                TrustLevel::ALL.iter().filter_map(|l| l.eidas_uri())).collect::<Vec<_>>(),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                "given_name", "family_name", "birthdate", "email", "email_verified", "address", "phone_number",
                "trust_level", "eidas_level", "organisation"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "ui_locales_supported": ["de", "en", "de-x-ls"],
            "claims_locales_supported": ["de"],
            "display_values_supported": ["page", "popup", "touch"],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "frontchannel_logout_supported": true,
            "frontchannel_logout_session_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        })
    }

    async fn client_config(
        &self,
        client_id: &str,
    ) -> Result<Option<(store::OAuthClient, ClientConfig)>> {
        Ok(self
            .cached_client(client_id)
            .await?
            .map(|c| (c.0.clone(), c.1.clone())))
    }

    async fn cached_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<(store::OAuthClient, ClientConfig)>>> {
        if client_id.is_empty() || client_id.len() > 200 {
            return Ok(None);
        }
        if let Some(entry) = self.oidc().clients.get(client_id) {
            return Ok(entry);
        }
        let entry = match self.store.oauth_client(client_id).await? {
            Some(c) if c.active => {
                let config: ClientConfig = serde_json::from_str(&c.config).map_err(|e| {
                    AppError::Internal(format!("client {client_id} registration: {e}"))
                })?;
                Some(Arc::new((c, config)))
            }
            _ => None,
        };
        // Unknown ids are cached too (bounded), so probing them costs no query each.
        self.oidc().clients.put(client_id, entry.clone());
        Ok(entry)
    }

    /// Whether this node has not yet recorded that `sid` signed in to `client_id`.
    /// Forgetting is harmless: the insert ignores duplicates.
    fn first_in_session(&self, sid: &str, client_id: &str) -> bool {
        self.oidc().session_clients.lock().map_or(true, |seen| {
            !seen.contains(&(sid.to_owned(), client_id.to_owned()))
        })
    }

    fn recorded_in_session(&self, sid: &str, client_id: &str) {
        if let Ok(mut seen) = self.oidc().session_clients.lock() {
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert((sid.to_owned(), client_id.to_owned()));
        }
    }

    /// Drops a cached registration after this node changed it.
    pub(crate) fn forget_client(&self, client_id: &str) {
        self.oidc().clients.remove(client_id);
    }

    fn seal_code(&self, code: &SealedCode) -> String {
        let json = serde_json::to_vec(code).unwrap_or_default();
        format!(
            "{CODE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.oidc().code_key.wrap(b"code", &json))
        )
    }

    fn unseal_code(&self, code: &str) -> Option<SealedCode> {
        let b64 = code.strip_prefix(CODE_PREFIX)?;
        if b64.len() > 8192 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(b64).ok()?;
        let json = self.oidc().code_key.unwrap(b"code", &raw).ok()?;
        serde_json::from_slice(&json).ok()
    }

    // ---- authorization endpoint ----

    /// Starts an authorization request (parameters as received).
    pub async fn authorize(
        &self,
        params: &[(String, String)],
        session: Option<&Session>,
    ) -> Result<AuthorizeStep> {
        let client_id = params
            .iter()
            .find(|(k, _)| k == "client_id")
            .map_or("", |(_, v)| v.as_str());
        let found = self.client_config(client_id).await?;
        let req = match AuthorizationRequest::validate(params, |_| found.as_ref().map(|(_, c)| c)) {
            Ok(r) => r,
            Err(e) => return Ok(self.request_error(e)),
        };
        let started = unix_micros(OffsetDateTime::now_utc());
        self.continue_authorization(Interaction { req, started }, session, false)
            .await
    }

    /// Origin of the redirect URI of a sealed request (for the login page's `form-action`:
    /// the login's answer ends in a redirect there).
    pub fn interaction_redirect_origin(&self, sealed: &str) -> Option<String> {
        self.unseal_interaction(sealed)
            .and_then(|i| oidc::origin_of(&i.req.redirect_uri))
    }

    /// Continues a request after login (`resume` holds the sealed request).
    pub async fn authorize_resume(
        &self,
        sealed: &str,
        session: Option<&Session>,
    ) -> Result<AuthorizeStep> {
        match self.unseal_interaction(sealed) {
            Some(i) => self.continue_authorization(i, session, false).await,
            None => Ok(AuthorizeStep::ErrorPage {
                error: "invalid_request".into(),
                description: "this sign-in request is unknown or expired; go back to the service and start again".into(),
            }),
        }
    }

    /// The consent page's answer.
    pub async fn authorize_consent(
        &self,
        sealed: &str,
        session: &Session,
        allow: bool,
        client: &ClientInfo,
    ) -> Result<AuthorizeStep> {
        let Some(i) = self.unseal_interaction(sealed) else {
            return self.authorize_resume(sealed, Some(session)).await;
        };
        if !allow {
            self.event(
                Some(&session.account_id),
                "consent_denied",
                client,
                Some(&i.req.client_id),
            )
            .await?;
            return Ok(self.request_error(i.req.error(
                "access_denied",
                "the user did not agree to share the requested data",
            )));
        }
        let Some((c, _)) = self.client_config(&i.req.client_id).await? else {
            return Ok(self.request_error(
                i.req
                    .error("unauthorized_client", "the client was deactivated"),
            ));
        };
        // Merge with what was agreed before: consent is remembered per client.
        let mut scopes: Vec<String> = self
            .store
            .consents(&session.account_id)
            .await?
            .into_iter()
            .find(|r| r.client_id == c.client_id)
            .map(|r| r.scopes.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        for s in &i.req.scopes {
            if s != "openid" && !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        self.grant_consent(&session.account_id, &c.client_id, &c.name, &refs)
            .await?;
        self.continue_authorization(i, Some(session), true).await
    }

    fn request_error(&self, e: oidc::RequestError) -> AuthorizeStep {
        match e.target {
            oidc::ErrorTarget::Page => AuthorizeStep::ErrorPage {
                error: e.error.into(),
                description: e.description,
            },
            oidc::ErrorTarget::Redirect {
                redirect_uri,
                state,
            } => {
                let mut p = vec![
                    ("error", e.error),
                    ("error_description", e.description.as_str()),
                ];
                if let Some(s) = &state {
                    p.push(("state", s));
                }
                p.push(("iss", self.issuer()));
                match oidc::with_query(&redirect_uri, &p) {
                    Some(url) => AuthorizeStep::Redirect(url),
                    None => AuthorizeStep::ErrorPage {
                        error: e.error.into(),
                        description: e.description,
                    },
                }
            }
        }
    }

    fn seal_interaction(&self, i: &Interaction) -> String {
        let json = serde_json::to_vec(i).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(self.oidc().interaction_key.wrap(b"interaction", &json))
    }

    fn unseal_interaction(&self, sealed: &str) -> Option<Interaction> {
        if sealed.len() > 16 * 1024 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let json = self
            .oidc()
            .interaction_key
            .unwrap(b"interaction", &raw)
            .ok()?;
        let i: Interaction = serde_json::from_slice(&json).ok()?;
        let now = unix_micros(OffsetDateTime::now_utc());
        let lifetime = INTERACTION_LIFETIME * 1_000_000;
        (now - i.started <= lifetime && i.started <= now + 60_000_000).then_some(i)
    }

    async fn continue_authorization(
        &self,
        i: Interaction,
        session: Option<&Session>,
        consented_now: bool,
    ) -> Result<AuthorizeStep> {
        let req = &i.req;
        let Some((client, config)) = self.client_config(&req.client_id).await? else {
            return Ok(AuthorizeStep::ErrorPage {
                error: "invalid_client".into(),
                description: "this service is not (or no longer) registered".into(),
            });
        };
        let lang = req.page_lang();
        let login = |this: &App| AuthorizeStep::Login {
            resume: format!("/oidc/resume?r={}", this.seal_interaction(&i)),
            login_hint: req.login_hint.clone(),
            lang,
        };
        let Some(session) = session.filter(|s| s.complete) else {
            if req.prompt == Prompt::None {
                return Ok(
                    self.request_error(req.error("login_required", "the user is not signed in"))
                );
            }
            return Ok(login(self));
        };
        let now = OffsetDateTime::now_utc();
        let auth_time = unix(session.authenticated_at);
        // A fresh login is one that happened after this request started.
        let fresh = unix_micros(session.authenticated_at) > i.started;
        let hint_mismatch = req
            .login_hint
            .as_deref()
            .is_some_and(|h| h.contains('@') && !h.trim().eq_ignore_ascii_case(&session.email));
        // In microseconds, so that max_age=0 means "sign in again" even within the second.
        let too_old = req.max_age.is_some_and(|m| {
            unix_micros(now) - unix_micros(session.authenticated_at) > m.saturating_mul(1_000_000)
        });
        if !fresh && (req.prompt == Prompt::Login || too_old || hint_mismatch) {
            if req.prompt == Prompt::None {
                return Ok(self.request_error(req.error(
                    "login_required",
                    if hint_mismatch {
                        "another account is signed in than login_hint names"
                    } else {
                        "the login is older than max_age allows"
                    },
                )));
            }
            return Ok(login(self));
        }
        if let Some(required) = req.required_level.and_then(TrustLevel::from_u8)
            && !session.trust_level.meets(required)
        {
            // No sign-in method of the Servicekonto reaches above its current level yet
            // (that needs the eID or BundID federation), so step-up cannot succeed.
            return Ok(self.request_error(req.error(
                "unmet_authentication_requirements",
                format!(
                    "the service requires trust level {} but this account can only sign in at {}",
                    required.stork_uri(),
                    session.trust_level.stork_uri()
                ),
            )));
        }
        let wanted: Vec<String> = req
            .scopes
            .iter()
            .filter(|s| *s != "openid")
            .cloned()
            .collect();
        if !consented_now {
            let granted: Vec<String> = self
                .store
                .consents(&session.account_id)
                .await?
                .into_iter()
                .find(|r| r.client_id == client.client_id)
                .map(|r| r.scopes.split(' ').map(str::to_owned).collect())
                .unwrap_or_default();
            let covered = wanted.iter().all(|s| granted.contains(s));
            let ask = req.prompt == Prompt::Consent || !covered;
            if ask {
                if req.prompt == Prompt::None {
                    return Ok(self.request_error(req.error(
                        "consent_required",
                        "the user has not agreed to share the requested data with this service",
                    )));
                }
                return Ok(AuthorizeStep::Consent(ConsentRequest {
                    interaction: self.seal_interaction(&i),
                    client_name: client.name.clone(),
                    client_host: config
                        .redirect_uris
                        .first()
                        .and_then(|u| u.split('/').nth(2))
                        .unwrap_or("")
                        .to_owned(),
                    scopes: wanted,
                    lang,
                    redirect_origin: oidc::origin_of(&req.redirect_uri),
                }));
            }
        }
        // The code is sealed, not stored: authorize writes nothing; its single use is
        // recorded when it is exchanged.
        let grant = GrantData {
            account_id: session.account_id.clone(),
            sid: session.public_id.clone(),
            scopes: req.scopes.clone(),
            nonce: req.nonce.clone(),
            auth_time,
            acr: session.trust_level.as_u8(),
            amr: session.methods.iter().map(|m| m.amr().to_owned()).collect(),
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
        };
        let code = self.seal_code(&SealedCode {
            cid: client.client_id.clone(),
            exp: unix(now + CODE_LIFETIME),
            id: crypto::random_token(16),
            grant,
        });
        let mut p = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            p.push(("state", s));
        }
        p.push(("iss", self.issuer()));
        Ok(match oidc::with_query(&req.redirect_uri, &p) {
            Some(url) => AuthorizeStep::Redirect(url),
            None => AuthorizeStep::ErrorPage {
                error: "server_error".into(),
                description: "the registered redirect URI is not a URL".into(),
            },
        })
    }

    fn subject(&self, config: &ClientConfig, account_id: &str) -> String {
        match config.subject_type {
            SubjectType::Public => account_id.to_owned(),
            SubjectType::Pairwise => self
                .oidc()
                .pairwise_mac
                .mac_b64(format!("{}\n{account_id}", config.sector()).as_bytes()),
        }
    }

    // ---- client authentication ----

    /// Authenticates a client at the token, introspection or revocation endpoint.
    /// `endpoint` is the URL the request was sent to (an assertion's `aud`).
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
    ) -> Result<Result<AuthenticatedClient, OAuthError>> {
        match credentials {
            ClientCredentials::Secret { client_id, secret } => {
                let Some((c, config)) = self.client_config(client_id).await? else {
                    return Ok(Err(OAuthError::InvalidClient));
                };
                if !self.secret_matches(&c, secret).await? {
                    return Ok(Err(OAuthError::InvalidClient));
                }
                Ok(Ok(authenticated(c, config)))
            }
            ClientCredentials::Assertion {
                client_id,
                assertion,
            } => {
                self.verify_client_assertion(client_id.as_deref(), assertion, endpoint)
                    .await
            }
        }
    }

    async fn verify_client_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
        endpoint: &str,
    ) -> Result<Result<AuthenticatedClient, OAuthError>> {
        let invalid = |m: &str| Ok(Err(OAuthError::InvalidClientWith(m.to_owned())));
        // The issuer names the client; read it before verifying to find the keys.
        let Some(payload) = assertion.split('.').nth(1) else {
            return invalid("client_assertion is not a JWT");
        };
        let claims: Value = match URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(v) => v,
            None => return invalid("client_assertion payload is not JSON"),
        };
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if client_id.is_some_and(|c| c != iss) {
            return invalid("client_id and the assertion's iss differ");
        }
        let Some((c, config)) = self.client_config(iss).await? else {
            return Ok(Err(OAuthError::InvalidClient));
        };
        let Some(keys) = config
            .jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array)
        else {
            return invalid("this client has no registered keys for private_key_jwt");
        };
        let kid = crypto::jwt_header(assertion)
            .ok()
            .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned));
        let verified = keys
            .iter()
            .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid.as_deref())
            .find_map(|k| crypto::verify_jwt(k, assertion).ok());
        let Some(v) = verified else {
            return invalid("client_assertion signature does not verify with the registered keys");
        };
        let now = unix(OffsetDateTime::now_utc());
        let claims = v.claims;
        // RFC 7523 § 3: the token endpoint's URL names the authorization server, also when
        // the assertion authenticates at introspection or revocation (RFC 7662 § 2.1).
        let token_endpoint = format!("{}/oauth/token", self.issuer());
        let accepted = |a: &str| a == endpoint || a == token_endpoint || a == self.issuer();
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => accepted(a),
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(accepted)),
            _ => false,
        };
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        if claims.get("sub").and_then(Value::as_str) != Some(iss) {
            return invalid("client_assertion: sub must equal iss (the client_id)");
        }
        if !aud_ok {
            return invalid(
                "client_assertion: aud must be the token endpoint URL (or this endpoint's URL, or the issuer)",
            );
        }
        if exp < now - 30 || exp > now + 3600 {
            return invalid("client_assertion: exp must be in the future, at most an hour away");
        }
        if jti.is_empty() || jti.len() > 200 {
            return invalid("client_assertion: jti (1 to 200 characters) is required");
        }
        let expires =
            OffsetDateTime::from_unix_timestamp(exp + 60).unwrap_or(OffsetDateTime::now_utc());
        if !self
            .store
            .claim_assertion(&format!("{iss}\n{jti}"), expires)
            .await?
        {
            return invalid("client_assertion: this jti was used before (replay)");
        }
        Ok(Ok(authenticated(c, config)))
    }

    /// Compares a client secret with its keyed digest. Digests written before the key was
    /// introduced (plain SHA-256, no prefix) are accepted once and upgraded.
    pub(crate) async fn secret_matches(
        &self,
        c: &store::OAuthClient,
        secret: &str,
    ) -> Result<bool> {
        if secret.is_empty() || secret.len() > 200 {
            return Ok(false);
        }
        if let Some(mac) = c.secret_hash.strip_prefix("hmac:") {
            let given = self.oidc().secret_mac.mac_hex(secret.as_bytes());
            return Ok(crypto::constant_time_eq(given.as_bytes(), mac.as_bytes()));
        }
        let legacy = crypto::sha256_hex(secret.as_bytes());
        if !crypto::constant_time_eq(legacy.as_bytes(), c.secret_hash.as_bytes()) {
            return Ok(false);
        }
        self.store
            .set_oauth_client_secret(&c.client_id, &self.secret_digest(secret))
            .await?;
        self.forget_client(&c.client_id);
        Ok(true)
    }

    pub(crate) fn secret_digest(&self, secret: &str) -> String {
        format!("hmac:{}", self.oidc().secret_mac.mac_hex(secret.as_bytes()))
    }

    // ---- access tokens ----

    /// Seals an access token; `jti` is fixed beforehand when a code redemption records it.
    pub(crate) fn seal_access_token(
        &self,
        client_id: &str,
        account: Option<(&str, &str, u8)>,
        scope: &str,
        now: OffsetDateTime,
        jti: Option<String>,
        family: Option<&str>,
    ) -> (String, String, OffsetDateTime) {
        let exp = now + ACCESS_TOKEN_LIFETIME;
        let jti = jti.unwrap_or_else(|| crypto::random_token(16));
        let claims = AccessClaims {
            cid: client_id.to_owned(),
            acc: account.map(|a| a.0.to_owned()),
            sid: account.map(|a| a.1.to_owned()),
            acr: account.map(|a| a.2),
            scp: scope.to_owned(),
            iat: unix(now),
            exp: unix(exp),
            jti: jti.clone(),
            fam: family.map(str::to_owned),
        };
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let sealed = self.oidc().token_key.wrap(b"access-token", &json);
        (
            format!("{ACCESS_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)),
            jti,
            exp,
        )
    }

    /// The claims of a live access token: sealed by us, unexpired, not revoked.
    async fn open_access_token(&self, token: &str) -> Result<Option<AccessClaims>> {
        let Some(b64) = token.strip_prefix(ACCESS_TOKEN_PREFIX) else {
            return Ok(None);
        };
        if b64.len() > 4096 {
            return Ok(None);
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(b64) else {
            return Ok(None);
        };
        let Ok(json) = self.oidc().token_key.unwrap(b"access-token", &raw) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<AccessClaims>(&json) else {
            return Ok(None);
        };
        if claims.exp <= unix(OffsetDateTime::now_utc()) {
            return Ok(None);
        }
        // Client-credentials tokens (no refresh family) are revoked only by jti: a node
        // that revokes one forgets it at once, the others within UNREVOKED_CACHE. Tokens
        // of a refresh family are checked every time (logout revokes whole families).
        let cacheable = claims.fam.is_none();
        if cacheable && self.oidc().unrevoked.get(&claims.jti).is_some() {
            return Ok(Some(claims));
        }
        if self
            .store
            .access_token_revoked(&claims.jti, claims.fam.as_deref())
            .await?
        {
            return Ok(None);
        }
        if cacheable {
            self.oidc().unrevoked.put(&claims.jti, ());
        }
        Ok(Some(claims))
    }

    /// The API client behind a bearer token, if the token is live and the client active.
    pub async fn api_client(&self, bearer: &str) -> Result<Option<crate::ApiClient>> {
        let Some(claims) = self.open_access_token(bearer).await? else {
            return Ok(None);
        };
        // The per-node client cache (5 s; a node that disables a client forgets it at once):
        // an API request costs no client query.
        let Some(entry) = self.cached_client(&claims.cid).await? else {
            return Ok(None);
        };
        let client = &entry.0;
        Ok(Some(crate::ApiClient {
            client_id: claims.cid,
            name: client.name.clone(),
            authority_ars: client.authority_ars.clone(),
            scopes: claims.scp.split_whitespace().map(Into::into).collect(),
        }))
    }

    // ---- token endpoint: code and refresh ----

    /// The authorization code grant (RFC 6749 § 4.1.3 with PKCE).
    pub async fn exchange_code(
        &self,
        client: &AuthenticatedClient,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<Result<TokenResponse, OAuthError>> {
        if client.config.kind != ClientKind::Web {
            return Ok(Err(OAuthError::UnauthorizedClient));
        }
        let now = OffsetDateTime::now_utc();
        let Some(sealed) = self.unseal_code(code) else {
            return Ok(Err(OAuthError::InvalidGrant(
                "the code is unknown or malformed".into(),
            )));
        };
        if sealed.cid != client.client_id {
            return Ok(Err(OAuthError::InvalidGrant(
                "the code belongs to another client".into(),
            )));
        }
        if sealed.exp <= unix(now) {
            return Ok(Err(OAuthError::InvalidGrant(
                "the code expired (codes live 60 seconds)".into(),
            )));
        }
        let grant = sealed.grant;
        if grant.redirect_uri != redirect_uri {
            return Ok(Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the one in the authorization request".into(),
            )));
        }
        if !oidc::verify_pkce(&grant.code_challenge, code_verifier) {
            return Ok(Err(OAuthError::InvalidGrant(
                "code_verifier does not match the code_challenge (PKCE S256)".into(),
            )));
        }
        let family = uuid::Uuid::new_v4().to_string();
        let jti = crypto::random_token(16);
        let (tokens, refresh) = self
            .issue_user_tokens(client, &grant, &family, Some(jti.clone()), true, now)
            .await?;
        let sub = self.subject(&client.config, &grant.account_id);
        let issue = store::TokenIssue {
            code: Some(store::CodeUse {
                code_hash: hash(code),
                client_id: client.client_id.clone(),
                expires_at: OffsetDateTime::from_unix_timestamp(sealed.exp)
                    .unwrap_or(now + CODE_LIFETIME),
                family: Some(family),
                jti,
                jti_exp: now + ACCESS_TOKEN_LIFETIME,
            }),
            refresh_used: None,
            new_refresh: refresh,
            session_client: self
                .first_in_session(&grant.sid, &client.client_id)
                .then(|| (grant.sid.clone(), client.client_id.clone(), sub)),
            event: Some(release_event(client, &grant)),
        };
        let recorded = issue.session_client.is_some();
        match self.store.issue_tokens(issue, now).await? {
            store::IssueOutcome::Issued => {
                if recorded {
                    self.recorded_in_session(&grant.sid, &client.client_id);
                }
                Ok(Ok(tokens))
            }
            store::IssueOutcome::Reused {
                family,
                jti,
                jti_exp,
            } => {
                // RFC 6749 § 4.1.2: a code used twice revokes what it issued.
                if let Some(f) = family {
                    self.store.revoke_refresh_family(&f, now).await?;
                }
                if let (Some(j), Some(e)) = (jti, jti_exp) {
                    self.store.revoke_jti(&j, &e).await?;
                    self.oidc().unrevoked.remove(&j);
                }
                Ok(Err(OAuthError::InvalidGrant(
                    "this code was used before; the tokens issued for it are revoked".into(),
                )))
            }
            store::IssueOutcome::Invalid => Ok(Err(OAuthError::InvalidGrant(
                "the code is unknown or expired".into(),
            ))),
        }
    }

    /// Builds (without storing) the tokens of a grant: access token, ID token, and the next
    /// refresh token of `family`.
    async fn issue_user_tokens(
        &self,
        client: &AuthenticatedClient,
        grant: &GrantData,
        family: &str,
        jti: Option<String>,
        with_nonce: bool,
        now: OffsetDateTime,
    ) -> Result<(TokenResponse, Option<RefreshRecord>)> {
        let scope = grant.scopes.join(" ");
        let (access_token, _, _) = self.seal_access_token(
            &client.client_id,
            Some((&grant.account_id, &grant.sid, grant.acr)),
            &scope,
            now,
            jti,
            Some(family),
        );
        let sub = self.subject(&client.config, &grant.account_id);
        let alg = client.config.id_token_alg();
        let mut claims = json!({
            "iss": self.issuer(),
            "sub": sub,
            "aud": client.client_id,
            "exp": unix(now + ID_TOKEN_LIFETIME),
            "iat": unix(now),
            "auth_time": grant.auth_time,
            "acr": TrustLevel::from_u8(grant.acr).unwrap_or(TrustLevel::Level1).stork_uri(),
            "amr": grant.amr,
            "sid": grant.sid,
            "at_hash": alg.left_half_hash(&access_token),
        });
        if with_nonce && let Some(n) = &grant.nonce {
            claims["nonce"] = Value::from(n.clone());
        }
        let set = self.signing_set().await?;
        let key = set
            .current
            .get(&alg)
            .ok_or_else(|| AppError::Internal(format!("no current {} key", alg.as_str())))?;
        let id_token = key
            .sign("JWT", &claims)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let token = crypto::random_token(32);
        let offline = grant.scopes.iter().any(|s| s == "offline_access");
        let record = RefreshRecord {
            token_hash: hash(&token),
            family_id: family.to_owned(),
            client_id: client.client_id.clone(),
            account_id: grant.account_id.clone(),
            session_id: (!offline).then(|| grant.sid.clone()),
            grant_data: serde_json::to_string(grant)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            expires_at: now + REFRESH_LIFETIME,
        };
        Ok((
            TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in: ACCESS_TOKEN_LIFETIME.whole_seconds(),
                scope,
                id_token: Some(id_token),
                refresh_token: Some(token),
            },
            Some(record),
        ))
    }

    async fn refresh_reused(
        &self,
        client: &AuthenticatedClient,
        family: &str,
        now: OffsetDateTime,
    ) -> Result<Result<TokenResponse, OAuthError>> {
        self.store.revoke_refresh_family(family, now).await?;
        tracing::warn!(client = %client.client_id, "refresh token reused; its sign-in is revoked");
        Ok(Err(OAuthError::InvalidGrant(
            "this refresh token was already used or revoked; all tokens of this sign-in are revoked, sign in again".into(),
        )))
    }

    /// The refresh token grant with rotation (RFC 6749 § 6, RFC 9700 § 4.14.2).
    pub async fn refresh(
        &self,
        client: &AuthenticatedClient,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<Result<TokenResponse, OAuthError>> {
        if refresh_token.is_empty() || refresh_token.len() > 100 {
            return Ok(Err(OAuthError::InvalidGrant(
                "refresh_token is missing or malformed".into(),
            )));
        }
        let now = OffsetDateTime::now_utc();
        let token_hash = hash(refresh_token);

        let record = match self.store.refresh_token(&token_hash).await? {
            Some((_, r)) if r.client_id != client.client_id => None,
            Some((true, r)) => return self.refresh_reused(client, &r.family_id, now).await,
            Some((false, r)) if r.expires_at > now => Some(r),
            _ => None,
        };
        let Some(record) = record else {
            return Ok(Err(OAuthError::InvalidGrant(
                "the refresh token is unknown, expired or revoked".into(),
            )));
        };
        if let Some(sid) = &record.session_id
            && !self.store.session_alive(sid, now).await?
        {
            self.store
                .revoke_refresh_family(&record.family_id, now)
                .await?;
            return Ok(Err(OAuthError::InvalidGrant(
                "the user signed out of the Servicekonto; sign in again".into(),
            )));
        }
        let mut grant: GrantData = serde_json::from_str(&record.grant_data)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        if let Some(requested) = scope.map(str::trim).filter(|s| !s.is_empty()) {
            let narrowed: Vec<String> = requested
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(bad) = narrowed.iter().find(|s| !grant.scopes.contains(s)) {
                return Ok(Err(OAuthError::InvalidScope(bad.clone())));
            }
            grant.scopes = narrowed;
        }
        let (tokens, new_refresh) = self
            .issue_user_tokens(client, &grant, &record.family_id, None, false, now)
            .await?;
        let issue = store::TokenIssue {
            code: None,
            refresh_used: Some((token_hash, client.client_id.clone())),
            new_refresh,
            session_client: None,
            event: Some(release_event(client, &grant)),
        };
        match self.store.issue_tokens(issue, now).await? {
            store::IssueOutcome::Issued => Ok(Ok(tokens)),
            // Two requests with the same token at once: the second is a reuse.
            store::IssueOutcome::Reused { .. } => {
                self.refresh_reused(client, &record.family_id, now).await
            }
            store::IssueOutcome::Invalid => Ok(Err(OAuthError::InvalidGrant(
                "the refresh token is unknown, expired or revoked".into(),
            ))),
        }
    }

    // ---- userinfo, introspection, revocation ----

    /// The claims of the userinfo endpoint for a bearer token; `None` if the token is not
    /// live or was not issued for a user with `openid`.
    pub async fn userinfo(&self, bearer: &str) -> Result<Option<Value>> {
        let Some(claims) = self.open_access_token(bearer).await? else {
            return Ok(None);
        };
        let Some(account_id) = claims.acc.as_deref() else {
            return Ok(None);
        };
        let scopes: Vec<&str> = claims.scp.split(' ').collect();
        if !scopes.contains(&"openid") {
            return Ok(None);
        }
        let Some((_, config)) = self.client_config(&claims.cid).await? else {
            return Ok(None);
        };
        let wants_profile = ["profile", "address", "phone"]
            .iter()
            .any(|s| scopes.contains(s));
        // Independent reads run side by side: each waits for a database thread.
        let (account, profile) = tokio::join!(self.store.account_by_id(account_id), async {
            if wants_profile {
                self.profile(account_id).await.map(Some)
            } else {
                Ok(None)
            }
        });
        let Some(account) = account? else {
            return Ok(None);
        };
        let profile = profile?;
        let mut out = json!({ "sub": self.subject(&config, account_id) });
        let wants = |s: &str| scopes.contains(&s);
        if wants("email") {
            out["email"] = Value::from(account.email.clone());
            out["email_verified"] = Value::from(account.email_verified_at.is_some());
        }
        if let Some(profile) = profile {
            let put = |out: &mut Value, claim: &str| {
                let v = profile.value(claim);
                if !v.is_empty() {
                    out[claim] = Value::from(v);
                }
            };
            if wants("profile") {
                for c in ["given_name", "family_name", "birthdate"] {
                    put(&mut out, c);
                }
            }
            if wants("phone") {
                put(&mut out, "phone_number");
            }
            if wants("address") {
                let mut address = serde_json::Map::new();
                for (claim, member) in [
                    ("street_address", "street_address"),
                    ("postal_code", "postal_code"),
                    ("locality", "locality"),
                    ("country", "country"),
                ] {
                    let v = profile.value(claim);
                    if !v.is_empty() {
                        address.insert(member.into(), Value::from(v));
                    }
                }
                if !address.is_empty() {
                    out["address"] = Value::Object(address);
                }
            }
        }
        if wants("trust_level") {
            let level = claims
                .acr
                .and_then(TrustLevel::from_u8)
                .unwrap_or(TrustLevel::Level1);
            out["trust_level"] = Value::from(level.stork_uri());
            if let Some(e) = level.eidas_uri() {
                out["eidas_level"] = Value::from(e);
            }
        }
        if wants("organisation") {
            let orgs: Vec<Value> = self
                .store
                .memberships(account_id)
                .await?
                .into_iter()
                .map(|m| json!({"id": m.organisation.id, "name": m.organisation.name, "role": m.role}))
                .collect();
            out["organisation"] = Value::Array(orgs);
        }
        Ok(Some(out))
    }

    /// RFC 7662 introspection. A client may introspect its own tokens; a client with the
    /// scope `introspect` (a resource server) any token.
    pub async fn introspect(&self, caller: &AuthenticatedClient, token: &str) -> Result<Value> {
        let inactive = json!({"active": false});
        let may =
            |cid: &str| cid == caller.client_id || caller.scopes.iter().any(|s| s == "introspect");
        if let Some(c) = self.open_access_token(token).await? {
            if !may(&c.cid) {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "client_id": c.cid,
                "scope": c.scp,
                "iat": c.iat,
                "exp": c.exp,
                "iss": self.issuer(),
                "jti": c.jti,
            });
            match &c.acc {
                Some(acc) => {
                    if let Some((_, config)) = self.client_config(&c.cid).await? {
                        out["sub"] = Value::from(self.subject(&config, acc));
                    }
                    if let Some(sid) = &c.sid {
                        out["sid"] = Value::from(sid.clone());
                    }
                    if let Some(l) = c.acr.and_then(TrustLevel::from_u8) {
                        out["acr"] = Value::from(l.stork_uri());
                    }
                }
                None => out["sub"] = Value::from(c.cid.clone()),
            }
            return Ok(out);
        }
        if token.len() <= 100
            && let Some((used, r)) = self.store.refresh_token(&hash(token)).await?
            && !used
            && r.expires_at > OffsetDateTime::now_utc()
            && may(&r.client_id)
        {
            let grant: GrantData = serde_json::from_str(&r.grant_data)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let sub = match self.client_config(&r.client_id).await? {
                Some((_, config)) => self.subject(&config, &r.account_id),
                None => return Ok(inactive),
            };
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "scope": grant.scopes.join(" "),
                "exp": unix(r.expires_at),
                "iss": self.issuer(),
                "sub": sub,
            }));
        }
        Ok(inactive)
    }

    /// RFC 7009 revocation of the caller's own token. Unknown tokens are no error.
    pub async fn revoke_token(&self, caller: &AuthenticatedClient, token: &str) -> Result<()> {
        if let Some(c) = self.open_access_token(token).await? {
            if c.cid == caller.client_id {
                let exp =
                    OffsetDateTime::from_unix_timestamp(c.exp).unwrap_or(OffsetDateTime::now_utc());
                self.store.revoke_jti(&c.jti, &store::ts(exp)).await?;
                self.oidc().unrevoked.remove(&c.jti);
            }
            return Ok(());
        }
        if token.len() <= 100
            && let Some((_, r)) = self.store.refresh_token(&hash(token)).await?
            && r.client_id == caller.client_id
        {
            self.store
                .revoke_refresh_family(&r.family_id, OffsetDateTime::now_utc())
                .await?;
        }
        Ok(())
    }

    // ---- logout ----

    /// Reads an `id_token_hint`: one of our ID tokens (expired ones too, OIDC RP-Initiated
    /// Logout § 2). `None` if it is not ours.
    pub async fn id_token_hint(&self, token: &str) -> Result<Option<IdTokenHint>> {
        let Ok(header) = crypto::jwt_header(token) else {
            return Ok(None);
        };
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
        let set = self.signing_set().await?;
        let Some(key) = set.by_kid.get(kid) else {
            return Ok(None);
        };
        let Ok(v) = crypto::verify_jwt(key.public_jwk(), token) else {
            return Ok(None);
        };
        if v.claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Ok(None);
        }
        let Some(aud) = v.claims.get("aud").and_then(Value::as_str) else {
            return Ok(None);
        };
        Ok(Some(IdTokenHint {
            client_id: aud.to_owned(),
            sid: v
                .claims
                .get("sid")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }))
    }

    /// Whether `uri` is a registered post-logout redirect URI of `client_id`.
    pub async fn post_logout_redirect_allowed(&self, client_id: &str, uri: &str) -> Result<bool> {
        Ok(self
            .client_config(client_id)
            .await?
            .is_some_and(|(_, c)| c.post_logout_redirect_uris.iter().any(|u| u == uri)))
    }

    /// After a session ended (logout or revocation): revokes its session-bound refresh
    /// tokens and queues back-channel logout notices. Returns front-channel logout URIs.
    pub async fn session_ended(&self, sid: &str) -> Result<Vec<String>> {
        let now = OffsetDateTime::now_utc();
        self.store.revoke_refresh_of_session(sid, now).await?;
        let mut front = Vec::new();
        for (client_id, sub) in self.store.session_clients(sid).await? {
            let Some((_, config)) = self.client_config(&client_id).await? else {
                continue;
            };
            if let Some(uri) = &config.frontchannel_logout_uri {
                let iss = self.issuer().to_owned();
                if let Some(u) = oidc::with_query(uri, &[("iss", &iss), ("sid", sid)]) {
                    front.push(u);
                }
            }
            if let Some(uri) = &config.backchannel_logout_uri {
                let claims = json!({
                    "iss": self.issuer(),
                    "sub": sub,
                    "aud": client_id,
                    "iat": unix(now),
                    "exp": unix(now + time::Duration::minutes(2)),
                    "jti": uuid::Uuid::new_v4().to_string(),
                    "sid": sid,
                    "events": { BACKCHANNEL_EVENT: {} },
                });
                let set = self.signing_set().await?;
                let alg = config.id_token_alg();
                let Some(key) = set.current.get(&alg) else {
                    continue;
                };
                let token = key
                    .sign("logout+jwt", &claims)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                self.store
                    .enqueue_logout_notice(
                        &uuid::Uuid::new_v4().to_string(),
                        &client_id,
                        uri,
                        &token,
                        now,
                    )
                    .await?;
                self.logout_wake.notify_one();
            }
        }
        Ok(front)
    }

    /// Wakes the back-channel logout worker.
    pub fn logout_wake(&self) -> Arc<tokio::sync::Notify> {
        self.logout_wake.clone()
    }

    /// Delivers queued back-channel logout notices (OIDC Back-Channel Logout § 2.5) until
    /// the task is dropped: each is POSTed as `logout_token=…` by `post` (the binary brings
    /// the HTTP client), retried with growing pauses for a day. Leases keep two nodes from
    /// sending the same notice at once.
    pub async fn run_logout_worker<F, Fut>(self: Arc<Self>, post: F)
    where
        F: Fn(String, String) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), String>>,
    {
        let wake = self.logout_wake();
        loop {
            let now = OffsetDateTime::now_utc();
            let batch = match self
                .store
                .lease_logout_notices(now, time::Duration::minutes(2), 20)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "back-channel logout: cannot read the outbox");
                    Vec::new()
                }
            };
            let idle = batch.is_empty();
            for n in batch {
                let result = post(n.uri.clone(), n.logout_token.clone()).await;
                let now = OffsetDateTime::now_utc();
                let (error, next) = match &result {
                    Ok(()) => (None, None),
                    Err(e) => {
                        let pause =
                            time::Duration::seconds(30 * (1_i64 << n.attempts.clamp(0, 11)));
                        let give_up = n.attempts >= 12;
                        tracing::warn!(client = %n.client_id, attempt = n.attempts + 1, error = %e, "back-channel logout failed");
                        (Some(e.as_str()), (!give_up).then_some(now + pause))
                    }
                };
                if let Err(e) = self
                    .store
                    .finish_logout_notice(&n.id, now, error, next)
                    .await
                {
                    tracing::warn!(error = %e, "back-channel logout: cannot record the attempt");
                }
            }
            if idle {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        }
    }
}

/// The audit entry of a token issuance: which service may now read which of the account's
/// data. One entry per access token (each lives ten minutes), not per userinfo call.
fn release_event(client: &AuthenticatedClient, grant: &GrantData) -> (String, String, String) {
    (
        grant.account_id.clone(),
        "data_released".to_owned(),
        format!("{} ({})", client.name, grant.scopes.join(" ")),
    )
}

fn authenticated(c: store::OAuthClient, config: ClientConfig) -> AuthenticatedClient {
    AuthenticatedClient {
        scopes: c.scopes.split_whitespace().map(Into::into).collect(),
        client_id: c.client_id,
        name: c.name,
        config,
    }
}
