//! Inbound SMTP (RFC 5321) for the ePoststelle's e-mail channel: a library that accepts mail
//! for the platform's own addresses and hands each message to the application through
//! [`Delivery`]. It is a final receiver, never a relay: which recipients exist is the
//! application's answer to [`Delivery::check_recipient`].
//!
//! Extensions: 8BITMIME (RFC 6152), SIZE (RFC 1870), PIPELINING (RFC 2920),
//! ENHANCEDSTATUSCODES (RFC 2034/3463), SMTPUTF8 (RFC 6531), STARTTLS (RFC 3207, only when
//! [`Config::tls`] is set) and HELP. No AUTH, no BDAT/CHUNKING, no DSN.
//!
//! Layout: `command` parses one command line, `session` is the state machine that maps a
//! parsed command and the current state to a reply and the next action, `message` decodes
//! the DATA content (dot-unstuffing, line ends, size) and writes the `Received:` header,
//! `limits` counts connections and messages per client — all without I/O. `server` (the
//! accept loop and the per-connection loop) and `tls` are the thin tokio/rustls part.
//!
//! Invariants:
//! - Never answers 250 to DATA unless [`Delivery::deliver`] returned
//!   [`DeliveryOutcome::Accepted`]; a message that was not accepted is never acknowledged.
//! - Never holds more than `max_message_bytes` of a message's content (plus our trace
//!   header): bytes past the limit are read and discarded up to the end-of-data line, then
//!   answered 552. Command lines are bounded (2048 octets), the rest of an overlong line is
//!   discarded.
//! - No panics on input: slices are never indexed unchecked, nothing from the client is
//!   unwrapped, counters saturate.
//! - The end of DATA is only `<CRLF>.<CRLF>` (bare LF and bare CR are stored as CRLF, but
//!   never end the content: no SMTP smuggling). Bytes pipelined after STARTTLS are dropped.
//! - Never logs message content or envelope addresses; logs carry the client IP, the
//!   internal id, sizes and outcomes.
//! - Never waits without a timeout on the client: `command_timeout` for every command and
//!   every write, `data_timeout` for the whole DATA content.
//!
//! Deliberate departures from the letter of some texts: the greeting, the replies to
//! EHLO/HELO and the 354 intermediate reply carry no enhanced status code (RFC 2034 § 3
//! excludes them; every other reply has one). Per-client limits count IPv6 clients by
//! their /64 prefix (one host usually owns a whole /64).

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

mod command;
mod limits;
mod message;
mod server;
mod session;
mod tls;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use server::serve;
pub use tls::load_tls;

/// The rustls version [`Config::tls`] is built with.
pub use rustls;

/// Limits and identity of the server. [`Config::default`] gives the production defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our host name: in the greeting, the EHLO reply and the `Received:` header.
    pub hostname: String,
    /// Largest message content in octets; announced as `SIZE`, checked against `SIZE=` at
    /// MAIL and counted during DATA (after dot-unstuffing, with CRLF line ends).
    pub max_message_bytes: u64,
    /// Recipients accepted per message; more are answered `452 4.5.3`.
    pub max_recipients: usize,
    /// Concurrent connections in total; more are answered `421 4.3.2` and closed.
    pub max_connections: usize,
    /// Concurrent connections per client (IPv4 address or IPv6 /64).
    pub max_connections_per_ip: usize,
    /// Transactions (accepted MAIL commands) per client and minute (token bucket: the
    /// full amount may come at once, then it refills evenly over the minute); MAIL beyond
    /// that is answered `450 4.7.1`.
    pub max_messages_per_ip_per_minute: u32,
    /// Bad commands (syntax and sequencing errors) tolerated per connection; the next one
    /// is answered `421 4.7.0` and the connection closed.
    pub max_errors: u32,
    /// How long we wait for a command (and for a reply to be written); RFC 5321 4.5.3.2
    /// asks for at least five minutes.
    pub command_timeout: Duration,
    /// How long the whole DATA content may take. On shutdown, sessions in DATA get this
    /// long to finish.
    pub data_timeout: Duration,
    /// STARTTLS is offered only when this is set (see [`load_tls`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "localhost".to_owned(),
            max_message_bytes: 30 * 1024 * 1024,
            max_recipients: 50,
            max_connections: 256,
            max_connections_per_ip: 16,
            max_messages_per_ip_per_minute: 120,
            max_errors: 10,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            tls: None,
        }
    }
}

