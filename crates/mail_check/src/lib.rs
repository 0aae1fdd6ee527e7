//! What the ePoststelle's e-mail channel learns from a received message before it becomes a
//! submission: its parts ([`parse`]: headers, bodies, attachments with their names and
//! types, whether it was sent by a machine), its origin ([`auth`]: DKIM, SPF and DMARC) and
//! its own signatures ([`signature`]: S/MIME verified, OpenPGP recognised).
//!
//! **Invariants:** never panics and never refuses on broken input — a message that cannot
//! be understood still yields a [`ParsedMail`] (with `problems`), because the law counts it
//! as received and the original is kept as evidence; results only ever *describe* a
//! message, they never drop it; no message content is logged; every count and size is
//! bounded ([`Limits`]).

pub mod auth;
mod parse;
pub mod signature;

pub use auth::{AuthReport, Authenticator, Check, Dns};
pub use parse::{Attachment, Limits, Mailbox, ParsedMail, parse};
pub use signature::{SignatureCheck, SignatureKind};

#[cfg(test)]
mod tests;
