//! Passkeys in the Servicekonto: the page that lists, renames and removes them (plain forms,
//! no JavaScript needed), and the JSON endpoints `static/passkeys.js` talks to for the
//! WebAuthn ceremonies — adding a passkey, logging in without a password, and the passkey
//! as second factor after the password.
//!
//! The ceremonies need JavaScript (`navigator.credentials`); everything else works without.
//! The JSON endpoints accept only same-origin requests that carry the CSRF token in the
//! `X-CSRF-Token` header and an `Origin` header (every browser sends one with `fetch` POSTs).
//! Answers are `{"redirect": …}` on success and `{"error": code, "message": text}` else.

use axum::Router;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Form, Json, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use app::{AppError, PasskeyLoginOutcome, SecondFactorOutcome, Session};

use crate::AppState;
use crate::account_pages::{
    Field, FormSpec, any_session, client, csrf_ok_token, field_error, internal, login_url, refused,
    render_form, require_recent, safe_next, set_session, short_time, with_lang,
};
use crate::middleware::Peer;
use crate::pages::Page;

const PAGE: &str = "/konto/passkeys";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(list_page))
        .route("/konto/passkeys/umbenennen", get(rename_form).post(rename))
        .route("/konto/passkeys/entfernen", post(remove))
        .route("/konto/passkeys/registrieren/start", post(register_start))
        .route("/konto/passkeys/registrieren/ende", post(register_finish))
        .route("/konto/anmelden/passkey/start", post(login_start))
        .route("/konto/anmelden/passkey/ende", post(login_finish))
        .route("/static/passkeys.js", get(script))
        // A WebAuthn answer is a few kilobytes; attestation is not requested.
        .layer(DefaultBodyLimit::max(64 * 1024))
}

async fn script() -> Response {
    let mut res = include_str!("../static/passkeys.js").into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

// ---- the page ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasskeyForm {
    csrf_token: String,
    id: String,
    name: String,
}

async fn list_page(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_recent(&state, &headers, &page, PAGE).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let notice = ["hinzugefuegt", "umbenannt", "entfernt"]
        .into_iter()
        .find(|k| page.param(k).is_some())
        .map(|k| page.t(&format!("passkey_notice_{k}")));
    render_list(&page, &state, &headers, &session, notice, StatusCode::OK).await
}

async fn render_list(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let passkeys = match state.app.list_passkeys(session).await {
        Ok(p) => p,
        Err(e) => return internal(page, state, e),
    };
    let passkeys: Vec<minijinja::Value> = passkeys
        .into_iter()
        .map(|p| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("id", &p.id);
            q.append_pair("lang", page.lang.code());
            minijinja::Value::from_serialize(serde_json::json!({
                "id": p.id,
                "name": p.name,
                "created": short_time(&p.created_at),
                "last_used": p.last_used_at.as_deref().map(short_time),
                "rename_href": format!("/konto/passkeys/umbenennen?{}", q.finish()),
            }))
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let ctx = context! {
        page_title => page.t("passkey_title"),
        passkeys,
        notice,
        csrf_token,
    };
    let mut res = page.render(state, status, "konto_passkeys.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn back_to_list(page: &Page, what: &str) -> Response {
    Redirect::to(&format!("{PAGE}?lang={}&{what}=1", page.lang.code())).into_response()
}

async fn remove(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<PasskeyForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = match require_recent(&state, &headers, &page, PAGE).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .remove_passkey(&session, &form.id, &client(&state, &headers, &peer))
        .await
    {
        Ok(true) => back_to_list(&page, "entfernt"),
        Ok(false) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => internal(&page, &state, e),
    }
}

fn rename_spec<'a>(page: &Page, id: &str, name: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "passkey_rename_title",
        "/konto/passkeys/umbenennen",
        "passkey_rename_submit",
        page,
    );
    spec.fields = vec![
        Field {
            name: "name",
            kind: "text",
            label: page.t("passkey_field_name"),
            hint: page.t("passkey_hint_name"),
            autocomplete: "off",
            value: String::new(),
            maxlength: 64,
            inputmode: "",
        }
        .value(name),
    ];
    spec.hidden.push(("id", id.to_owned()));
    spec.links = vec![(format!("{PAGE}?lang={}", page.lang.code()), "passkey_back")];
    spec
}

