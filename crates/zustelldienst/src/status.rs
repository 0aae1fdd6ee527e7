//! The submission state machine. Strict: every transition not listed here is refused, so no
//! sequence of requests can bring a submission into a state FIT-Connect does not know.
//!
//! ```text
//! incomplete ──submit──► submitted ──fetch──► forwarded
//!                            │                    │
//!                            ├──accept/reject─────┤──► accepted | rejected ──delete──► deleted
//!                            └──expire (14 days)──► rejected
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionStatus {
    /// Created; attachments are being uploaded.
    Incomplete,
    /// Submitted by the sender; waiting for the subscriber.
    Submitted,
    /// Fetched by the subscriber.
    Forwarded,
    Accepted,
    Rejected,
    /// Content removed after the retention period; the event log remains.
    Deleted,
}

impl SubmissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Incomplete => "incomplete",
            SubmissionStatus::Submitted => "submitted",
            SubmissionStatus::Forwarded => "forwarded",
            SubmissionStatus::Accepted => "accepted",
            SubmissionStatus::Rejected => "rejected",
            SubmissionStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "incomplete" => SubmissionStatus::Incomplete,
            "submitted" => SubmissionStatus::Submitted,
            "forwarded" => SubmissionStatus::Forwarded,
            "accepted" => SubmissionStatus::Accepted,
            "rejected" => SubmissionStatus::Rejected,
            "deleted" => SubmissionStatus::Deleted,
            _ => return None,
        })
    }

    /// Subscribers may read the submission and its attachments (FIT-Connect: only while
    /// `submitted` or `forwarded`).
    pub fn readable_by_subscriber(self) -> bool {
        matches!(
            self,
            SubmissionStatus::Submitted | SubmissionStatus::Forwarded
        )
    }

    /// A decision has been made; nothing but deletion follows.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubmissionStatus::Accepted | SubmissionStatus::Rejected | SubmissionStatus::Deleted
        )
    }
}

/// What can happen to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    UploadAttachment,
    Submit,
    /// The subscriber fetched the submission.
    Fetch,
    Accept,
    Reject,
    /// Automatic rejection after the pickup deadline.
    Expire,
    /// Content deleted after the retention period.
    Delete,
}

impl SubmissionStatus {
    /// The state after `action`, or `None` if `action` is not allowed now. Fetching an
    /// already forwarded submission again is allowed and changes nothing.
    pub fn after(self, action: Action) -> Option<SubmissionStatus> {
        use Action::*;
        use SubmissionStatus::*;
        match (self, action) {
            (Incomplete, UploadAttachment) => Some(Incomplete),
            (Incomplete, Submit) => Some(Submitted),
            (Submitted | Forwarded, Fetch) => Some(Forwarded),
            (Submitted | Forwarded, Accept) => Some(Accepted),
            (Submitted | Forwarded, Reject) => Some(Rejected),
            (Submitted, Expire) => Some(Rejected),
            // Abandoned drafts are removed as well as decided submissions.
            (Incomplete | Accepted | Rejected, Delete) => Some(Deleted),
            _ => None,
        }
    }
}
