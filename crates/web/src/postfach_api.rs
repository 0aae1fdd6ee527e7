//! The Postfach API for authorities (OAuth2 client credentials, scope `postfach:deliver`):
//! deliver a message (JSON, or multipart with attachments streamed to storage), follow its
//! delivery (placed, notified, first opened, deemed delivery date, the delivery steps in the journal),
//! and collect the citizens' replies with their attachments.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use app::{NewMessage, SCOPE_POSTFACH_DELIVER};
use domain::TrustLevel;

use crate::AppState;
use crate::oauth_api::Bearer;
use crate::problem::{ApiResult, Problem};

pub fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/api/postfach/v1/messages", post(deliver))
        .route("/api/postfach/v1/messages/{id}", get(status))
        .route(
            "/api/postfach/v1/messages/{id}/attachments/{position}",
            get(attachment),
        )
        .route("/api/postfach/v1/replies", get(replies))
        .layer(DefaultBodyLimit::max(max_body))
}

/// The JSON of a message to deliver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MessageInput {
    recipient: String,
    subject: String,
    body: String,
    /// 1–4, or a level name (`STORK-QAA-Level-3`, an eIDAS URI).
    #[serde(default)]
    min_trust_level: Option<Value>,
    #[serde(default)]
    reply_allowed: bool,
}

fn parse_level(v: Option<&Value>) -> Result<TrustLevel, Problem> {
    let bad = || {
        Problem::bad_param(
            "minTrustLevel",
            "use 1 to 4 or STORK-QAA-Level-1 … STORK-QAA-Level-4 (or an eIDAS level URI)",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(TrustLevel::Level1),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(TrustLevel::from_u8)
            .ok_or_else(bad),
        Some(Value::String(s)) => TrustLevel::from_acr(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_message(text: &str) -> Result<NewMessage, Problem> {
    let input: MessageInput = serde_json::from_str(text).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-json", "Invalid message JSON").detail(format!(
            "{e}; expected {{\"recipient\", \"subject\", \"body\", optional \"minTrustLevel\", \"replyAllowed\"}}"
        ))
    })?;
    Ok(NewMessage {
        min_trust_level: parse_level(input.min_trust_level.as_ref())?,
        recipient: input.recipient,
        subject: input.subject,
        body: input.body,
        reply_allowed: input.reply_allowed,
    })
}

