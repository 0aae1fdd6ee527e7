//! The Servicekonto's pages: registration, login (password, then second factor), the account
//! overview with sessions and Kontoaktivität, password reset and change, TOTP, e-mail
//! change, export and deletion; in demo mode the list of sent mails.
//!
//! Handlers only parse, call `app`, and render. Every POST checks the CSRF token; every
//! form comes back with the user's input (never a password) and errors beside the fields.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::{Deserialize, Serialize};

use app::{AppError, ClientInfo, LoginOutcome, SecondFactorOutcome, Session};

use crate::AppState;
use crate::middleware::Peer;
use crate::pages::{FieldError, Page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/konto", get(overview))
        .route("/konto/registrieren", get(register_form).post(register))
        .route("/konto/bestaetigen", get(verify))
        .route("/konto/anmelden", get(login_form).post(login))
        .route("/konto/anmelden/code", get(code_form).post(code))
        .route("/konto/abmelden", post(logout))
        .route("/konto/verlaengern", post(extend))
        .route("/konto/sitzungen/beenden", post(revoke))
        .route("/konto/passwort-vergessen", get(forgot_form).post(forgot))
        .route("/konto/passwort-neu", get(reset_form).post(reset))
        .route("/konto/passwort-aendern", get(change_form).post(change))
        .route("/konto/zwei-faktor", get(totp_form).post(totp_confirm))
        .route("/konto/zwei-faktor/aus", post(totp_off))
        .route("/konto/email-aendern", get(email_form).post(email_change))
        .route("/konto/email-bestaetigen", get(email_confirm))
        .route("/konto/export", get(export))
        .route("/konto/loeschen", get(delete_form).post(delete))
        .route("/demo/mails", get(demo_mails))
        .layer(DefaultBodyLimit::max(16 * 1024))
}

/// Every account form posts a subset of these; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AccountForm {
    csrf_token: String,
    email: String,
    password: String,
    current_password: String,
    code: String,
    token: String,
    pending: String,
    session: String,
    weiter: String,
}

/// One input of the generic form template.
#[derive(Serialize)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) label: &'static str,
    pub(crate) hint: &'static str,
    pub(crate) autocomplete: &'static str,
    pub(crate) value: String,
    pub(crate) maxlength: u32,
    pub(crate) inputmode: &'static str,
}

impl Field {
    pub(crate) fn new(
        page: &Page,
        name: &'static str,
        kind: &'static str,
        autocomplete: &'static str,
    ) -> Field {
        Field {
            name,
            kind,
            label: page.t(&format!("konto_field_{name}")),
            hint: page.t(&format!("konto_hint_{name}_{autocomplete}")),
            autocomplete,
            value: String::new(),
            maxlength: if kind == "password" { 1024 } else { 254 },
            inputmode: "",
        }
    }

    pub(crate) fn value(mut self, v: &str) -> Field {
        self.value = v.chars().take(254).collect();
        self
    }
}

/// What the generic form template shows around the fields.
pub(crate) struct FormSpec<'a> {
    pub(crate) title_key: &'a str,
    pub(crate) intro_key: &'a str,
    pub(crate) action: String,
    pub(crate) submit_key: &'a str,
    pub(crate) fields: Vec<Field>,
    pub(crate) hidden: Vec<(&'static str, String)>,
    pub(crate) links: Vec<(String, &'static str)>,
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<FieldError>,
    pub(crate) notice: Option<String>,
}

impl<'a> FormSpec<'a> {
    pub(crate) fn new(title_key: &'a str, action: &str, submit_key: &'a str, page: &Page) -> Self {
        FormSpec {
            title_key,
            intro_key: "",
            action: format!("{action}?lang={}", page.lang.code()),
            submit_key,
            fields: Vec::new(),
            hidden: Vec::new(),
            links: Vec::new(),
            status: StatusCode::OK,
            errors: Vec::new(),
            notice: None,
        }
    }
}

fn session_cookie(secure: bool) -> &'static str {
    if secure { "__Host-session" } else { "session" }
}

