use store::StoreError;

/// The application layer's error. The web layer maps each kind to one HTTP status in one
/// place; the CLI prints the message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is wrong; the message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// One field of the input is wrong.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    /// The session's trust level (Vertrauensniveau) is below what this needs; a login at
    /// the required level (step-up) would allow it.
    #[error("this needs trust level {required} (STORK-QAA-Level-{required})")]
    TrustLevelTooLow { required: u8 },
    #[error("{0}")]
    Conflict(String),
    /// The deployment is misconfigured.
    #[error("{0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
    /// A FIT-Connect problem (Zustelldienst), with its own problem type.
    #[error("{0}")]
    Problem(zustelldienst::Problem),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::NotFound(m) => AppError::NotFound(m),
            other => AppError::Store(other),
        }
    }
}

impl From<verzeichnis::gebiete::ImportError> for AppError {
    fn from(e: verzeichnis::gebiete::ImportError) -> Self {
        AppError::Invalid(e.to_string())
    }
}

impl From<crypto::Error> for AppError {
    fn from(e: crypto::Error) -> Self {
        AppError::Internal(format!("crypto: {e}"))
    }
}