async fn rename_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_recent(&state, &headers, &page, PAGE).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = page.param("id").unwrap_or("").to_owned();
    let passkeys = match state.app.list_passkeys(&session).await {
        Ok(p) => p,
        Err(e) => return internal(&page, &state, e),
    };
    match passkeys.into_iter().find(|p| p.id == id) {
        Some(p) => render_form(&page, &state, &headers, rename_spec(&page, &p.id, &p.name)),
        None => page.error(&state, StatusCode::NOT_FOUND),
    }
}

async fn rename(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<PasskeyForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_recent(&state, &headers, &page, PAGE).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut spec = rename_spec(&page, &form.id, &form.name);
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        spec.errors.push(field_error(&page, "name", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .rename_passkey(
            &session,
            &form.id,
            &form.name,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(true) => back_to_list(&page, "umbenannt"),
        Ok(false) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => refused(&page, &state, &headers, spec, e, "name"),
    }
}

// ---- JSON endpoints for the ceremonies ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CeremonyRequest {
    /// `login` (without password) or `second_factor`.
    mode: String,
    /// The wrapped ceremony state from the start answer.
    state: String,
    /// The browser's `PublicKeyCredential`, binary values as base64url.
    credential: serde_json::Value,
    /// The name for a new passkey.
    name: String,
    /// Where to go after a login.
    weiter: String,
}

/// Same origin, with the CSRF token in the header. `Origin` must be present: `fetch` always
/// sends it on a POST, so a request without one did not come from our script.
fn json_request_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    headers.contains_key(header::ORIGIN) && csrf_ok_token(state, headers, token)
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error answer with the text for `code` (`err_<code>`) in the page's language.
fn json_error(page: &Page, status: StatusCode, code: &str) -> Response {
    let text = page.t(&format!("err_{code}"));
    let message = if text.is_empty() {
        page.t("err_passkey_failed")
    } else {
        text
    };
    json(
        status,
        serde_json::json!({"error": code, "message": message}),
    )
}

fn json_redirect(to: &str) -> Response {
    json(StatusCode::OK, serde_json::json!({"redirect": to}))
}

/// Maps an application error of a ceremony to its answer.
fn json_app_error(page: &Page, e: AppError) -> Response {
    match e {
        AppError::Invalid(code) | AppError::InvalidField { message: code, .. } => {
            json_error(page, StatusCode::BAD_REQUEST, &code)
        }
        AppError::Config(msg) => {
            tracing::warn!(error = %msg, "passkeys are not available");
            json_error(page, StatusCode::SERVICE_UNAVAILABLE, "passkey_unavailable")
        }
        other => {
            tracing::error!(error = %other, "passkey ceremony failed");
            json_error(page, StatusCode::INTERNAL_SERVER_ERROR, "passkey_failed")
        }
    }
}

fn throttled(page: &Page, retry_after_secs: u64) -> Response {
    let message = page
        .t("err_login_throttled")
        .replace("{minutes}", &retry_after_secs.div_ceil(60).to_string());
    let mut res = json(
        StatusCode::TOO_MANY_REQUESTS,
        serde_json::json!({"error": "throttled", "message": message}),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn body(req: Result<Json<CeremonyRequest>, JsonRejection>) -> Option<CeremonyRequest> {
    req.ok().map(|Json(r)| r)
}

/// The session for adding a passkey: logged in, recently. Else an answer that sends the
/// browser to the login (which comes back to the passkey page).
async fn registering_session(
    state: &AppState,
    headers: &HeaderMap,
    page: &Page,
) -> Result<Session, Response> {
    match any_session(state, headers).await {
        Some(s)
            if s.complete && s.recently_authenticated(state.app.account_settings().recent_auth) =>
        {
            Ok(s)
        }
        s => {
            let again = s.is_some_and(|s| s.complete);
            Err(json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({
                    "error": "passkey_login_again",
                    "message": page.t("err_passkey_login_again"),
                    "redirect": login_url(page, PAGE, again),
                }),
            ))
        }
    }
}

async fn register_start(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if !json_request_ok(&state, &headers) {
        return json_error(&page, StatusCode::FORBIDDEN, "csrf");
    }
    let session = match registering_session(&state, &headers, &page).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.app.passkey_registration_begin(&session).await {
        Ok(challenge) => json(StatusCode::OK, serde_json::json!(challenge)),
        Err(e) => json_app_error(&page, e),
    }
}

async fn register_finish(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    req: Result<Json<CeremonyRequest>, JsonRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    if !json_request_ok(&state, &headers) {
        return json_error(&page, StatusCode::FORBIDDEN, "csrf");
    }
    let session = match registering_session(&state, &headers, &page).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(req) = body(req) else {
        return json_error(&page, StatusCode::BAD_REQUEST, "passkey_failed");
    };
    match state
        .app
        .passkey_registration_finish(
            &session,
            &req.state,
            req.credential,
            &req.name,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(_) => json_redirect(&format!("{PAGE}?lang={}&hinzugefuegt=1", page.lang.code())),
        Err(e) => json_app_error(&page, e),
    }
}

async fn login_start(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    req: Result<Json<CeremonyRequest>, JsonRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    if !json_request_ok(&state, &headers) {
        return json_error(&page, StatusCode::FORBIDDEN, "csrf");
    }
    let req = body(req).unwrap_or_default();
    if req.mode == "second_factor" {
        let partial = match any_session(&state, &headers).await {
            Some(s) if !s.complete => s,
            _ => return json_error(&page, StatusCode::BAD_REQUEST, "passkey_expired"),
        };
        return match state.app.passkey_second_factor_begin(&partial).await {
            Ok(Some(challenge)) => json(StatusCode::OK, serde_json::json!(challenge)),
            Ok(None) => json_error(&page, StatusCode::BAD_REQUEST, "passkey_none"),
            Err(e) => json_app_error(&page, e),
        };
    }
    match state.app.passkey_login_begin() {
        Ok(challenge) => json(StatusCode::OK, serde_json::json!(challenge)),
        Err(e) => json_app_error(&page, e),
    }
}

async fn login_finish(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    req: Result<Json<CeremonyRequest>, JsonRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    if !json_request_ok(&state, &headers) {
        return json_error(&page, StatusCode::FORBIDDEN, "csrf");
    }
    let Some(req) = body(req) else {
        return json_error(&page, StatusCode::BAD_REQUEST, "passkey_failed");
    };
    let client = client(&state, &headers, &peer);
    let next = with_lang(safe_next(&req.weiter).unwrap_or("/konto"), &page);
    let previous = any_session(&state, &headers).await;
    if req.mode == "second_factor" {
        let Some(partial) = previous.filter(|s| !s.complete) else {
            return json_error(&page, StatusCode::BAD_REQUEST, "passkey_expired");
        };
        return match state
            .app
            .passkey_second_factor_finish(&partial, &req.state, req.credential, &client)
            .await
        {
            Ok(SecondFactorOutcome::LoggedIn { token }) => {
                let mut res = json_redirect(&next);
                set_session(&mut res, state.secure, &token);
                res
            }
            Ok(SecondFactorOutcome::Failed) => {
                json_error(&page, StatusCode::BAD_REQUEST, "passkey_login_failed")
            }
            Ok(SecondFactorOutcome::Throttled { retry_after_secs }) => {
                throttled(&page, retry_after_secs)
            }
            Ok(SecondFactorOutcome::Expired) => {
                json_error(&page, StatusCode::BAD_REQUEST, "passkey_expired")
            }
            Err(e) => json_app_error(&page, e),
        };
    }
    match state
        .app
        .passkey_login_finish(&req.state, req.credential, &client)
        .await
    {
        Ok(PasskeyLoginOutcome::LoggedIn { token }) => {
            // A login replaces whatever session this browser had (as the password login).
            if let Some(old) = previous {
                let _ = state.app.logout(&old, &client).await;
            }
            let mut res = json_redirect(&next);
            set_session(&mut res, state.secure, &token);
            res
        }
        Ok(PasskeyLoginOutcome::Failed) => {
            json_error(&page, StatusCode::BAD_REQUEST, "passkey_login_failed")
        }
        Ok(PasskeyLoginOutcome::Throttled { retry_after_secs }) => {
            throttled(&page, retry_after_secs)
        }
        Err(e) => json_app_error(&page, e),
    }
}
