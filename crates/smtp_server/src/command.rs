//! One command line (without its line end) parsed into a [`Command`], or the reason why
//! not. Pure; the session decides what to answer.
//!
//! Leniency, where RFC 5321 allows or real clients need it: verbs and keywords in any case,
//! spaces after `FROM:`/`TO:`, trailing spaces, source routes (ignored, 4.1.1.3), UTF-8
//! in addresses (RFC 6531; whether SMTPUTF8 was asked for is the session's check).

/// Longest path, `<` and `>` included (RFC 5321 4.5.3.1.3).
pub(crate) const MAX_PATH_OCTETS: usize = 256;
/// Longest domain (RFC 5321 4.5.3.1.2).
const MAX_DOMAIN_OCTETS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        /// Without `<>`; `""` for the null reverse-path.
        reverse_path: String,
        params: MailParams,
    },
    Rcpt {
        /// Without `<>`.
        forward_path: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    SevenBit,
    EightBitMime,
}

/// The MAIL parameters we know (RFC 1870, RFC 6152, RFC 6531).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MailParams {
    /// `SIZE=`; a value too large for `u64` is `u64::MAX`.
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
}

impl MailParams {
    pub fn is_empty(&self) -> bool {
        *self == MailParams::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not a command we know: 500 5.5.2.
    Unrecognized,
    /// An HTTP request line: someone points a browser or a cross-protocol attack at us.
    Http,
    /// EHLO/HELO without a usable argument: 501 (no enhanced code, RFC 2034 § 3).
    Helo(&'static str),
    /// The command is known but its arguments are malformed: 501 5.5.2.
    Syntax(&'static str),
    /// A malformed path: 501 5.1.7 (sender) or 5.1.3 (recipient).
    Address { sender: bool, reason: &'static str },
    /// A known parameter with a bad value: 501 5.5.4.
    BadParameter(&'static str),
    /// A parameter we do not support: 555 5.5.4.
    UnknownParameter(String),
}

/// Parses one command line; `line` has no CRLF/LF.
pub(crate) fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = trim_end(line);
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => line.split_at(i),
        None => (line, &[][..]),
    };
    let rest = trim_start(rest);
    let verb = std::str::from_utf8(verb).map_err(|_| ParseError::Unrecognized)?;
    if !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ParseError::Unrecognized);
    }
    let verb = verb.to_ascii_uppercase();
    if !rest.is_empty()
        && matches!(
            verb.as_str(),
            "GET" | "POST" | "HEAD" | "PUT" | "CONNECT" | "OPTIONS" | "DELETE"
        )
    {
        return Err(ParseError::Http);
    }
    let args = std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    if args.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::Syntax("control characters in the command line"));
    }
    match verb.as_str() {
        "EHLO" => Ok(Command::Ehlo(helo_argument(args)?)),
        "HELO" => Ok(Command::Helo(helo_argument(args)?)),
        "MAIL" => mail(args),
        "RCPT" => rcpt(args),
        "DATA" => no_arguments(args, Command::Data, "DATA takes no arguments"),
        "RSET" => no_arguments(args, Command::Rset, "RSET takes no arguments"),
        "QUIT" => no_arguments(args, Command::Quit, "QUIT takes no arguments"),
        "STARTTLS" => no_arguments(args, Command::StartTls, "STARTTLS takes no arguments"),
        "NOOP" => Ok(Command::Noop),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        _ => Err(ParseError::Unrecognized),
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let Some((last, init)) = s.split_last() {
        if matches!(last, b' ' | b'\t' | b'\r') {
            s = init;
        } else {
            break;
        }
    }
    s
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((first, tail)) = s.split_first() {
        if matches!(first, b' ' | b'\t') {
            s = tail;
        } else {
            break;
        }
    }
    s
}

fn no_arguments(
    args: &str,
    command: Command,
    message: &'static str,
) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::Syntax(message))
    }
}

