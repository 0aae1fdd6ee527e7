//! The admin API: responsibility rules, authority details, legal pages, imports. Protected
//! by the bearer token from `RATHAUS_ADMIN_TOKEN` until staff accounts exist.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use domain::Ars;
use serde::Deserialize;
use serde_json::{Value, json};
use verzeichnis::{Rule, RuleTarget};

use crate::AppState;
use crate::problem::{ApiResult, Problem};

/// Rule batches and CSV imports can be large; everything else is small.
const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/v1/rules", get(list_rules).post(create_rules))
        .route("/api/admin/v1/rules/{id}", delete(delete_rule))
        .route("/api/admin/v1/authorities/{ars}", get(get_authority))
        .route("/api/admin/v1/authorities/{ars}/details", put(put_details))
        .route(
            "/api/admin/v1/authorities/{ars}/legal/{kind}/{lang}",
            put(put_legal),
        )
        .route("/api/admin/v1/feedback", get(list_feedback))
        .route("/api/admin/v1/mails", get(list_mails))
        .route(
            "/api/admin/v1/clients",
            get(list_clients).post(create_client),
        )
        .route("/api/admin/v1/clients/{id}/active", put(set_client_active))
        .route(
            "/api/admin/v1/clients/{id}/secret",
            post(rotate_client_secret),
        )
        .route("/api/admin/v1/oidc/keys/rotate", post(rotate_keys))
        .route("/api/admin/v1/destinations", post(create_destination))
        .route("/api/admin/v1/poststelle", get(poststelle_status))
        .route("/api/admin/v1/poststelle/cases/{id}", get(poststelle_case))
        .route(
            "/api/admin/v1/destinations/{id}/clients/{client}",
            put(link_destination_client).delete(unlink_destination_client),
        )
        .route(
            "/api/admin/v1/zustelldienst/status",
            get(zustelldienst_status),
        )
        .route(
            "/api/admin/v1/destinations/{id}/keys/rotate",
            post(rotate_destination_key),
        )
        .route(
            "/api/admin/v1/data-schemas",
            get(list_data_schemas).post(register_data_schema),
        )
        .route("/api/admin/v1/data-schemas/schema", get(get_data_schema))
        .route("/api/admin/v1/imports/areas", post(import_areas))
        .route("/api/admin/v1/imports/services", post(import_services))
        .layer(DefaultBodyLimit::max(IMPORT_LIMIT))
}

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(expected) = &state.config.admin_token else {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "admin-disabled",
                "Admin API disabled",
            )
            .detail(
                "set RATHAUS_ADMIN_TOKEN (or admin_token in rathaus.toml) to enable the admin API",
            )
            .into_response());
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !given.is_empty() && crypto::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Ok(Admin);
        }
        let mut res = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .detail("send the admin token as `Authorization: Bearer <token>`")
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(res)
    }
}

fn rule_json(r: &Rule) -> Value {
    let (authority, level) = match &r.target {
        RuleTarget::Authority(a) => (Some(a.as_str()), None),
        RuleTarget::Level(l) => (None, Some(l.as_str())),
    };
    json!({ "id": r.id, "service": r.service, "area": r.area, "authority": authority, "level": level, "note": r.note })
}

#[derive(Deserialize)]
struct RuleFilter {
    service: Option<String>,
    area: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn list_rules(
    _: Admin,
    State(state): State<AppState>,
    Query(f): Query<RuleFilter>,
) -> ApiResult<Json<Value>> {
    let limit = f.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param("limit", "a whole number from 1 to 500"));
    }
    let offset = f.offset.unwrap_or(0);
    let dir = state.app.directory();
    let matching: Vec<&Rule> = dir
        .rules()
        .iter()
        .filter(|r| f.service.as_deref().is_none_or(|s| r.service.as_str() == s))
        .filter(|r| {
            f.area
                .as_deref()
                .is_none_or(|a| r.area.as_str().starts_with(a))
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| rule_json(r))
        .collect();
    Ok(Json(
        json!({ "count": page.len(), "offset": offset, "totalCount": matching.len(), "rules": page }),
    ))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(app::RuleInput),
    Many(Vec<app::RuleInput>),
}