pub(crate) fn set_session(res: &mut Response, secure: bool, token: &str) {
    let attrs = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax{attrs}",
        session_cookie(secure)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(crate) fn clear_session(res: &mut Response, secure: bool) {
    let attrs = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{attrs}",
        session_cookie(secure)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn session_token<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    crate::csrf::read_cookie(headers, session_cookie(state.secure))
}

/// The session of this request, complete or partial.
pub(crate) async fn any_session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = session_token(state, headers)?;
    match state.app.session(token).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            None
        }
    }
}

/// The logged-in session, or a redirect to the login that comes back here.
pub(crate) async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
    page: &Page,
    back: &str,
) -> Result<Session, Response> {
    match any_session(state, headers).await {
        Some(s) if s.complete => Ok(s),
        _ => Err(Redirect::to(&login_url(page, back, false)).into_response()),
    }
}

/// Like [`require_session`], but the login must be recent: sensitive changes ask for the
/// password again after [`app::AccountSettings::recent_auth`] (step-up).
pub(crate) async fn require_recent(
    state: &AppState,
    headers: &HeaderMap,
    page: &Page,
    back: &str,
) -> Result<Session, Response> {
    let s = require_session(state, headers, page, back).await?;
    if s.recently_authenticated(state.app.account_settings().recent_auth) {
        Ok(s)
    } else {
        Err(Redirect::to(&login_url(page, back, true)).into_response())
    }
}

pub(crate) fn login_url(page: &Page, back: &str, again: bool) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("lang", page.lang.code());
    q.append_pair("weiter", back);
    if again {
        q.append_pair("erneut", "1");
    }
    format!("/konto/anmelden?{}", q.finish())
}

/// Only local paths below /konto and /postfach, and the continuation of an OpenID
/// authorization request, are followed after login: never an open redirect.
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    if let Some(sealed) = next.strip_prefix("/oidc/resume?r=") {
        // The sealed request is base64url; its integrity is checked when it is opened.
        return (sealed.len() < 8000
            && sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then_some(next);
    }
    (next.starts_with("/konto") || next.starts_with("/postfach"))
        .then_some(next)
        .filter(|n| !n.contains("//") && !n.contains('\\') && n.len() < 500)
}

