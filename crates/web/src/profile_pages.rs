//! The profile page (the values online services may prefill, each marked self-declared or
//! verified) and the consents page (which services may read what; revocable).

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::{Deserialize, Serialize};

use app::{Profile, ProfileInput, Session, ValueStatus};

use crate::AppState;
use crate::account_pages::{
    client, csrf_ok_token, field_error, internal, require_session, short_time, with_lang,
};
use crate::middleware::Peer;
use crate::pages::{FieldError, Page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/konto/profil", get(profile_form).post(profile_save))
        .route("/konto/einwilligungen", get(consents))
        .route("/konto/einwilligungen/widerrufen", post(revoke))
        .layer(DefaultBodyLimit::max(16 * 1024))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProfileForm {
    csrf_token: String,
    #[serde(flatten)]
    input: ProfileInput,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConsentForm {
    csrf_token: String,
    client_id: String,
}

/// One input of the profile form.
#[derive(Serialize)]
struct ProfileField {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    value: String,
    autocomplete: &'static str,
    maxlength: u32,
    inputmode: &'static str,
    /// "Self-declared" or "Verified by …"; empty for an empty value.
    status: String,
    verified: bool,
}

fn status_text(page: &Page, profile: &Profile, attribute: &str, typed: &str) -> (String, bool) {
    match profile.get(attribute) {
        // The status belongs to the stored value; once the form holds another value, saving
        // it makes it self-declared.
        Some(v) if v.value == typed || attribute == "birthdate" => match v.status {
            ValueStatus::Verified => (
                page.t("profile_status_verified").replace(
                    "{by}",
                    v.verified_by
                        .as_deref()
                        .unwrap_or(page.t("profile_status_unknown_source")),
                ),
                true,
            ),
            ValueStatus::SelfDeclared => (page.t("profile_status_self").to_owned(), false),
        },
        _ => (String::new(), false),
    }
}

fn field(
    page: &Page,
    profile: &Profile,
    name: &'static str,
    value: &str,
    autocomplete: &'static str,
    maxlength: u32,
) -> ProfileField {
    let (status, verified) = status_text(page, profile, name, value.trim());
    ProfileField {
        name,
        label: page.t(&format!("profile_field_{name}")),
        hint: page.t(&format!("profile_hint_{name}")),
        value: value.chars().take(maxlength as usize).collect(),
        autocomplete,
        maxlength,
        inputmode: "",
        status,
        verified,
    }
}

fn render_profile(
    page: &Page,
    state: &AppState,
    headers: &HeaderMap,
    profile: &Profile,
    input: &ProfileInput,
    errors: Vec<FieldError>,
    acting_for: Option<String>,
) -> Response {
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let name = vec![
        field(
            page,
            profile,
            "given_name",
            &input.given_name,
            "given-name",
            100,
        ),
        field(
            page,
            profile,
            "family_name",
            &input.family_name,
            "family-name",
            100,
        ),
    ];
    let address = vec![
        field(
            page,
            profile,
            "street_address",
            &input.street_address,
            "street-address",
            200,
        ),
        {
            let mut f = field(
                page,
                profile,
                "postal_code",
                &input.postal_code,
                "postal-code",
                10,
            );
            f.inputmode = "numeric";
            f
        },
        field(
            page,
            profile,
            "locality",
            &input.locality,
            "address-level2",
            100,
        ),
        field(
            page,
            profile,
            "country",
            &input.country,
            "country-name",
            100,
        ),
    ];
    let mut phone = field(
        page,
        profile,
        "phone_number",
        &input.phone_number,
        "tel",
        30,
    );
    phone.inputmode = "tel";
    let (birth_status, birth_verified) = status_text(page, profile, "birthdate", "");
    let birth = context! {
        day => input.birth_day.chars().take(2).collect::<String>(),
        month => input.birth_month.chars().take(2).collect::<String>(),
        year => input.birth_year.chars().take(4).collect::<String>(),
        status => birth_status,
        verified => birth_verified,
    };
    let notice = (page.param("gesendet") == Some("gespeichert")).then(|| page.t("profile_saved"));
    let ctx = context! {
        page_title => page.t("profile_title"),
        name_fields => name,
        address_fields => address,
        phone => phone,
        birth,
        errors,
        notice,
        acting_for,
        csrf_token,
    };
    let mut res = page.render(state, status, "konto_profil.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn load(state: &AppState, session: &Session) -> app::Result<Profile> {
    state.app.profile(&session.account_id).await
}

async fn profile_form(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, "/konto/profil").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let profile = match load(&state, &session).await {
        Ok(p) => p,
        Err(e) => return internal(&page, &state, e),
    };
    let input = ProfileInput::from_profile(&profile);
    let acting = crate::org_pages::acting_name(&state, &headers, &session).await;
    render_profile(
        &page,
        &state,
        &headers,
        &profile,
        &input,
        Vec::new(),
        acting,
    )
}

async fn profile_save(
    State(state): State<AppState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<ProfileForm>, FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match require_session(&state, &headers, &page, "/konto/profil").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let profile = match load(&state, &session).await {
        Ok(p) => p,
        Err(e) => return internal(&page, &state, e),
    };
    let acting = crate::org_pages::acting_name(&state, &headers, &session).await;
    let again = |errors: Vec<FieldError>, acting: Option<String>| {
        render_profile(
            &page,
            &state,
            &headers,
            &profile,
            &form.input,
            errors,
            acting,
        )
    };
    if !csrf_ok_token(&state, &headers, &form.csrf_token) {
        return again(vec![field_error(&page, "given_name", "csrf")], acting);
    }
    // Every problem at once, in the order of the form.
    let today = time::OffsetDateTime::now_utc().date();
    if let Err(problems) = form.input.validate(today) {
        let errors = problems
            .iter()
            .map(|p| field_error(&page, p.field, p.code))
            .collect();
        return again(errors, acting);
    }
    match state
        .app
        .update_profile(&session, &form.input, &client(&state, &headers, &peer))
        .await
    {
        Ok(_) => {
            Redirect::to(&with_lang("/konto/profil?gesendet=gespeichert", &page)).into_response()
        }
        Err(app::AppError::InvalidField { field, message }) => {
            again(vec![field_error(&page, field, &message)], acting)
        }
        Err(e) => internal(&page, &state, e),
    }
}

// ---- consents ----

async fn consents(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, "/konto/einwilligungen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let list = match state.app.consents(&session.account_id).await {
        Ok(l) => l,
        Err(e) => return internal(&page, &state, e),
    };
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|c| {
            let scopes: Vec<String> = c
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .map(|s| {
                    let label = page.t(&format!("consent_scope_{s}"));
                    if label.is_empty() {
                        s.clone()
                    } else {
                        label.to_owned()
                    }
                })
                .collect();
            minijinja::Value::from_serialize(serde_json::json!({
                "client_id": c.client_id,
                "client_name": c.client_name,
                "scopes": scopes,
                "since": short_time(&c.granted_at),
            }))
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(&headers, state.secure);
    let notice =
        (page.param("gesendet") == Some("widerrufen")).then(|| page.t("consent_revoked_notice"));
    let ctx = context! {
        page_title => page.t("consent_title"),
        consents => rows,
        notice,
        acting_for => crate::org_pages::acting_name(&state, &headers, &session).await,
        csrf_token,
    };
    let mut res = page.render(&state, StatusCode::OK, "konto_einwilligungen.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn revoke(
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
    let session = match require_session(&state, &headers, &page, "/konto/einwilligungen").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state
        .app
        .revoke_consent_from(
            &session.account_id,
            &form.client_id,
            &client(&state, &headers, &peer),
        )
        .await
    {
        Ok(_) => Redirect::to(&with_lang(
            "/konto/einwilligungen?gesendet=widerrufen",
            &page,
        ))
        .into_response(),
        Err(e) => internal(&page, &state, e),
    }
}