#[derive(Deserialize)]
struct Replace {
    replace: Option<bool>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON body")
            .detail(format!("{e}; see /api/openapi.json for the expected shape"))
    })
}

async fn create_rules(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<Replace>,
    body: Bytes,
) -> ApiResult<Response> {
    let inputs = match parse_json::<OneOrMany>(&body)? {
        OneOrMany::One(r) => vec![r],
        OneOrMany::Many(v) => v,
    };
    if inputs.is_empty() {
        return Err(Problem::bad_param("body", "no rules given"));
    }
    let rules = state
        .app
        .add_rules(&inputs, "admin-api", q.replace.unwrap_or(false))
        .await?;
    let body = json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn delete_rule(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id =
        uuid::Uuid::parse_str(&id).map_err(|_| Problem::bad_param("id", "not a rule id (UUID)"))?;
    state.app.delete_rule(id, "admin-api").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_authority(
    _: Admin,
    State(state): State<AppState>,
    Path(ars): Path<String>,
) -> ApiResult<Json<Value>> {
    let dir = state.app.directory();
    let a = crate::public_api::find(&dir, &ars)?;
    let mut body = crate::public_api::authority_json(&dir, a);
    let history = state
        .app
        .store()
        .authority_history(&a.ars)
        .await
        .map_err(app::AppError::from)?;
    body["history"] = history
        .into_iter()
        .map(|(at, source, change, before, after)| {
            let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Value>(&s).ok());
            json!({ "at": at, "source": source, "change": change, "before": parse(before), "after": parse(after) })
        })
        .collect();
    Ok(Json(body))
}

async fn put_details(
    _: Admin,
    State(state): State<AppState>,
    Path(ars): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let ars = {
        let dir = state.app.directory();
        crate::public_api::find(&dir, &ars)?.ars.clone()
    };
    let details: verzeichnis::AuthorityDetails = parse_json(&body)?;
    state
        .app
        .update_authority_details(&ars, &details, "admin-api")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LegalBody {
    content: String,
}

pub const LEGAL_KINDS: [&str; 3] = ["impressum", "datenschutz", "barrierefreiheit"];

async fn put_legal(
    _: Admin,
    State(state): State<AppState>,
    Path((ars, kind, lang)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let ars: Ars = {
        let dir = state.app.directory();
        crate::public_api::find(&dir, &ars)?.ars.clone()
    };
    if !LEGAL_KINDS.contains(&kind.as_str()) {
        return Err(Problem::bad_param(
            "kind",
            "one of impressum, datenschutz, barrierefreiheit",
        ));
    }
    if !["de", "en"].contains(&lang.as_str()) {
        return Err(Problem::bad_param(
            "lang",
            "de or en (Leichte Sprache pages use the German text)",
        ));
    }
    let page: LegalBody = parse_json(&body)?;
    if page.content.len() > 100_000 {
        return Err(Problem::bad_param("content", "at most 100,000 bytes"));
    }
    state
        .app
        .store()
        .set_legal_page(&ars, &kind, &lang, &page.content, false, false)
        .await
        .map_err(app::AppError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct FeedbackFilter {
    authority: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

async fn list_feedback(
    _: Admin,
    State(state): State<AppState>,
    Query(f): Query<FeedbackFilter>,
) -> ApiResult<Json<Value>> {
    let authority = f
        .authority
        .as_deref()
        .map(|a| {
            Ars::parse(a)
                .map(|a| a.significant())
                .map_err(|e| Problem::bad_param("authority", e.to_string()))
        })
        .transpose()?;
    let limit = f.limit.unwrap_or(100).clamp(1, 500);
    let list = state
        .app
        .store()
        .list_feedback(authority.as_ref(), limit, f.offset.unwrap_or(0).max(0))
        .await
        .map_err(app::AppError::from)?;
    Ok(Json(json!({ "feedback": list })))
}

#[derive(Debug, Deserialize)]
struct MailFilter {
    limit: Option<i64>,
}

/// The mail outbox: what waits (no relay configured, or the relay refuses), what was sent,
/// what was given up. Without bodies: they may hold one-time links that are the recipient's
/// alone.
async fn list_mails(
    _: Admin,
    State(state): State<AppState>,
    Query(f): Query<MailFilter>,
) -> ApiResult<Json<Value>> {
    let limit = f.limit.unwrap_or(100).clamp(1, 500);
    let mails = state.app.outbox(limit).await?;
    let list: Vec<Value> = mails
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "createdAt": m.created_at, "recipient": m.recipient, "subject": m.subject,
                "purpose": m.purpose, "status": m.status, "attempts": m.attempts,
                "lastError": m.last_error, "sentAt": m.sent_at,
            })
        })
        .collect();
    let pending = mails.iter().filter(|m| m.status == "pending").count();
    Ok(Json(json!({ "mails": list, "pendingInThisPage": pending })))
}

async fn import_areas(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let summary = state
        .app
        .import_areas(&body, "admin-api upload", None)
        .await?;
    Ok(Json(serde_json::to_value(summary).unwrap_or_default()))
}

async fn import_services(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (inserted, updated) = state.app.import_services(&body).await?;
    Ok(Json(json!({ "inserted": inserted, "updated": updated })))
}

// ---- OAuth2 / OpenID clients ----

fn client_json(c: &store::OAuthClient) -> Value {
    let reg: Value = serde_json::from_str(&c.config).unwrap_or_else(|_| json!({}));
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "active": c.active,
        "authority": c.authority_ars,
        "scopes": c.scopes.split_whitespace().collect::<Vec<_>>(),
        "registration": reg,
        "created_at": c.created_at,
    })
}