/// The EHLO/HELO argument: one token of visible ASCII (a domain or an address literal;
/// what clients really send is checked no further — it only ends up in a trace header).
fn helo_argument(args: &str) -> Result<String, ParseError> {
    if args.is_empty()
        || args.len() > MAX_DOMAIN_OCTETS
        || !args.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ParseError::Helo(
            "give your domain name or address literal, e.g. EHLO mail.example.org",
        ));
    }
    Ok(args.to_owned())
}

/// Strips `prefix` (ASCII, compared case-insensitively) from the start of `s`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn mail(args: &str) -> Result<Command, ParseError> {
    let rest =
        strip_prefix_ci(args, "FROM:").ok_or(ParseError::Syntax("use MAIL FROM:<address>"))?;
    let (reverse_path, params) = path(rest.trim_start_matches([' ', '\t']), true)?;
    let mut parsed = MailParams::default();
    for param in params {
        let (keyword, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        if keyword.eq_ignore_ascii_case("SIZE") {
            let value = value.ok_or(ParseError::BadParameter("SIZE needs a value"))?;
            if parsed.size.is_some() {
                return Err(ParseError::BadParameter("SIZE given twice"));
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadParameter("SIZE must be a number of octets"));
            }
            parsed.size = Some(value.parse().unwrap_or(u64::MAX));
        } else if keyword.eq_ignore_ascii_case("BODY") {
            let value = value.ok_or(ParseError::BadParameter("BODY needs a value"))?;
            if parsed.body.is_some() {
                return Err(ParseError::BadParameter("BODY given twice"));
            }
            parsed.body = Some(if value.eq_ignore_ascii_case("7BIT") {
                Body::SevenBit
            } else if value.eq_ignore_ascii_case("8BITMIME") {
                Body::EightBitMime
            } else {
                return Err(ParseError::BadParameter("BODY must be 7BIT or 8BITMIME"));
            });
        } else if keyword.eq_ignore_ascii_case("SMTPUTF8") {
            if value.is_some() {
                return Err(ParseError::BadParameter("SMTPUTF8 takes no value"));
            }
            parsed.smtputf8 = true;
        } else {
            return Err(ParseError::UnknownParameter(keyword.to_owned()));
        }
    }
    Ok(Command::Mail {
        reverse_path,
        params: parsed,
    })
}

fn rcpt(args: &str) -> Result<Command, ParseError> {
    let rest = strip_prefix_ci(args, "TO:").ok_or(ParseError::Syntax("use RCPT TO:<address>"))?;
    let (forward_path, mut params) = path(rest.trim_start_matches([' ', '\t']), false)?;
    if let Some(param) = params.next() {
        let keyword = param.split_once('=').map_or(param, |(k, _)| k);
        return Err(ParseError::UnknownParameter(keyword.to_owned()));
    }
    Ok(Command::Rcpt { forward_path })
}

/// Parses `<path>` at the start of `s`; returns the path without `<>` (and without a
/// source route) and the space-separated parameters after it.
fn path(s: &str, sender: bool) -> Result<(String, impl Iterator<Item = &str>), ParseError> {
    let bad = |reason| ParseError::Address { sender, reason };
    let inner_and_rest = s
        .strip_prefix('<')
        .ok_or(bad("the address must be enclosed in <>"))?;
    // Find the closing '>' outside a quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in inner_and_rest.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or(bad("missing > after the address"))?;
    let (inner, rest) = inner_and_rest.split_at(end);
    let rest = rest.strip_prefix('>').unwrap_or(rest);
    if inner.len().saturating_add(2) > MAX_PATH_OCTETS {
        return Err(bad("address too long (at most 256 octets)"));
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(bad("unexpected characters after the address"));
    }
    let params = rest.split([' ', '\t']).filter(|p| !p.is_empty());
    if inner.is_empty() {
        return if sender {
            Ok((String::new(), params))
        } else {
            Err(bad("the recipient must not be empty"))
        };
    }
    if !sender && inner.eq_ignore_ascii_case("postmaster") {
        return Ok((inner.to_owned(), params));
    }
    let mailbox = strip_source_route(inner).ok_or(bad("malformed source route"))?;
    check_mailbox(mailbox).map_err(bad)?;
    Ok((mailbox.to_owned(), params))
}

