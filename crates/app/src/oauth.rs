//! OAuth2 client credentials (RFC 6749 § 4.4) for API clients: authorities delivering to the
//! Postfach now, online services and Fachverfahren later. The OpenID Connect provider
//! extends this token endpoint; it does not replace it.
//!
//! Secrets are 32 random bytes shown once at creation and stored as SHA-256; access tokens
//! are opaque, stored as SHA-256, and live ten minutes.

use time::OffsetDateTime;

use crate::{App, AppError, Result};

/// Deliver messages into any Postfach (authorities).
pub const SCOPE_POSTFACH_DELIVER: &str = "postfach:deliver";
const TOKEN_LIFETIME: time::Duration = time::Duration::minutes(10);

/// The errors of the token endpoint, with the codes RFC 6749 § 5.2 prescribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest(String),
    InvalidClient,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
        }
    }

    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(m) => m.clone(),
            OAuthError::InvalidClient => {
                "client authentication failed (unknown client, wrong secret or inactive)".into()
            }
            OAuthError::UnauthorizedClient => "this client may not use this grant type".into(),
            OAuthError::UnsupportedGrantType => {
                "grant_type must be client_credentials at this endpoint".into()
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
    /// Registers an API client; returns (client id, secret). The secret is shown only now.
    pub async fn create_oauth_client(
        &self,
        name: &str,
        authority_ars: Option<&str>,
        scopes: &[&str],
    ) -> Result<(String, String)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AppError::InvalidField {
                field: "name",
                message: "a client needs a name of 1 to 200 characters".into(),
            });
        }
        let client_id = uuid::Uuid::new_v4().to_string();
        let secret = crypto::random_token(32);
        self.store
            .create_oauth_client(
                &store::OAuthClient {
                    client_id: client_id.clone(),
                    secret_hash: crypto::sha256_hex(secret.as_bytes()),
                    name: name.into(),
                    authority_ars: authority_ars.map(Into::into),
                    scopes: scopes.join(" "),
                    active: true,
                    created_at: String::new(),
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok((client_id, secret))
    }

    /// The token endpoint's client credentials grant.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
    ) -> Result<Result<TokenGrant, OAuthError>> {
        let Some(client) = self.store.oauth_client(client_id).await? else {
            return Ok(Err(OAuthError::InvalidClient));
        };
        let given = crypto::sha256_hex(client_secret.as_bytes());
        if !client.active
            || !crypto::constant_time_eq(given.as_bytes(), client.secret_hash.as_bytes())
        {
            return Ok(Err(OAuthError::InvalidClient));
        }
        let allowed: Vec<&str> = client.scopes.split_whitespace().collect();
        let scopes: Vec<&str> = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => allowed.clone(),
            Some(req) => {
                let req: Vec<&str> = req.split_whitespace().collect();
                if let Some(bad) = req.iter().find(|s| !allowed.contains(s)) {
                    return Ok(Err(OAuthError::InvalidScope((*bad).into())));
                }
                req
            }
        };
        let (token, hash) = servicekonto::token::new_token();
        let now = OffsetDateTime::now_utc();
        let scope = scopes.join(" ");
        self.store
            .insert_access_token(&hash, &client.client_id, &scope, now + TOKEN_LIFETIME, now)
            .await?;
        Ok(Ok(TokenGrant {
            access_token: token,
            expires_in: TOKEN_LIFETIME.whole_seconds(),
            scope,
        }))
    }

    /// The client of a bearer token, if the token is live.
    pub async fn api_client(&self, bearer: &str) -> Result<Option<ApiClient>> {
        if bearer.len() != 43 {
            return Ok(None);
        }
        let hash = servicekonto::token::token_hash(bearer);
        let Some((client_id, scopes)) = self
            .store
            .access_token(&hash, OffsetDateTime::now_utc())
            .await?
        else {
            return Ok(None);
        };
        let Some(client) = self.store.oauth_client(&client_id).await? else {
            return Ok(None);
        };
        Ok(Some(ApiClient {
            client_id,
            name: client.name,
            authority_ars: client.authority_ars,
            scopes: scopes.split_whitespace().map(Into::into).collect(),
        }))
    }
}