pub(crate) fn client(state: &AppState, headers: &HeaderMap, peer: &Peer) -> ClientInfo {
    ClientInfo {
        ip: Some(
            crate::middleware::client_ip(headers, peer, state.config.trust_forwarded_for)
                .to_string(),
        ),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

pub(crate) fn csrf_ok_token(state: &AppState, headers: &HeaderMap, token: &str) -> bool {
    crate::csrf::verify(
        headers,
        state.secure,
        token,
        &state.app.settings().public_url,
    )
}

fn csrf_ok(state: &AppState, headers: &HeaderMap, form: &AccountForm) -> bool {
    csrf_ok_token(state, headers, &form.csrf_token)
}

pub(crate) fn field_error(page: &Page, field: &'static str, key: &str) -> FieldError {
    let text = page.t(&format!("err_{key}"));
    FieldError {
        field,
        message: if text.is_empty() {
            page.t("error_text").to_owned()
        } else {
            text.to_owned()
        },
    }
}

/// Maps an application error on a form to messages beside the fields, or an error page.
pub(crate) fn form_errors(
    page: &Page,
    e: AppError,
    default_field: &'static str,
) -> Result<Vec<FieldError>, AppError> {
    match e {
        AppError::InvalidField { field, message } => match message.strip_prefix("throttled:") {
            Some(secs) => {
                let minutes = secs.parse::<u64>().unwrap_or(60).div_ceil(60);
                Ok(vec![FieldError {
                    field,
                    message: page
                        .t("err_login_throttled")
                        .replace("{minutes}", &minutes.to_string()),
                }])
            }
            None => Ok(vec![field_error(page, field, &message)]),
        },
        AppError::Invalid(code) | AppError::Conflict(code) => {
            Ok(vec![field_error(page, default_field, &code)])
        }
        other => Err(other),
    }
}

/// The form again with the application's refusal beside its field (or an error page if
/// the failure is not the input's).
pub(crate) fn refused(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    mut spec: FormSpec<'_>,
    e: AppError,
    default_field: &'static str,
) -> Response {
    match form_errors(page, e, default_field) {
        Ok(errors) => {
            spec.errors = errors;
            render_form(page, state, headers, spec)
        }
        Err(e) => internal(page, state, e),
    }
}

pub(crate) fn internal(page: &Page, state: &AppState, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "account page failed");
    page.error(state, StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn render_form(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    spec: FormSpec<'_>,
) -> Response {
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if spec.errors.is_empty() {
        spec.status
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let links: Vec<minijinja::Value> = spec
        .links
        .iter()
        .map(|(href, key)| {
            minijinja::Value::from_serialize(serde_json::json!({"href": href, "text": page.t(key)}))
        })
        .collect();
    let hidden_next = spec.hidden.iter().find(|(k, _)| *k == "weiter").cloned();
    let ctx = context! {
        page_title => page.t(spec.title_key),
        intro => page.t(spec.intro_key),
        action => spec.action,
        submit => page.t(spec.submit_key),
        fields => spec.fields,
        hidden => spec.hidden,
        links,
        errors => spec.errors,
        notice => spec.notice,
        csrf_token,
    };
    let mut res = page.render(state, status, "konto_form.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some((_, next)) = hidden_next {
        crate::oidc_pages::login_form_action(state, &mut res, &next);
    }
    res
}

pub(crate) fn message(
    page: &Page,
    state: &AppState,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let ctx = context! {
        page_title => page.t(title),
        text => page.t(text),
        link_href => link.map(|l| format!("{}?lang={}", l.0, page.lang.code())),
        link_text => link.map(|l| page.t(l.1)),
    };
    page.render(state, status, "konto_message.html", ctx)
}

// ---- registration and verification ----

fn register_spec<'a>(page: &Page, email: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_register_title",
        "/konto/registrieren",
        "konto_register_submit",
        page,
    );
    spec.intro_key = "konto_register_intro";
    spec.fields = vec![
        Field::new(page, "email", "email", "username").value(email),
        Field::new(page, "password", "password", "new-password"),
    ];
    spec.links = vec![(
        format!("/konto/anmelden?lang={}", page.lang.code()),
        "konto_have_account",
    )];
    spec
}

async fn register_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    render_form(&page, &state, &headers, register_spec(&page, ""))
}

async fn register(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut spec = register_spec(&page, &form.email);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "email", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    let client = client(&state, &headers, &peer);
    if !mail_limit_ok(&state, &client) {
        spec.errors
            .push(field_error(&page, "email", "rate_limited"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .register(&form.email, &form.password, page.lang.code(), &client)
        .await
    {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_register_done_title",
            "konto_register_done_text",
            None,
        ),
        Err(e) => refused(&page, &state, &headers, spec, e, "email"),
    }
}

pub(crate) fn mail_limit_ok(state: &AppState, client: &ClientInfo) -> bool {
    let ip = client
        .ip
        .as_deref()
        .and_then(|i| i.parse().ok())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    state.account_mail_limiter.check(ip).allowed
}

async fn verify(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let token = page.param("token").unwrap_or("").to_owned();
    match state
        .app
        .verify_email(&token, &client(&state, &headers, &peer))
        .await
    {
        Ok(true) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_verified_title",
            "konto_verified_text",
            Some(("/konto/anmelden", "konto_login_submit")),
        ),
        Ok(false) => message(
            &page,
            &state,
            StatusCode::BAD_REQUEST,
            "konto_link_invalid_title",
            "konto_link_invalid_text",
            Some(("/konto/anmelden", "konto_login_submit")),
        ),
        Err(e) => internal(&page, &state, e),
    }
}

// ---- login ----

fn login_spec<'a>(page: &Page, email: &str, next: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_login_title",
        "/konto/anmelden",
        "konto_login_submit",
        page,
    );
    spec.intro_key = if page.param("erneut").is_some() {
        "konto_login_again"
    } else {
        "konto_login_intro"
    };
    spec.fields = vec![
        Field::new(page, "email", "email", "username").value(email),
        Field::new(page, "password", "password", "current-password"),
    ];
    if safe_next(next).is_some() {
        spec.hidden.push(("weiter", next.to_owned()));
    }
    spec.links = vec![
        (
            format!("/konto/passwort-vergessen?lang={}", page.lang.code()),
            "konto_forgot_link",
        ),
        (
            format!("/konto/registrieren?lang={}", page.lang.code()),
            "konto_register_link",
        ),
    ];
    spec
}

