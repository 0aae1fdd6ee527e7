//! The SMTP session as a state machine without I/O: a command line and the current state
//! give a reply and what the server must do next ([`Step`]). Whatever needs the outside
//! world — the rate limiter, the application's recipient check, reading the content,
//! delivering, the TLS handshake — is a step the server carries out and reports back
//! through the matching method.
//!
//! States: before EHLO/HELO → greeted → in a transaction (after MAIL) → with recipients
//! (after an accepted RCPT) → DATA. RSET and EHLO/HELO end a transaction; STARTTLS ends
//! everything, the client starts again with EHLO.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::command::{self, Body, Command, MailParams, ParseError};
use crate::message::{DataReader, TooLarge, Trace, received_header};
use crate::{Config, DeliveryOutcome, Envelope, RcptVerdict, normalize_address};

/// Longest command line we read, without its line end. RFC 5321 4.5.3.1.4 says 512 with
/// CRLF; we are lenient (long addresses with parameters exist in the wild).
pub(crate) const MAX_COMMAND_LINE: usize = 2048;
/// Longest reply text line we send.
const MAX_REPLY_TEXT: usize = 450;

/// One reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    enhanced: Option<String>,
    lines: Vec<String>,
}

impl Reply {
    /// A reply with an enhanced status code (RFC 3463).
    fn new(code: u16, enhanced: &str, text: impl AsRef<str>) -> Self {
        Reply {
            code,
            enhanced: Some(enhanced.to_owned()),
            lines: vec![sanitize(text.as_ref())],
        }
    }

    /// A reply without an enhanced status code (greeting, EHLO/HELO, 354).
    fn bare(code: u16, text: impl AsRef<str>) -> Self {
        Reply {
            code,
            enhanced: None,
            lines: vec![sanitize(text.as_ref())],
        }
    }

    /// A reply given by the application: a code outside 400–599 becomes `fallback`, an
    /// enhanced code that does not fit the class becomes `<class>.0.0`.
    fn from_application(code: u16, enhanced: &str, text: &str, fallback: u16) -> Self {
        let code = if (400..=599).contains(&code) {
            code
        } else {
            fallback
        };
        let class = if code >= 500 { '5' } else { '4' };
        let enhanced = if valid_enhanced(enhanced, class) {
            enhanced.to_owned()
        } else {
            format!("{class}.0.0")
        };
        let text = if text.trim().is_empty() {
            "refused"
        } else {
            text
        };
        Reply::new(code, &enhanced, text)
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    /// Appends the reply in wire format.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines = if self.lines.is_empty() {
            empty.as_slice()
        } else {
            self.lines.as_slice()
        };
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(enhanced) = &self.enhanced {
                out.extend_from_slice(enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    #[cfg(test)]
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Printable ASCII only (no CR/LF injection into the reply stream), bounded length.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(MAX_REPLY_TEXT)
        .collect()
}

/// `class.subject.detail` with the given class, subject and detail 0–999 (RFC 3463).
fn valid_enhanced(s: &str, class: char) -> bool {
    let mut parts = s.split('.');
    let first_ok = parts.next() == Some(class.encode_utf8(&mut [0; 4]));
    let number = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    first_ok && number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

/// What the server does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Queue the reply, go on reading commands.
    Reply(Reply),
    /// Send the reply and close the connection.
    Close(Reply),
    /// MAIL is acceptable: ask the rate limiter, then call [`Session::rate_checked`].
    CheckRate,
    /// Ask `Delivery::check_recipient`, then call [`Session::recipient_checked`].
    CheckRecipient { envelope: Envelope, rcpt: String },
    /// Send the reply (354), flush, call [`Session::begin_data`], read the content with
    /// the decoder it returns and hand the result to [`Session::data_received`].
    ReadData(Reply),
    /// Send the reply (220), flush, drop any bytes the client already sent, do the TLS
    /// handshake and call [`Session::tls_started`].
    StartTls(Reply),
}

/// What follows a complete DATA content.
#[derive(Debug)]
pub(crate) enum AfterData {
    Reply(Reply),
    /// Call `Delivery::deliver`, then [`Session::delivered`].
    Deliver {
        envelope: Envelope,
        message: Vec<u8>,
    },
}

#[derive(Debug)]
struct Helo {
    name: String,
    extended: bool,
}

#[derive(Debug)]
struct Transaction {
    mail_from: String,
    smtputf8: bool,
    body_8bit: bool,
    rcpt_to: Vec<String>,
    /// RCPT commands the application refused (for the reply to DATA).
    refused: usize,
}

/// What the server was asked to find out.
#[derive(Debug)]
enum Pending {
    Nothing,
    Mail {
        reverse_path: String,
        params: MailParams,
    },
    Rcpt(String),
}

#[derive(Debug)]
pub(crate) struct Session {
    hostname: String,
    client_ip: IpAddr,
    max_message_bytes: u64,
    max_recipients: usize,
    max_errors: u32,
    /// TLS is configured and not yet in use.
    starttls_offered: bool,
    tls: bool,
    errors: u32,
    helo: Option<Helo>,
    transaction: Option<Transaction>,
    pending: Pending,
}

impl Session {
    pub fn new(config: &Config, client_ip: IpAddr) -> Self {
        Session {
            hostname: sanitize(&config.hostname),
            client_ip,
            max_message_bytes: config.max_message_bytes,
            max_recipients: config.max_recipients,
            max_errors: config.max_errors,
            starttls_offered: config.tls.is_some(),
            tls: false,
            errors: 0,
            helo: None,
            transaction: None,
            pending: Pending::Nothing,
        }
    }

    pub fn greeting(&self) -> Reply {
        Reply::bare(220, format!("{} ESMTP Rathaus ePoststelle", self.hostname))
    }

    pub fn timed_out(&self) -> Reply {
        Reply::new(
            421,
            "4.4.2",
            format!("{} timeout exceeded, closing connection", self.hostname),
        )
    }

    pub fn shutting_down(&self) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{} shutting down, try again later", self.hostname),
        )
    }

