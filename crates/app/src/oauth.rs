//! OAuth2 client credentials (RFC 6749 § 4.4) for API clients: authorities delivering to the
//! Postfach now, online services and Fachverfahren later. The OpenID Connect provider
//! extends this token endpoint; it does not replace it.
//!
//! Secrets are 32 random bytes shown once at creation and stored as a keyed digest
//! (HMAC-SHA256 under a key derived from the KEK: no password hashing on the token path, it
//! would cap throughput). Access tokens are sealed, not stored (see `oidc.rs`).

use time::OffsetDateTime;

use crate::{App, AppError, Result};

/// Deliver messages into any Postfach (authorities).
pub const SCOPE_POSTFACH_DELIVER: &str = "postfach:deliver";
/// Access tokens live ten minutes (sealed, so they cannot be looked up and deleted; revoked
/// ones are listed until they expire).
pub const ACCESS_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(10);

/// The errors of the token endpoint, with the codes RFC 6749 § 5.2 prescribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest(String),
    InvalidClient,
    /// Client authentication failed for a reason worth telling the integrator (e.g. a
    /// `private_key_jwt` assertion with the wrong audience).
    InvalidClientWith(String),
    InvalidGrant(String),
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient | OAuthError::InvalidClientWith(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
        }
    }

    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(m)
            | OAuthError::InvalidGrant(m)
            | OAuthError::InvalidClientWith(m) => m.clone(),
            OAuthError::InvalidClient => {
                "client authentication failed (unknown client, wrong secret or inactive)".into()
            }
            OAuthError::UnauthorizedClient => {
                "this client may not use this grant type (web clients: authorization_code and refresh_token; API clients: client_credentials)".into()
            }
            OAuthError::UnsupportedGrantType => {
                "grant_type must be authorization_code, refresh_token or client_credentials".into()
            }
            OAuthError::InvalidScope(s) => format!("scope {s:?} is not allowed for this client"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// The API client behind a bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub client_id: String,
    pub name: String,
    pub authority_ars: Option<String>,
    pub scopes: Vec<String>,
}

impl ApiClient {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

impl App {
    /// Registers a client; returns (client id, secret). The secret is shown only now.
    pub async fn create_oauth_client(
        &self,
        name: &str,
        authority_ars: Option<&str>,
        scopes: &[&str],
    ) -> Result<(String, String)> {
        self.register_client(name, authority_ars, scopes, &oidc::ClientConfig::default())
            .await
    }

    /// Registers a client with its OpenID registration data; returns (client id, secret).
    pub async fn register_client(
        &self,
        name: &str,
        authority_ars: Option<&str>,
        scopes: &[&str],
        config: &oidc::ClientConfig,
    ) -> Result<(String, String)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(AppError::InvalidField {
                field: "name",
                message: "a client needs a name of 1 to 200 characters".into(),
            });
        }
        config.validate().map_err(|m| AppError::InvalidField {
            field: "config",
            message: m,
        })?;
        for s in scopes {
            if s.is_empty()
                || s.len() > 100
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(AppError::InvalidField {
                    field: "scope",
                    message: format!("scope {s:?} is not a valid scope token"),
                });
            }
        }
        // FIT-Connect destinations the client subscribes to must exist: an integrator must
        // never meet an unexplained 403 later.
        let mut destinations = Vec::new();
        for d in &config.destinations {
            let id =
                zustelldienst::parse_id("destination", d).map_err(|p| AppError::InvalidField {
                    field: "destinations",
                    message: p.detail,
                })?;
            if self.store.destination(&id).await?.is_none() {
                return Err(AppError::InvalidField {
                    field: "destinations",
                    message: format!("there is no destination {id}"),
                });
            }
            destinations.push(id);
        }
        let client_id = uuid::Uuid::new_v4().to_string();
        let secret = crypto::random_token(32);
        self.store
            .create_oauth_client(
                &store::OAuthClient {
                    client_id: client_id.clone(),
                    secret_hash: self.secret_digest(&secret),
                    name: name.into(),
                    authority_ars: authority_ars.map(Into::into),
                    scopes: scopes.join(" "),
                    active: true,
                    created_at: String::new(),
                    config: serde_json::to_string(config)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
        for d in &destinations {
            self.store.link_destination_client(d, &client_id).await?;
        }
        Ok((client_id, secret))
    }

    /// All registered clients (without secrets).
    pub async fn oauth_clients(&self) -> Result<Vec<store::OAuthClient>> {
        Ok(self.store.oauth_clients().await?)
    }

    /// Switches a client on or off; false if there is no such client.
    pub async fn set_client_active(&self, client_id: &str, active: bool) -> Result<bool> {
        let changed = self
            .store
            .set_oauth_client_active(client_id, active)
            .await?;
        // This node at once; other nodes within the client cache's 5 s.
        self.forget_client(client_id);
        Ok(changed)
    }

    /// A new secret for a client (the old one stops working); `None` if unknown.
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<Option<String>> {
        if self.store.oauth_client(client_id).await?.is_none() {
            return Ok(None);
        }
        let secret = crypto::random_token(32);
        self.store
            .set_oauth_client_secret(client_id, &self.secret_digest(&secret))
            .await?;
        self.forget_client(client_id);
        Ok(Some(secret))
    }

    /// The client credentials grant (RFC 6749 § 4.4) for an authenticated API client. Without
    /// `scope` the client gets all its registered scopes, as FIT-Connect's token service does.
    /// Nothing is written: the token is sealed, not stored.
    pub fn client_credentials_grant(
        &self,
        client: &crate::oidc::AuthenticatedClient,
        requested_scope: Option<&str>,
    ) -> Result<TokenGrant, OAuthError> {
        if client.config.kind != oidc::ClientKind::Api {
            return Err(OAuthError::UnauthorizedClient);
        }
        let allowed: Vec<&str> = client.scopes.iter().map(String::as_str).collect();
        let scopes: Vec<&str> = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => allowed.clone(),
            Some(req) => {
                let req: Vec<&str> = req.split_whitespace().collect();
                if let Some(bad) = req.iter().find(|s| !allowed.contains(s)) {
                    return Err(OAuthError::InvalidScope((*bad).into()));
                }
                req
            }
        };
        let scope = scopes.join(" ");
        let (token, _, _) = self.seal_access_token(
            &client.client_id,
            None,
            &scope,
            OffsetDateTime::now_utc(),
            None,
            None,
        );
        Ok(TokenGrant {
            access_token: token,
            expires_in: ACCESS_TOKEN_LIFETIME.whole_seconds(),
            scope,
        })
    }

    /// Client authentication with a secret plus the client credentials grant, in one call
    /// (tests and the CLI).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
    ) -> Result<Result<TokenGrant, OAuthError>> {
        let creds = crate::oidc::ClientCredentials::Secret {
            client_id: client_id.to_owned(),
            secret: client_secret.to_owned(),
        };
        let endpoint = format!("{}/oauth/token", self.issuer());
        Ok(match self.authenticate_client(&creds, &endpoint).await? {
            Ok(c) => self.client_credentials_grant(&c, requested_scope),
            Err(e) => Err(e),
        })
    }
}
