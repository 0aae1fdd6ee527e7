//! The Zustelldienst's protocol rules (FIT-Connect Submission API v1 and v2), pure: no I/O,
//! no clock, no randomness — callers pass ids and times in.
//!
//! * [`status`]: the submission state machine (strict: anything else is a 409/422).
//! * [`submission`]: request bodies of senders, with the field differences of v1 and v2.
//! * [`destination`]: destinations as subscribers manage them and senders see them.
//! * [`event`]: Security Event Tokens (RFC 8417) — the claims we sign and the checks on the
//!   ones subscribers send.
//! * [`problem`]: FIT-Connect's problem types, each with the status it travels with.

pub mod destination;
pub mod event;
pub mod jwe;
pub mod problem;
pub mod status;
pub mod submission;

pub use destination::{Destination, DestinationInput, DestinationStatus, ServiceOffer};
pub use event::{EventKind, SetCheck, SubscriberEvent};
pub use problem::{Problem, ProblemKind};
pub use status::{Action, SubmissionStatus};
pub use submission::{ApiVersion, CreateSubmission, Limits, SubmitSubmission};

/// Parses a UUID the way FIT-Connect clients send them (any case, with hyphens) into the
/// lowercase hyphenated form we store and compare.
///
/// # Errors
/// A problem naming `field`.
pub fn parse_id(field: &str, value: &str) -> Result<String, Problem> {
    if value.len() > 36 || value.len() < 32 {
        return Err(Problem::new(
            ProblemKind::InvalidRequest,
            format!(
                "{field} must be a UUID (36 characters, e.g. 8f3c…-…), got {} characters",
                value.len()
            ),
        ));
    }
    uuid::Uuid::try_parse(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            Problem::new(
                ProblemKind::InvalidRequest,
                format!("{field} must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6"),
            )
        })
}