/// `@a.example,@b.example:user@c.example` → `user@c.example` (RFC 5321 4.1.1.3: accept,
/// ignore).
fn strip_source_route(s: &str) -> Option<&str> {
    if !s.starts_with('@') {
        return Some(s);
    }
    let (route, mailbox) = s.split_once(':')?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@')?;
        check_domain(domain).ok()?;
    }
    Some(mailbox)
}

/// RFC 5321 `Mailbox` (with RFC 6531's UTF-8 in atoms, quoted strings and domains).
fn check_mailbox(s: &str) -> Result<(), &'static str> {
    let (local, domain) = if let Some(quoted) = s.strip_prefix('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in quoted.char_indices() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return Err("invalid quoted pair in the local part");
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                close = Some(i);
                break;
            } else if c.is_ascii() && !(' '..='~').contains(&c) {
                return Err("invalid character in the quoted local part");
            }
        }
        let close = close.ok_or("unterminated quoted local part")?;
        let (local, after) = quoted.split_at(close);
        let domain = after
            .strip_prefix("\"@")
            .ok_or("the quoted local part must be followed by @")?;
        (local, domain)
    } else {
        let (local, domain) = s.split_once('@').ok_or("the address needs an @domain")?;
        if local.is_empty() {
            return Err("the local part is empty");
        }
        if local
            .split('.')
            .any(|atom| atom.is_empty() || !atom.chars().all(is_atext))
        {
            return Err("invalid character in the local part");
        }
        (local, domain)
    };
    let _ = local;
    check_domain(domain)
}

