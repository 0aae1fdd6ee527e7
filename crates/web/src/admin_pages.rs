//! The administration pages (clients and the OpenID signing keys). Until staff accounts
//! exist (Sachbearbeitung), the admin token signs in: the cookie holds an expiring MAC
//! bound to the token, never the token itself.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use crate::AppState;
use crate::account_pages::{
    Field, FormSpec, csrf_ok_token, field_error, internal, render_form, with_lang,
};
use crate::middleware::Peer;
use crate::pages::{FieldError, Page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/clients") }))
        .route("/admin/anmelden", get(login_form).post(login))
        .route("/admin/clients", get(clients).post(add_client))
        .route("/admin/clients/aktiv", post(set_active))
        .route("/admin/clients/secret", post(new_secret))
        .route("/admin/schluessel", post(rotate_keys))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

const SESSION_HOURS: i64 = 8;

fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-admin" } else { "admin" }
}

fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.config.admin_token else {
        return false;
    };
    crate::csrf::read_cookie(headers, cookie_name(state.secure))
        .is_some_and(|v| state.app.admin_session_valid(token, v))
}

fn login_spec<'a>(page: &Page) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "admin_login_title",
        "/admin/anmelden",
        "admin_login_submit",
        page,
    );
    spec.intro_key = "admin_login_intro";
    spec.fields
        .push(Field::new(page, "admin_token", "password", "off"));
    spec
}

