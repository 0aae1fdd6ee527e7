//! Organisation pages: the list of one's organisations (create one, choose whom to act
//! for), an organisation's page (members, invitations, roles, Postfach permission, leave),
//! and the page behind an invitation link.
//!
//! **Acting for an organisation.** The choice lives in a cookie (`acting_for`, `__Host-`
//! prefixed over HTTPS; HttpOnly, SameSite=Lax, no expiry: it ends with the browser) whose
//! value is `<organisation id>.<session public id>`. It is bound to the session: a new login
//! (another public id) ignores it, so the next person on the same browser never acts for an
//! organisation they did not choose. It grants nothing by itself: [`acting_for`] checks the
//! membership on every request, so a forged or stale cookie (member removed, left) is
//! ignored. No table change was needed for it.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use app::{AppError, InvitationState, Membership, OrgRole, Session};

use crate::AppState;
use crate::account_pages::{
    FormSpec, client, csrf_ok_token, field_error, form_errors, internal, message, render_form,
    require_session, safe_next, short_time, with_lang,
};
use crate::middleware::Peer;
use crate::pages::{FieldError, Page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/konto/organisationen", get(list).post(create))
        .route("/konto/organisationen/handeln", post(act))
        .route("/konto/organisationen/{id}", get(show))
        .route("/konto/organisationen/{id}/einladen", post(invite))
        .route("/konto/organisationen/{id}/mitglieder", post(update_member))
        .route("/konto/organisationen/{id}/entfernen", post(remove_member))
        .route(
            "/konto/organisationen/{id}/einladung-zurueckziehen",
            post(withdraw),
        )
        .route("/konto/organisationen/{id}/verlassen", post(leave))
        .route("/konto/einladung", get(invitation).post(accept))
        .layer(DefaultBodyLimit::max(16 * 1024))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OrgForm {
    csrf_token: String,
    name: String,
    email: String,
    role: String,
    postfach_access: String,
    member: String,
    invitation: String,
    organisation: String,
    weiter: String,
    token: String,
}

impl OrgForm {
    fn postfach(&self) -> bool {
        !self.postfach_access.is_empty()
    }
}

fn acting_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-acting_for"
    } else {
        "acting_for"
    }
}

/// The organisation this session acts for, if it chose one and still belongs to it.
pub(crate) async fn acting_for(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
) -> Option<Membership> {
    let raw = crate::csrf::read_cookie(headers, acting_cookie(state.secure))?;
    let (org_id, public_id) = raw.split_once('.')?;
    if public_id != session.public_id || org_id.is_empty() || org_id.len() > 64 {
        return None;
    }
    match state.app.membership(session, org_id).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "membership lookup failed");
            None
        }
    }
}

/// The name of the organisation the session acts for (for page headings).
pub(crate) async fn acting_name(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
) -> Option<String> {
    acting_for(state, headers, session)
        .await
        .map(|m| m.organisation.name)
}

