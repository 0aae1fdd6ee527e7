//! The OAuth2 token endpoint (`POST /oauth/token`), client credentials grant (RFC 6749
//! § 4.4), and the bearer-token extractor of the APIs behind it. Its errors follow RFC 6749
//! § 5.2 (that is what OAuth clients parse), not problem+json.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;

use app::{ApiClient, OAuthError};

use crate::AppState;
use crate::middleware::Peer;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token))
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenRequest {
    grant_type: String,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(e: &OAuthError, basic: bool) -> Response {
    let status = match e {
        OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = (
        status,
        Json(serde_json::json!({"error": e.code(), "error_description": e.description()})),
    )
        .into_response();
    no_store(res.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if basic {
            "Basic realm=\"rathaus\""
        } else {
            "Bearer"
        };
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    res
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `client_secret_basic`: both parts are form-urlencoded before base64 (RFC 6749 § 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

async fn token(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let ip = crate::middleware::client_ip(&headers, &peer, state.config.trust_forwarded_for);
    if !state.token_limiter.check(ip).allowed {
        return oauth_error(
            &OAuthError::InvalidRequest(
                "too many token requests from this address; retry in a minute".into(),
            ),
            false,
        );
    }
    let Ok(Form(req)) = form else {
        return oauth_error(
            &OAuthError::InvalidRequest(
                "send application/x-www-form-urlencoded with grant_type=client_credentials".into(),
            ),
            false,
        );
    };
    if req.grant_type != "client_credentials" {
        return oauth_error(&OAuthError::UnsupportedGrantType, false);
    }
    let basic = basic_credentials(&headers);
    let (client_id, secret, is_basic) = match (basic, req.client_id, req.client_secret) {
        (Some(_), Some(_), Some(_)) => {
            return oauth_error(
                &OAuthError::InvalidRequest("use one client authentication method, not two".into()),
                false,
            );
        }
        (Some((id, secret)), _, _) => (id, secret, true),
        (None, Some(id), Some(secret)) => (id, secret, false),
        _ => return oauth_error(&OAuthError::InvalidClient, true),
    };
    match state
        .app
        .client_credentials(&client_id, &secret, req.scope.as_deref())
        .await
    {
        Ok(Ok(grant)) => {
            let mut res = Json(serde_json::json!({
                "access_token": grant.access_token,
                "token_type": "Bearer",
                "expires_in": grant.expires_in,
                "scope": grant.scope,
            }))
            .into_response();
            no_store(res.headers_mut());
            res
        }
        Ok(Err(e)) => oauth_error(&e, is_basic),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// The API client of a request, from `Authorization: Bearer <access token>`.
pub struct Bearer(pub ApiClient);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let client = if token.is_empty() {
            None
        } else {
            state
                .app
                .api_client(token)
                .await
                .map_err(|e| Problem::from(e).into_response())?
        };
        match client {
            Some(c) => Ok(Bearer(c)),
            None => {
                let mut res = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                    .detail("send `Authorization: Bearer <token>` with a live access token from POST /oauth/token (client credentials)")
                    .into_response();
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                Err(res)
            }
        }
    }
}

impl Bearer {
    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: &str) -> Result<&ApiClient, Problem> {
        if self.0.has_scope(scope) {
            Ok(&self.0)
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "Insufficient scope",
            )
            .detail(format!("this needs a token with scope {scope}")))
        }
    }
}