async fn login_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let next = page.param("weiter").unwrap_or("").to_owned();
    let email = match any_session(&state, &headers).await {
        Some(s) if s.complete && page.param("erneut").is_some() => s.email,
        // An online service may name the account it expects (OIDC login_hint).
        _ => page
            .param("email")
            .filter(|e| e.len() <= 254)
            .unwrap_or("")
            .to_owned(),
    };
    render_form(&page, &state, &headers, login_spec(&page, &email, &next))
}

async fn login(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut spec = login_spec(&page, &form.email, &form.weiter);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "email", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    if form.email.trim().is_empty() {
        spec.errors
            .push(field_error(&page, "email", "email_missing"));
    }
    if form.password.is_empty() {
        spec.errors
            .push(field_error(&page, "password", "password_missing"));
    }
    if !spec.errors.is_empty() {
        return render_form(&page, &state, &headers, spec);
    }
    let client = client(&state, &headers, &peer);
    let outcome = match state.app.login(&form.email, &form.password, &client).await {
        Ok(o) => o,
        Err(e) => return internal(&page, &state, e),
    };
    let next = safe_next(&form.weiter).unwrap_or("/konto").to_owned();
    let previous = any_session(&state, &headers).await;
    match outcome {
        LoginOutcome::LoggedIn { token } => {
            if let Some(old) = previous {
                let _ = state.app.logout(&old, &client).await;
            }
            let mut res = Redirect::to(&with_lang(&next, &page)).into_response();
            set_session(&mut res, state.secure, &token);
            res
        }
        LoginOutcome::SecondFactor { token } => {
            if let Some(old) = previous {
                let _ = state.app.logout(&old, &client).await;
            }
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("lang", page.lang.code());
            q.append_pair("weiter", &next);
            let mut res =
                Redirect::to(&format!("/konto/anmelden/code?{}", q.finish())).into_response();
            set_session(&mut res, state.secure, &token);
            res
        }
        LoginOutcome::Failed => {
            spec.errors
                .push(field_error(&page, "email", "login_failed"));
            render_form(&page, &state, &headers, spec)
        }
        LoginOutcome::Throttled { retry_after_secs } => {
            spec.errors.push(FieldError {
                field: "email",
                message: page
                    .t("err_login_throttled")
                    .replace("{minutes}", &retry_after_secs.div_ceil(60).to_string()),
            });
            let mut res = render_form(&page, &state, &headers, spec);
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        LoginOutcome::Unverified => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_unverified_title",
            "konto_unverified_text",
            None,
        ),
    }
}

pub(crate) fn with_lang(path: &str, page: &Page) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}lang={}", page.lang.code())
}

fn code_spec<'a>(page: &Page, next: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_code_title",
        "/konto/anmelden/code",
        "konto_code_submit",
        page,
    );
    spec.intro_key = "konto_code_intro";
    let mut f = Field::new(page, "code", "text", "one-time-code");
    f.inputmode = "text";
    f.maxlength = 20;
    spec.fields = vec![f];
    if safe_next(next).is_some() {
        spec.hidden.push(("weiter", next.to_owned()));
    }
    spec
}

async fn code_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    match any_session(&state, &headers).await {
        Some(s) if !s.complete => {
            let next = page.param("weiter").unwrap_or("").to_owned();
            render_form(&page, &state, &headers, code_spec(&page, &next))
        }
        _ => Redirect::to(&format!("/konto/anmelden?lang={}", page.lang.code())).into_response(),
    }
}

