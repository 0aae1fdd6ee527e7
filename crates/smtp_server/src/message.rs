//! The DATA content: an incremental decoder fed with whatever the socket delivered, and
//! the `Received:` trace header. Pure.
//!
//! Decoding (RFC 5321 4.1.1.4, 4.5.2): the content ends at the line `.` — that is
//! `<CRLF>.<CRLF>`, where the first CRLF ends the last content line (or is the end of the
//! DATA command) and belongs to the content. A leading dot of a line is removed. Bare LF
//! and bare CR are stored as CRLF, but only a real CRLF starts a line in the SMTP sense:
//! `<LF>.<LF>`, `<LF>.<CRLF>` or `<CRLF>.<LF>` never end the content (SMTP smuggling,
//! CVE-2023-51766 and relatives), and a dot after a bare line end is content.
//!
//! Memory: the buffer never grows past the prefix (our trace header) plus the limit. Once
//! the content would exceed the limit it is dropped and the decoder only looks for the
//! end, counting.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after a real CRLF, or at the very beginning).
    LineStart,
    /// A dot at the start of a line.
    Dot,
    /// A dot and a CR at the start of a line.
    DotCr,
    /// Inside a line.
    Inside,
    /// A CR inside a line (or on an empty line); a LF would end the line.
    Cr,
}

/// The content was larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// Content octets seen in total.
    pub seen: u64,
}

#[derive(Debug)]
pub(crate) struct DataReader {
    buf: Vec<u8>,
    prefix_len: usize,
    limit: u64,
    /// Content octets seen (stored or not).
    seen: u64,
    over: bool,
    state: State,
}

impl DataReader {
    /// A decoder whose output starts with `prefix` (not counted against `limit`).
    pub fn new(prefix: Vec<u8>, limit: u64) -> Self {
        let prefix_len = prefix.len();
        DataReader {
            buf: prefix,
            prefix_len,
            limit,
            seen: 0,
            over: false,
            state: State::LineStart,
        }
    }

    /// Decodes `input`. Returns `Some(n)` when the end-of-data line ended at `input[n-1]`
    /// (the bytes after it are the next command), `None` when all of `input` was used and
    /// the end has not come yet.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut rest = input;
        let mut used: usize = 0;
        loop {
            if self.state == State::Inside {
                // Fast path: copy up to the next CR or LF.
                let n = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                let (plain, tail) = rest.split_at(n);
                self.emit(plain);
                used = used.saturating_add(n);
                rest = tail;
            }
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            used = used.saturating_add(1);
            match (self.state, b) {
                (State::LineStart, b'.') => self.state = State::Dot,
                (State::LineStart | State::Inside, _) => self.inside(b),
                // A leading dot is removed; what follows is content.
                (State::Dot, b'\r') => self.state = State::DotCr,
                (State::Dot, _) => self.inside(b),
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return Some(used);
                }
                // ".<CR>x": the dot is removed, the bare CR becomes a line end.
                (State::DotCr, _) => {
                    self.emit(b"\r\n");
                    self.inside(b);
                }
                (State::Cr, b'\n') => {
                    self.emit(b"\r\n");
                    self.state = State::LineStart;
                }
                // A bare CR becomes a line end; not a line start for SMTP.
                (State::Cr, _) => {
                    self.emit(b"\r\n");
                    self.inside(b);
                }
            }
        }
    }

    /// A content byte inside a line.
    fn inside(&mut self, b: u8) {
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => {
                self.emit(b"\r\n");
                self.state = State::Inside;
            }
            _ => {
                self.emit(&[b]);
                self.state = State::Inside;
            }
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let n = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.seen = self.seen.saturating_add(n);
        if self.over {
            return;
        }
        if self.seen > self.limit {
            self.over = true;
            self.buf = Vec::new();
            return;
        }
        // Grow by doubling, but never past prefix + limit.
        let needed = self.buf.len().saturating_add(bytes.len());
        if needed > self.buf.capacity() {
            let cap_limit = usize::try_from(self.limit)
                .unwrap_or(usize::MAX)
                .saturating_add(self.prefix_len);
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(needed)
                .max(4096)
                .min(cap_limit)
                .max(needed);
            self.buf
                .reserve_exact(target.saturating_sub(self.buf.len()));
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The prefix and the decoded content, or how much there was if too much.
    pub fn finish(self) -> Result<Vec<u8>, TooLarge> {
        if self.over {
            Err(TooLarge { seen: self.seen })
        } else {
            Ok(self.buf)
        }
    }
}

/// What goes into the `Received:` header.
pub(crate) struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `UTF8SMTP`, `UTF8SMTPS` (RFC 3848, RFC 6531).
    pub protocol: &'static str,
    pub id: &'a str,
    /// Only when the message has exactly one recipient.
    pub recipient: Option<&'a str>,
    pub date: OffsetDateTime,
}

