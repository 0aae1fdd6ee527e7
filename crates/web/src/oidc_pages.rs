//! The OpenID provider's browser endpoints: authorization (with login, step-up and the
//! consent page) and logout (RP-initiated, with front-channel notification).
//!
//! The authorization request travels sealed through the login pages (`/oidc/resume?r=…`),
//! so no server-side interaction state is needed and any node can continue it.

use axum::extract::rejection::FormRejection;
use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use app::{AuthorizeStep, ConsentRequest};

use crate::AppState;
use crate::account_pages::{any_session, client, csrf_ok_token, internal};
use crate::middleware::Peer;
use crate::pages::Page;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oidc/authorize", get(authorize_get).post(authorize_post))
        .route("/oidc/resume", get(resume))
        .route("/oidc/consent", post(consent))
        .route("/oidc/logout", get(logout_get).post(logout_post))
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024))
}

const MAX_PARAMS: usize = 50;

fn parse_params(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .take(MAX_PARAMS)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn authorize_get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let params = parse_params(uri.query().unwrap_or("").as_bytes());
    authorize(&state, &uri, &headers, &params).await
}

/// OIDC Core § 3.1.2.1: the authorization endpoint accepts POST with a form body too.
async fn authorize_post(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let params = parse_params(&body);
    authorize(&state, &uri, &headers, &params).await
}

