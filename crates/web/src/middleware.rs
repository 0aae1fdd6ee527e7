//! Cross-cutting request handling: security headers, metrics, rate limits.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Headers every answer carries. The CSP allows nothing but our own origin: pages use no
/// inline script or style, so XSS that slipped into a page still could not run.
fn add_security_headers(h: &mut axum::http::HeaderMap) {
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "strict-origin-when-cross-origin");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
}

/// Adds Strict-Transport-Security when served over HTTPS.
pub async fn hsts(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    res
}

/// Request count and latency per route and status (Prometheus, via the `metrics` facade).
/// (Caching the handles behind a lock was measured slower: the shared lock and reference
/// counts bounce between cores; the exporter's own sharded registry does better.)
///
/// It also adds the security headers: one middleware layer instead of two saves a boxed
/// future and a service clone per request.
pub async fn observe_and_secure(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let request_id = req.headers().get("x-request-id").cloned();
    // With `RATHAUS_LOG=info,rathaus::request=debug` every log line written while serving a
    // request carries its id. Off by default: an enabled span per request cost a tenth of the
    // Routing API's throughput; server errors are logged with their id in any case (below).
    let span = tracing::debug_span!(
        target: "rathaus::request",
        "request",
        request_id = request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
        method = method.as_str(),
        path = req.uri().path(),
    );
    let mut res = tracing::Instrument::instrument(next.run(req), span).await;
    add_security_headers(res.headers_mut());
    if res.status().is_server_error() {
        let id = request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::error!(
            request_id = id,
            method,
            route,
            status = res.status().as_u16(),
            "request failed"
        );
    }
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The peer address, where the server was started with connect info (tests may not be).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The client's address as the rate limits see it, read without copying the headers.
pub struct ClientIp(pub IpAddr);

impl axum::extract::FromRequestParts<crate::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        );
        Ok(ClientIp(client_ip(
            &parts.headers,
            &peer,
            state.config.trust_forwarded_for,
        )))
    }
}

/// Where a request came from: the peer address, or with a trusted reverse proxy the
/// last address it appended to X-Forwarded-For.
pub fn client_ip(req_headers: &axum::http::HeaderMap, peer: &Peer, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(ip) = req_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.0.map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// A fixed-window limit per client: `limit` requests per `window`. Sharded so that two
/// cores serving the Routing API do not wait on one lock.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    shards: Vec<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

/// The state of a client's window after counting a request.
#[derive(Debug, Clone, Copy)]
pub struct RateState {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn check(&self, ip: IpAddr) -> RateState {
        if self.limit == 0 {
            return RateState {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset_secs: 0,
            };
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        ip.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() as usize) % self.shards.len()];
        let now = Instant::now();
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Forget expired windows rather than grow without bound under a scan.
            map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let reset = self
            .window
            .saturating_sub(now.duration_since(entry.0))
            .as_secs()
            .max(1);
        RateState {
            allowed: entry.1 <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(entry.1),
            reset_secs: reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(l.check(a).allowed);
        assert!(l.check(a).allowed);
        let third = l.check(a);
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert!(l.check(b).allowed);
        assert!(RateLimiter::new(0, Duration::from_secs(1)).check(a).allowed);
    }
}
