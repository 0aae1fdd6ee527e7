//! A received message taken apart: the header fields a clerk needs, the text, and every
//! attachment with a safe file name and its declared type.

use mail_parser::{Address, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

use crate::signature::{self, SignatureCheck};

/// Bounds on what one message may make us hold or produce.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attachments taken as files; any beyond are named in `problems` (the original
    /// message, kept whole, still holds them).
    pub max_attachments: usize,
    /// Addresses kept per header field.
    pub max_addresses: usize,
    /// Characters of a header value kept (subject, names).
    pub max_header_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attachments: 200,
            max_addresses: 100,
            max_header_chars: 998,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Safe to use as a file name: no path, no control characters, at most 200 characters.
    pub filename: String,
    /// `type/subtype` as declared (lowercase), `application/octet-stream` if absent.
    pub mime_type: String,
    /// Decoded (base64 / quoted-printable undone).
    pub content: Vec<u8>,
    /// Shown inside the message (an image of an HTML mail) rather than attached.
    pub inline: bool,
}

/// What the channel keeps of a message besides the original.
#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339, from the `Date` field (as the sender's clock claims).
    pub date: Option<String>,
    pub from: Vec<Mailbox>,
    pub sender: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// The first plain-text body (converted from HTML where the message has only HTML).
    pub text: Option<String>,
    /// The first HTML body, as sent.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Why no automatic answer must go to this message (RFC 3834), if so.
    pub automated: Option<String>,
    /// The message's own signature (S/MIME, OpenPGP), if it carries one.
    pub signature: Option<SignatureCheck>,
    /// What was wrong with the message's form (it is still taken).
    pub problems: Vec<String>,
}

/// Takes a message apart. Never fails: what cannot be read is named in `problems`.
pub fn parse(raw: &[u8], limits: &Limits) -> ParsedMail {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return ParsedMail {
            problems: vec!["the message has no readable header section".into()],
            ..ParsedMail::default()
        };
    };
    let mut out = ParsedMail {
        message_id: msg.message_id().map(|s| clip(s, limits.max_header_chars)),
        subject: msg.subject().map(|s| clip(s, limits.max_header_chars)),
        date: msg.date().map(|d| d.to_rfc3339()),
        from: mailboxes(msg.from(), limits),
        sender: mailboxes(msg.sender(), limits).into_iter().next(),
        reply_to: mailboxes(msg.reply_to(), limits),
        to: mailboxes(msg.to(), limits),
        cc: mailboxes(msg.cc(), limits),
        text: msg.body_text(0).map(|t| t.into_owned()),
        html: (msg.html_body_count() > 0)
            .then(|| msg.html_part(0))
            .flatten()
            .filter(|p| matches!(p.body, PartType::Html(_)))
            .and_then(|p| p.text_contents().map(str::to_owned)),
        automated: automated(&msg),
        signature: signature::check(&msg),
        ..ParsedMail::default()
    };
    if msg.from().is_none() {
        out.problems
            .push("the message has no From field (RFC 5322 requires one)".into());
    }
    let mut n = 0usize;
    for part in msg.attachments() {
        n += 1;
        if out.attachments.len() >= limits.max_attachments {
            continue;
        }
        if part.is_encoding_problem {
            out.problems.push(format!(
                "attachment {n} is not correctly encoded; it was decoded as far as possible"
            ));
        }
        let mime_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .map(|t| t.to_ascii_lowercase())
            .filter(|t| is_mime_type(t))
            .unwrap_or_else(|| match part.body {
                PartType::Message(_) => "message/rfc822".into(),
                PartType::Text(_) => "text/plain".into(),
                PartType::Html(_) => "text/html".into(),
                _ => "application/octet-stream".into(),
            });
        let filename = part
            .attachment_name()
            .map(safe_filename)
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| format!("anlage-{n}.{}", extension_for(&mime_type)));
        out.attachments.push(Attachment {
            filename,
            mime_type,
            content: part.contents().to_vec(),
            inline: matches!(part.body, PartType::InlineBinary(_)),
        });
    }
    if n > limits.max_attachments {
        out.problems.push(format!(
            "the message has {n} attachments; the first {} were taken as files, the original message holds all",
            limits.max_attachments
        ));
    }
    if msg.parts.iter().any(|p| p.is_encoding_problem) && out.problems.is_empty() {
        out.problems
            .push("a part of the message is not correctly encoded".into());
    }
    out
}

fn mailboxes(a: Option<&Address<'_>>, limits: &Limits) -> Vec<Mailbox> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim();
            if address.is_empty() || address.len() > 320 {
                return None;
            }
            Some(Mailbox {
                name: addr
                    .name()
                    .map(|n| clip(n.trim(), limits.max_header_chars))
                    .filter(|n| !n.is_empty()),
                address: address.to_owned(),
            })
        })
        .take(limits.max_addresses)
        .collect()
}

fn clip(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .take(max)
        .collect()
}

/// RFC 3834 and its de-facto companions: a message a machine sent must never get an
/// automatic answer (mail loops, backscatter).
fn automated(msg: &mail_parser::Message<'_>) -> Option<String> {
    let text = |name: &str| {
        msg.header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = text("Auto-Submitted")
        && v != "no"
    {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) = text("Precedence")
        && ["bulk", "list", "junk", "auto_reply"].contains(&v.as_str())
    {
        return Some(format!("Precedence: {v}"));
    }
    if text("List-Id").is_some() || text("List-Unsubscribe").is_some() {
        return Some("sent through a mailing list (List-Id/List-Unsubscribe)".into());
    }
    if let Some(v) = text("X-Auto-Response-Suppress")
        && (v.contains("all") || v.contains("autoreply") || v.contains("oof"))
    {
        return Some(format!("X-Auto-Response-Suppress: {v}"));
    }
    let ct = msg.root_part().content_type();
    if let Some(ct) = ct
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return Some("a delivery or disposition report (multipart/report)".into());
    }
    None
}

/// No path, no control or reserved characters, at most 200 characters, keeps the extension.
fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.chars().count() <= 200 {
        return cleaned;
    }
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((s, e)) if e.chars().count() <= 10 => (s.to_owned(), format!(".{e}")),
        _ => (cleaned.clone(), String::new()),
    };
    let keep = 200 - ext.chars().count();
    format!("{}{ext}", stem.chars().take(keep).collect::<String>())
}

fn is_mime_type(t: &str) -> bool {
    let Some((a, b)) = t.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
    };
    token(a) && token(b)
}

fn extension_for(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/tiff" => "tif",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        "message/rfc822" => "eml",
        "application/zip" => "zip",
        "application/xml" | "text/xml" => "xml",
        "application/json" => "json",
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => "p7s",
        "application/pgp-signature" => "asc",
        _ => "bin",
    }
}

#[cfg(test)]
pub(crate) fn test_safe_filename(name: &str) -> String {
    safe_filename(name)
}
