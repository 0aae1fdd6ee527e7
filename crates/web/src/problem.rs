//! RFC 7807 problem details: the one error shape of every JSON API, and the one place where
//! application errors become HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Problem types are URIs; ours live under the public URL's `/problems/`, FIT-Connect's
/// under its own namespace where one fits.
pub const TYPE_BASE: &str = "https://rathaus.invalid/problems/";

/// A problem; boxed so that `Result<T, Problem>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Which input was wrong, for clients that show the message beside a field.
    #[serde(rename = "invalidParams", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Problem(Box::new(ProblemBody {
            kind: if kind.starts_with("https://") {
                kind.to_owned()
            } else {
                format!("{TYPE_BASE}{kind}")
            },
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            invalid_params: Vec::new(),
        }))
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    pub fn param(mut self, name: &str, reason: impl Into<String>) -> Self {
        self.0.invalid_params.push(InvalidParam {
            name: name.to_owned(),
            reason: reason.into(),
        });
        self
    }

    /// A wrong query or body parameter: 400 naming it.
    pub fn bad_param(name: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
        )
        .detail(format!("{name}: {reason}"))
        .param(name, reason)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub fn internal() -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error")
            .detail("The error was logged. Please try again later; if it persists, tell the operator the request id.")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// Maps application errors to problems. Internal details are logged, never sent.
impl From<app::AppError> for Problem {
    fn from(e: app::AppError) -> Self {
        use app::AppError::*;
        match e {
            Invalid(m) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input").detail(m)
            }
            InvalidField { field, message } => Self::bad_param(field, message),
            NotFound(m) => Self::not_found(m),
            TrustLevelTooLow { required } => Self::new(
                StatusCode::FORBIDDEN,
                "trust-level-too-low",
                "Trust level too low",
            )
            .detail(format!(
                "this needs a login at trust level {required} (STORK-QAA-Level-{required})"
            )),
            Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict").detail(m),
            app::AppError::Problem(p) => {
                let status = StatusCode::from_u16(p.kind.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Self::new(status, &p.kind.type_uri(), p.kind.title()).detail(p.detail)
            }
            Config(m) => {
                tracing::error!(error = %m, "configuration error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "misconfigured",
                    "Service misconfigured",
                )
                .detail("The operator must fix the configuration; see the server log.")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Self::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, Problem>;
