//! FIT-Connect's problem types (RFC 7807). Three are confirmed in the field
//! (`destination-not-found`, `destination-state-invalid`, `submission-not-found`); the others
//! follow the same naming scheme under the same prefix (decision recorded in
//! `docs/decisions.md`). Every problem carries a `detail` that says what to fix.

/// The namespace FIT-Connect's problem types live in.
pub const PROBLEM_BASE: &str = "https://schema.fitko.de/fit-connect/submission-api/problems/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Malformed or invalid request body, query or path parameter.
    InvalidRequest,
    /// No or an invalid bearer token.
    Unauthorized,
    /// The token is valid but its client may not do this (e.g. not linked to the destination).
    Forbidden,
    DestinationNotFound,
    SubmissionNotFound,
    CaseNotFound,
    AttachmentNotFound,
    KeyNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A submission to a destination that is not `active`.
    DestinationStateInvalid,
    /// The destination does not offer the service (or not in the region).
    ServiceNotOffered,
    /// Upload or submit in a state that does not allow it.
    SubmissionStateInvalid,
    AttachmentNotAnnounced,
    /// Submit before every announced attachment was uploaded.
    MissingAttachments,
    /// A JWE that is not RSA-OAEP-256/A256GCM compact serialisation.
    InvalidJwe,
    /// An event that may not follow the submission's current state.
    InvalidStateTransition,
    /// A Security Event Token that is well-signed but semantically wrong.
    InvalidEvent,
    /// A Security Event Token whose signature does not verify with the destination's key.
    InvalidEventSignature,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl ProblemKind {
    pub fn slug(self) -> &'static str {
        use ProblemKind::*;
        match self {
            InvalidRequest => "invalid-request",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            DestinationNotFound => "destination-not-found",
            SubmissionNotFound => "submission-not-found",
            CaseNotFound => "case-not-found",
            AttachmentNotFound => "attachment-not-found",
            KeyNotFound => "key-not-found",
            PayloadTooLarge => "payload-too-large",
            UnsupportedMediaType => "unsupported-media-type",
            DestinationStateInvalid => "destination-state-invalid",
            ServiceNotOffered => "service-not-offered",
            SubmissionStateInvalid => "submission-state-invalid",
            AttachmentNotAnnounced => "attachment-not-announced",
            MissingAttachments => "missing-attachments",
            InvalidJwe => "invalid-jwe",
            InvalidStateTransition => "invalid-state-transition",
            InvalidEvent => "invalid-event",
            InvalidEventSignature => "invalid-event-signature",
            TooManyRequests => "too-many-requests",
            Internal => "internal-error",
            Unavailable => "service-unavailable",
        }
    }

    pub fn status(self) -> u16 {
        use ProblemKind::*;
        match self {
            InvalidRequest | InvalidJwe => 400,
            Unauthorized => 401,
            Forbidden => 403,
            DestinationNotFound | SubmissionNotFound | CaseNotFound | AttachmentNotFound
            | KeyNotFound => 404,
            InvalidStateTransition => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            DestinationStateInvalid
            | ServiceNotOffered
            | SubmissionStateInvalid
            | AttachmentNotAnnounced
            | MissingAttachments
            | InvalidEvent
            | InvalidEventSignature => 422,
            TooManyRequests => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    pub fn title(self) -> &'static str {
        use ProblemKind::*;
        match self {
            InvalidRequest => "Invalid request",
            Unauthorized => "Authentication required",
            Forbidden => "Not allowed for this client",
            DestinationNotFound => "Destination not found",
            SubmissionNotFound => "Submission not found",
            CaseNotFound => "Case not found",
            AttachmentNotFound => "Attachment not found",
            KeyNotFound => "Key not found",
            PayloadTooLarge => "Payload too large",
            UnsupportedMediaType => "Unsupported media type",
            DestinationStateInvalid => "Destination does not accept submissions",
            ServiceNotOffered => "Service not offered by this destination",
            SubmissionStateInvalid => "Submission is in the wrong state",
            AttachmentNotAnnounced => "Attachment not announced",
            MissingAttachments => "Announced attachments missing",
            InvalidJwe => "Invalid JWE",
            InvalidStateTransition => "Invalid state transition",
            InvalidEvent => "Invalid event",
            InvalidEventSignature => "Invalid event signature",
            TooManyRequests => "Too many requests",
            Internal => "Internal error",
            Unavailable => "Service unavailable",
        }
    }

    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }
}

/// A problem with the sentence that tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(ProblemKind::InvalidRequest, detail)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.slug(), self.detail)
    }
}

impl std::error::Error for Problem {}
