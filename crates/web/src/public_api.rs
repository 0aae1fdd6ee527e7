//! Public JSON lookups of the directory (what the finder page shows, for other clients).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use domain::Ars;
use serde::Deserialize;
use serde_json::{Value, json};
use verzeichnis::{Authority, Directory};

use crate::AppState;
use crate::problem::{ApiResult, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services", get(services))
        .route("/api/v1/places", get(places))
        .route("/api/v1/authorities/{ars}", get(authority))
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
    limit: Option<String>,
}

fn search_params(s: &Search, required: bool) -> ApiResult<(String, usize)> {
    let q = s.q.clone().unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(Problem::bad_param("q", "at most 200 characters"));
    }
    if required && q.trim().is_empty() {
        return Err(Problem::bad_param("q", "required: a name or postcode"));
    }
    let limit = match &s.limit {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(Problem::bad_param("limit", "a whole number from 1 to 500")),
        },
    };
    Ok((q, limit))
}

async fn services(
    State(state): State<AppState>,
    Query(s): Query<Search>,
) -> ApiResult<Json<Value>> {
    let (q, limit) = search_params(&s, false)?;
    let dir = state.app.directory();
    let list: Vec<Value> = if q.trim().is_empty() {
        dir.services()
            .iter()
            .take(limit)
            .map(service_json)
            .collect()
    } else {
        dir.search_services(&q, limit)
            .into_iter()
            .map(service_json)
            .collect()
    };
    Ok(Json(json!({ "services": list })))
}

fn service_json(s: &verzeichnis::Service) -> Value {
    json!({ "leistungsschluessel": s.key, "name": s.name, "typisierung": s.typisierung })
}

async fn places(State(state): State<AppState>, Query(s): Query<Search>) -> ApiResult<Json<Value>> {
    let (q, limit) = search_params(&s, true)?;
    let dir = state.app.directory();
    let list: Vec<Value> = dir
        .search_places(&[q.as_str()], true)
        .into_iter()
        .take(limit)
        .map(|p| json!({ "ars": p.ars, "name": p.name, "type": p.kind.label_de(), "partOf": p.part_of }))
        .collect();
    Ok(Json(json!({ "places": list })))
}

/// Finds an authority by its key as given: significant or padded to 12 digits.
pub fn find<'a>(dir: &'a Directory, raw: &str) -> ApiResult<&'a Authority> {
    let ars = Ars::parse(raw).map_err(|e| Problem::bad_param("ars", e.to_string()))?;
    dir.authority(&ars)
        .or_else(|| dir.authority(&ars.significant()))
        .ok_or_else(|| Problem::not_found(format!("no authority with ARS {ars}")))
}

pub fn authority_json(dir: &Directory, a: &Authority) -> Value {
    json!({
        "ars": a.ars,
        "kind": a.kind,
        "name": a.name,
        "displayName": a.display_name(),
        "fullName": dir.full_name(a),
        "seat": a.seat,
        "parent": a.parent,
        "active": a.active,
        "successor": a.successor,
        "destinationId": a.destination_id().to_string(),
        "details": a.details,
    })
}

async fn authority(
    State(state): State<AppState>,
    Path(ars): Path<String>,
) -> ApiResult<Json<Value>> {
    let dir = state.app.directory();
    let a = find(&dir, &ars)?;
    Ok(Json(authority_json(&dir, a)))
}
