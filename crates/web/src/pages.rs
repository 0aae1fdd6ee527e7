//! The citizen-facing pages: home, Zuständigkeitsfinder, authority pages, legal pages with
//! the barrier feedback form. Server-rendered; they work without JavaScript.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use domain::{Ars, Leistungsschluessel};
use minijinja::context;
use serde::{Deserialize, Serialize};
use verzeichnis::{Authority, Directory, Place};

use crate::AppState;
use crate::i18n::Lang;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/zustaendigkeit", get(finder))
        .route("/behoerden/{ars}", get(authority_page))
        .route("/behoerden/{ars}/{kind}", get(legal_page).post(feedback))
        .route("/static/app.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(64 * 1024))
}

const MAX_TEXT: usize = 200;
const MAX_CHOICES: usize = 10;

/// What every page needs to know about the request.
pub(crate) struct Page {
    pub(crate) lang: Lang,
    path: String,
    params: Vec<(String, String)>,
    set_lang_cookie: bool,
}

impl Page {
    pub(crate) fn new(uri: &Uri, headers: &HeaderMap) -> Page {
        let params: Vec<(String, String)> = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .take(50)
                    .collect()
            })
            .unwrap_or_default();
        let query_lang = params
            .iter()
            .find(|(k, _)| k == "lang")
            .map(|(_, v)| v.as_str());
        let lang = Lang::negotiate(query_lang, headers);
        Page {
            lang,
            path: uri.path().to_owned(),
            set_lang_cookie: query_lang.and_then(Lang::parse).is_some(),
            params,
        }
    }

    /// This page in `lang` unless the query chose a language (OIDC `ui_locales`).
    pub(crate) fn prefer_lang(mut self, lang: Option<&str>) -> Page {
        if self.param("lang").is_none()
            && let Some(l) = lang.and_then(Lang::parse)
        {
            self.lang = l;
        }
        self
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    fn lang_links(&self) -> Vec<minijinja::Value> {
        Lang::ALL
            .iter()
            .map(|l| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for (k, v) in self
                    .params
                    .iter()
                    .filter(|(k, _)| k != "lang" && k != "gesendet")
                {
                    q.append_pair(k, v);
                }
                q.append_pair("lang", l.code());
                minijinja::Value::from_serialize(serde_json::json!({
                    "code": l.code(),
                    "name": l.t("lang_name"),
                    "html_lang": l.html_lang(),
                    "href": format!("{}?{}", self.path, q.finish()),
                    "current": *l == self.lang,
                }))
            })
            .collect()
    }

    pub(crate) fn render(
        &self,
        state: &AppState,
        status: StatusCode,
        template: &str,
        ctx: minijinja::Value,
    ) -> Response {
        let base = context! {
            t => minijinja::Value::from_serialize(self.lang.texts()),
            html_lang => self.lang.html_lang(),
            lang_query => format!("?lang={}", self.lang.code()),
            lang_param => self.lang.code(),
            lang_links => self.lang_links(),
            demo => state.config.demo,
            operator_ars => &state.config.operator_ars,
        };
        let merged = context! { ..ctx, ..base };
        match state.templates.render(template, merged) {
            Ok(html) => {
                let mut res = (status, html).into_response();
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(
                    header::VARY,
                    HeaderValue::from_static("Accept-Language, Cookie"),
                );
                if self.set_lang_cookie
                    && let Ok(v) = HeaderValue::from_str(&format!(
                        "lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
                        self.lang.code()
                    ))
                {
                    h.append(header::SET_COOKIE, v);
                }
                res
            }
            Err(e) => {
                tracing::error!(error = %e, template, "template rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
            }
        }
    }

    pub(crate) fn error(&self, state: &AppState, status: StatusCode) -> Response {
        let (heading, text) = if status == StatusCode::NOT_FOUND {
            (self.t("not_found_title"), self.t("not_found_text"))
        } else {
            (self.t("error_title"), self.t("error_text"))
        };
        self.render(state, status, "error.html", context! { heading, text })
    }
}