async fn authorize(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Response {
    let page = Page::new(uri, headers);
    let session = any_session(state, headers).await;
    match state.app.authorize(params, session.as_ref()).await {
        Ok(step) => answer(state, page, headers, step, session.as_ref()),
        Err(e) => internal(&page, state, e),
    }
}

async fn resume(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let sealed = page.param("r").unwrap_or("").to_owned();
    let session = any_session(&state, &headers).await;
    match state.app.authorize_resume(&sealed, session.as_ref()).await {
        Ok(step) => answer(&state, page, &headers, step, session.as_ref()),
        Err(e) => internal(&page, &state, e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConsentForm {
    csrf_token: String,
    r: String,
    decision: String,
}

async fn consent(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = any_session(&state, &headers).await.filter(|s| s.complete);
    let Some(session) = session else {
        // Signed out meanwhile (another tab): start over at the login.
        return match state.app.authorize_resume(&form.r, None).await {
            Ok(step) => answer(&state, page, &headers, step, None),
            Err(e) => internal(&page, &state, e),
        };
    };
    let allow = form.decision == "allow";
    match state
        .app
        .authorize_consent(&form.r, &session, allow, &client(&state, &headers, &peer))
        .await
    {
        Ok(step) => answer(&state, page, &headers, step, Some(&session)),
        Err(e) => internal(&page, &state, e),
    }
}

fn answer(
    state: &AppState,
    page: Page,
    headers: &HeaderMap,
    step: AuthorizeStep,
    session: Option<&app::Session>,
) -> Response {
    match step {
        AuthorizeStep::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeStep::Login {
            resume,
            login_hint,
            lang,
        } => {
            let page = page.prefer_lang(lang);
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("lang", page.lang.code());
            q.append_pair("weiter", &resume);
            if session.is_some_and(|s| s.complete) {
                q.append_pair("erneut", "1");
            }
            if let Some(h) = login_hint.filter(|h| h.contains('@') && h.len() <= 254) {
                q.append_pair("email", &h);
            }
            Redirect::to(&format!("/konto/anmelden?{}", q.finish())).into_response()
        }
        AuthorizeStep::Consent(c) => consent_page(state, page, headers, c, session),
        AuthorizeStep::ErrorPage { error, description } => page.render(
            state,
            StatusCode::BAD_REQUEST,
            "oidc_error.html",
            context! { error, description },
        ),
    }
}

fn consent_page(
    state: &AppState,
    page: Page,
    headers: &HeaderMap,
    c: ConsentRequest,
    session: Option<&app::Session>,
) -> Response {
    let page = page.prefer_lang(c.lang);
    let scopes: Vec<&str> = c
        .scopes
        .iter()
        .map(|s| {
            let label = page.t(&format!("consent_scope_{s}"));
            if label.is_empty() { s.as_str() } else { label }
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let ctx = context! {
        page_title => page.t("oidc_consent_title"),
        client_name => c.client_name,
        client_host => c.client_host,
        scopes,
        email => session.map(|s| s.email.clone()).unwrap_or_default(),
        interaction => c.interaction,
        csrf_token,
    };
    let mut res = page.render(state, StatusCode::OK, "oidc_consent.html", ctx);
    if let Some(cookie) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    allow_form_action(&mut res, c.redirect_origin.as_deref());
    res
}

/// The page's answer redirects to the relying party; browsers check a form's redirects
/// against `form-action`, so that origin must be allowed next to our own.
pub(crate) fn allow_form_action(res: &mut Response, origin: Option<&str>) {
    let Some(origin) = origin else { return };
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self' {origin}; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert("content-security-policy", v);
    }
}

/// `form-action` for a login page whose `weiter` continues an authorization request.
pub(crate) fn login_form_action(state: &AppState, res: &mut Response, next: &str) {
    if let Some(sealed) = next.strip_prefix("/oidc/resume?r=") {
        allow_form_action(
            res,
            state.app.interaction_redirect_origin(sealed).as_deref(),
        );
    }
}

// ---- logout ----

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    ui_locales: Option<String>,
    csrf_token: String,
    confirmed: Option<String>,
}

async fn logout_get(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = logout_params(uri.query().unwrap_or("").as_bytes());
    logout(&state, &peer, &uri, &headers, params, false).await
}

async fn logout_post(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let params = logout_params(&body);
    let confirmed =
        params.confirmed.is_some() && csrf_ok_token(&state, &headers, &params.csrf_token);
    logout(&state, &peer, &uri, &headers, params, confirmed).await
}

fn logout_params(raw: &[u8]) -> LogoutParams {
    let mut p = LogoutParams::default();
    for (k, v) in form_urlencoded::parse(raw).take(MAX_PARAMS) {
        let text = v.chars().take(8192).collect::<String>();
        if k == "csrf_token" {
            p.csrf_token = text;
            continue;
        }
        let v = Some(text);
        match k.as_ref() {
            "id_token_hint" => p.id_token_hint = v,
            "post_logout_redirect_uri" => p.post_logout_redirect_uri = v,
            "state" => p.state = v,
            "client_id" => p.client_id = v,
            "ui_locales" => p.ui_locales = v,
            "confirmed" => p.confirmed = v,
            _ => {}
        }
    }
    p
}

async fn logout(
    state: &AppState,
    peer: &Peer,
    uri: &Uri,
    headers: &HeaderMap,
    params: LogoutParams,
    confirmed: bool,
) -> Response {
    let lang = params
        .ui_locales
        .as_deref()
        .and_then(|l| l.split(' ').next())
        .map(|l| l.split('-').next().unwrap_or(l).to_owned());
    let page = Page::new(uri, headers).prefer_lang(lang.as_deref());
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => match state.app.id_token_hint(h).await {
            Ok(Some(hint)) => Some(hint),
            Ok(None) => {
                return page.render(
                    state,
                    StatusCode::BAD_REQUEST,
                    "oidc_error.html",
                    context! { error => "invalid_request", description => "id_token_hint is not an ID token of this provider" },
                );
            }
            Err(e) => return internal(&page, state, e),
        },
        None => None,
    };
    let client_id = hint
        .as_ref()
        .map(|h| h.client_id.clone())
        .or(params.client_id.clone());
    if let (Some(h), Some(c)) = (&hint, &params.client_id)
        && &h.client_id != c
    {
        return page.render(
            state,
            StatusCode::BAD_REQUEST,
            "oidc_error.html",
            context! { error => "invalid_request", description => "client_id differs from the audience of id_token_hint" },
        );
    }
    // Only registered URIs are followed (OIDC RP-Initiated Logout § 3).
    let redirect = match (&params.post_logout_redirect_uri, &client_id) {
        (Some(uri), Some(cid)) if !uri.is_empty() => {
            match state.app.post_logout_redirect_allowed(cid, uri).await {
                Ok(true) => {
                    let mut p: Vec<(&str, &str)> = Vec::new();
                    if let Some(s) = &params.state {
                        p.push(("state", s));
                    }
                    oidc::with_query(uri, &p)
                }
                Ok(false) => {
                    return page.render(
                        state,
                        StatusCode::BAD_REQUEST,
                        "oidc_error.html",
                        context! { error => "invalid_request", description => "post_logout_redirect_uri is not registered for this client" },
                    );
                }
                Err(e) => return internal(&page, state, e),
            }
        }
        (Some(uri), None) if !uri.is_empty() => {
            return page.render(
                state,
                StatusCode::BAD_REQUEST,
                "oidc_error.html",
                context! { error => "invalid_request", description => "post_logout_redirect_uri needs id_token_hint or client_id" },
            );
        }
        _ => None,
    };
    let session = any_session(state, headers).await;
    let Some(session) = session else {
        // Nobody signed in: nothing to end.
        return match redirect {
            Some(r) => Redirect::to(&r).into_response(),
            None => done_page(state, &page, &[], None),
        };
    };
    // The relying party proves the user's session with its ID token; otherwise the user
    // confirms, so that a link on another site cannot sign anyone out.
    let proven = hint
        .as_ref()
        .is_some_and(|h| h.sid.as_deref() == Some(session.public_id.as_str()));
    if !proven && !confirmed {
        let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
        let mut hidden: Vec<(&str, String)> = vec![("confirmed", "1".into())];
        for (k, v) in [
            ("id_token_hint", &params.id_token_hint),
            ("post_logout_redirect_uri", &params.post_logout_redirect_uri),
            ("state", &params.state),
            ("client_id", &params.client_id),
        ] {
            if let Some(v) = v {
                hidden.push((k, v.clone()));
            }
        }
        let mut res = page.render(
            state,
            StatusCode::OK,
            "oidc_logout.html",
            context! { page_title => page.t("oidc_logout_title"), hidden, csrf_token, done => false },
        );
        if let Some(c) = set_cookie {
            res.headers_mut().append(header::SET_COOKIE, c);
        }
        allow_form_action(
            &mut res,
            redirect.as_deref().and_then(oidc::origin_of).as_deref(),
        );
        return res;
    }
    let front = match state
        .app
        .end_session_everywhere(&session, &client(state, headers, peer))
        .await
    {
        Ok(f) => f,
        Err(e) => return internal(&page, state, e),
    };
    let mut res = if front.is_empty()
        && let Some(r) = &redirect
    {
        Redirect::to(r).into_response()
    } else {
        done_page(state, &page, &front, redirect.as_deref())
    };
    crate::account_pages::clear_session(&mut res, state.secure);
    res
}

fn done_page(
    state: &AppState,
    page: &Page,
    front: &[String],
    continue_href: Option<&str>,
) -> Response {
    let mut res = page.render(
        state,
        StatusCode::OK,
        "oidc_logout.html",
        context! {
            page_title => page.t("oidc_logout_done_title"),
            done => true,
            frontchannel => front,
            continue_href,
        },
    );
    if !front.is_empty() {
        let origins: Vec<String> = front.iter().filter_map(|u| oidc::origin_of(u)).collect();
        let csp = format!(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; frame-src {}",
            origins.join(" ")
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert("content-security-policy", v);
        }
    }
    res
}
