//! FIT-Connect's Submission API (the Zustelldienst), v1 at `/submission-api/v1` and v2 at
//! `/submission-api/v2`: thin handlers over `app::zustelldienst`. Every non-2xx answer is
//! `application/problem+json` with a FIT-Connect problem type — clients in the field parse
//! every error body as JSON, including 401 and 413.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use app::ApiClient;
use zustelldienst::destination::InputMode;
use zustelldienst::{ApiVersion, ProblemKind};

use crate::AppState;
use crate::problem::Problem;

type FcResult = Result<Response, Problem>;

fn fc(kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem::from(app::AppError::Problem(zustelldienst::Problem::new(
        kind, detail,
    )))
}

pub fn router(max_body: usize) -> Router<AppState> {
    let mut r = Router::new();
    for base in ["/submission-api/v1", "/submission-api/v2"] {
        r = r
            .route(&format!("{base}/info"), get(info))
            .route(
                &format!("{base}/destinations"),
                get(list_destinations).post(create_destination),
            )
            .route(
                &format!("{base}/destinations/{{id}}"),
                get(get_destination)
                    .put(put_destination)
                    .patch(patch_destination)
                    .delete(delete_destination),
            )
            .route(
                &format!("{base}/destinations/{{id}}/keys"),
                get(list_keys).post(add_key),
            )
            .route(
                &format!("{base}/destinations/{{id}}/keys/{{kid}}"),
                get(get_key),
            )
            .route(
                &format!("{base}/submissions"),
                get(pickup_list).post(create_submission),
            )
            .route(
                &format!("{base}/submissions/{{id}}"),
                get(get_submission).put(submit),
            )
            .route(
                &format!("{base}/submissions/{{id}}/attachments/{{aid}}"),
                get(get_attachment).put(put_attachment),
            )
            .route(
                &format!("{base}/submissions/{{id}}/events"),
                get(submission_events),
            )
            .route(
                &format!("{base}/cases/{{case}}/events"),
                get(case_events).post(post_event),
            );
    }
    r.route("/submission-api/.well-known/jwks.json", get(jwks))
        .layer(DefaultBodyLimit::max(max_body))
}

/// The API version from the path.
struct Ver(ApiVersion);

impl FromRequestParts<AppState> for Ver {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        Ok(Ver(if parts.uri.path().starts_with("/submission-api/v2") {
            ApiVersion::V2
        } else {
            ApiVersion::V1
        }))
    }
}

/// The client behind the bearer token; a FIT-Connect 401 problem without one.
struct Fc(ApiClient);

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

async fn client_of(parts: &Parts, state: &AppState) -> Result<Option<ApiClient>, Response> {
    match bearer(parts) {
        None => Ok(None),
        Some(t) => state
            .app
            .api_client(t)
            .await
            .map_err(|e| Problem::from(e).into_response()),
    }
}

impl FromRequestParts<AppState> for Fc {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match client_of(parts, state).await? {
            Some(c) => Ok(Fc(c)),
            None => {
                let mut res = fc(
                    ProblemKind::Unauthorized,
                    "send `Authorization: Bearer <token>` with a live token from POST /oauth/token (grant_type=client_credentials, client_id, client_secret in the form body)",
                )
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

/// The client if a valid token was sent (public endpoints show more to linked clients).
struct MaybeFc(Option<ApiClient>);

impl FromRequestParts<AppState> for MaybeFc {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Ok(MaybeFc(client_of(parts, state).await.ok().flatten()))
    }
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
    #[serde(rename = "destinationId")]
    destination_id: Option<String>,
}

impl PageQuery {
    fn page(&self) -> Result<(i64, i64), Problem> {
        let num = |name: &str, v: &Option<String>| -> Result<Option<i64>, Problem> {
            v.as_deref()
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        fc(
                            ProblemKind::InvalidRequest,
                            format!("{name} must be a whole number"),
                        )
                    })
                })
                .transpose()
        };
        app::zustelldienst::page(num("limit", &self.limit)?, num("offset", &self.offset)?)
            .map_err(|p| Problem::from(app::AppError::Problem(p)))
    }
}

fn query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    q.map(|Query(q)| q).map_err(|_| {
        fc(
            ProblemKind::InvalidRequest,
            "the query must be limit=1..500&offset=0..&destinationId=<uuid>",
        )
    })
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Problem> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            fc(
                ProblemKind::PayloadTooLarge,
                "the body exceeds the size limit",
            )
        } else {
            fc(
                ProblemKind::InvalidRequest,
                format!("the body could not be read: {e}"),
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        fc(
            ProblemKind::InvalidRequest,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn jose_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/jose")
    {
        return Err(fc(
            ProblemKind::UnsupportedMediaType,
            format!(
                "send the compact serialisation as Content-Type: application/jose (got {:?})",
                ct.chars().take(60).collect::<String>()
            ),
        ));
    }
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            fc(
                ProblemKind::PayloadTooLarge,
                "the body exceeds the size limit",
            )
        } else {
            fc(
                ProblemKind::InvalidRequest,
                format!("the body could not be read: {e}"),
            )
        }
    })
}

