//! The citizen's Postfach pages: the list (own and organisation Postfächer), a message with
//! its attachments and delivery facts, the reply form with uploads. Opening a message is
//! what records "first opened" (OZG § 9).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;

use app::AppError;

use crate::AppState;
use crate::account_pages::{client, csrf_ok_token, internal, require_session, short_time};
use crate::middleware::Peer;
use crate::pages::{FieldError, Page};

const PER_PAGE: i64 = 25;

pub fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/postfach", get(list))
        .route("/postfach/{id}", get(show))
        .route("/postfach/{id}/anhang/{position}", get(download))
        .route("/postfach/{id}/antwort", post(reply))
        .layer(DefaultBodyLimit::max(max_body))
}

fn size_label(bytes: i64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", (bytes + 1023) / 1024)
    }
}

fn german_date(iso: &str) -> String {
    let mut p = iso.split('-');
    match (p.next(), p.next(), p.next()) {
        (Some(y), Some(m), Some(d)) => format!("{d}.{m}.{y}"),
        _ => iso.to_owned(),
    }
}

async fn list(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, "/postfach").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let boxes = match state.app.readable_postfaecher(&session).await {
        Ok(b) => b,
        Err(e) => return internal(&page, &state, e),
    };
    let current = page
        .param("postfach")
        .filter(|r| boxes.iter().any(|(b, _)| b == r))
        .unwrap_or(&session.postfach_ref)
        .to_owned();
    let number: i64 = page
        .param("seite")
        .and_then(|s| s.parse().ok())
        .filter(|n: &i64| (1..=100_000).contains(n))
        .unwrap_or(1);
    let (messages, total, unread) = match state
        .app
        .postfach_page(&session, &current, number - 1, PER_PAGE)
        .await
    {
        Ok(x) => x,
        Err(e) => return internal(&page, &state, e),
    };
    let messages: Vec<minijinja::Value> = messages
        .into_iter()
        .map(|v| {
            minijinja::Value::from_serialize(serde_json::json!({
                "id": v.message.id,
                "subject": v.message.subject,
                "sender": v.message.sender_name,
                "placed": short_time(&v.message.placed_at),
                "unread": v.message.first_opened_at.is_none(),
                "locked": v.locked,
                "level": v.message.min_trust_level,
                "attachments": v.message.attachment_count,
            }))
        })
        .collect();
    let pages = (total + PER_PAGE - 1) / PER_PAGE;
    let boxes: Vec<minijinja::Value> = boxes
        .iter()
        .enumerate()
        .map(|(i, (r, label))| {
            minijinja::Value::from_serialize(serde_json::json!({
                "href": format!("/postfach?postfach={r}&lang={}", page.lang.code()),
                "label": if i == 0 { page.t("postfach_own").to_owned() } else { label.clone() },
                "current": *r == current,
            }))
        })
        .collect();
    let q = |n: i64| {
        format!(
            "/postfach?postfach={current}&seite={n}&lang={}",
            page.lang.code()
        )
    };
    let ctx = context! {
        page_title => page.t("postfach_title"),
        messages,
        boxes,
        total,
        unread,
        page_number => number,
        pages,
        prev_href => (number > 1).then(|| q(number - 1)),
        next_href => (number < pages).then(|| q(number + 1)),
        session_level => session.trust_level.as_u8(),
    };
    page.render(&state, StatusCode::OK, "postfach.html", ctx)
}