fn set_acting(res: &mut Response, secure: bool, value: Option<&str>) {
    let attrs = if secure { "; Secure" } else { "" };
    let cookie = match value {
        Some(v) => format!(
            "{}={v}; Path=/; HttpOnly; SameSite=Lax{attrs}",
            acting_cookie(secure)
        ),
        None => format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{attrs}",
            acting_cookie(secure)
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn with_csrf(mut res: Response, set_cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn role_label(page: &Page, role: OrgRole) -> &'static str {
    page.t(&format!("org_role_{}", role.as_str()))
}

/// An e-mail address in pieces that may wrap after `@` and `.` (joined with `<wbr>` in the
/// template), so a long address does not make a phone screen scroll sideways.
fn breakable(email: &str) -> Vec<&str> {
    email.split_inclusive(['@', '.']).collect()
}

/// Ids in paths are UUIDs; anything else cannot name an organisation.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The notice after a redirect (`?gesendet=<code>`), for the codes we know.
fn notice(page: &Page) -> Option<&'static str> {
    let code = page.param("gesendet")?;
    let text = page.t(&format!("org_done_{code}"));
    (!text.is_empty()).then_some(text)
}

// ---- the list ----

async fn list(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, "/konto/organisationen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_list(&page, &state, &headers, &session, "", Vec::new()).await
}

async fn render_list(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    name: &str,
    errors: Vec<FieldError>,
) -> Response {
    let memberships = match state.app.organisations(session).await {
        Ok(m) => m,
        Err(e) => return internal(page, state, e),
    };
    let acting = acting_for(state, headers, session).await;
    let acting_id = acting.as_ref().map(|m| m.organisation.id.clone());
    let rows: Vec<minijinja::Value> = memberships
        .iter()
        .map(|m| {
            minijinja::Value::from_serialize(serde_json::json!({
                "id": m.organisation.id,
                "name": m.organisation.name,
                "role": role_label(page, m.role),
                "postfach": m.postfach_access,
                "acting": acting_id.as_deref() == Some(m.organisation.id.as_str()),
            }))
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = context! {
        page_title => page.t("org_list_title"),
        acting_for => acting.map(|m| m.organisation.name),
        organisations => rows,
        name => name.chars().take(200).collect::<String>(),
        errors,
        notice => notice(page),
        csrf_token,
    };
    with_csrf(
        page.render(state, status, "konto_organisationen.html", ctx),
        set_cookie,
    )
}

async fn create(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_session(&state, &headers, &page, "/konto/organisationen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        let errors = vec![field_error(&page, "name", "csrf")];
        return render_list(&page, &state, &headers, &session, &form.name, errors).await;
    }
    match state
        .app
        .create_organisation(&session, &form.name, &client(&state, &headers, &peer))
        .await
    {
        Ok(org) => Redirect::to(&with_lang(
            &format!("/konto/organisationen/{}?gesendet=angelegt", org.id),
            &page,
        ))
        .into_response(),
        Err(e) => match form_errors(&page, e, "name") {
            Ok(errors) => render_list(&page, &state, &headers, &session, &form.name, errors).await,
            Err(e) => internal(&page, &state, e),
        },
    }
}

/// Chooses whom the session acts for: an organisation (by id) or, with none, oneself.
async fn act(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = match require_session(&state, &headers, &page, "/konto/organisationen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let back = safe_next(&form.weiter)
        .unwrap_or("/konto/organisationen")
        .to_owned();
    let value = if form.organisation.is_empty() {
        None
    } else {
        if !plausible_id(&form.organisation) {
            return page.error(&state, StatusCode::NOT_FOUND);
        }
        match state.app.membership(&session, &form.organisation).await {
            Ok(Some(m)) => Some(format!("{}.{}", m.organisation.id, session.public_id)),
            Ok(None) => return page.error(&state, StatusCode::NOT_FOUND),
            Err(e) => return internal(&page, &state, e),
        }
    };
    let mut res = Redirect::to(&with_lang(&back, &page)).into_response();
    set_acting(&mut res, state.secure, value.as_deref());
    res
}

// ---- one organisation ----

/// What the invitation form holds when it comes back with errors.
#[derive(Default)]
struct InviteValues {
    email: String,
    owner: bool,
    postfach: bool,
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let back = format!("/konto/organisationen/{id}");
    let session = match require_session(&state, &headers, &page, &back).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_org(
        &page,
        &state,
        &headers,
        &session,
        &id,
        Vec::new(),
        &InviteValues::default(),
    )
    .await
}

async fn render_org(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    id: &str,
    errors: Vec<FieldError>,
    invite: &InviteValues,
) -> Response {
    if !plausible_id(id) {
        return page.error(state, StatusCode::NOT_FOUND);
    }
    let view = match state.app.organisation_view(session, id).await {
        Ok(v) => v,
        Err(AppError::NotFound(_)) => return page.error(state, StatusCode::NOT_FOUND),
        Err(e) => return internal(page, state, e),
    };
    let owner = view.me.role == OrgRole::Owner;
    let owners = view
        .members
        .iter()
        .filter(|m| m.role == OrgRole::Owner)
        .count();
    let members: Vec<minijinja::Value> = view
        .members
        .iter()
        .map(|m| {
            let me = m.account_id == session.account_id;
            minijinja::Value::from_serialize(serde_json::json!({
                "account_id": m.account_id,
                "email": m.email,
                "email_parts": breakable(&m.email),
                "role": m.role.as_str(),
                "role_label": role_label(page, m.role),
                "postfach": m.postfach_access,
                "joined": short_time(&m.joined_at),
                "me": me,
                // The last owner can be neither demoted nor removed: no buttons that fail.
                "last_owner": m.role == OrgRole::Owner && owners <= 1,
            }))
        })
        .collect();
    let invitations: Vec<minijinja::Value> = view
        .invitations
        .iter()
        .map(|i| {
            minijinja::Value::from_serialize(serde_json::json!({
                "id": i.id,
                "email": i.email,
                "email_parts": breakable(&i.email),
                "role_label": role_label(page, i.role),
                "postfach": i.postfach_access,
                "expires": short_time(&i.expires_at),
            }))
        })
        .collect();
    let acting = acting_for(state, headers, session).await;
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = context! {
        page_title => view.organisation.name.clone(),
        org => context! {
            id => view.organisation.id.clone(),
            name => view.organisation.name.clone(),
            postfach_ref => view.organisation.postfach_ref.clone(),
            created => short_time(&view.organisation.created_at),
        },
        my_role => role_label(page, view.me.role),
        my_postfach => view.me.postfach_access,
        owner,
        i_am_last_owner => owner && owners <= 1,
        acting_here => acting.as_ref().is_some_and(|m| m.organisation.id == view.organisation.id),
        acting_for => acting.map(|m| m.organisation.name),
        members,
        invitations,
        invite_email => invite.email.chars().take(254).collect::<String>(),
        invite_owner => invite.owner,
        invite_postfach => invite.postfach,
        errors,
        notice => notice(page),
        csrf_token,
    };
    with_csrf(
        page.render(state, status, "konto_organisation.html", ctx),
        set_cookie,
    )
}

/// The common start of every POST on an organisation: the session and the CSRF check.
/// On failure, the response to send.
async fn org_post(
    state: &AppState,
    headers: &HeaderMap,
    page: &Page,
    id: &str,
    form: &OrgForm,
) -> Result<Session, Response> {
    let session =
        require_session(state, headers, page, &format!("/konto/organisationen/{id}")).await?;
    if !plausible_id(id) {
        return Err(page.error(state, StatusCode::NOT_FOUND));
    }
    if !csrf_ok_token(state, headers, &form.csrf_token) {
        return Err(page.error(state, StatusCode::FORBIDDEN));
    }
    Ok(session)
}

fn done(page: &Page, id: &str, code: &str) -> Response {
    Redirect::to(&with_lang(
        &format!("/konto/organisationen/{id}?gesendet={code}"),
        page,
    ))
    .into_response()
}

/// Maps an error of an owner's action to the message shown above the members table.
fn member_error(page: &Page, e: &AppError) -> Option<FieldError> {
    match e {
        AppError::Conflict(code) | AppError::Invalid(code) => {
            Some(field_error(page, "mitglieder", code))
        }
        AppError::NotFound(_) => Some(field_error(page, "mitglieder", "member_not_found")),
        _ => None,
    }
}

async fn invite(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let values = InviteValues {
        email: form.email.clone(),
        owner: form.role == "owner",
        postfach: form.postfach(),
    };
    let session = match require_session(
        &state,
        &headers,
        &page,
        &format!("/konto/organisationen/{id}"),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        let errors = vec![field_error(&page, "email", "csrf")];
        return render_org(&page, &state, &headers, &session, &id, errors, &values).await;
    }
    let client = client(&state, &headers, &peer);
    if !crate::account_pages::mail_limit_ok(&state, &client) {
        let errors = vec![field_error(&page, "email", "rate_limited")];
        return render_org(&page, &state, &headers, &session, &id, errors, &values).await;
    }
    let role = OrgRole::parse(&form.role).unwrap_or(OrgRole::Member);
    match state
        .app
        .invite_member(&session, &id, &form.email, role, form.postfach(), &client)
        .await
    {
        Ok(()) => done(&page, &id, "eingeladen"),
        Err(AppError::NotFound(_)) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => match form_errors(&page, e, "email") {
            Ok(errors) => render_org(&page, &state, &headers, &session, &id, errors, &values).await,
            Err(e) => internal(&page, &state, e),
        },
    }
}

async fn update_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match org_post(&state, &headers, &page, &id, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(role) = OrgRole::parse(&form.role) else {
        return page.error(&state, StatusCode::BAD_REQUEST);
    };
    match state
        .app
        .update_member(
            &session,
            &id,
            &form.member,
            role,
            form.postfach(),
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(()) => done(&page, &id, "geaendert"),
        Err(e) => match member_error(&page, &e) {
            Some(err) => {
                let values = InviteValues::default();
                render_org(&page, &state, &headers, &session, &id, vec![err], &values).await
            }
            None => internal(&page, &state, e),
        },
    }
}

async fn remove_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match org_post(&state, &headers, &page, &id, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let client = client(&state, &headers, &peer);
    match state
        .app
        .remove_member(&session, &id, &form.member, &client)
        .await
    {
        // Removing oneself is leaving: back to the list, where the organisation is gone.
        Ok(()) if form.member == session.account_id => Redirect::to(&with_lang(
            "/konto/organisationen?gesendet=verlassen",
            &page,
        ))
        .into_response(),
        Ok(()) => done(&page, &id, "entfernt"),
        Err(e) => match member_error(&page, &e) {
            Some(err) => {
                let values = InviteValues::default();
                render_org(&page, &state, &headers, &session, &id, vec![err], &values).await
            }
            None => internal(&page, &state, e),
        },
    }
}

async fn withdraw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match org_post(&state, &headers, &page, &id, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .withdraw_invitation(
            &session,
            &id,
            &form.invitation,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(_) => done(&page, &id, "zurueckgezogen"),
        Err(e) => match member_error(&page, &e) {
            Some(err) => {
                let values = InviteValues::default();
                render_org(&page, &state, &headers, &session, &id, vec![err], &values).await
            }
            None => internal(&page, &state, e),
        },
    }
}

async fn leave(
    State(state): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match org_post(&state, &headers, &page, &id, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .leave_organisation(&session, &id, &client(&state, &headers, &peer))
        .await
    {
        Ok(()) => Redirect::to(&with_lang(
            "/konto/organisationen?gesendet=verlassen",
            &page,
        ))
        .into_response(),
        Err(AppError::NotFound(_)) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => match member_error(&page, &e) {
            Some(err) => {
                let values = InviteValues::default();
                render_org(&page, &state, &headers, &session, &id, vec![err], &values).await
            }
            None => internal(&page, &state, e),
        },
    }
}

// ---- the invitation link ----

fn invitation_problem(page: &Page, state: &AppState, code: &str) -> Response {
    let (status, text) = match code {
        "invitation_expired" => (StatusCode::GONE, "org_invitation_expired_text"),
        "invitation_used" => (StatusCode::GONE, "org_invitation_used_text"),
        "invitation_wrong_email" => (StatusCode::FORBIDDEN, "org_invitation_wrong_email_text"),
        "already_member" => (StatusCode::CONFLICT, "org_invitation_already_member_text"),
        _ => (StatusCode::BAD_REQUEST, "org_invitation_invalid_text"),
    };
    message(
        page,
        state,
        status,
        "org_invitation_problem_title",
        text,
        Some(("/konto/organisationen", "org_list_title")),
    )
}

async fn invitation(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let token = page.param("token").unwrap_or("").to_owned();
    let back = format!(
        "/konto/einladung?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &token)
            .finish()
    );
    let session = match require_session(&state, &headers, &page, &back).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let info = match state.app.invitation_info(&token).await {
        Ok(Some(i)) => i,
        Ok(None) => return invitation_problem(&page, &state, "invitation_invalid"),
        Err(e) => return internal(&page, &state, e),
    };
    match info.state {
        InvitationState::Accepted => return invitation_problem(&page, &state, "invitation_used"),
        InvitationState::Expired => {
            return invitation_problem(&page, &state, "invitation_expired");
        }
        InvitationState::Open => {}
    }
    if info.email != session.email {
        return invitation_problem(&page, &state, "invitation_wrong_email");
    }
    let mut spec = FormSpec::new(
        "org_invitation_title",
        "/konto/einladung",
        "org_invitation_accept",
        &page,
    );
    let access = if info.postfach_access {
        page.t("org_invitation_with_postfach")
    } else {
        ""
    };
    spec.notice = Some(
        page.t("org_invitation_text")
            .replace("{organisation}", &info.organisation.name)
            .replace("{role}", role_label(&page, info.role))
            .replace("{expires}", &short_time(&info.expires_at))
            + access,
    );
    spec.hidden.push(("token", token));
    spec.links = vec![(
        format!("/konto/organisationen?lang={}", page.lang.code()),
        "org_invitation_decline",
    )];
    render_form(&page, &state, &headers, spec)
}

async fn accept(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<OrgForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return page.error(&state, StatusCode::FORBIDDEN);
    }
    let session = match require_session(&state, &headers, &page, "/konto/organisationen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .accept_invitation(&session, &form.token, &client(&state, &headers, &peer))
        .await
    {
        Ok(org) => done(&page, &org.id, "beigetreten"),
        Err(AppError::Invalid(code) | AppError::Conflict(code)) => {
            invitation_problem(&page, &state, &code)
        }
        Err(e) => internal(&page, &state, e),
    }
}