async fn code(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut spec = code_spec(&page, &form.weiter);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "code", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    let Some(token) = session_token(&state, &headers) else {
        return Redirect::to(&format!("/konto/anmelden?lang={}", page.lang.code())).into_response();
    };
    if form.code.trim().is_empty() {
        spec.errors.push(field_error(&page, "code", "code_missing"));
        return render_form(&page, &state, &headers, spec);
    }
    let client = client(&state, &headers, &peer);
    match state
        .app
        .login_second_factor(token, &form.code, &client)
        .await
    {
        Ok(SecondFactorOutcome::LoggedIn { token }) => {
            let next = safe_next(&form.weiter).unwrap_or("/konto");
            let mut res = Redirect::to(&with_lang(next, &page)).into_response();
            set_session(&mut res, state.secure, &token);
            res
        }
        Ok(SecondFactorOutcome::Failed) => {
            spec.errors.push(field_error(&page, "code", "code_wrong"));
            render_form(&page, &state, &headers, spec)
        }
        Ok(SecondFactorOutcome::Throttled { retry_after_secs }) => {
            spec.errors.push(FieldError {
                field: "code",
                message: page
                    .t("err_login_throttled")
                    .replace("{minutes}", &retry_after_secs.div_ceil(60).to_string()),
            });
            let mut res = render_form(&page, &state, &headers, spec);
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            res
        }
        Ok(SecondFactorOutcome::Expired) => {
            let mut res =
                Redirect::to(&format!("/konto/anmelden?lang={}", page.lang.code())).into_response();
            clear_session(&mut res, state.secure);
            res
        }
        Err(e) => internal(&page, &state, e),
    }
}

async fn logout(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok(&state, &headers, &form) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    if let Some(s) = any_session(&state, &headers).await
        && let Err(e) = state.app.logout(&s, &client(&state, &headers, &peer)).await
    {
        return internal(&page, &state, e);
    }
    let mut res = message(
        &page,
        &state,
        StatusCode::OK,
        "konto_logged_out_title",
        "konto_logged_out_text",
        Some(("/konto/anmelden", "konto_login_submit")),
    );
    clear_session(&mut res, state.secure);
    res
}

async fn extend(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok(&state, &headers, &form) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let back = safe_next(&form.weiter).unwrap_or("/konto").to_owned();
    let session = match require_session(&state, &headers, &page, &back).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state.app.extend_session(&session).await {
        return internal(&page, &state, e);
    }
    Redirect::to(&with_lang(&back, &page)).into_response()
}

// ---- overview ----

async fn overview(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, "/konto").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let sessions = match state.app.list_sessions(&session).await {
        Ok(s) => s,
        Err(e) => return internal(&page, &state, e),
    };
    let events = match state.app.security_events(&session).await {
        Ok(e) => e,
        Err(e) => return internal(&page, &state, e),
    };
    let events: Vec<minijinja::Value> = events
        .into_iter()
        .map(|e| {
            let label = page.t(&format!("event_{}", e.kind));
            minijinja::Value::from_serialize(serde_json::json!({
                "at": short_time(&e.at),
                "what": if label.is_empty() { e.kind.clone() } else { label.to_owned() },
                "ip": e.ip,
                "user_agent": e.user_agent,
            }))
        })
        .collect();
    let sessions: Vec<minijinja::Value> = sessions
        .into_iter()
        .map(|s| {
            minijinja::Value::from_serialize(serde_json::json!({
                "id": s.public_id,
                "since": short_time(&s.created_at),
                "last_seen": short_time(&s.last_seen_at),
                "ip": s.ip,
                "user_agent": s.user_agent,
                "current": s.current,
            }))
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(&headers, state.secure);
    let acting_for = crate::org_pages::acting_name(&state, &headers, &session).await;
    let ctx = context! {
        page_title => page.t("konto_title"),
        acting_for,
        email => session.email,
        trust_level => session.trust_level.as_u8(),
        trust_name => session.trust_level.stork_uri(),
        methods => session.methods.iter().map(|m| page.t(&format!("method_{}", m.as_str()))).collect::<Vec<_>>(),
        totp_enabled => session.totp_enabled,
        postfach_ref => session.postfach_ref,
        idle_until => short_time(&store::ts(session.idle_expires_at)),
        sessions,
        events,
        csrf_token,
    };
    let mut res = page.render(&state, StatusCode::OK, "konto.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// `2026-11-25T08:15:30.123456Z` → `25.11.2026 08:15 UTC`.
pub(crate) fn short_time(ts: &str) -> String {
    let date = ts.get(0..10).unwrap_or("");
    let time = ts.get(11..16).unwrap_or("");
    let mut parts = date.split('-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d)) => format!("{d}.{m}.{y} {time} UTC"),
        _ => ts.to_owned(),
    }
}

async fn revoke(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok(&state, &headers, &form) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = match require_session(&state, &headers, &page, "/konto").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state
        .app
        .revoke_session(&session, &form.session, &client(&state, &headers, &peer))
        .await
    {
        return internal(&page, &state, e);
    }
    Redirect::to(&format!("/konto?lang={}#sitzungen", page.lang.code())).into_response()
}

// ---- password reset and change ----

fn forgot_spec<'a>(page: &Page, email: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_forgot_title",
        "/konto/passwort-vergessen",
        "konto_forgot_submit",
        page,
    );
    spec.intro_key = "konto_forgot_intro";
    spec.fields = vec![Field::new(page, "email", "email", "username").value(email)];
    spec
}

async fn forgot_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    render_form(&page, &state, &headers, forgot_spec(&page, ""))
}