/// The SMTP envelope of a message (what the client said, not what the header says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub client_ip: IpAddr,
    /// The EHLO/HELO argument, as given.
    pub helo: String,
    /// The reverse-path without `<>`, as given; `""` for the null sender `<>`.
    pub mail_from: String,
    /// The accepted forward-paths without `<>`, as given, in order, without duplicates
    /// (compared by [`normalize_address`]).
    pub rcpt_to: Vec<String>,
    /// The session was upgraded with STARTTLS.
    pub tls: bool,
    /// MAIL carried `SMTPUTF8`.
    pub smtputf8: bool,
    /// MAIL carried `BODY=8BITMIME`.
    pub body_8bit: bool,
}

/// The application's answer to a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    /// `250 2.1.5`.
    Accept,
    /// Answered as given, e.g. `550 5.1.1 no such mailbox` or `450 4.2.1 try later`.
    /// A code outside 400–599 becomes 550, an enhanced code that is malformed or of
    /// the wrong class becomes `<class>.0.0`; the text is reduced to printable ASCII.
    Reject {
        code: u16,
        enhanced: String,
        text: String,
    },
}

/// The application's answer to a complete message; it becomes the reply to DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The message is durably stored: `250 2.0.0 OK <id>`. Return this only then.
    Accepted { id: String },
    /// `451 4.3.0 <text>`: the client keeps the message and retries.
    TempFail { text: String },
    /// Answered as given (e.g. `554 5.6.0`); sanitised like [`RcptVerdict::Reject`]
    /// (a code outside 400–599 becomes 554).
    Reject {
        code: u16,
        enhanced: String,
        text: String,
    },
}

/// What the server asks the application. Both methods may be called concurrently from
/// many sessions.
pub trait Delivery: Send + Sync + 'static {
    /// Whether `rcpt` (a forward-path without `<>`, as given) may receive mail in this
    /// transaction; `env.rcpt_to` holds the recipients accepted so far.
    fn check_recipient(
        &self,
        env: &Envelope,
        rcpt: &str,
    ) -> impl Future<Output = RcptVerdict> + Send;

    /// Takes over one message for all recipients in `env.rcpt_to`.
    ///
    /// `message`: the content after dot-unstuffing, CRLF line ends, with our `Received:`
    /// trace header prepended. Called once per message; its outcome is the reply to DATA.
    /// The future is awaited to completion except when [`serve`] gives up on a session
    /// after shutdown (`data_timeout` later); then it is dropped, and the client, without
    /// a 250, sends the message again.
    fn deliver(
        &self,
        env: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = DeliveryOutcome> + Send;
}

/// Errors of [`load_tls`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the certificate chain from {path}: {source}")]
    Certificates {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key from {path}: {source}")]
    PrivateKey {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
}

/// The address with its domain part (after the last `@`) lowercased, for comparing
/// addresses; the local part stays as given (RFC 5321 2.4: it may be case-sensitive).
/// `""` (null sender) and `postmaster` come back unchanged.
pub fn normalize_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_only_the_domain() {
        assert_eq!(
            normalize_address("Max.Muster@Example.DE"),
            "Max.Muster@example.de"
        );
        assert_eq!(
            normalize_address("\"A@B\"@Stadt.Example"),
            "\"A@B\"@stadt.example"
        );
        assert_eq!(
            normalize_address("Jörg@BÜRGERAMT.example"),
            "Jörg@bürgeramt.example"
        );
        assert_eq!(normalize_address(""), "");
        assert_eq!(normalize_address("Postmaster"), "Postmaster");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.max_message_bytes, 31_457_280);
        assert_eq!(c.max_recipients, 50);
        assert_eq!(c.max_connections, 256);
        assert_eq!(c.max_connections_per_ip, 16);
        assert_eq!(c.max_messages_per_ip_per_minute, 120);
        assert_eq!(c.max_errors, 10);
        assert_eq!(c.command_timeout, Duration::from_secs(300));
        assert_eq!(c.data_timeout, Duration::from_secs(600));
        assert!(c.tls.is_none());
    }
}
