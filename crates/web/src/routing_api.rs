//! The Routing API, compatible with FIT-Connect Routing API 2.0 (`/routes`, `/areas`,
//! `/info`), and the JWKS with which its destination signatures are verified.
//!
//! Every answer comes from the in-memory directory: no database access, no signing.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, body::Body};
use domain::{Ags, Ars, Leistungsschluessel};
use serde::Serialize;
use verzeichnis::RouteQuery;

use std::borrow::Cow;

use crate::AppState;
use crate::middleware::ClientIp;
use crate::problem::{ApiResult, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/routing-api/v1/routes", get(routes))
        .route("/routing-api/v1/areas", get(areas))
        .route("/routing-api/v1/info", get(info))
        .route("/.well-known/jwks.json", get(jwks))
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
/// No legitimate query is longer; longer ones are refused before parsing.
const MAX_QUERY_LEN: usize = 2048;

type Params<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Query parameters, borrowed from the query string unless they needed decoding.
fn params(raw: Option<&str>) -> ApiResult<Params<'_>> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_LEN {
        return Err(Problem::bad_param(
            "query",
            format!("the query string is longer than {MAX_QUERY_LEN} bytes"),
        ));
    }
    Ok(form_urlencoded::parse(raw.as_bytes()).collect())
}

fn single<'a>(
    params: &'a [(Cow<'a, str>, Cow<'a, str>)],
    name: &str,
) -> ApiResult<Option<&'a str>> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_ref());
    if found.next().is_some() {
        return Err(Problem::bad_param(
            name,
            "given more than once; give it once",
        ));
    }
    Ok(first)
}

