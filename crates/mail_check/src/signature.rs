//! The message's own signature: S/MIME (`multipart/signed` with a PKCS #7 signature, or
//! opaque `application/pkcs7-mime; smime-type=signed-data`) is verified with OpenSSL's CMS
//! code against the certificate the signature carries; OpenPGP is recognised and reported,
//! since its key is not part of the message.
//!
//! The signer's certificate is not chain-validated: the ePoststelle has no trust store of
//! citizens' certificates. The report says so, and names the certificate, so a clerk can
//! judge it; the signature itself proves the content unchanged since signing.

use mail_parser::{Message, MimeHeaders, PartType};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureKind {
    Smime,
    Openpgp,
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    pub kind: SignatureKind,
    /// `valid`, `invalid` or `not-verifiable`.
    pub result: &'static str,
    /// The signer as the certificate names it (S/MIME).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    pub detail: String,
}

pub(crate) fn check(msg: &Message<'_>) -> Option<SignatureCheck> {
    let raw = msg.raw_message();
    for part in &msg.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        let ctype = ct.ctype().to_ascii_lowercase();
        if ctype == "multipart" && sub == "signed" {
            let protocol = ct.attribute("protocol").unwrap_or("").to_ascii_lowercase();
            let PartType::Multipart(children) = &part.body else {
                continue;
            };
            let (Some(&signed), Some(&sig)) = (children.first(), children.get(1)) else {
                return Some(invalid_form(
                    SignatureKind::Smime,
                    "the signed part or the signature is missing",
                ));
            };
            let (Some(signed), Some(sig)) =
                (msg.parts.get(signed as usize), msg.parts.get(sig as usize))
            else {
                continue;
            };
            if protocol.contains("pgp-signature") {
                return Some(SignatureCheck {
                    kind: SignatureKind::Openpgp,
                    result: "not-verifiable",
                    signer: None,
                    detail: "OpenPGP signature present and kept; the sender's public key is not part of the message, so the ePoststelle cannot verify it".into(),
                });
            }
            if protocol.contains("pkcs7-signature") {
                let boundary = ct.attribute("boundary").unwrap_or("");
                let region = raw
                    .get(part.offset_body as usize..(part.offset_end as usize).min(raw.len()))
                    .unwrap_or(raw);
                let Some(content) = first_body_part(region, boundary.as_bytes()) else {
                    return Some(invalid_form(
                        SignatureKind::Smime,
                        "the signed part cannot be located",
                    ));
                };
                return Some(verify_detached(content, sig.contents()));
            }
            let _ = signed;
        }
        if ctype == "application" && (sub == "pkcs7-mime" || sub == "x-pkcs7-mime") {
            let smime_type = ct
                .attribute("smime-type")
                .unwrap_or("")
                .to_ascii_lowercase();
            if smime_type == "enveloped-data" || smime_type == "authenveloped-data" {
                return Some(SignatureCheck {
                    kind: SignatureKind::Smime,
                    result: "not-verifiable",
                    signer: None,
                    detail: "the message is S/MIME-encrypted; it is kept as received".into(),
                });
            }
            return Some(verify_opaque(part.contents()));
        }
    }
    None
}

/// The first body part of a multipart body exactly as transmitted: from after the first
/// delimiter line to before the CRLF that precedes the next delimiter (RFC 2046 § 5.1.1),
/// which is what an S/MIME signer signed (RFC 8551 § 3.5).
fn first_body_part<'a>(body: &'a [u8], boundary: &[u8]) -> Option<&'a [u8]> {
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let first = find(body, &delim)?;
    if first > 0 && body.get(first - 1) != Some(&b'\n') {
        return None;
    }
    let after = first + delim.len();
    let line_end = find(body.get(after..)?, b"\n")? + after + 1;
    let rest = body.get(line_end..)?;
    let mut next_delim = b"\n".to_vec();
    next_delim.extend_from_slice(&delim);
    let end = find(rest, &next_delim)?;
    let content = rest.get(..end)?;
    Some(content.strip_suffix(b"\r").unwrap_or(content))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid_form(kind: SignatureKind, why: &str) -> SignatureCheck {
    SignatureCheck {
        kind,
        result: "invalid",
        signer: None,
        detail: why.to_owned(),
    }
}

fn verify_detached(content: &[u8], signature_der: &[u8]) -> SignatureCheck {
    let p7 = match Pkcs7::from_der(signature_der) {
        Ok(p) => p,
        Err(_) => {
            return invalid_form(
                SignatureKind::Smime,
                "the signature part is not a PKCS #7 structure",
            );
        }
    };
    // The signed part as transmitted (CRLF line ends) is what was signed.
    let canonical = to_crlf(content);
    verify(&p7, Some(&canonical))
}

fn verify_opaque(der: &[u8]) -> SignatureCheck {
    match Pkcs7::from_der(der) {
        Ok(p7) => verify(&p7, None),
        Err(_) => invalid_form(
            SignatureKind::Smime,
            "the S/MIME part is not a PKCS #7 structure",
        ),
    }
}

fn verify(p7: &Pkcs7, content: Option<&[u8]>) -> SignatureCheck {
    let signer = Stack::<X509>::new()
        .ok()
        .and_then(|extra| p7.signers(&extra, Pkcs7Flags::empty()).ok())
        .and_then(|s| s.iter().next().map(describe));
    let setup = X509StoreBuilder::new()
        .map(|b| b.build())
        .and_then(|store| Stack::<X509>::new().map(|certs| (store, certs)));
    let Ok((store, certs)) = setup else {
        return SignatureCheck {
            kind: SignatureKind::Smime,
            result: "not-verifiable",
            signer,
            detail: "the verifier could not be set up".into(),
        };
    };
    let mut out = Vec::new();
    // NOVERIFY: the signature is checked against the certificate it carries; the chain is
    // not (no trust store of citizens' certificates). BINARY: the content is taken as sent.
    let flags = Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY;
    match p7.verify(&certs, &store, content, Some(&mut out), flags) {
        Ok(()) => SignatureCheck {
            kind: SignatureKind::Smime,
            result: "valid",
            signer,
            detail: "S/MIME signature valid: the content is unchanged since it was signed; the signer's certificate was not checked against a trust anchor".into(),
        },
        Err(_) => SignatureCheck {
            kind: SignatureKind::Smime,
            result: "invalid",
            signer,
            detail: "S/MIME signature does not verify: the content was changed after signing, or the signature is damaged".into(),
        },
    }
}

fn describe(cert: &openssl::x509::X509Ref) -> String {
    let mut parts = Vec::new();
    for e in cert.subject_name().entries() {
        {
            let v = String::from_utf8_lossy(e.data().as_slice());
            let key = e.object().nid().short_name().unwrap_or("?");
            parts.push(format!("{key}={v}"));
        }
    }
    for n in cert.subject_alt_names().iter().flatten() {
        if let Some(mail) = n.email() {
            parts.push(format!("email={mail}"));
        }
    }
    parts.join(", ")
}

fn to_crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}