#[derive(Serialize)]
pub(crate) struct FieldError {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

async fn stylesheet() -> Response {
    let mut res = include_str!("../static/app.css").into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

pub async fn not_found(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/")
        || path.starts_with("/routing-api/")
        || path.starts_with("/.well-known/")
    {
        return Problem::not_found(format!("no API endpoint {path}; see /api/openapi.json"))
            .into_response();
    }
    Page::new(&uri, &headers).error(&state, StatusCode::NOT_FOUND)
}

async fn home(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let dir = state.app.directory();
    let ctx = context! { authorities => dir.authority_count(), services => dir.services().len() };
    page.render(&state, StatusCode::OK, "home.html", ctx)
}

/// An authority as the templates show it.
#[derive(Serialize)]
struct AuthorityView {
    ars: String,
    name: String,
    part_of: Option<String>,
    kind_label: &'static str,
    active: bool,
    address: Option<Vec<String>>,
    postal_address: Option<Vec<String>>,
    contacts: Vec<ContactView>,
    opening_hours: Vec<String>,
}

#[derive(Serialize)]
struct ContactView {
    name: String,
    tel: Option<String>,
    tel_href: Option<String>,
    email: Option<String>,
}

fn address_lines(a: &verzeichnis::Address) -> Vec<String> {
    let mut lines = vec![format!("{} {}", a.street, a.house_number).trim().to_owned()];
    if let Some(extra) = &a.additional {
        lines.push(extra.clone());
    }
    lines.push(format!("{} {}", a.zip, a.city).trim().to_owned());
    lines
}

fn authority_view(dir: &Directory, a: &Authority, lang: Lang) -> AuthorityView {
    let parent = a.parent.as_ref().and_then(|p| dir.authority(p));
    AuthorityView {
        ars: a.ars.to_string(),
        name: a.display_name(),
        part_of: parent
            .filter(|p| p.kind != domain::AuthorityKind::Land)
            .map(|p| p.display_name()),
        kind_label: lang.t(&format!("kind_{}", a.kind.as_str())),
        active: a.active,
        address: a.details.address.as_ref().map(address_lines),
        postal_address: a.details.postal_address.as_ref().map(address_lines),
        contacts: a
            .details
            .contacts
            .iter()
            .map(|c| ContactView {
                name: c.name.clone(),
                tel: c.tel.clone(),
                tel_href: c.tel.as_ref().map(|t| {
                    t.chars()
                        .filter(|c| c.is_ascii_digit() || *c == '+')
                        .collect()
                }),
                email: c.email.clone(),
            })
            .collect(),
        opening_hours: a.details.opening_hours.clone(),
    }
}

#[derive(Serialize)]
struct Choice {
    key: String,
    name: String,
    checked: bool,
}

#[derive(Serialize, Clone)]
struct PlaceChoice {
    ars: String,
    label: String,
    checked: bool,
}

fn place_label(p: &Place, lang: Lang) -> String {
    match &p.part_of {
        Some(parent) if p.kind == domain::AuthorityKind::Mitgliedsgemeinde => {
            format!(
                "{} ({})",
                p.name,
                lang.t("part_of").replace("{name}", parent)
            )
        }
        Some(parent) => format!("{} ({parent})", p.name),
        None => p.name.clone(),
    }
}

/// Picks the best hit when it is clearly best (an exact name), else offers a choice.
enum Pick<T> {
    One(T),
    Choose(Vec<T>, bool),
    None,
}

fn pick<T>(hits: Vec<(u32, T)>) -> Pick<T> {
    let more = hits.len() > MAX_CHOICES;
    let mut it = hits.into_iter();
    match (it.next(), it.next()) {
        (None, _) => Pick::None,
        (Some((_, only)), None) => Pick::One(only),
        (Some((s1, first)), Some((s2, second))) => {
            if s1 >= 100 && s2 < 100 {
                Pick::One(first)
            } else {
                let mut list = vec![first, second];
                list.extend(it.take(MAX_CHOICES - 2).map(|(_, t)| t));
                Pick::Choose(list, more)
            }
        }
    }
}

async fn finder(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let lang = page.lang;
    let dir = state.app.directory();
    let leistung = page.param("leistung").unwrap_or("").trim().to_owned();
    let ort = page.param("ort").unwrap_or("").trim().to_owned();
    let submitted = page.param("leistung").is_some()
        || page.param("ort").is_some()
        || page.param("leistungsschluessel").is_some()
        || page.param("ars").is_some();
    let mut errors: Vec<FieldError> = Vec::new();
    let mut service_choices: Vec<Choice> = Vec::new();
    let mut place_choices: Vec<PlaceChoice> = Vec::new();
    let (mut service_more, mut place_more) = (false, false);
    let mut chosen_service: Option<&verzeichnis::Service> = None;
    let mut chosen_place: Option<PlaceChoice> = None;

    if submitted {
        // The service: a chosen key wins if it still matches the text, else search the text.
        let picked_key = page
            .param("leistungsschluessel")
            .and_then(|k| Leistungsschluessel::parse(k).ok())
            .and_then(|k| dir.service(&k));
        if leistung.chars().count() > MAX_TEXT {
            errors.push(FieldError {
                field: "leistung",
                message: lang
                    .t("error_too_long")
                    .replace("{max}", &MAX_TEXT.to_string()),
            });
        } else if let Some(s) = picked_key.filter(|s| {
            leistung.is_empty()
                || dir
                    .search_services(&leistung, 50)
                    .iter()
                    .any(|h| h.key == s.key)
        }) {
            chosen_service = Some(s);
        } else if leistung.is_empty() {
            errors.push(FieldError {
                field: "leistung",
                message: lang.t("error_service_missing").to_owned(),
            });
        } else {
            let hits = dir.search_services_scored(&leistung, MAX_CHOICES + 1);
            match pick(hits) {
                Pick::One(s) => chosen_service = Some(s),
                Pick::Choose(list, more) => {
                    service_more = more;
                    service_choices = list
                        .iter()
                        .map(|s| Choice {
                            key: s.key.to_string(),
                            name: s.name.clone(),
                            checked: false,
                        })
                        .collect();
                }
                Pick::None => errors.push(FieldError {
                    field: "leistung",
                    message: lang.t("error_service_none").replace("{query}", &leistung),
                }),
            }
        }

        // The place: a chosen key, a typed ARS, or a name/postcode search.
        let picked_place = page.param("ars").and_then(|a| Ars::parse(a).ok());
        if ort.chars().count() > MAX_TEXT {
            errors.push(FieldError {
                field: "ort",
                message: lang
                    .t("error_too_long")
                    .replace("{max}", &MAX_TEXT.to_string()),
            });
        } else {
            let typed_ars = Ars::parse(&ort).ok().filter(|a| a.as_str().len() >= 9);
            let hits: Vec<(u32, &Place)> = if ort.is_empty() {
                Vec::new()
            } else {
                dir.search_places_scored(&[ort.as_str()], true)
            };
            let picked = picked_place.and_then(|a| {
                hits.iter()
                    .find(|(_, p)| p.ars == a)
                    .map(|(_, p)| PlaceChoice {
                        ars: a.to_string(),
                        label: place_label(p, lang),
                        checked: true,
                    })
                    .or_else(|| {
                        ort.is_empty()
                            .then(|| {
                                dir.places()
                                    .iter()
                                    .find(|p| p.ars == a)
                                    .map(|p| PlaceChoice {
                                        ars: a.to_string(),
                                        label: place_label(p, lang),
                                        checked: true,
                                    })
                            })
                            .flatten()
                    })
            });
            if let Some(p) = picked {
                chosen_place = Some(p);
            } else if let Some(a) = typed_ars {
                let label = dir
                    .places()
                    .iter()
                    .find(|p| p.ars == a)
                    .map(|p| place_label(p, lang))
                    .unwrap_or_else(|| a.to_string());
                chosen_place = Some(PlaceChoice {
                    ars: a.to_string(),
                    label,
                    checked: true,
                });
            } else if ort.is_empty() {
                errors.push(FieldError {
                    field: "ort",
                    message: lang.t("error_place_missing").to_owned(),
                });
            } else {
                match pick(hits) {
                    Pick::One(p) => {
                        chosen_place = Some(PlaceChoice {
                            ars: p.ars.to_string(),
                            label: place_label(p, lang),
                            checked: true,
                        })
                    }
                    Pick::Choose(list, more) => {
                        place_more = more;
                        place_choices = list
                            .iter()
                            .map(|p| PlaceChoice {
                                ars: p.ars.to_string(),
                                label: place_label(p, lang),
                                checked: false,
                            })
                            .collect();
                    }
                    Pick::None => errors.push(FieldError {
                        field: "ort",
                        message: lang.t("error_place_none").replace("{query}", &ort),
                    }),
                }
            }
        }
    }

    let mut ctx = context! {
        leistung => &leistung,
        ort => &ort,
        errors => &errors,
        service_choices => &service_choices,
        service_more => service_more,
        place_choices => &place_choices,
        place_more => place_more,
        chosen_service => chosen_service.map(|s| context! { key => s.key.as_str(), name => &s.name }),
        chosen_place => &chosen_place,
    };
    if let (Some(service), Some(place)) = (chosen_service, &chosen_place)
        && errors.is_empty()
        && service_choices.is_empty()
        && place_choices.is_empty()
    {
        let area = Ars::parse(&place.ars).ok();
        let result: Vec<AuthorityView> = area
            .map(|a| dir.resolve(&service.key, &a))
            .unwrap_or_default()
            .iter()
            .map(|r| authority_view(&dir, r.authority, lang))
            .collect();
        let d = &service.details;
        let facts = context! {
            documents => &d.required_documents,
            fees => &d.fees,
            duration => d.processing_time.as_ref().map(|p| {
                let unit = lang.t(&format!("unit_{}", p.unit));
                if p.min == p.max { format!("{} {unit}", p.min) } else { format!("{}–{} {unit}", p.min, p.max) }
            }),
            legal_basis => &d.legal_basis,
        };
        ctx = context! { result => result, service_facts => facts, ..ctx };
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page.render(&state, status, "finder.html", ctx)
}

async fn authority_page(
    State(state): State<AppState>,
    Path(ars): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let dir = state.app.directory();
    let Ok(a) = crate::public_api::find(&dir, &ars) else {
        return page.error(&state, StatusCode::NOT_FOUND);
    };
    let successor = a
        .successor
        .as_ref()
        .and_then(|s| dir.current(s))
        .map(|s| context! { ars => s.ars.as_str(), name => s.display_name() });
    // Links keep the key as the visitor wrote it (padded or not): both name the authority.
    let mut view = authority_view(&dir, a, page.lang);
    view.ars = ars;
    let ctx = context! { a => view, successor };
    page.render(&state, StatusCode::OK, "authority.html", ctx)
}

#[derive(Deserialize, Default, Serialize)]
struct FeedbackForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    nachricht: String,
}

async fn legal_page(
    State(state): State<AppState>,
    Path((ars, kind)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let sent = page.param("gesendet") == Some("1");
    render_legal(
        &state,
        &page,
        &headers,
        &ars,
        &kind,
        FeedbackForm::default(),
        Vec::new(),
        sent,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_legal(
    state: &AppState,
    page: &Page,
    headers: &HeaderMap,
    ars: &str,
    kind: &str,
    form: FeedbackForm,
    errors: Vec<FieldError>,
    sent: bool,
) -> Response {
    if !crate::admin_api::LEGAL_KINDS.contains(&kind) {
        return page.error(state, StatusCode::NOT_FOUND);
    }
    let (view, key) = {
        let dir = state.app.directory();
        match crate::public_api::find(&dir, ars) {
            Ok(a) => {
                let mut view = authority_view(&dir, a, page.lang);
                view.ars = ars.to_owned();
                (view, a.ars.clone())
            }
            Err(_) => return page.error(state, StatusCode::NOT_FOUND),
        }
    };
    let lang = if page.lang == Lang::En { "en" } else { "de" };
    let stored = match state.app.store().legal_page(&key, kind, lang).await {
        Ok(Some(p)) => Some(p),
        Ok(None) if lang != "de" => state
            .app
            .store()
            .legal_page(&key, kind, "de")
            .await
            .ok()
            .flatten(),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "legal page lookup failed");
            return page.error(state, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let paragraphs: Vec<Vec<&str>> = stored
        .as_ref()
        .map(|p| {
            p.content
                .split("\n\n")
                .map(|para| para.lines().collect())
                .collect()
        })
        .unwrap_or_default();
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = context! {
        a => view,
        kind,
        page_title => page.t(&format!("legal_{kind}")),
        page_demo => stored.as_ref().is_some_and(|p| p.demo),
        paragraphs,
        csrf_token,
        form,
        errors,
        sent,
    };
    let mut res = page.render(state, status, "legal.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && s.len() <= 254
        }
        None => false,
    }
}

async fn feedback(
    State(state): State<AppState>,
    Path((ars, kind)): Path<(String, String)>,
    peer: crate::middleware::Peer,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<FeedbackForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    if kind != "barrierefreiheit" {
        return page.error(&state, StatusCode::NOT_FOUND);
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let lang = page.lang;
    let mut errors = Vec::new();
    if !crate::csrf::verify(
        &headers,
        state.secure,
        &form.csrf_token,
        &state.app.settings().public_url,
    ) {
        errors.push(FieldError {
            field: "nachricht",
            message: lang.t("error_csrf").to_owned(),
        });
    }
    let message = form.nachricht.trim();
    if message.is_empty() {
        errors.push(FieldError {
            field: "nachricht",
            message: lang.t("error_message_missing").to_owned(),
        });
    } else if message.chars().count() > 5000 {
        errors.push(FieldError {
            field: "nachricht",
            message: lang.t("error_too_long").replace("{max}", "5000"),
        });
    }
    let email = form.email.trim();
    if !email.is_empty() && !plausible_email(email) {
        errors.push(FieldError {
            field: "email",
            message: lang.t("error_email_invalid").to_owned(),
        });
    }
    if form.name.chars().count() > MAX_TEXT {
        errors.push(FieldError {
            field: "name",
            message: lang
                .t("error_too_long")
                .replace("{max}", &MAX_TEXT.to_string()),
        });
    }
    if errors.is_empty() {
        let ip = crate::middleware::client_ip(&headers, &peer, state.config.trust_forwarded_for);
        if !state.feedback_limiter.check(ip).allowed {
            errors.push(FieldError {
                field: "nachricht",
                message: lang.t("error_rate_limited").to_owned(),
            });
        }
    }
    if !errors.is_empty() {
        return render_legal(&state, &page, &headers, &ars, &kind, form, errors, false).await;
    }
    let key = {
        let dir = state.app.directory();
        match crate::public_api::find(&dir, &ars) {
            Ok(a) => a.ars.clone(),
            Err(_) => return page.error(&state, StatusCode::NOT_FOUND),
        }
    };
    let name = Some(form.name.trim()).filter(|s| !s.is_empty());
    let email = Some(email).filter(|s| !s.is_empty());
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .map(|r| r.chars().take(500).collect::<String>());
    match state
        .app
        .store()
        .add_feedback(&key, name, email, message, referer.as_deref())
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/behoerden/{key}/barrierefreiheit?lang={}&gesendet=1#bestaetigung",
            lang.code()
        ))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "storing feedback failed");
            page.error(&state, StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