    /// The reply to a connection over the global limit.
    pub fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!(
                "{} too many connections, try again later",
                sanitize(hostname)
            ),
        )
    }

    /// The reply to a connection over the per-client limit.
    pub fn too_many_connections_from_client(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!(
                "{} too many connections from your address, try again later",
                sanitize(hostname)
            ),
        )
    }

    /// Whether the server may use TLS now (it is configured and not yet active).
    #[cfg(test)]
    fn starttls_offered(&self) -> bool {
        self.starttls_offered
    }

    /// A command line longer than [`MAX_COMMAND_LINE`] arrived (and was discarded).
    pub fn line_too_long(&mut self) -> Step {
        let reply = Reply::new(
            500,
            "5.5.2",
            format!("line too long (at most {MAX_COMMAND_LINE} octets)"),
        );
        self.bad(reply)
    }

    /// One command line, without its line end.
    pub fn command(&mut self, line: &[u8]) -> Step {
        self.pending = Pending::Nothing;
        match command::parse(line) {
            Ok(command) => self.execute(command),
            Err(error) => self.parse_error(error),
        }
    }

    /// Counts a bad command; past `max_errors` the answer is 421 and the connection ends.
    fn bad(&mut self, reply: Reply) -> Step {
        self.errors = self.errors.saturating_add(1);
        if self.errors > self.max_errors {
            Step::Close(Reply::new(
                421,
                "4.7.0",
                format!("{} too many errors, closing connection", self.hostname),
            ))
        } else {
            Step::Reply(reply)
        }
    }

    fn parse_error(&mut self, error: ParseError) -> Step {
        let reply = match error {
            ParseError::Unrecognized => Reply::new(500, "5.5.2", "command unrecognized"),
            ParseError::Http => {
                return Step::Close(Reply::new(
                    421,
                    "4.7.0",
                    format!(
                        "{} this is an SMTP server, closing connection",
                        self.hostname
                    ),
                ));
            }
            ParseError::Helo(text) => Reply::bare(501, text),
            ParseError::Syntax(text) => Reply::new(501, "5.5.2", text),
            ParseError::Address { sender, reason } => {
                Reply::new(501, if sender { "5.1.7" } else { "5.1.3" }, reason)
            }
            ParseError::BadParameter(text) => Reply::new(501, "5.5.4", text),
            ParseError::UnknownParameter(keyword) => {
                let keyword: String = keyword.chars().take(40).collect();
                Reply::new(555, "5.5.4", format!("parameter {keyword} not supported"))
            }
        };
        self.bad(reply)
    }

    fn sequence_error(&mut self, text: &str) -> Step {
        self.bad(Reply::new(503, "5.5.1", text))
    }

    fn execute(&mut self, command: Command) -> Step {
        match command {
            Command::Ehlo(name) => {
                self.transaction = None;
                let mut lines = vec![
                    format!("{} greets {} [{}]", self.hostname, name, self.client_ip),
                    "8BITMIME".to_owned(),
                    format!("SIZE {}", self.max_message_bytes),
                    "PIPELINING".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                    "SMTPUTF8".to_owned(),
                ];
                if self.starttls_offered {
                    lines.push("STARTTLS".to_owned());
                }
                lines.push("HELP".to_owned());
                self.helo = Some(Helo {
                    name,
                    extended: true,
                });
                Step::Reply(Reply {
                    code: 250,
                    enhanced: None,
                    lines: lines.iter().map(|l| sanitize(l)).collect(),
                })
            }
            Command::Helo(name) => {
                self.transaction = None;
                let reply = Reply::bare(
                    250,
                    format!("{} greets {} [{}]", self.hostname, name, self.client_ip),
                );
                self.helo = Some(Helo {
                    name,
                    extended: false,
                });
                Step::Reply(reply)
            }
            Command::Mail {
                reverse_path,
                params,
            } => self.mail(reverse_path, params),
            Command::Rcpt { forward_path } => self.rcpt(forward_path),
            Command::Data => self.data(),
            Command::Rset => {
                self.transaction = None;
                Step::Reply(Reply::new(250, "2.0.0", "OK"))
            }
            Command::Noop => Step::Reply(Reply::new(250, "2.0.0", "OK")),
            Command::Quit => Step::Close(Reply::new(
                221,
                "2.0.0",
                format!("{} closing connection", self.hostname),
            )),
            Command::Vrfy => Step::Reply(Reply::new(
                252,
                "2.5.0",
                "cannot verify the user; send a message and delivery will be attempted",
            )),
            Command::Expn => Step::Reply(Reply::new(502, "5.5.1", "EXPN not supported")),
            Command::Help => {
                let mut commands = "EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP".to_owned();
                if self.starttls_offered {
                    commands.push_str(" STARTTLS");
                }
                Step::Reply(Reply {
                    code: 214,
                    enhanced: Some("2.0.0".to_owned()),
                    lines: vec![
                        "Rathaus ePoststelle, inbound SMTP (RFC 5321)".to_owned(),
                        format!("commands: {commands}"),
                        "end of HELP".to_owned(),
                    ],
                })
            }
            Command::StartTls => {
                if !self.starttls_offered {
                    return Step::Reply(Reply::new(
                        454,
                        "4.7.0",
                        if self.tls {
                            "TLS already active"
                        } else {
                            "TLS not available"
                        },
                    ));
                }
                if self.helo.is_none() {
                    return self.sequence_error("send EHLO first");
                }
                self.transaction = None;
                Step::StartTls(Reply::new(220, "2.0.0", "ready to start TLS"))
            }
        }
    }

    fn mail(&mut self, reverse_path: String, params: MailParams) -> Step {
        let Some(extended) = self.helo.as_ref().map(|h| h.extended) else {
            return self.sequence_error("send EHLO or HELO first");
        };
        if self.transaction.is_some() {
            return self.sequence_error("sender already given (RSET to start over)");
        }
        if !params.is_empty() && !extended {
            return self.bad(Reply::new(555, "5.5.4", "MAIL parameters need EHLO"));
        }
        if params
            .size
            .is_some_and(|size| size > self.max_message_bytes)
        {
            return Step::Reply(Reply::new(
                552,
                "5.3.4",
                format!(
                    "message size exceeds fixed maximum message size ({} octets)",
                    self.max_message_bytes
                ),
            ));
        }
        if !reverse_path.is_ascii() && !params.smtputf8 {
            return Step::Reply(Reply::new(553, "5.6.7", "non-ASCII address needs SMTPUTF8"));
        }
        self.pending = Pending::Mail {
            reverse_path,
            params,
        };
        Step::CheckRate
    }

    /// The rate limiter's answer to the MAIL command that asked for it.
    pub fn rate_checked(&mut self, allowed: bool) -> Reply {
        let Pending::Mail {
            reverse_path,
            params,
        } = std::mem::replace(&mut self.pending, Pending::Nothing)
        else {
            return Reply::new(451, "4.3.0", "internal error: no MAIL pending");
        };
        if !allowed {
            return Reply::new(
                450,
                "4.7.1",
                "too many messages from your address, try again later",
            );
        }
        self.transaction = Some(Transaction {
            mail_from: reverse_path,
            smtputf8: params.smtputf8,
            body_8bit: params.body == Some(Body::EightBitMime),
            rcpt_to: Vec::new(),
            refused: 0,
        });
        Reply::new(250, "2.1.0", "sender OK")
    }

    fn rcpt(&mut self, forward_path: String) -> Step {
        let max_recipients = self.max_recipients;
        let Some(transaction) = &self.transaction else {
            return self.sequence_error(if self.helo.is_none() {
                "send EHLO or HELO first"
            } else {
                "need MAIL before RCPT"
            });
        };
        if !forward_path.is_ascii() && !transaction.smtputf8 {
            return Step::Reply(Reply::new(553, "5.6.7", "non-ASCII address needs SMTPUTF8"));
        }
        let normalized = normalize_address(&forward_path);
        if transaction
            .rcpt_to
            .iter()
            .any(|r| normalize_address(r) == normalized)
        {
            return Step::Reply(Reply::new(250, "2.1.5", "recipient OK (duplicate)"));
        }
        if transaction.rcpt_to.len() >= max_recipients {
            return Step::Reply(Reply::new(
                452,
                "4.5.3",
                format!("too many recipients (at most {max_recipients} per message)"),
            ));
        }
        let Some(envelope) = self.envelope() else {
            return Step::Reply(Reply::new(451, "4.3.0", "internal error: no transaction"));
        };
        self.pending = Pending::Rcpt(forward_path.clone());
        Step::CheckRecipient {
            envelope,
            rcpt: forward_path,
        }
    }

    /// The application's verdict on the RCPT command that asked for it.
    pub fn recipient_checked(&mut self, verdict: RcptVerdict) -> Reply {
        let Pending::Rcpt(rcpt) = std::mem::replace(&mut self.pending, Pending::Nothing) else {
            return Reply::new(451, "4.3.0", "internal error: no RCPT pending");
        };
        let Some(transaction) = &mut self.transaction else {
            return Reply::new(451, "4.3.0", "internal error: no transaction");
        };
        match verdict {
            RcptVerdict::Accept => {
                transaction.rcpt_to.push(rcpt);
                Reply::new(250, "2.1.5", "recipient OK")
            }
            RcptVerdict::Reject {
                code,
                enhanced,
                text,
            } => {
                transaction.refused = transaction.refused.saturating_add(1);
                Reply::from_application(code, &enhanced, &text, 550)
            }
        }
    }

    fn data(&mut self) -> Step {
        let Some(transaction) = &self.transaction else {
            return self.sequence_error(if self.helo.is_none() {
                "send EHLO or HELO first"
            } else {
                "need MAIL before DATA"
            });
        };
        if transaction.rcpt_to.is_empty() {
            if transaction.refused > 0 {
                return Step::Reply(Reply::new(554, "5.5.1", "no valid recipients"));
            }
            return self.sequence_error("need RCPT before DATA");
        }
        Step::ReadData(Reply::bare(354, "end data with <CR><LF>.<CR><LF>"))
    }

    /// The decoder for the content, primed with our `Received:` header.
    pub fn begin_data(&self, id: &str, now: OffsetDateTime) -> DataReader {
        let (smtputf8, recipient) = match &self.transaction {
            Some(t) => (
                t.smtputf8,
                match t.rcpt_to.as_slice() {
                    [only] => Some(only.as_str()),
                    _ => None,
                },
            ),
            None => (false, None),
        };
        let extended = self.helo.as_ref().is_some_and(|h| h.extended);
        let protocol = match (smtputf8, self.tls, extended) {
            (true, true, _) => "UTF8SMTPS",
            (true, false, _) => "UTF8SMTP",
            (false, true, _) => "ESMTPS",
            (false, false, true) => "ESMTP",
            (false, false, false) => "SMTP",
        };
        let header = received_header(&Trace {
            helo: self.helo.as_ref().map_or("unknown", |h| h.name.as_str()),
            client_ip: self.client_ip,
            hostname: &self.hostname,
            protocol,
            id,
            recipient,
            date: now,
        });
        DataReader::new(header.into_bytes(), self.max_message_bytes)
    }

    /// The decoded content (the end-of-data line was read). Ends the transaction.
    pub fn data_received(&mut self, content: Result<Vec<u8>, TooLarge>) -> AfterData {
        let envelope = self.envelope();
        self.transaction = None;
        let Some(envelope) = envelope else {
            return AfterData::Reply(Reply::new(451, "4.3.0", "internal error: no transaction"));
        };
        match content {
            Ok(message) => AfterData::Deliver { envelope, message },
            Err(TooLarge { .. }) => AfterData::Reply(Reply::new(
                552,
                "5.3.4",
                format!(
                    "message exceeds fixed maximum message size ({} octets)",
                    self.max_message_bytes
                ),
            )),
        }
    }

    /// The application's outcome for the message: the reply to DATA.
    pub fn delivered(&mut self, outcome: DeliveryOutcome) -> Reply {
        match outcome {
            DeliveryOutcome::Accepted { id } => Reply::new(250, "2.0.0", format!("OK {id}")),
            DeliveryOutcome::TempFail { text } => Reply::new(451, "4.3.0", text),
            DeliveryOutcome::Reject {
                code,
                enhanced,
                text,
            } => Reply::from_application(code, &enhanced, &text, 554),
        }
    }

    /// The TLS handshake after STARTTLS succeeded: everything is forgotten, the client
    /// must send EHLO again (RFC 3207 4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.starttls_offered = false;
        self.helo = None;
        self.transaction = None;
        self.pending = Pending::Nothing;
    }

    /// The current transaction's envelope.
    pub fn envelope(&self) -> Option<Envelope> {
        let transaction = self.transaction.as_ref()?;
        Some(Envelope {
            client_ip: self.client_ip,
            helo: self
                .helo
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_default(),
            mail_from: transaction.mail_from.clone(),
            rcpt_to: transaction.rcpt_to.clone(),
            tls: self.tls,
            smtputf8: transaction.smtputf8,
            body_8bit: transaction.body_8bit,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config() -> Config {
        Config {
            hostname: "mx.rathaus.example".into(),
            max_message_bytes: 1000,
            max_recipients: 2,
            max_errors: 5,
            ..Config::default()
        }
    }

    fn session() -> Session {
        Session::new(&config(), "192.0.2.9".parse().unwrap())
    }

    /// Runs a command, answering rate checks with "allowed" and recipient checks by the
    /// rule "…@unknown.example is refused"; returns the wire text.
    fn run(s: &mut Session, line: &str) -> String {
        match s.command(line.as_bytes()) {
            Step::Reply(r) | Step::Close(r) | Step::ReadData(r) | Step::StartTls(r) => r.to_wire(),
            Step::CheckRate => s.rate_checked(true).to_wire(),
            Step::CheckRecipient { rcpt, .. } => {
                let verdict = if rcpt.ends_with("@unknown.example") {
                    RcptVerdict::Reject {
                        code: 550,
                        enhanced: "5.1.1".into(),
                        text: "no such mailbox".into(),
                    }
                } else {
                    RcptVerdict::Accept
                };
                s.recipient_checked(verdict).to_wire()
            }
        }
    }

    fn code(s: &mut Session, line: &str) -> String {
        run(s, line).get(..9).unwrap_or_default().to_owned()
    }

    #[test]
    fn greeting_and_ehlo() {
        let mut s = session();
        assert_eq!(
            s.greeting().to_wire(),
            "220 mx.rathaus.example ESMTP Rathaus ePoststelle\r\n"
        );
        assert_eq!(
            run(&mut s, "EHLO client.example"),
            "250-mx.rathaus.example greets client.example [192.0.2.9]\r\n\
             250-8BITMIME\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n\
             250-SMTPUTF8\r\n250 HELP\r\n"
        );
        assert_eq!(
            run(&mut s, "HELO client.example"),
            "250 mx.rathaus.example greets client.example [192.0.2.9]\r\n"
        );
        assert_eq!(
            run(&mut s, "EHLO"),
            "501 give your domain name or address literal, e.g. EHLO mail.example.org\r\n"
        );
    }

    #[test]
    fn starttls_is_offered_only_with_tls() {
        let mut s = session();
        run(&mut s, "EHLO c");
        assert_eq!(code(&mut s, "STARTTLS"), "454 4.7.0");

        // A real ServerConfig needs a certificate; the flag is what matters here.
        let mut s = session();
        s.starttls_offered = true;
        assert!(run(&mut s, "EHLO c").contains("250-STARTTLS\r\n"));
        assert!(run(&mut s, "HELP").contains("STARTTLS"));
        run(&mut s, "MAIL FROM:<a@b.example>");
        assert!(matches!(s.command(b"STARTTLS"), Step::StartTls(_)));
        s.tls_started();
        assert!(!s.starttls_offered());
        assert!(s.envelope().is_none(), "transaction is gone");
        assert_eq!(
            code(&mut s, "MAIL FROM:<a@b.example>"),
            "503 5.5.1",
            "EHLO again first"
        );
        assert!(!run(&mut s, "EHLO c").contains("STARTTLS"));
        assert_eq!(run(&mut s, "STARTTLS"), "454 4.7.0 TLS already active\r\n");
    }

    #[test]
    fn starttls_needs_ehlo_and_no_arguments() {
        let mut s = session();
        s.starttls_offered = true;
        assert_eq!(code(&mut s, "STARTTLS"), "503 5.5.1");
        run(&mut s, "EHLO c");
        assert_eq!(code(&mut s, "STARTTLS now"), "501 5.5.2");
    }

    #[test]
    fn sequencing_errors() {
        let mut s = session();
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b.example>"),
            "503 5.5.1 send EHLO or HELO first\r\n"
        );
        assert_eq!(code(&mut s, "RCPT TO:<a@b.example>"), "503 5.5.1");
        assert_eq!(code(&mut s, "DATA"), "503 5.5.1");
        let mut s = session();
        run(&mut s, "EHLO c");
        assert_eq!(
            run(&mut s, "RCPT TO:<a@b.example>"),
            "503 5.5.1 need MAIL before RCPT\r\n"
        );
        assert_eq!(run(&mut s, "DATA"), "503 5.5.1 need MAIL before DATA\r\n");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "503 5.5.1");
        assert_eq!(run(&mut s, "DATA"), "503 5.5.1 need RCPT before DATA\r\n");
        assert_eq!(code(&mut s, "RSET"), "250 2.0.0");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
    }

    #[test]
    fn a_whole_transaction() {
        let mut s = session();
        run(&mut s, "EHLO client.example");
        assert_eq!(
            run(&mut s, "MAIL FROM:<> BODY=8BITMIME"),
            "250 2.1.0 sender OK\r\n"
        );
        assert_eq!(
            run(&mut s, "RCPT TO:<x@unknown.example>"),
            "550 5.1.1 no such mailbox\r\n"
        );
        assert_eq!(
            run(&mut s, "RCPT TO:<Poststelle@Stadt.example>"),
            "250 2.1.5 recipient OK\r\n"
        );
        assert!(
            matches!(s.command(b"DATA"), Step::ReadData(r) if r.to_wire() == "354 end data with <CR><LF>.<CR><LF>\r\n")
        );
        let now = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        let mut reader = s.begin_data("ID1", now);
        assert_eq!(reader.feed(b"Subject: hi\r\n\r\nbody\r\n.\r\n"), Some(24));
        let AfterData::Deliver { envelope, message } = s.data_received(reader.finish()) else {
            panic!("no delivery")
        };
        assert_eq!(
            envelope,
            Envelope {
                client_ip: "192.0.2.9".parse().unwrap(),
                helo: "client.example".into(),
                mail_from: String::new(),
                rcpt_to: vec!["Poststelle@Stadt.example".into()],
                tls: false,
                smtputf8: false,
                body_8bit: true,
            }
        );
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "Received: from client.example ([192.0.2.9])\r\n\
             \tby mx.rathaus.example with ESMTP id ID1\r\n\
             \tfor <Poststelle@Stadt.example>;\r\n\
             \tThu, 02 Jan 2025 03:04:05 +0000\r\n\
             Subject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(
            s.delivered(DeliveryOutcome::Accepted { id: "m-42".into() })
                .to_wire(),
            "250 2.0.0 OK m-42\r\n"
        );
        // The transaction is over.
        assert_eq!(code(&mut s, "RCPT TO:<a@b.example>"), "503 5.5.1");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
    }

    #[test]
    fn delivery_outcomes_become_replies() {
        let mut s = session();
        assert_eq!(
            s.delivered(DeliveryOutcome::TempFail {
                text: "storage busy".into()
            })
            .to_wire(),
            "451 4.3.0 storage busy\r\n"
        );
        assert_eq!(
            s.delivered(DeliveryOutcome::Reject {
                code: 554,
                enhanced: "5.6.0".into(),
                text: "bad\r\n250 OK".into()
            })
            .to_wire(),
            "554 5.6.0 bad??250 OK\r\n"
        );
        assert_eq!(
            s.delivered(DeliveryOutcome::Reject {
                code: 250,
                enhanced: "2.0.0".into(),
                text: "".into()
            })
            .to_wire(),
            "554 5.0.0 refused\r\n"
        );
        assert_eq!(
            s.delivered(DeliveryOutcome::Reject {
                code: 452,
                enhanced: "5.1.1".into(),
                text: "x".into()
            })
            .to_wire(),
            "452 4.0.0 x\r\n"
        );
    }

    #[test]
    fn rejected_recipients_and_data() {
        let mut s = session();
        run(&mut s, "EHLO c");
        run(&mut s, "MAIL FROM:<a@b.example>");
        run(&mut s, "RCPT TO:<x@unknown.example>");
        assert_eq!(run(&mut s, "DATA"), "554 5.5.1 no valid recipients\r\n");
        match s.command(b"RCPT TO:<y@b.example>") {
            Step::CheckRecipient { .. } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.recipient_checked(RcptVerdict::Reject {
                code: 999,
                enhanced: "x".into(),
                text: "no".into()
            })
            .to_wire(),
            "550 5.0.0 no\r\n"
        );
        assert_eq!(
            s.recipient_checked(RcptVerdict::Accept).to_wire(),
            "451 4.3.0 internal error: no RCPT pending\r\n",
            "a verdict without a question is not taken"
        );
    }

    #[test]
    fn recipient_limit_and_duplicates() {
        let mut s = session();
        run(&mut s, "EHLO c");
        run(&mut s, "MAIL FROM:<a@b.example>");
        assert_eq!(code(&mut s, "RCPT TO:<1@b.example>"), "250 2.1.5");
        assert_eq!(
            run(&mut s, "RCPT TO:<1@B.EXAMPLE>"),
            "250 2.1.5 recipient OK (duplicate)\r\n"
        );
        assert_eq!(code(&mut s, "RCPT TO:<2@b.example>"), "250 2.1.5");
        assert_eq!(
            run(&mut s, "RCPT TO:<3@b.example>"),
            "452 4.5.3 too many recipients (at most 2 per message)\r\n"
        );
        assert_eq!(
            s.envelope().unwrap().rcpt_to,
            ["1@b.example", "2@b.example"]
        );
        // 452 is no error to count.
        for _ in 0..5 {
            assert_eq!(code(&mut s, "RCPT TO:<3@b.example>"), "452 4.5.3");
        }
    }

    #[test]
    fn size_parameter() {
        let mut s = session();
        run(&mut s, "EHLO c");
        assert_eq!(
            code(&mut s, "MAIL FROM:<a@b.example> SIZE=1000"),
            "250 2.1.0"
        );
        run(&mut s, "RSET");
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b.example> SIZE=1001"),
            "552 5.3.4 message size exceeds fixed maximum message size (1000 octets)\r\n"
        );
    }

    #[test]
    fn oversized_content_is_552() {
        let mut s = session();
        run(&mut s, "EHLO c");
        run(&mut s, "MAIL FROM:<a@b.example>");
        run(&mut s, "RCPT TO:<r@b.example>");
        run(&mut s, "DATA");
        let mut reader = s.begin_data("X", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(reader.feed(&[b'a'; 1001]), None);
        assert!(reader.feed(b"\r\n.\r\n").is_some());
        let AfterData::Reply(r) = s.data_received(reader.finish()) else {
            panic!("delivered")
        };
        assert_eq!(r.code(), 552);
        assert!(s.envelope().is_none());
    }

    #[test]
    fn parameters_need_ehlo_and_known_keywords() {
        let mut s = session();
        run(&mut s, "HELO c");
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b.example> SIZE=10"),
            "555 5.5.4 MAIL parameters need EHLO\r\n"
        );
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
        let mut s = session();
        run(&mut s, "EHLO c");
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b.example> RET=FULL"),
            "555 5.5.4 parameter RET not supported\r\n"
        );
        assert_eq!(
            code(&mut s, "MAIL FROM:<a@b.example> BODY=BINARYMIME"),
            "501 5.5.4"
        );
    }

    #[test]
    fn utf8_addresses_need_smtputf8() {
        let mut s = session();
        run(&mut s, "EHLO c");
        assert_eq!(code(&mut s, "MAIL FROM:<jörg@b.example>"), "553 5.6.7");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
        assert_eq!(code(&mut s, "RCPT TO:<jörg@b.example>"), "553 5.6.7");
        run(&mut s, "RSET");
        assert_eq!(
            code(&mut s, "MAIL FROM:<jörg@b.example> SMTPUTF8"),
            "250 2.1.0"
        );
        assert_eq!(code(&mut s, "RCPT TO:<bürger@stadt.example>"), "250 2.1.5");
        let env = s.envelope().unwrap();
        assert!(env.smtputf8);
        run(&mut s, "DATA");
        let mut reader = s.begin_data("U", OffsetDateTime::UNIX_EPOCH);
        reader.feed(b".\r\n");
        let message = reader.finish().unwrap();
        assert!(
            String::from_utf8(message)
                .unwrap()
                .contains("with UTF8SMTP id U")
        );
    }

    #[test]
    fn rate_limited_mail() {
        let mut s = session();
        run(&mut s, "EHLO c");
        assert!(matches!(
            s.command(b"MAIL FROM:<a@b.example>"),
            Step::CheckRate
        ));
        assert_eq!(
            s.rate_checked(false).to_wire(),
            "450 4.7.1 too many messages from your address, try again later\r\n"
        );
        assert!(s.envelope().is_none());
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.example>"), "250 2.1.0");
    }

    #[test]
    fn too_many_errors_closes() {
        let mut s = session();
        for _ in 0..5 {
            assert!(matches!(s.command(b"BOGUS"), Step::Reply(r) if r.code() == 500));
        }
        assert!(
            matches!(s.line_too_long(), Step::Close(r) if r.to_wire() == "421 4.7.0 mx.rathaus.example too many errors, closing connection\r\n")
        );
    }

    #[test]
    fn other_commands() {
        let mut s = session();
        assert_eq!(run(&mut s, "NOOP"), "250 2.0.0 OK\r\n");
        assert_eq!(code(&mut s, "VRFY x"), "252 2.5.0");
        assert_eq!(code(&mut s, "EXPN x"), "502 5.5.1");
        assert_eq!(
            run(&mut s, "HELP"),
            "214-2.0.0 Rathaus ePoststelle, inbound SMTP (RFC 5321)\r\n\
             214-2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n\
             214 2.0.0 end of HELP\r\n"
        );
        assert!(matches!(s.command(b"QUIT"), Step::Close(r) if r.code() == 221));
        assert!(matches!(s.command(b"GET / HTTP/1.1"), Step::Close(r) if r.code() == 421));
        assert_eq!(run(&mut s, "bogus"), "500 5.5.2 command unrecognized\r\n");
        assert_eq!(code(&mut s, "MAIL FROM:<a b@c>"), "501 5.1.7");
    }

    #[test]
    fn ehlo_ends_a_transaction() {
        let mut s = session();
        run(&mut s, "EHLO c");
        run(&mut s, "MAIL FROM:<a@b.example>");
        run(&mut s, "EHLO c");
        assert_eq!(code(&mut s, "RCPT TO:<a@b.example>"), "503 5.5.1");
    }

    #[test]
    fn reply_text_is_sanitised() {
        assert_eq!(
            Reply::new(250, "2.0.0", "a\r\nb\u{e4}").to_wire(),
            "250 2.0.0 a??b?\r\n"
        );
        assert!(valid_enhanced("5.1.1", '5'));
        assert!(valid_enhanced("4.999.0", '4'));
        assert!(!valid_enhanced("5.1", '5'));
        assert!(!valid_enhanced("5.1.1.1", '5'));
        assert!(!valid_enhanced("5.1000.1", '5'));
        assert!(!valid_enhanced("4.1.1", '5'));
        assert!(!valid_enhanced("5..1", '5'));
    }
}
