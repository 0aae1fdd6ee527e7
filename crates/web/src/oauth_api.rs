//! The OAuth2 / OpenID Connect endpoints that speak JSON: token (authorization code, refresh
//! token and client credentials grants), introspection (RFC 7662), revocation (RFC 7009),
//! userinfo, discovery and the provider's JWKS; and the bearer-token extractor of the APIs
//! behind them. Errors follow RFC 6749 § 5.2 and RFC 6750 § 3 (that is what OAuth clients
//! parse), not problem+json.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use app::{ApiClient, AuthenticatedClient, ClientCredentials, OAuthError};

use crate::AppState;
use crate::middleware::Peer;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect))
        .route("/oauth/revoke", post(revoke))
        .route("/oidc/userinfo", get(userinfo).post(userinfo_post))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenRequest {
    grant_type: String,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    // Introspection and revocation.
    token: Option<String>,
    token_type_hint: Option<String>,
}

fn oauth_error(e: &OAuthError, basic: bool) -> Response {
    let status = match e {
        OAuthError::InvalidClient | OAuthError::InvalidClientWith(_) => StatusCode::UNAUTHORIZED,
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

/// The client's credentials from header or body; the error says what is wrong.
fn credentials(
    headers: &HeaderMap,
    req: &TokenRequest,
) -> Result<(ClientCredentials, bool), OAuthError> {
    let basic = basic_credentials(headers);
    let assertion = req.client_assertion.as_deref().filter(|a| !a.is_empty());
    let methods = usize::from(basic.is_some())
        + usize::from(req.client_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".into(),
        ));
    }
    if let Some((id, secret)) = basic {
        if req.client_id.as_deref().is_some_and(|c| c != id) {
            return Err(OAuthError::InvalidRequest(
                "client_id in the body differs from the Basic credentials".into(),
            ));
        }
        return Ok((
            ClientCredentials::Secret {
                client_id: id,
                secret,
            },
            true,
        ));
    }
    if let Some(a) = assertion {
        if req.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(OAuthError::InvalidRequest(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        return Ok((
            ClientCredentials::Assertion {
                client_id: req.client_id.clone(),
                assertion: a.to_owned(),
            },
            false,
        ));
    }
    match (&req.client_id, &req.client_secret) {
        (Some(id), Some(secret)) => Ok((
            ClientCredentials::Secret {
                client_id: id.clone(),
                secret: secret.clone(),
            },
            false,
        )),
        _ => Err(OAuthError::InvalidClient),
    }
}

/// Rate limit, form parsing and client authentication shared by the token, introspection
/// and revocation endpoints.
async fn authenticated_request(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
    path: &str,
) -> Result<(TokenRequest, AuthenticatedClient, bool), Response> {
    let ip = crate::middleware::client_ip(headers, peer, state.config.trust_forwarded_for);
    if !state.token_limiter.check(ip).allowed {
        let mut res = oauth_error(
            &OAuthError::InvalidRequest(
                "too many requests from this address; retry in a minute".into(),
            ),
            false,
        );
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Err(res);
    }
    let Ok(Form(req)) = form else {
        return Err(oauth_error(
            &OAuthError::InvalidRequest(
                "send application/x-www-form-urlencoded, each parameter at most once".into(),
            ),
            false,
        ));
    };
    if path == "/oauth/token" {
        // An unusable request is answered before the client is checked.
        match req.grant_type.as_str() {
            "client_credentials" | "authorization_code" | "refresh_token" => {}
            "" => {
                return Err(oauth_error(
                    &OAuthError::InvalidRequest("grant_type is missing".into()),
                    false,
                ));
            }
            _ => return Err(oauth_error(&OAuthError::UnsupportedGrantType, false)),
        }
    }
    let (creds, basic) = credentials(headers, &req).map_err(|e| oauth_error(&e, true))?;
    let endpoint = format!("{}{path}", state.app.issuer());
    match state.app.authenticate_client(&creds, &endpoint).await {
        Ok(Ok(client)) => Ok((req, client, basic)),
        Ok(Err(e)) => Err(oauth_error(&e, basic)),
        Err(e) => Err(Problem::from(e).into_response()),
    }
}

async fn token(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (req, client, basic) =
        match authenticated_request(&state, &peer, &headers, form, "/oauth/token").await {
            Ok(r) => r,
            Err(res) => return res,
        };
    let result = match req.grant_type.as_str() {
        "client_credentials" => match state
            .app
            .client_credentials_grant(&client, req.scope.as_deref())
        {
            Ok(grant) => Ok(Ok(serde_json::json!({
                "access_token": grant.access_token,
                "token_type": "Bearer",
                "expires_in": grant.expires_in,
                "scope": grant.scope,
            }))),
            Err(e) => Ok(Err(e)),
        },
        "authorization_code" => state
            .app
            .exchange_code(
                &client,
                req.code.as_deref().unwrap_or(""),
                req.redirect_uri.as_deref().unwrap_or(""),
                req.code_verifier.as_deref().unwrap_or(""),
            )
            .await
            .map(|r| r.map(|t| serde_json::to_value(t).unwrap_or_default())),
        "refresh_token" => state
            .app
            .refresh(
                &client,
                req.refresh_token.as_deref().unwrap_or(""),
                req.scope.as_deref(),
            )
            .await
            .map(|r| r.map(|t| serde_json::to_value(t).unwrap_or_default())),
        "" => Ok(Err(OAuthError::InvalidRequest(
            "grant_type is missing".into(),
        ))),
        _ => Ok(Err(OAuthError::UnsupportedGrantType)),
    };
    match result {
        Ok(Ok(body)) => {
            let mut res = Json(body).into_response();
            no_store(res.headers_mut());
            res
        }
        Ok(Err(e)) => oauth_error(&e, basic),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// RFC 7662.
async fn introspect(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (req, client, _) =
        match authenticated_request(&state, &peer, &headers, form, "/oauth/introspect").await {
            Ok(r) => r,
            Err(res) => return res,
        };
    let _ = req.token_type_hint;
    let Some(token) = req.token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            &OAuthError::InvalidRequest("token is missing".into()),
            false,
        );
    };
    match state.app.introspect(&client, &token).await {
        Ok(v) => {
            let mut res = Json(v).into_response();
            no_store(res.headers_mut());
            res
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

/// RFC 7009: 200 whether or not the token was known.
async fn revoke(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (req, client, _) =
        match authenticated_request(&state, &peer, &headers, form, "/oauth/revoke").await {
            Ok(r) => r,
            Err(res) => return res,
        };
    let Some(token) = req.token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            &OAuthError::InvalidRequest("token is missing".into()),
            false,
        );
    };
    match state.app.revoke_token(&client, &token).await {
        Ok(()) => {
            let mut res = StatusCode::OK.into_response();
            no_store(res.headers_mut());
            res
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserinfoForm {
    access_token: Option<String>,
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    userinfo_answer(&state, bearer_token(&headers)).await
}

/// OIDC Core § 5.3.1: the token in the header, or as `access_token` in a form body
/// (RFC 6750 § 2.2).
async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<UserinfoForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let from_body = form.ok().and_then(|Form(f)| f.access_token);
    match (bearer_token(&headers), from_body) {
        (Some(_), Some(_)) => bearer_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the access token once: header or body, not both",
        ),
        (Some(t), None) => userinfo_answer(&state, Some(t)).await,
        (None, body) => userinfo_answer(&state, body.as_deref()).await,
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn bearer_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(serde_json::json!({"error": code, "error_description": description})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Bearer error=\"{code}\", error_description=\"{description}\""
    )) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(res.headers_mut());
    res
}

async fn userinfo_answer(state: &AppState, token: Option<&str>) -> Response {
    let Some(token) = token else {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    };
    match state.app.userinfo(token).await {
        Ok(Some(claims)) => {
            let mut res = Json(claims).into_response();
            no_store(res.headers_mut());
            res
        }
        Ok(None) => bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is unknown, expired, revoked or was not issued with scope openid",
        ),
        Err(e) => Problem::from(e).into_response(),
    }
}

async fn discovery(State(state): State<AppState>) -> Response {
    let mut res = Json(state.app.openid_configuration()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.app.oidc_jwks().await {
        Ok(body) => {
            let mut res = axum::body::Bytes::from(body.to_vec()).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            // Short: relying parties must see a rotation soon.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            res
        }
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