async fn forgot(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut spec = forgot_spec(&page, &form.email);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "email", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    let client = client(&state, &headers, &peer);
    if !mail_limit_ok(&state, &client) {
        spec.errors
            .push(field_error(&page, "email", "rate_limited"));
        return render_form(&page, &state, &headers, spec);
    }
    match state.app.request_password_reset(&form.email, &client).await {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_forgot_done_title",
            "konto_forgot_done_text",
            None,
        ),
        Err(e) => refused(&page, &state, &headers, spec, e, "email"),
    }
}

fn reset_spec<'a>(page: &Page, token: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_reset_title",
        "/konto/passwort-neu",
        "konto_reset_submit",
        page,
    );
    spec.intro_key = "konto_reset_intro";
    spec.fields = vec![Field::new(page, "password", "password", "new-password")];
    spec.hidden.push(("token", token.to_owned()));
    spec
}

async fn reset_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let token = page.param("token").unwrap_or("").to_owned();
    match state.app.reset_token_valid(&token).await {
        Ok(true) => render_form(&page, &state, &headers, reset_spec(&page, &token)),
        Ok(false) => message(
            &page,
            &state,
            StatusCode::BAD_REQUEST,
            "konto_link_invalid_title",
            "konto_link_invalid_text",
            Some(("/konto/passwort-vergessen", "konto_forgot_link")),
        ),
        Err(e) => internal(&page, &state, e),
    }
}

async fn reset(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut spec = reset_spec(&page, &form.token);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "password", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .reset_password(
            &form.token,
            &form.password,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_reset_done_title",
            "konto_reset_done_text",
            Some(("/konto/anmelden", "konto_login_submit")),
        ),
        Err(AppError::Invalid(_)) => message(
            &page,
            &state,
            StatusCode::BAD_REQUEST,
            "konto_link_invalid_title",
            "konto_link_invalid_text",
            Some(("/konto/passwort-vergessen", "konto_forgot_link")),
        ),
        Err(e) => refused(&page, &state, &headers, spec, e, "password"),
    }
}

fn change_spec<'a>(page: &Page) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_change_title",
        "/konto/passwort-aendern",
        "konto_change_submit",
        page,
    );
    spec.fields = vec![
        Field::new(page, "current_password", "password", "current-password"),
        Field::new(page, "password", "password", "new-password"),
    ];
    spec.links = vec![(format!("/konto?lang={}", page.lang.code()), "konto_back")];
    spec
}

async fn change_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if let Err(r) = require_session(&state, &headers, &page, "/konto/passwort-aendern").await {
        return r;
    }
    render_form(&page, &state, &headers, change_spec(&page))
}