fn no_cache(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

async fn info() -> Response {
    Json(json!({"version": {"major": 1, "minor": 1, "patch": 3}})).into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = Response::new(Body::from(state.app.jwks_json().to_vec()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    res
}

async fn list_destinations(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> FcResult {
    let (limit, offset) = query(q)?.page()?;
    Ok(no_cache(
        Json(s.app.zd_list_destinations(&c, v, limit, offset).await?).into_response(),
    ))
}

async fn create_destination(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let d = s
        .app
        .zd_create_destination(&c, v, &json_body(body)?)
        .await?;
    let loc = format!(
        "/submission-api/{}/destinations/{}",
        v.as_str(),
        d["destinationId"].as_str().unwrap_or_default()
    );
    let mut res = (StatusCode::CREATED, Json(d)).into_response();
    if let Ok(h) = HeaderValue::from_str(&loc) {
        res.headers_mut().insert(header::LOCATION, h);
    }
    Ok(no_cache(res))
}

async fn get_destination(
    State(s): State<AppState>,
    Ver(v): Ver,
    MaybeFc(c): MaybeFc,
    Path(id): Path<String>,
) -> FcResult {
    Ok(no_cache(
        Json(s.app.zd_destination(c.as_ref(), v, &id).await?).into_response(),
    ))
}

async fn put_destination(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    Ok(no_cache(
        Json(
            s.app
                .zd_update_destination(&c, v, &id, &json_body(body)?, InputMode::Update)
                .await?,
        )
        .into_response(),
    ))
}

async fn patch_destination(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    Ok(no_cache(
        Json(
            s.app
                .zd_update_destination(&c, v, &id, &json_body(body)?, InputMode::Patch)
                .await?,
        )
        .into_response(),
    ))
}

async fn delete_destination(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path(id): Path<String>,
) -> FcResult {
    s.app.zd_delete_destination(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_keys(State(s): State<AppState>, Path(id): Path<String>) -> FcResult {
    Ok(no_cache(Json(s.app.zd_keys(&id).await?).into_response()))
}

async fn add_key(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let kid = s.app.zd_add_key(&c, &id, &json_body(body)?).await?;
    let mut res = StatusCode::CREATED.into_response();
    if let Ok(h) = HeaderValue::from_str(&format!(
        "/submission-api/{}/destinations/{id}/keys/{kid}",
        v.as_str()
    )) {
        res.headers_mut().insert(header::LOCATION, h);
    }
    Ok(res)
}

async fn get_key(State(s): State<AppState>, Path((id, kid)): Path<(String, String)>) -> FcResult {
    Ok(no_cache(
        Json(s.app.zd_key(&id, &kid).await?).into_response(),
    ))
}

async fn create_submission(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let created = s.app.zd_create_submission(&c, v, &json_body(body)?).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn pickup_list(
    State(s): State<AppState>,
    Fc(c): Fc,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> FcResult {
    let q = query(q)?;
    let (limit, offset) = q.page()?;
    Ok(Json(
        s.app
            .zd_pickup_list(&c, q.destination_id.as_deref(), limit, offset)
            .await?,
    )
    .into_response())
}

async fn get_submission(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    Path(id): Path<String>,
) -> FcResult {
    Ok(Json(s.app.zd_get_submission(&c, v, &id).await?).into_response())
}

async fn submit(
    State(s): State<AppState>,
    Ver(v): Ver,
    Fc(c): Fc,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let reduced = s.app.zd_submit(&c, v, &id, &json_body(body)?).await?;
    // v1 answers 202 (the OpenAPI document), v2 200 (the live service).
    let status = if v == ApiVersion::V1 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reduced)).into_response())
}

async fn put_attachment(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path((id, aid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let body = jose_body(&headers, body)?;
    s.app.zd_upload_attachment(&c, &id, &aid, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_attachment(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path((id, aid)): Path<(String, String)>,
) -> FcResult {
    let body = s.app.zd_get_attachment(&c, &id, &aid).await?;
    let mut res = Response::new(Body::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jose"),
    );
    Ok(res)
}

async fn submission_events(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> FcResult {
    let (limit, offset) = query(q)?.page()?;
    Ok(Json(s.app.zd_events(&c, None, Some(&id), limit, offset).await?).into_response())
}

async fn case_events(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path(case): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> FcResult {
    let (limit, offset) = query(q)?.page()?;
    Ok(Json(
        s.app
            .zd_events(&c, Some(&case), None, limit, offset)
            .await?,
    )
    .into_response())
}

async fn post_event(
    State(s): State<AppState>,
    Fc(c): Fc,
    Path(case): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FcResult {
    let body = jose_body(&headers, body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| fc(ProblemKind::InvalidEvent, "the SET must be ASCII text"))?;
    s.app.zd_post_event(&c, &case, text).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