async fn login_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    render_form(&page, &state, &headers, login_spec(&page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    csrf_token: String,
    admin_token: String,
}

async fn login(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let mut spec = login_spec(&page);
    let Some(expected) = &state.config.admin_token else {
        spec.errors = vec![field_error(&page, "admin_token", "admin_disabled")];
        return render_form(&page, &state, &headers, spec);
    };
    let ip = crate::middleware::client_ip(&headers, &peer, state.config.trust_forwarded_for);
    let allowed = state.admin_login_limiter.check(ip).allowed;
    if !allowed
        || form.admin_token.is_empty()
        || !crypto::constant_time_eq(form.admin_token.as_bytes(), expected.as_bytes())
    {
        tracing::warn!(%ip, "admin page: wrong admin token");
        spec.errors = vec![field_error(&page, "admin_token", "admin_login_wrong")];
        return render_form(&page, &state, &headers, spec);
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + SESSION_HOURS * 3600;
    let value = state.app.admin_session_value(expected, expires);
    let mut res = Redirect::to(&with_lang("/admin/clients", &page)).into_response();
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cookie_name(state.secure),
        SESSION_HOURS * 3600,
        if state.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The checks every admin form passes first: signed in (else to the sign-in page), then
/// the CSRF token. (The error is the response itself, as axum handlers return it.)
#[allow(clippy::result_large_err)]
fn admin_form<F: Default>(
    state: &AppState,
    headers: &HeaderMap,
    page: &Page,
    form: Result<Form<F>, FormRejection>,
    csrf: impl Fn(&F) -> &String,
) -> Result<F, Response> {
    if !signed_in(state, headers) {
        return Err(to_login(page));
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(state, headers, csrf(&form)) {
        return Err(page.error(state, StatusCode::FORBIDDEN));
    }
    Ok(form)
}

fn to_login(page: &Page) -> Response {
    Redirect::to(&with_lang("/admin/anmelden", page)).into_response()
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
struct ClientForm {
    #[serde(skip_serializing)]
    csrf_token: String,
    name: String,
    kind: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    scopes: String,
    subject_type: String,
}

struct View {
    created: Option<(String, String)>,
    notice: Option<&'static str>,
    errors: Vec<FieldError>,
    form: ClientForm,
}

async fn render(state: &AppState, page: &Page, headers: &HeaderMap, view: View) -> Response {
    let list = match state.app.oauth_clients().await {
        Ok(l) => l,
        Err(e) => return internal(page, state, e),
    };
    let clients: Vec<minijinja::Value> = list
        .iter()
        .map(|c| {
            let reg: oidc::ClientConfig = serde_json::from_str(&c.config).unwrap_or_default();
            minijinja::Value::from_serialize(serde_json::json!({
                "client_id": c.client_id,
                "name": c.name,
                "active": c.active,
                "kind": match reg.kind { oidc::ClientKind::Web => "web", oidc::ClientKind::Api => "api" },
                "redirect_uris": reg.redirect_uris,
                "scopes": c.scopes,
                "pairwise": reg.subject_type == oidc::SubjectType::Pairwise,
            }))
        })
        .collect();
    // Why the ePoststelle accepts nothing (no or no reachable virus scanner), and what waits.
    let poststelle = state
        .app
        .poststelle_status()
        .await
        .ok()
        .filter(|p| p.problem.is_some() || !p.waiting.is_empty())
        .map(|p| minijinja::Value::from_serialize(p.to_json()));
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if view.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = context! {
        clients,
        created => view.created.map(|(id, secret)| serde_json::json!({"client_id": id, "client_secret": secret})),
        notice => view.notice.map(|k| page.t(k)),
        errors => view.errors,
        form => view.form,
        csrf_token,
        poststelle,
    };
    let mut res = page.render(state, status, "admin_clients.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn clients(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if !signed_in(&state, &headers) {
        return to_login(&page);
    }
    let notice = match page.param("gesendet") {
        Some("gespeichert") => Some("admin_clients_switched"),
        Some("schluessel") => Some("admin_keys_rotated"),
        _ => None,
    };
    render(
        &state,
        &page,
        &headers,
        View {
            created: None,
            notice,
            errors: Vec::new(),
            form: ClientForm::default(),
        },
    )
    .await
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(25)
        .map(str::to_owned)
        .collect()
}

async fn add_client(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ClientForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = match admin_form(&state, &headers, &page, form, |f| &f.csrf_token) {
        Ok(f) => f,
        Err(res) => return res,
    };
    let kind = if form.kind == "api" {
        oidc::ClientKind::Api
    } else {
        oidc::ClientKind::Web
    };
    let registration = oidc::ClientConfig {
        kind,
        redirect_uris: lines(&form.redirect_uris),
        post_logout_redirect_uris: lines(&form.post_logout_redirect_uris),
        subject_type: if form.subject_type == "pairwise" {
            oidc::SubjectType::Pairwise
        } else {
            oidc::SubjectType::Public
        },
        ..oidc::ClientConfig::default()
    };
    let scopes: Vec<&str> = form.scopes.split_whitespace().take(50).collect();
    match state
        .app
        .register_client(&form.name, None, &scopes, &registration)
        .await
    {
        Ok((id, secret)) => {
            render(
                &state,
                &page,
                &headers,
                View {
                    created: Some((id, secret)),
                    notice: None,
                    errors: Vec::new(),
                    form: ClientForm::default(),
                },
            )
            .await
        }
        Err(app::AppError::InvalidField { field, message }) => {
            let errors = vec![FieldError { field, message }];
            render(
                &state,
                &page,
                &headers,
                View {
                    created: None,
                    notice: None,
                    errors,
                    form,
                },
            )
            .await
        }
        Err(e) => internal(&page, &state, e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ClientAction {
    csrf_token: String,
    client_id: String,
    active: String,
}

async fn set_active(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ClientAction>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = match admin_form(&state, &headers, &page, form, |f| &f.csrf_token) {
        Ok(f) => f,
        Err(res) => return res,
    };
    match state
        .app
        .set_client_active(&form.client_id, form.active == "1")
        .await
    {
        Ok(true) => {
            Redirect::to(&with_lang("/admin/clients?gesendet=gespeichert", &page)).into_response()
        }
        Ok(false) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => internal(&page, &state, e),
    }
}

async fn new_secret(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ClientAction>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = match admin_form(&state, &headers, &page, form, |f| &f.csrf_token) {
        Ok(f) => f,
        Err(res) => return res,
    };
    match state.app.rotate_client_secret(&form.client_id).await {
        Ok(Some(secret)) => {
            render(
                &state,
                &page,
                &headers,
                View {
                    created: Some((form.client_id, secret)),
                    notice: None,
                    errors: Vec::new(),
                    form: ClientForm::default(),
                },
            )
            .await
        }
        Ok(None) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => internal(&page, &state, e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfOnly {
    csrf_token: String,
}

async fn rotate_keys(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    if let Err(res) = admin_form(&state, &headers, &page, form, |f| &f.csrf_token) {
        return res;
    }
    match state.app.rotate_oidc_keys(app::DEFAULT_KEY_OVERLAP).await {
        Ok(_) => {
            Redirect::to(&with_lang("/admin/clients?gesendet=schluessel", &page)).into_response()
        }
        Err(e) => internal(&page, &state, e),
    }
}