async fn change(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_session(&state, &headers, &page, "/konto/passwort-aendern").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut spec = change_spec(&page);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors
            .push(field_error(&page, "current_password", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .change_password(
            &session,
            &form.current_password,
            &form.password,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_change_done_title",
            "konto_change_done_text",
            Some(("/konto", "konto_back")),
        ),
        Err(e) => refused(&page, &state, &headers, spec, e, "password"),
    }
}

// ---- TOTP ----

async fn totp_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_recent(&state, &headers, &page, "/konto/zwei-faktor").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let setup = state.app.totp_begin(&session);
    render_totp(
        &page,
        &state,
        &headers,
        &setup.secret_base32,
        &setup.otpauth_uri,
        &setup.pending,
        Vec::new(),
        session.totp_enabled,
    )
}

#[allow(clippy::too_many_arguments)]
fn render_totp(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    secret: &str,
    uri: &str,
    pending: &str,
    errors: Vec<FieldError>,
    enabled: bool,
) -> Response {
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let mut code = Field::new(page, "code", "text", "one-time-code");
    code.inputmode = "numeric";
    code.maxlength = 10;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // Grouped in fours, as authenticator apps show it, so it can be typed without mistakes.
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let ctx = context! {
        page_title => page.t("konto_totp_title"),
        secret => grouped.join(" "),
        otpauth_uri => uri,
        pending,
        fields => vec![code],
        errors,
        enabled,
        csrf_token,
    };
    let mut res = page.render(state, status, "konto_totp.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn totp_confirm(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_recent(&state, &headers, &page, "/konto/zwei-faktor").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let again = |errors: Vec<FieldError>| {
        let setup = state.app.totp_begin(&session);
        render_totp(
            &page,
            &state,
            &headers,
            &setup.secret_base32,
            &setup.otpauth_uri,
            &setup.pending,
            errors,
            session.totp_enabled,
        )
    };
    if !csrf_ok(&state, &headers, &form) {
        return again(vec![field_error(&page, "code", "csrf")]);
    }
    match state
        .app
        .totp_confirm(
            &session,
            &form.pending,
            &form.code,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(codes) => {
            let ctx = context! { page_title => page.t("konto_recovery_title"), codes };
            page.render(&state, StatusCode::OK, "konto_recovery.html", ctx)
        }
        Err(AppError::InvalidField { .. }) => {
            // Keep the same secret: the user has probably added it to the app already.
            let errors = vec![field_error(&page, "code", "code_wrong")];
            match state.app.totp_pending_view(&session, &form.pending) {
                Some(setup) => render_totp(
                    &page,
                    &state,
                    &headers,
                    &setup.secret_base32,
                    &setup.otpauth_uri,
                    &setup.pending,
                    errors,
                    session.totp_enabled,
                ),
                None => again(errors),
            }
        }
        Err(AppError::Invalid(_)) => again(vec![field_error(&page, "code", "totp_setup_invalid")]),
        Err(e) => internal(&page, &state, e),
    }
}

async fn totp_off(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok(&state, &headers, &form) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = match require_recent(&state, &headers, &page, "/konto").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .totp_disable(&session, &client(&state, &headers, &peer))
        .await
    {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_totp_off_title",
            "konto_totp_off_text",
            Some(("/konto", "konto_back")),
        ),
        Err(e) => internal(&page, &state, e),
    }
}

// ---- e-mail change ----

fn email_spec<'a>(page: &Page, email: &str) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_email_title",
        "/konto/email-aendern",
        "konto_email_submit",
        page,
    );
    spec.intro_key = "konto_email_intro";
    let mut f = Field::new(page, "email", "email", "email").value(email);
    f.label = page.t("konto_field_new_email");
    spec.fields = vec![f];
    spec.links = vec![(format!("/konto?lang={}", page.lang.code()), "konto_back")];
    spec
}

async fn email_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if let Err(r) = require_recent(&state, &headers, &page, "/konto/email-aendern").await {
        return r;
    }
    render_form(&page, &state, &headers, email_spec(&page, ""))
}

