//! The journal's public read API: signed tree heads, inclusion and consistency proofs
//! (RFC 9162), and the entries of one subject. Entries hold hashes and references only, so
//! these need no token; anyone holding a receipt can check it against a published head.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::AppState;
use crate::problem::{ApiResult, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/journal/v1/tree-head", get(tree_head))
        .route("/journal/v1/tree-heads/{size}", get(tree_head_at))
        .route("/journal/v1/entries/{index}/proof", get(inclusion))
        .route("/journal/v1/consistency", get(consistency))
        .route("/journal/v1/subjects/{subject}", get(subject))
}

fn number(name: &str, s: &str) -> Result<u64, Problem> {
    s.parse::<u64>()
        .map_err(|_| Problem::bad_param(name, "a whole number of 0 or more"))
}

async fn tree_head(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(Json(s.app.journal_tree_head().await?).into_response())
}

async fn tree_head_at(State(s): State<AppState>, Path(size): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.app.journal_tree_head_at(number("size", &size)?).await?).into_response())
}

#[derive(Deserialize)]
struct ProofQuery {
    #[serde(rename = "treeSize")]
    tree_size: Option<String>,
}

async fn inclusion(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<ProofQuery>,
) -> ApiResult<Response> {
    let size = q
        .tree_size
        .as_deref()
        .map(|t| number("treeSize", t))
        .transpose()?;
    Ok(Json(
        s.app
            .journal_inclusion(number("index", &index)?, size)
            .await?,
    )
    .into_response())
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn consistency(
    State(s): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Response> {
    let from = number("from", q.from.as_deref().unwrap_or(""))?;
    let to = number("to", q.to.as_deref().unwrap_or(""))?;
    Ok(Json(s.app.journal_consistency(from, to).await?).into_response())
}

async fn subject(State(s): State<AppState>, Path(subject): Path<String>) -> ApiResult<Response> {
    if subject.len() > 200 {
        return Err(Problem::bad_param("subject", "at most 200 characters"));
    }
    Ok(Json(s.app.journal_subject(&subject).await?).into_response())
}