/// RFC 5322 `atext`, extended by RFC 6531 with non-ASCII characters.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("the domain is empty");
    }
    if domain.len() > MAX_DOMAIN_OCTETS {
        return Err("the domain is too long");
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let literal = literal
            .strip_suffix(']')
            .ok_or("unterminated address literal")?;
        let valid = match strip_prefix_ci(literal, "IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => literal.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return if valid {
            Ok(())
        } else {
            Err("invalid address literal")
        };
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("invalid domain");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("invalid domain");
        }
        // Underscores are not allowed in host names but occur in the wild; harmless here.
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        {
            return Err("invalid character in the domain");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mail_from(line: &str) -> Result<(String, MailParams), ParseError> {
        match parse(line.as_bytes())? {
            Command::Mail {
                reverse_path,
                params,
            } => Ok((reverse_path, params)),
            other => panic!("not MAIL: {other:?}"),
        }
    }

    fn rcpt_to(line: &str) -> Result<String, ParseError> {
        match parse(line.as_bytes())? {
            Command::Rcpt { forward_path } => Ok(forward_path),
            other => panic!("not RCPT: {other:?}"),
        }
    }

    #[test]
    fn verbs_in_any_case() {
        assert_eq!(
            parse(b"ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            parse(b"HeLo [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(parse(b"data"), Ok(Command::Data));
        assert_eq!(parse(b"RSET  "), Ok(Command::Rset));
        assert_eq!(parse(b"QUIT\r"), Ok(Command::Quit));
        assert_eq!(parse(b"NOOP whatever"), Ok(Command::Noop));
        assert_eq!(parse(b"VRFY someone"), Ok(Command::Vrfy));
        assert_eq!(parse(b"EXPN list"), Ok(Command::Expn));
        assert_eq!(parse(b"help mail"), Ok(Command::Help));
        assert_eq!(parse(b"StartTLS"), Ok(Command::StartTls));
    }

    #[test]
    fn unknown_and_junk() {
        assert_eq!(parse(b""), Err(ParseError::Unrecognized));
        assert_eq!(parse(b"BDAT 100 LAST"), Err(ParseError::Unrecognized));
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00"),
            Err(ParseError::Unrecognized)
        );
        assert_eq!(parse(b"MAIL\xff"), Err(ParseError::Unrecognized));
        assert_eq!(parse(b"GET / HTTP/1.1"), Err(ParseError::Http));
        assert_eq!(parse(b"POST /x HTTP/1.1"), Err(ParseError::Http));
        assert!(matches!(
            parse(b"MAIL FROM:<a\xff@b.example>"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(parse(b"NOOP a\x00b"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"DATA now"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse(b"STARTTLS please"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn helo_needs_one_visible_token() {
        assert!(matches!(parse(b"EHLO"), Err(ParseError::Helo(_))));
        assert!(matches!(parse(b"HELO two words"), Err(ParseError::Helo(_))));
        assert!(matches!(
            parse("EHLO müll".as_bytes()),
            Err(ParseError::Helo(_))
        ));
        let long = format!("EHLO {}", "a".repeat(256));
        assert!(matches!(parse(long.as_bytes()), Err(ParseError::Helo(_))));
        assert_eq!(parse(b"EHLO my_host"), Ok(Command::Ehlo("my_host".into())));
    }

    #[test]
    fn mail_from_paths() {
        assert_eq!(
            mail_from("MAIL FROM:<a@b.example>").unwrap().0,
            "a@b.example"
        );
        assert_eq!(
            mail_from("mail from: <A.B@Example.ORG>").unwrap().0,
            "A.B@Example.ORG"
        );
        assert_eq!(mail_from("MAIL FROM:<>").unwrap().0, "");
        assert_eq!(mail_from("MAIL FROM:<> SIZE=10").unwrap().1.size, Some(10));
        assert_eq!(
            mail_from("MAIL FROM:<\"john doe\"@example.org>").unwrap().0,
            "\"john doe\"@example.org"
        );
        assert_eq!(
            mail_from("MAIL FROM:<\"a>b\\\"c\"@example.org>").unwrap().0,
            "\"a>b\\\"c\"@example.org"
        );
        assert_eq!(
            mail_from("MAIL FROM:<x@[192.0.2.1]>").unwrap().0,
            "x@[192.0.2.1]"
        );
        assert_eq!(
            mail_from("MAIL FROM:<x@[IPv6:2001:db8::1]>").unwrap().0,
            "x@[IPv6:2001:db8::1]"
        );
        assert_eq!(
            mail_from("MAIL FROM:<@relay.example,@r2.example:x@y.example>")
                .unwrap()
                .0,
            "x@y.example"
        );
        assert_eq!(
            mail_from("MAIL FROM:<jörg@bürgeramt.example>").unwrap().0,
            "jörg@bürgeramt.example"
        );
    }

    #[test]
    fn malformed_paths() {
        for line in [
            "MAIL FROM:a@b.example",
            "MAIL FROM:<a@b.example",
            "MAIL FROM:<a@b.example>x",
            "MAIL FROM:<a>",
            "MAIL FROM:<@b.example>",
            "MAIL FROM:<a..b@b.example>",
            "MAIL FROM:<.a@b.example>",
            "MAIL FROM:<a b@b.example>",
            "MAIL FROM:<a@>",
            "MAIL FROM:<a@b..example>",
            "MAIL FROM:<a@-b.example>",
            "MAIL FROM:<a@b.example.>",
            "MAIL FROM:<a@[999.1.1.1]>",
            "MAIL FROM:<a@[1.2.3.4>",
            "MAIL FROM:<\"unterminated@b.example>",
            "MAIL FROM:<\"a\"b@b.example>",
            "MAIL FROM:<@relay.example:>",
            "MAIL FROM:<@:a@b.example>",
        ] {
            assert!(
                matches!(
                    mail_from(line),
                    Err(ParseError::Address { sender: true, .. })
                ),
                "{line}: {:?}",
                mail_from(line)
            );
        }
        assert!(matches!(
            parse(b"MAIL <a@b.example>"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL TO:<a@b.example>"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(parse(b"MAIL FROM"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn path_length_limit() {
        // 256 octets with <> is fine, 257 is not.
        let domain = format!("{}.example", "d".repeat(50));
        let ok_local = "l".repeat(256 - 2 - 1 - domain.len());
        let ok = format!("MAIL FROM:<{ok_local}@{domain}>");
        assert!(mail_from(&ok).is_ok());
        let too_long = format!("MAIL FROM:<{ok_local}x@{domain}>");
        assert_eq!(
            mail_from(&too_long),
            Err(ParseError::Address {
                sender: true,
                reason: "address too long (at most 256 octets)"
            })
        );
    }

    #[test]
    fn mail_parameters() {
        let (_, p) = mail_from("MAIL FROM:<a@b.example> size=1000 body=8bitmime smtputf8").unwrap();
        assert_eq!(
            p,
            MailParams {
                size: Some(1000),
                body: Some(Body::EightBitMime),
                smtputf8: true
            }
        );
        assert_eq!(
            mail_from("MAIL FROM:<a@b.example> BODY=7BIT")
                .unwrap()
                .1
                .body,
            Some(Body::SevenBit)
        );
        assert_eq!(
            mail_from("MAIL FROM:<a@b.example> SIZE=99999999999999999999999")
                .unwrap()
                .1
                .size,
            Some(u64::MAX)
        );
        assert!(mail_from("MAIL FROM:<a@b.example>").unwrap().1.is_empty());
        assert_eq!(
            mail_from("MAIL FROM:<a@b.example> RET=HDRS"),
            Err(ParseError::UnknownParameter("RET".into()))
        );
        assert_eq!(
            mail_from("MAIL FROM:<a@b.example> AUTH=<>"),
            Err(ParseError::UnknownParameter("AUTH".into()))
        );
        for bad in [
            "MAIL FROM:<a@b.example> SIZE",
            "MAIL FROM:<a@b.example> SIZE=",
            "MAIL FROM:<a@b.example> SIZE=-1",
            "MAIL FROM:<a@b.example> SIZE=1 SIZE=2",
            "MAIL FROM:<a@b.example> BODY=BINARYMIME",
            "MAIL FROM:<a@b.example> BODY",
            "MAIL FROM:<a@b.example> SMTPUTF8=yes",
        ] {
            assert!(
                matches!(mail_from(bad), Err(ParseError::BadParameter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rcpt_to_paths() {
        assert_eq!(
            rcpt_to("RCPT TO:<poststelle@stadt.example>").unwrap(),
            "poststelle@stadt.example"
        );
        assert_eq!(rcpt_to("rcpt to: <Postmaster>").unwrap(), "Postmaster");
        assert!(matches!(
            rcpt_to("RCPT TO:<>"),
            Err(ParseError::Address { sender: false, .. })
        ));
        assert!(matches!(
            rcpt_to("RCPT TO:<nobody>"),
            Err(ParseError::Address { sender: false, .. })
        ));
        assert_eq!(
            rcpt_to("RCPT TO:<a@b.example> NOTIFY=NEVER"),
            Err(ParseError::UnknownParameter("NOTIFY".into()))
        );
        assert!(matches!(
            parse(b"RCPT <a@b.example>"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        // A small deterministic fuzz: every prefix and some mutations of real lines.
        let seeds: [&[u8]; 6] = [
            b"MAIL FROM:<\"q\\\"x\"@[IPv6:::1]> SIZE=1 BODY=8BITMIME SMTPUTF8",
            b"RCPT TO:<@a,@b:c@d.example>",
            "MAIL FROM:<jörg@bürgeramt.example>".as_bytes(),
            b"EHLO [192.0.2.1]",
            b"MAIL FROM:<\"\\",
            b"RCPT TO:<\"",
        ];
        let mut state = 0x1234_5678_u32;
        for seed in seeds {
            for end in 0..=seed.len() {
                let _ = parse(&seed[..end]);
            }
            for _ in 0..2000 {
                let mut line = seed.to_vec();
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let pos = state as usize % line.len();
                line[pos] = (state >> 8) as u8;
                let _ = parse(&line);
            }
        }
    }
}