async fn email_change(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_recent(&state, &headers, &page, "/konto/email-aendern").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut spec = email_spec(&page, &form.email);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "email", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    let client = client(&state, &headers, &peer);
    if !mail_limit_ok(&state, &client) {
        spec.errors
            .push(field_error(&page, "email", "rate_limited"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .request_email_change(&session, &form.email, &client)
        .await
    {
        Ok(()) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_email_sent_title",
            "konto_email_sent_text",
            Some(("/konto", "konto_back")),
        ),
        Err(e) => refused(&page, &state, &headers, spec, e, "email"),
    }
}

async fn email_confirm(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let token = page.param("token").unwrap_or("").to_owned();
    match state
        .app
        .confirm_email_change(&token, &client(&state, &headers, &peer))
        .await
    {
        Ok(true) => message(
            &page,
            &state,
            StatusCode::OK,
            "konto_email_changed_title",
            "konto_email_changed_text",
            Some(("/konto", "konto_back")),
        ),
        Ok(false) => message(
            &page,
            &state,
            StatusCode::BAD_REQUEST,
            "konto_link_invalid_title",
            "konto_link_invalid_text",
            None,
        ),
        Err(AppError::Conflict(_)) => message(
            &page,
            &state,
            StatusCode::CONFLICT,
            "konto_email_taken_title",
            "konto_email_taken_text",
            None,
        ),
        Err(e) => internal(&page, &state, e),
    }
}

// ---- export and deletion ----

async fn export(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_recent(&state, &headers, &page, "/konto/export").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .export_account(&session, &client(&state, &headers, &peer))
        .await
    {
        Ok(json) => {
            let body = serde_json::to_vec_pretty(&json).unwrap_or_default();
            let mut res = body.into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"servicekonto-export.json\""),
            );
            res
        }
        Err(e) => internal(&page, &state, e),
    }
}

fn delete_spec<'a>(page: &Page) -> FormSpec<'a> {
    let mut spec = FormSpec::new(
        "konto_delete_title",
        "/konto/loeschen",
        "konto_delete_submit",
        page,
    );
    spec.intro_key = "konto_delete_intro";
    spec.fields = vec![Field::new(page, "password", "password", "current-password")];
    spec.links = vec![(format!("/konto?lang={}", page.lang.code()), "konto_back")];
    spec
}

async fn delete_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if let Err(r) = require_session(&state, &headers, &page, "/konto/loeschen").await {
        return r;
    }
    render_form(&page, &state, &headers, delete_spec(&page))
}

async fn delete(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_session(&state, &headers, &page, "/konto/loeschen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut spec = delete_spec(&page);
    if !csrf_ok(&state, &headers, &form) {
        spec.errors.push(field_error(&page, "password", "csrf"));
        return render_form(&page, &state, &headers, spec);
    }
    match state
        .app
        .delete_account(&session, &form.password, &client(&state, &headers, &peer))
        .await
    {
        Ok(()) => {
            let mut res = message(
                &page,
                &state,
                StatusCode::OK,
                "konto_deleted_title",
                "konto_deleted_text",
                None,
            );
            clear_session(&mut res, state.secure);
            res
        }
        Err(e) => refused(&page, &state, &headers, spec, e, "password"),
    }
}

// ---- demo ----

/// Demo mode only: the mails the platform sent, so that verification and reset links can be
/// followed without a mail server.
async fn demo_mails(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    if !state.config.demo {
        return page.error(&state, StatusCode::NOT_FOUND);
    }
    match state.app.outbox(50).await {
        Ok(mails) => {
            let mails: Vec<minijinja::Value> = mails
                .into_iter()
                .map(|m| {
                    let lines: Vec<serde_json::Value> = m
                        .body_text
                        .lines()
                        .map(|l| {
                            let link = l.starts_with("http://") || l.starts_with("https://");
                            serde_json::json!({"text": l, "link": link && !l.contains(' ')})
                        })
                        .collect();
                    minijinja::Value::from_serialize(serde_json::json!({
                        "subject": m.subject,
                        "recipient": m.recipient,
                        "created_at": short_time(&m.created_at),
                        "status": m.status,
                        "lines": lines,
                    }))
                })
                .collect();
            let ctx = context! { page_title => page.t("demo_mails_title"), mails };
            page.render(&state, StatusCode::OK, "demo_mails.html", ctx)
        }
        Err(e) => internal(&page, &state, e),
    }
}