fn paging(params: &[(Cow<'_, str>, Cow<'_, str>)]) -> ApiResult<(usize, usize)> {
    let offset = match single(params, "offset")? {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| Problem::bad_param("offset", format!("{v:?} is not a whole number ≥ 0")))?
            as usize,
    };
    let limit = match single(params, "limit")? {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Problem::bad_param(
                    "limit",
                    format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    Ok((offset, limit))
}

/// The rate-limit headers to send, or the 429 answer. (`Response` is large, but this is the
/// rare path and returns straight to the client.)
#[allow(clippy::result_large_err)]
fn rate_limited(
    state: &AppState,
    ip: std::net::IpAddr,
) -> Result<[(&'static str, HeaderValue); 3], Response> {
    let r = state.routing_limiter.check(ip);
    let hv = |n: u64| HeaderValue::from(n);
    let headers = [
        ("ratelimit-limit", hv(u64::from(r.limit))),
        ("ratelimit-remaining", hv(u64::from(r.remaining))),
        ("ratelimit-reset", hv(r.reset_secs)),
    ];
    if r.allowed {
        Ok(headers)
    } else {
        let problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .detail(format!(
            "at most {} requests per minute; retry in {} s",
            r.limit, r.reset_secs
        ));
        let mut res = problem.into_response();
        for (k, v) in headers {
            res.headers_mut().insert(k, v);
        }
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(r.reset_secs));
        Err(res)
    }
}

fn json_response(body: Vec<u8>, extra: [(&'static str, HeaderValue); 3]) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in extra {
        h.insert(k, v);
    }
    res
}

/// Counts the request against the client's limit, then answers with `answer`; the
/// `RateLimit-*` headers go on every answer, success or problem.
fn limited(
    state: &AppState,
    ip: std::net::IpAddr,
    answer: impl FnOnce() -> ApiResult<Vec<u8>>,
) -> Response {
    let limits = match rate_limited(state, ip) {
        Ok(h) => h,
        Err(res) => return res,
    };
    match answer() {
        Ok(body) => json_response(body, limits),
        Err(p) => {
            let mut res = p.into_response();
            for (k, v) in limits {
                res.headers_mut().insert(k, v);
            }
            res
        }
    }
}

async fn routes(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(raw): RawQuery,
) -> Response {
    limited(&state, ip, || route_answer(&state, raw.as_deref()))
}

fn route_answer(state: &AppState, raw: Option<&str>) -> ApiResult<Vec<u8>> {
    let params = params(raw)?;
    let key = single(&params, "leikaKey")?.ok_or_else(|| {
        Problem::bad_param(
            "leikaKey",
            "required: the 14-digit Leistungsschlüssel, e.g. 99115005104000",
        )
    })?;
    let key = Leistungsschluessel::parse(key)
        .map_err(|e| Problem::bad_param("leikaKey", e.to_string()))?;
    let ars = single(&params, "ars")?;
    let ags = single(&params, "ags")?;
    let area_id = single(&params, "areaId")?;
    let query = match (ars, ags, area_id) {
        (Some(a), None, None) => {
            RouteQuery::Ars(Ars::parse(a).map_err(|e| Problem::bad_param("ars", e.to_string()))?)
        }
        (None, Some(a), None) => {
            RouteQuery::Ags(Ags::parse(a).map_err(|e| Problem::bad_param("ags", e.to_string()))?)
        }
        (None, None, Some(id)) => {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 12 {
                return Err(Problem::bad_param(
                    "areaId",
                    format!("{id:?} is not an area id; ids are digits, as /areas returns them"),
                ));
            }
            RouteQuery::AreaId(id.to_owned())
        }
        (None, None, None) => {
            return Err(Problem::bad_param(
                "ars",
                "give exactly one of ars, ags or areaId to name the area",
            ));
        }
        _ => {
            return Err(Problem::bad_param(
                "ars",
                "give only one of ars, ags or areaId, not several",
            ));
        }
    };
    let (offset, limit) = paging(&params)?;
    let dir = state.app.directory();
    let resolutions = match dir.area_of(&query) {
        Some(area) => dir.resolve(&key, &area),
        None => Vec::new(),
    };
    // The answer is concatenated from fragments serialised when the snapshot was built.
    let fragments = dir.route_fragments();
    let mut routes = Vec::with_capacity(4096);
    let mut count = 0;
    for r in resolutions.iter().skip(offset).take(limit) {
        let Some(signed) = dir
            .destination(&r.authority.ars)
            .and_then(|d| d.signatures.get(key.group()))
        else {
            tracing::warn!(authority = %r.authority.ars, "responsible authority has no destination signature yet");
            continue;
        };
        if count > 0 {
            routes.push(b',');
        }
        if fragments.write(&mut routes, &r.authority.ars, &key, &signed.signature) {
            count += 1;
        } else if count > 0 {
            routes.pop();
        }
    }
    let mut body = Vec::with_capacity(routes.len() + 64);
    body.extend_from_slice(
        format!(
            "{{\"count\":{count},\"offset\":{offset},\"totalCount\":{},\"routes\":[",
            resolutions.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(&routes);
    body.extend_from_slice(b"]}");
    Ok(body)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AreaResult<'a> {
    count: usize,
    offset: usize,
    total_count: usize,
    areas: Vec<Area<'a>>,
}

#[derive(Serialize)]
struct Area<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `areaSearchexpression` terms: at least two characters apart from `*` wildcards.
fn valid_term(t: &str) -> bool {
    t.split('*').all(|p| p.is_empty() || p.chars().count() >= 2)
        && t.chars().filter(|c| *c != '*').count() >= 2
}

async fn areas(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(raw): RawQuery,
) -> Response {
    limited(&state, ip, || area_answer(&state, raw.as_deref()))
}

fn area_answer(state: &AppState, raw: Option<&str>) -> ApiResult<Vec<u8>> {
    let params = params(raw)?;
    let terms: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "areaSearchexpression")
        .map(|(_, v)| v.as_ref())
        .collect();
    const NAME: &str = "areaSearchexpression";
    if terms.is_empty() {
        return Err(Problem::bad_param(
            NAME,
            "required: a place name or postcode, e.g. Hannover or Nenn*",
        ));
    }
    if terms.len() > 10 {
        return Err(Problem::bad_param(NAME, "at most 10 search terms"));
    }
    if let Some(bad) = terms.iter().find(|t| !valid_term(t) || t.len() > 100) {
        return Err(Problem::bad_param(
            NAME,
            format!("{bad:?}: each term needs at least 2 characters besides * (and at most 100)"),
        ));
    }
    let (offset, limit) = paging(&params)?;
    let dir = state.app.directory();
    let hits = dir.search_places(&terms, false);
    let areas: Vec<Area<'_>> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| Area {
            id: p.ars.as_str(),
            name: &p.name,
            kind: p.kind.label_de(),
        })
        .collect();
    serde_json::to_vec(&AreaResult {
        count: areas.len(),
        offset,
        total_count: hits.len(),
        areas,
    })
    .map_err(|_| Problem::internal())
}

async fn info() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "version": { "major": 2, "minor": 0, "patch": 0 } }))
}

async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = Response::new(Body::from(state.app.jwks_json().to_vec()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn area_terms() {
        assert!(super::valid_term("Hanau"));
        assert!(super::valid_term("Mag*"));
        assert!(super::valid_term("*burg"));
        assert!(!super::valid_term("M*"));
        assert!(!super::valid_term("*"));
        assert!(!super::valid_term("a"));
    }
}
