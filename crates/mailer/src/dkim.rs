//! DKIM signatures (RFC 6376) for outgoing mail: `rsa-sha256`, `relaxed/relaxed`
//! canonicalisation, on aws-lc-rs. Written here because lettre's `dkim` feature depends on
//! the `rsa` crate, which has an open advisory; tested against dkimpy (an independent
//! implementation) in `tests/smtp.rs`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The header fields signed when present (RFC 6376 § 5.4.1's recommendations).
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "auto-submitted",
];

pub struct DkimSigner {
    key: RsaKeyPair,
    domain: String,
    selector: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed body canonicalisation (§ 3.4.4).
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut line = Vec::with_capacity(raw.len());
        let mut in_wsp = false;
        for &b in raw {
            if is_wsp(b) {
                in_wsp = true;
            } else {
                if in_wsp {
                    line.push(b' ');
                }
                in_wsp = false;
                line.push(b);
            }
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Relaxed header canonicalisation (§ 3.4.2) of one field, with its CRLF.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let mut v = String::with_capacity(unfolded.len());
    let mut in_wsp = false;
    for c in unfolded.chars() {
        if c == ' ' || c == '\t' {
            in_wsp = true;
        } else {
            if in_wsp && !v.is_empty() {
                v.push(' ');
            }
            in_wsp = false;
            v.push(c);
        }
    }
    format!("{}:{}\r\n", name.trim().to_ascii_lowercase(), v)
}

/// A header field: its name and its raw value, folding included.
type Field = (String, String);

/// Splits a message into its header fields and its body.
fn split(message: &[u8]) -> Option<(Vec<Field>, &[u8])> {
    let (head, body) = match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&message[..i + 2], &message[i + 4..]),
        None => (message, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut fields: Vec<Field> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut()?;
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':')?;
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    Some((fields, body))
}

impl DkimSigner {
    /// A signer from a PKCS#8 PEM RSA private key (`openssl genpkey -algorithm RSA`).
    pub fn from_pem(pem: &str, domain: &str, selector: &str) -> Result<DkimSigner, String> {
        let b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        let der = STANDARD
            .decode(b64.trim())
            .map_err(|_| "the DKIM key is not PEM (base64 between BEGIN/END lines)".to_owned())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| "the DKIM key must be an RSA private key in PKCS#8 (BEGIN PRIVATE KEY), at least 2048 bits".to_owned())?;
        let valid_label = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        };
        if !valid_label(domain) || !valid_label(selector) {
            return Err(format!(
                "DKIM domain {domain:?} and selector {selector:?} must be DNS names"
            ));
        }
        Ok(DkimSigner {
            key,
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// The message with a `DKIM-Signature` field prepended.
    pub fn sign(&self, message: &[u8], unix_time: u64) -> Result<Vec<u8>, String> {
        let (fields, body) = split(message).ok_or("the message's header is not parseable")?;
        let body_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &relaxed_body(body));
        let mut signed_names = Vec::new();
        let mut canonical = String::new();
        for name in SIGNED_HEADERS {
            // The last instance of a field is the one a verifier selects first (§ 5.4.2).
            if let Some((n, v)) = fields
                .iter()
                .rev()
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            {
                canonical.push_str(&relaxed_header(n, v));
                signed_names.push(*name);
            }
        }
        if !signed_names.contains(&"from") {
            return Err("a mail to sign needs a From field".into());
        }
        let value = format!(
            " v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={}; t={unix_time}; h={}; bh={}; b=",
            self.domain,
            self.selector,
            signed_names.join(":"),
            STANDARD.encode(body_hash.as_ref()),
        );
        let own = relaxed_header("DKIM-Signature", &value);
        canonical.push_str(own.trim_end_matches("\r\n"));
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                canonical.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "DKIM signing failed".to_owned())?;
        let mut out =
            format!("DKIM-Signature:{value}{}\r\n", STANDARD.encode(&signature)).into_bytes();
        out.extend_from_slice(message);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalisation_follows_the_rfc_examples() {
        // RFC 6376 § 3.4.5.
        assert_eq!(relaxed_header("A", " X"), "a:X\r\n");
        assert_eq!(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    }
}
