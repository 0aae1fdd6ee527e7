//! The ePoststelle's Eingangsbestätigung for senders:
//! `GET /submission-api/v{1,2}/submissions/{id}/receipt` with the sender's bearer token.
//! JSON by default (`{"receipt": <claims>, "jws": "<compact JWS, PS512, service key>"}`,
//! verifiable with `/.well-known/jwks.json`), the tagged PDF/A with `Accept: application/pdf`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use zustelldienst::ProblemKind;

use crate::AppState;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/submission-api/v1/submissions/{id}/receipt", get(receipt))
        .route("/submission-api/v2/submissions/{id}/receipt", get(receipt))
}

fn fc(kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem::from(app::AppError::Problem(zustelldienst::Problem::new(
        kind, detail,
    )))
}

fn wants_pdf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',').any(|m| {
                m.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pdf"))
            })
        })
}

async fn receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let client = match token {
        Some(t) => state.app.api_client(t).await?,
        None => None,
    };
    let Some(client) = client else {
        let mut res = fc(
            ProblemKind::Unauthorized,
            "send `Authorization: Bearer <token>` of the client that sent the submission",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return Ok(res);
    };
    let r = state.app.poststelle_receipt(&client, &id).await?;
    let mut res = if wants_pdf(&headers) {
        let lang = match crate::i18n::Lang::negotiate(None, &headers) {
            crate::i18n::Lang::En => receipt_pdf::Language::En,
            _ => receipt_pdf::Language::De,
        };
        let pdf = tokio::task::spawn_blocking(move || {
            app::receipt_delivery::render_receipt_pdf(&r, lang)
        })
        .await
        .map_err(|e| Problem::from(app::AppError::Internal(e.to_string())))??;
        let mut res = pdf.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        res.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(match lang {
                receipt_pdf::Language::En => "en",
                receipt_pdf::Language::De => "de",
            }),
        );
        res
    } else {
        axum::Json(json!({"receipt": r.claims, "jws": r.jws, "journalProof": r.journal_proof}))
            .into_response()
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Language"),
    );
    Ok(res)
}