async fn list_clients(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let clients = state.app.oauth_clients().await?;
    Ok(Json(json!({
        "clients": clients.iter().map(client_json).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize)]
struct NewClient {
    name: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(flatten)]
    registration: oidc::ClientConfig,
}

/// Registers a client; the answer carries the secret, which is shown only here.
async fn create_client(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let c: NewClient = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON").detail(format!(
            "expected {{\"name\", \"kind\": \"web\"|\"api\", \"redirect_uris\", \"scopes\", …}}: {e}"
        ))
    })?;
    if c.scopes.len() > 50 {
        return Err(Problem::bad_param("scopes", "at most 50 scopes"));
    }
    let scopes: Vec<&str> = c.scopes.iter().map(String::as_str).collect();
    let (client_id, client_secret) = state
        .app
        .register_client(&c.name, c.authority.as_deref(), &scopes, &c.registration)
        .await?;
    let mut res = (
        StatusCode::CREATED,
        Json(json!({"client_id": client_id, "client_secret": client_secret})),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Links a subscriber client to a FIT-Connect destination.
async fn link_destination_client(
    _: Admin,
    State(state): State<AppState>,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.app.zd_link_client(&id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlink_destination_client(
    _: Admin,
    State(state): State<AppState>,
    Path((id, client)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if state.app.zd_unlink_client(&id, &client).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "client {client} is not linked to destination {id}"
        )))
    }
}

/// The Zustelldienst's backlog: unsigned events, callbacks, submissions per status.
async fn zustelldienst_status(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(state.app.zd_status().await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewDestination {
    authority_ars: String,
    services: Vec<zustelldienst::ServiceOffer>,
    #[serde(default)]
    contact_information: Value,
}

/// Sets up a destination the platform holds for an authority: its ePoststelle receives,
/// checks and decides what is sent there.
async fn create_destination(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let d: NewDestination = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON").detail(format!(
            "expected {{\"authorityArs\", \"services\": [{{\"identifier\", \"submissionSchemas\", \"regions\"}}], \"contactInformation\"}}: {e}"
        ))
    })?;
    let ars = Ars::parse(&d.authority_ars)
        .map_err(|e| Problem::bad_param("authorityArs", e.to_string()))?;
    if d.services.is_empty() {
        return Err(Problem::bad_param(
            "services",
            "name at least one service the destination accepts",
        ));
    }
    let (id, _) = state
        .app
        .zd_setup_destination(app::zustelldienst::DestinationSetup {
            authority_ars: Some(ars.as_str().to_owned()),
            services: d.services,
            contact: d.contact_information,
            held_by_platform: true,
            clients: Vec::new(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"destinationId": id, "heldByPlatform": true})),
    )
        .into_response())
}