/// The `Received:` header (RFC 5321 4.4), folded before `by` and `for` and after `;`.
pub(crate) fn received_header(trace: &Trace<'_>) -> String {
    let ip = match trace.client_ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    };
    let mut header = format!(
        "Received: from {} ({ip})\r\n\tby {} with {} id {}",
        header_token(trace.helo),
        header_token(trace.hostname),
        trace.protocol,
        header_token(trace.id),
    );
    if let Some(rcpt) = trace.recipient {
        header.push_str("\r\n\tfor <");
        header.push_str(&header_text(rcpt));
        header.push('>');
    }
    let date = trace
        .date
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned());
    header.push_str(";\r\n\t");
    header.push_str(&date);
    header.push_str("\r\n");
    header
}

/// A domain-like token: anything that could break the header's structure becomes `_`.
fn header_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Text without line breaks or control characters.
fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn decode_all(input: &[u8], limit: u64) -> (Option<usize>, Result<Vec<u8>, TooLarge>) {
        let mut r = DataReader::new(Vec::new(), limit);
        let end = r.feed(input);
        (end, r.finish())
    }

    /// Feeds in every possible split into two chunks and in single bytes; all must agree.
    fn decode(input: &[u8]) -> (usize, Vec<u8>) {
        let (end, whole) = decode_all(input, 1 << 20);
        let end = end.expect("end of data");
        let whole = whole.expect("within limit");
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let mut r = DataReader::new(Vec::new(), 1 << 20);
            let got_end = match r.feed(a) {
                Some(n) => n,
                None => split + r.feed(b).expect("end in second chunk"),
            };
            assert_eq!(got_end, end, "split at {split}");
            assert_eq!(r.finish().unwrap(), whole, "split at {split}");
        }
        let mut r = DataReader::new(Vec::new(), 1 << 20);
        let mut got_end = None;
        for (i, b) in input.iter().enumerate() {
            if let Some(n) = r.feed(std::slice::from_ref(b)) {
                assert_eq!(n, 1);
                got_end = Some(i + 1);
                break;
            }
        }
        assert_eq!(got_end, Some(end));
        assert_eq!(r.finish().unwrap(), whole);
        (end, whole)
    }

    #[test]
    fn plain_message_and_what_follows() {
        let input = b"Subject: x\r\n\r\nHello\r\n.\r\nQUIT\r\n";
        let (end, body) = decode(input);
        assert_eq!(&input[end..], b"QUIT\r\n");
        assert_eq!(body, b"Subject: x\r\n\r\nHello\r\n");
    }

    #[test]
    fn empty_message() {
        assert_eq!(decode(b".\r\n"), (3, Vec::new()));
        assert_eq!(decode(b"\r\n.\r\n"), (5, b"\r\n".to_vec()));
    }

    #[test]
    fn dot_unstuffing() {
        let (_, body) = decode(b"..\r\n..x\r\n.y\r\na.b\r\n...\r\n.\r\n");
        assert_eq!(body, b".\r\n.x\r\ny\r\na.b\r\n..\r\n");
    }

    #[test]
    fn bare_line_ends_are_normalised_but_never_end_the_data() {
        // Smuggling attempts: none of these ends the content.
        let input = b"a\n.\nb\n.\r\nc\r\n.\nd\r.\r\ne\r\n.\r\n";
        let (end, body) = decode(input);
        assert_eq!(end, input.len());
        assert_eq!(body, b"a\r\n.\r\nb\r\n.\r\nc\r\n\r\nd\r\n.\r\ne\r\n");
    }

    #[test]
    fn lone_cr_after_dot() {
        let (_, body) = decode(b".\rx\r\n.\r\r\n.\r\n");
        assert_eq!(body, b"\r\nx\r\n\r\n\r\n");
    }

    #[test]
    fn binary_and_long_lines_pass() {
        let mut input = vec![0xc3, 0xa4, 0x00, 0xff];
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\r\n.\r\n");
        let (_, body) = decode_all(&input, 1 << 20);
        let body = body.unwrap();
        assert_eq!(body.len(), 4 + 5000 + 2);
    }

    #[test]
    fn limit_counts_content_and_keeps_reading() {
        let input = b"12345\r\n.\r\n";
        assert_eq!(decode_all(input, 7).1, Ok(b"12345\r\n".to_vec()));
        let (end, res) = decode_all(input, 6);
        assert_eq!(end, Some(input.len()));
        assert_eq!(res, Err(TooLarge { seen: 7 }));
        // Over the limit, the buffer is dropped.
        let mut r = DataReader::new(b"Received: x\r\n".to_vec(), 10);
        assert_eq!(r.feed(&[b'a'; 100]), None);
        assert_eq!(r.buf.capacity(), 0);
        assert_eq!(r.feed(b"\r\n.\r\n"), Some(5));
        assert_eq!(r.finish(), Err(TooLarge { seen: 102 }));
    }

    #[test]
    fn buffer_never_grows_past_prefix_and_limit() {
        let limit = 10_000;
        let mut r = DataReader::new(b"pre".to_vec(), limit);
        for _ in 0..99 {
            assert_eq!(r.feed(&[b'z'; 100]), None);
            assert!(r.buf.capacity() <= 3 + limit as usize);
        }
        assert_eq!(r.feed(b"\r\n.\r\n"), Some(5));
        let out = r.finish().unwrap();
        assert_eq!(out.len(), 3 + 9900 + 2);
        assert!(out.starts_with(b"pre"));
    }

    #[test]
    fn received_header_single_recipient() {
        let date = time::macros::datetime!(2025-03-04 05:06:07 UTC);
        let h = received_header(&Trace {
            helo: "mail.sender.example",
            client_ip: "192.0.2.7".parse().unwrap(),
            hostname: "mx.rathaus.example",
            protocol: "ESMTPS",
            id: "ABC123",
            recipient: Some("poststelle@stadt.example"),
            date,
        });
        assert_eq!(
            h,
            "Received: from mail.sender.example ([192.0.2.7])\r\n\
             \tby mx.rathaus.example with ESMTPS id ABC123\r\n\
             \tfor <poststelle@stadt.example>;\r\n\
             \tTue, 04 Mar 2025 05:06:07 +0000\r\n"
        );
    }

    #[test]
    fn received_header_sanitises_helo_and_formats_ipv6() {
        let date = time::macros::datetime!(2025-03-04 05:06:07 UTC);
        let h = received_header(&Trace {
            helo: "evil;(x)\"y",
            client_ip: "2001:db8::1".parse().unwrap(),
            hostname: "mx.example",
            protocol: "ESMTP",
            id: "X",
            recipient: None,
            date,
        });
        assert!(h.starts_with("Received: from evil__x__y ([IPv6:2001:db8::1])\r\n\tby mx.example with ESMTP id X;\r\n\t"));
        let mapped = received_header(&Trace {
            client_ip: "::ffff:192.0.2.1".parse().unwrap(),
            ..Trace {
                helo: "h",
                client_ip: "::1".parse().unwrap(),
                hostname: "m",
                protocol: "SMTP",
                id: "i",
                recipient: None,
                date,
            }
        });
        assert!(mapped.contains("([192.0.2.1])"));
    }
}