async fn deliver(State(state): State<AppState>, bearer: Bearer, request: Request) -> Response {
    match deliver_inner(&state, &bearer, request).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn deliver_inner(state: &AppState, bearer: &Bearer, request: Request) -> ApiResult<Response> {
    let client = bearer.require(SCOPE_POSTFACH_DELIVER)?.clone();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (message, files) = if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(request.into_body(), 1024 * 1024)
            .await
            .map_err(|_| {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Body too large").detail(
                    "a JSON message has at most 1 MB; send attachments as multipart/form-data",
                )
            })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Problem::bad_param("body", "the JSON is not UTF-8"))?;
        (parse_message(text)?, Vec::new())
    } else if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state).await.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-multipart",
                "Invalid multipart body",
            )
            .detail(e.body_text())
        })?;
        let received = crate::uploads::receive(
            &state.app,
            multipart,
            &["attachment", "attachments", "file"],
            &["message"],
            1024 * 1024,
        )
        .await
        .map_err(|e| {
            let status = match e {
                crate::uploads::UploadError::FileTooLarge { .. }
                | crate::uploads::UploadError::TooManyFiles { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                crate::uploads::UploadError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            Problem::new(status, "invalid-upload", "Upload refused").detail(e.message())
        })?;
        let Some(text) = received.text("message").map(str::to_owned) else {
            received.discard(&state.app).await;
            return Err(Problem::bad_param(
                "message",
                "a multipart delivery needs a part named \"message\" with the message JSON",
            ));
        };
        match parse_message(&text) {
            Ok(m) => (m, received.files),
            Err(p) => {
                received.discard(&state.app).await;
                return Err(p);
            }
        }
    } else {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("send application/json, or multipart/form-data with a \"message\" part and \"attachment\" parts"));
    };
    let placed = state
        .app
        .deliver_postfach_message(&client, &message, &files)
        .await?;
    let (view, _, _) = state
        .app
        .postfach_status_for_sender(&client, &placed.id)
        .await?;
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"position": i, "filename": f.filename, "mediaType": f.media_type, "size": f.size, "sha256": f.sha256})
        })
        .collect();
    let location = format!(
        "{}/api/postfach/v1/messages/{}",
        state.app.settings().public_url,
        placed.id
    );
    let mut res = (
        StatusCode::CREATED,
        Json(json!({
            "id": placed.id,
            "recipient": placed.postfach_ref,
            "placedAt": placed.placed_at,
            "deemedDeliveryDate": view.deemed_delivery,
            "minTrustLevel": placed.min_trust_level,
            "replyAllowed": placed.reply_allowed,
            "attachments": attachments,
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

fn message_json(m: &store::PostfachMessage) -> Value {
    json!({
        "id": m.id,
        "inReplyTo": m.in_reply_to,
        "subject": m.subject,
        "body": m.body,
        "placedAt": m.placed_at,
        "attachmentCount": m.attachment_count,
    })
}

async fn status(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let client = bearer.require(SCOPE_POSTFACH_DELIVER)?;
    let (view, replies, log) = state.app.postfach_status_for_sender(client, &id).await?;
    let m = &view.message;
    Ok(Json(json!({
        "id": m.id,
        "recipient": m.postfach_ref,
        "subject": m.subject,
        "minTrustLevel": m.min_trust_level,
        "replyAllowed": m.reply_allowed,
        "placedAt": m.placed_at,
        "notifiedAt": m.notified_at,
        "firstOpenedAt": m.first_opened_at,
        "deemedDeliveryDate": view.deemed_delivery,
        "attachmentCount": m.attachment_count,
        "contentSalt": m.content_salt,
        "replies": replies.iter().map(message_json).collect::<Vec<_>>(),
        "log": log,
    })))
}

#[derive(Debug, Deserialize)]
struct RepliesQuery {
    #[serde(default)]
    since: Option<String>,
}

async fn replies(
    State(state): State<AppState>,
    bearer: Bearer,
    Query(q): Query<RepliesQuery>,
) -> ApiResult<Json<Value>> {
    let client = bearer.require(SCOPE_POSTFACH_DELIVER)?;
    let since = q.since.unwrap_or_default();
    if since.len() > 40 {
        return Err(Problem::bad_param(
            "since",
            "a placedAt value from an earlier answer",
        ));
    }
    let list = state.app.postfach_replies_for(client, &since).await?;
    let next = list.last().map(|m| m.placed_at.clone());
    Ok(Json(json!({
        "replies": list.iter().map(message_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn attachment(
    State(state): State<AppState>,
    bearer: Bearer,
    Path((id, position)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let client = bearer.require(SCOPE_POSTFACH_DELIVER)?;
    let a = state
        .app
        .postfach_attachment_for_client(client, &id, position)
        .await?;
    download(&state, &a).await
}

/// Streams a stored attachment as a download.
pub(crate) async fn download(state: &AppState, a: &store::AttachmentRecord) -> ApiResult<Response> {
    let stream = state.app.blobs().stream(&a.blob_key).await.map_err(|e| {
        tracing::error!(error = %e, blob = %a.blob_key, "attachment missing in blob storage");
        Problem::internal()
    })?;
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&a.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    // Always a download, never rendered in our origin (an HTML file could run script).
    let ascii: String = a
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(a.filename.as_bytes()).collect();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        encoded.replace('+', "%20")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("sha-256={}", a.sha256)) {
        h.insert("x-content-sha256", v);
    }
    Ok(res)
}