/// Registers a JSON Schema for Fachdaten under its `$id` (the URI senders name as
/// `submissionSchema.schemaUri`); the ePoststelle validates data against it.
async fn register_data_schema(
    _: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let r = state.app.register_data_schema(&body).await?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"uri": r.uri, "sha512": r.sha512, "created": r.created})),
    )
        .into_response())
}

async fn list_data_schemas(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = state
        .app
        .data_schemas()
        .await?
        .iter()
        .map(|r| json!({"uri": r.uri, "mediaType": r.mime_type, "sha512": r.sha512, "registeredAt": r.registered_at}))
        .collect();
    Ok(Json(json!({"count": list.len(), "schemas": list})))
}

#[derive(Deserialize)]
struct SchemaQuery {
    uri: Option<String>,
}

async fn get_data_schema(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<SchemaQuery>,
) -> ApiResult<Response> {
    let uri = q
        .uri
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Problem::bad_param("uri", "name the schema's URI (its $id)"))?;
    let r = state.app.data_schema(&uri).await?;
    Ok(([(header::CONTENT_TYPE, "application/schema+json")], r.body).into_response())
}

/// The ePoststelle: scanner, waiting submissions and why they wait.
async fn poststelle_status(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(state.app.poststelle_status().await?.to_json()))
}

/// A filed case for the clerks' side: what was received and checked. The contents are
/// unwrapped with the authority's team key and only their SHA-512 is shown (proof that they
/// are readable and unchanged), not the personal data itself.
async fn poststelle_case(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let Some(f) = state.app.poststelle_filed(&id).await? else {
        return Err(Problem::not_found(format!(
            "the ePoststelle filed no case for submission {id} (only accepted submissions are filed)"
        )));
    };
    let attachments: Vec<Value> = f
        .case
        .attachments
        .iter()
        .map(|a| {
            let content = f.attachments.get(&a.attachment_id);
            json!({
                "attachmentId": a.attachment_id,
                "filename": a.filename,
                "mimeType": a.mime_type,
                "size": a.size,
                "sha512": a.sha512,
                "contentSha512": content.map(|c| poststelle::sha512_hex(c)),
            })
        })
        .collect();
    let metadata: Value = serde_json::from_str(&f.case.metadata).unwrap_or(Value::Null);
    let report: Value = serde_json::from_str(&f.case.check_report).unwrap_or(Value::Null);
    Ok(Json(json!({
        "submissionId": f.case.submission_id,
        "caseId": f.case.case_id,
        "authorityArs": f.case.authority_ars,
        "destinationId": f.case.destination_id,
        "service": {"identifier": f.case.service_identifier, "name": f.case.service_name},
        "receivedAt": f.case.received_at,
        "decidedAt": f.case.decided_at,
        "metadata": metadata,
        "data": {"sha512": f.case.data_sha512, "contentSha512": f.data.as_deref().map(poststelle::sha512_hex)},
        "attachments": attachments,
        "checkReport": report,
    })))
}

/// Rotates the encryption key of a destination the platform holds.
async fn rotate_destination_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let kid = state.app.zd_rotate_encryption_key(&id).await?;
    Ok(Json(json!({ "encryptionKid": kid })))
}

#[derive(Debug, Deserialize)]
struct Active {
    active: bool,
}

async fn set_client_active(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<Active>,
) -> ApiResult<StatusCode> {
    if state.app.set_client_active(&id, body.active).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no client {id}")))
    }
}

async fn rotate_client_secret(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    match state.app.rotate_client_secret(&id).await? {
        Some(secret) => {
            let mut res = Json(json!({"client_id": id, "client_secret": secret})).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        None => Err(Problem::not_found(format!("no client {id}"))),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RotateQuery {
    overlap_hours: Option<i64>,
}

/// New OpenID signing keys; the old ones stay published for the overlap (default 24 h).
async fn rotate_keys(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<RotateQuery>,
) -> ApiResult<Json<Value>> {
    let hours = q.overlap_hours.unwrap_or(24);
    if !(0..=24 * 90).contains(&hours) {
        return Err(Problem::bad_param("overlap_hours", "0 to 2160"));
    }
    let kids = state
        .app
        .rotate_oidc_keys(time::Duration::hours(hours))
        .await?;
    Ok(Json(
        json!({"kids": kids, "old_keys_published_hours": hours}),
    ))
}