async fn show(
    State(state): State<AppState>,
    peer: Peer,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let back = format!("/postfach/{id}");
    let session = match require_session(&state, &headers, &page, &back).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_message(
        &state,
        &page,
        &headers,
        &session,
        &id,
        &client(&state, &headers, &peer),
        Vec::new(),
        "",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_message(
    state: &AppState,
    page: &Page,
    headers: &HeaderMap,
    session: &app::Session,
    id: &str,
    client: &app::ClientInfo,
    errors: Vec<FieldError>,
    reply_text: &str,
) -> Response {
    let (view, attachments, replies) =
        match state.app.open_postfach_message(session, id, client).await {
            Ok(x) => x,
            Err(AppError::NotFound(_)) => return page.error(state, StatusCode::NOT_FOUND),
            Err(AppError::TrustLevelTooLow { required }) => {
                let ctx = context! {
                    page_title => page.t("postfach_locked_title"),
                    required,
                    current => session.trust_level.as_u8(),
                };
                return page.render(state, StatusCode::FORBIDDEN, "postfach_locked.html", ctx);
            }
            Err(e) => return internal(page, state, e),
        };
    let m = &view.message;
    let attachments: Vec<minijinja::Value> = attachments
        .iter()
        .map(|a| {
            minijinja::Value::from_serialize(serde_json::json!({
                "href": format!("/postfach/{}/anhang/{}", m.id, a.position),
                "name": a.filename,
                "size": size_label(a.size),
                "type": a.media_type,
            }))
        })
        .collect();
    let replies: Vec<minijinja::Value> = replies
        .iter()
        .map(|r| {
            minijinja::Value::from_serialize(serde_json::json!({
                "placed": short_time(&r.placed_at),
                "body": r.body,
                "attachments": r.attachment_count,
                "id": r.id,
            }))
        })
        .collect();
    let (csrf_token, set_cookie) = crate::csrf::token(headers, state.secure);
    let limits = state.app.postfach_settings();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = context! {
        page_title => m.subject.clone(),
        m => serde_json::json!({
            "id": m.id,
            "sender": m.sender_name,
            "subject": m.subject,
            "paragraphs": m.body.split("\n\n").map(str::to_owned).collect::<Vec<_>>(),
            "placed": short_time(&m.placed_at),
            "opened": m.first_opened_at.as_deref().map(short_time),
            "deemed": german_date(&view.deemed_delivery),
            "reply_allowed": m.reply_allowed,
            "level": m.min_trust_level,
        }),
        attachments,
        replies,
        errors,
        reply_text,
        csrf_token,
        max_files => limits.max_files,
        max_mb => limits.max_file_bytes / (1024 * 1024),
        idle_until => short_time(&store::ts(session.idle_expires_at)),
    };
    let mut res = page.render(state, status, "postfach_message.html", ctx);
    if let Some(c) = set_cookie {
        res.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
    res
}

async fn download(
    State(state): State<AppState>,
    Path((id, position)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = Page::new(&uri, &headers);
    let session = match require_session(&state, &headers, &page, &format!("/postfach/{id}")).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let a = match state.app.postfach_attachment(&session, &id, position).await {
        Ok(a) => a,
        Err(AppError::NotFound(_)) => return page.error(&state, StatusCode::NOT_FOUND),
        Err(AppError::TrustLevelTooLow { .. }) => return page.error(&state, StatusCode::FORBIDDEN),
        Err(e) => return internal(&page, &state, e),
    };
    match crate::postfach_api::download(&state, &a).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn reply(
    State(state): State<AppState>,
    peer: Peer,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let page = Page::new(&uri, &headers);
    let back = format!("/postfach/{id}");
    let session = match require_session(&state, &headers, &page, &back).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let client = client(&state, &headers, &peer);
    let field = |key: &str| FieldError {
        field: "antwort",
        message: page.t(key).to_owned(),
    };
    let Ok(multipart) = multipart else {
        return render_message(
            &state,
            &page,
            &headers,
            &session,
            &id,
            &client,
            vec![field("postfach_err_upload")],
            "",
        )
        .await;
    };
    let received = match crate::uploads::receive(
        &state.app,
        multipart,
        &["anhang"],
        &["csrf_token", "antwort", "aktion"],
        200_000,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let mut err = field("postfach_err_upload");
            err.message = format!("{} ({})", err.message, e.message());
            return render_message(
                &state,
                &page,
                &headers,
                &session,
                &id,
                &client,
                vec![err],
                "",
            )
            .await;
        }
    };
    let text = received.text("antwort").unwrap_or("").to_owned();
    if !csrf_ok_token(&state, &headers, received.text("csrf_token").unwrap_or("")) {
        received.discard(&state.app).await;
        return render_message(
            &state,
            &page,
            &headers,
            &session,
            &id,
            &client,
            vec![field("err_csrf")],
            &text,
        )
        .await;
    }
    // "Stay signed in" is a button of this form, so extending never loses the text typed.
    if received.text("aktion") == Some("verlaengern") {
        received.discard(&state.app).await;
        let session = match state.app.extend_session(&session).await {
            Ok(until) => app::Session {
                idle_expires_at: until,
                ..session
            },
            Err(e) => return internal(&page, &state, e),
        };
        return render_message(
            &state,
            &page,
            &headers,
            &session,
            &id,
            &client,
            Vec::new(),
            &text,
        )
        .await;
    }
    if text.trim().is_empty() {
        received.discard(&state.app).await;
        return render_message(
            &state,
            &page,
            &headers,
            &session,
            &id,
            &client,
            vec![field("postfach_err_reply_empty")],
            &text,
        )
        .await;
    }
    let files = received.files.clone();
    match state
        .app
        .reply_postfach_message(&session, &id, &text, &files, &client)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/postfach/{id}?lang={}&gesendet=1#antworten",
            page.lang.code()
        ))
        .into_response(),
        Err(AppError::InvalidField { .. }) | Err(AppError::Invalid(_)) => {
            render_message(
                &state,
                &page,
                &headers,
                &session,
                &id,
                &client,
                vec![field("postfach_err_reply_invalid")],
                &text,
            )
            .await
        }
        Err(AppError::NotFound(_)) => page.error(&state, StatusCode::NOT_FOUND),
        Err(e) => internal(&page, &state, e),
    }
}
