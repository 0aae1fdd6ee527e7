//! The web layer: the only crate that knows HTTP. Handlers parse input, call the `app`
//! crate, and render JSON or HTML; business rules live elsewhere.
//!
//! Entry point: [`router`] builds the whole axum application; [`serve`] runs it with
//! graceful shutdown.

mod account_pages;
mod admin_api;
mod admin_pages;
mod csrf;
mod i18n;
mod journal_api;
mod middleware;
mod oauth_api;
mod oidc_pages;
mod openapi;
mod ops;
mod org_pages;
mod pages;
mod passkey_pages;
mod postfach_api;
mod postfach_pages;
mod problem;
mod profile_pages;
mod public_api;
mod receipt_api;
mod routing_api;
mod submission_api;
mod templates;
mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::App;
use axum::Router;
use axum::http::{HeaderName, StatusCode};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub use middleware::RateLimiter;
pub use problem::Problem;

/// How the web layer behaves; everything else comes from the [`App`].
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Bearer token of the admin API; `None` disables it.
    pub admin_token: Option<String>,
    /// Show the demo banner.
    pub demo: bool,
    /// The authority whose legal pages the footer links (the platform's operator).
    pub operator_ars: String,
    /// Requests per minute and client on the Routing API (0 = unlimited).
    pub routing_rate_limit: u32,
    /// Requests per minute and client on the token, introspection and revocation endpoints
    /// (0 = unlimited).
    pub token_rate_limit: u32,
    /// Take the client address from X-Forwarded-For (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    pub request_timeout: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            admin_token: None,
            demo: false,
            operator_ars: "03".into(),
            routing_rate_limit: 60_000,
            token_rate_limit: 6_000,
            trust_forwarded_for: false,
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub(crate) struct Shared {
    pub app: Arc<App>,
    pub config: WebConfig,
    pub templates: templates::Templates,
    pub secure: bool,
    pub routing_limiter: RateLimiter,
    pub feedback_limiter: RateLimiter,
    /// Sign-ins to the admin pages, per client address.
    pub admin_login_limiter: RateLimiter,
    /// Forms that send mail (registration, reset, e-mail change), per client address.
    pub account_mail_limiter: RateLimiter,
    /// The OAuth token endpoint, per client address.
    pub token_limiter: RateLimiter,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application.
pub fn router(app: Arc<App>, config: WebConfig) -> Router {
    let secure = app.settings().public_url.starts_with("https://");
    let postfach_body_limit = {
        let p = app.postfach_settings();
        // Every file at its limit, plus room for the text parts and multipart framing.
        usize::try_from(p.max_file_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(p.max_files)
            .saturating_add(2 * 1024 * 1024)
    };
    let zd_body_limit = {
        let l = &app.settings().zustelldienst.limits;
        let most = l
            .max_attachment_bytes
            .max(l.max_metadata_bytes + l.max_data_bytes + 64 * 1024);
        usize::try_from(most).unwrap_or(usize::MAX)
    };
    let state = AppState(Arc::new(Shared {
        secure,
        routing_limiter: RateLimiter::new(config.routing_rate_limit, Duration::from_secs(60)),
        feedback_limiter: RateLimiter::new(5, Duration::from_secs(600)),
        admin_login_limiter: RateLimiter::new(10, Duration::from_secs(600)),
        account_mail_limiter: RateLimiter::new(10, Duration::from_secs(600)),
        token_limiter: RateLimiter::new(config.token_rate_limit, Duration::from_secs(60)),
        templates: templates::Templates::new(),
        metrics: ops::metrics_handle(),
        app,
        config: config.clone(),
    }));
    // Everything that may wait on the database gets a deadline. The Routing API answers from
    // memory without awaiting anything, so a timer per request would protect nothing there
    // and cost ~2 % of its throughput.
    let timed = Router::new()
        .merge(public_api::router())
        .merge(admin_api::router())
        .merge(ops::router())
        .merge(pages::router())
        .merge(account_pages::router())
        .merge(org_pages::router())
        .merge(profile_pages::router())
        .merge(passkey_pages::router())
        .merge(oauth_api::router())
        .merge(oidc_pages::router())
        .merge(admin_pages::router())
        .merge(postfach_api::router(postfach_body_limit))
        .merge(postfach_pages::router(postfach_body_limit))
        .merge(submission_api::router(zd_body_limit))
        .merge(journal_api::router())
        .merge(receipt_api::router())
        .fallback(pages::not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    let mut router = routing_api::router()
        .merge(timed)
        .with_state(state)
        .layer(axum::middleware::from_fn(middleware::observe_and_secure))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(
            REQUEST_ID,
            MakeRequestId {
                prefix: crypto::random_token(9).into(),
                counter: Default::default(),
            },
        ));
    if secure {
        router = router.layer(axum::middleware::from_fn(middleware::hsts));
    }
    router
}

/// Request ids: a random per-process prefix and a counter, unique without a system call
/// per request (a UUIDv4 would read the kernel's random source every time).
#[derive(Clone)]
struct MakeRequestId {
    prefix: Arc<str>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(Into::into)
    }
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers are written in one go; Nagle's algorithm would only hold back the last segment
    // of a response while the previous one waits for its ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
