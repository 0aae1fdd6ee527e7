//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;
use crate::problem::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A second recorder (another app in the same test process) keeps the first.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(3), state.app.store().check_ready()).await {
        Ok(Ok(())) => {
            let mut body = serde_json::json!({
                "status": "ready",
                "authorities": state.app.directory().authority_count(),
                "generation": state.app.directory().generation,
            });
            // The node serves, but the ePoststelle cannot accept submissions: say why.
            if let Some(reason) = state.app.poststelle_problem() {
                body["poststelle"] = serde_json::json!({"status": "waiting", "reason": reason});
                body["reasons"] = serde_json::json!([format!("ePoststelle: {reason}")]);
            }
            axum::Json(body).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
                .detail(format!("the database is not ready: {e}"))
                .into_response()
        }
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .detail("the database did not answer within 3 s")
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (size, idle) = state.app.store().pool_stats();
    metrics::gauge!("db_pool_connections").set(f64::from(size));
    metrics::gauge!("db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("directory_generation").set(state.app.directory().generation as f64);
    metrics::gauge!("directory_rules").set(state.app.directory().rules().len() as f64);
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

async fn openapi(State(state): State<AppState>) -> Response {
    let doc = crate::openapi::document(&state.app.settings().public_url);
    axum::Json(doc).into_response()
}
