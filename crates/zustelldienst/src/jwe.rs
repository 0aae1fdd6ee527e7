//! What the Zustelldienst can check of a JWE without the private key: that it is compact
//! serialisation with five base64url segments, a JSON protected header naming RSA-OAEP-256
//! and A256GCM, an encrypted key of a 4096-bit RSA modulus' size, a 96-bit IV and a 128-bit
//! authentication tag. Refusing malformed parts at upload tells the sender at once — not
//! days later in a reject from the authority.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::problem::{Problem, ProblemKind};

/// FITKO's minimum: an empty payload, A256GCM, RSA-OAEP-256 with a 4096-bit key.
pub const MIN_JWE_LEN: usize = 776;

/// The parts of a structurally valid JWE the service keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JweInfo {
    /// The fifth segment, exactly as sent: the accept event must repeat it.
    pub authentication_tag: String,
    pub cty: Option<String>,
}

fn bad(part: &str, detail: impl std::fmt::Display) -> Problem {
    Problem::new(
        ProblemKind::InvalidJwe,
        format!(
            "{part}: {detail}. Send a compact JWE (RFC 7516) with alg RSA-OAEP-256 and enc A256GCM, encrypted to the destination's encryption key"
        ),
    )
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks `jwe` (named `part` in messages); `require_cty`: v2 requires a content type on
/// metadata and data.
///
/// # Errors
/// `invalid-jwe` saying what is wrong.
pub fn check_structure(part: &str, jwe: &str, require_cty: bool) -> Result<JweInfo, Problem> {
    let jwe = jwe.trim_end_matches(['\r', '\n']);
    if jwe.len() < MIN_JWE_LEN {
        return Err(bad(
            part,
            format!(
                "{} bytes is too short for a JWE to a 4096-bit key (at least {MIN_JWE_LEN})",
                jwe.len()
            ),
        ));
    }
    let segs: Vec<&str> = jwe.split('.').collect();
    if segs.len() != 5 {
        return Err(bad(
            part,
            format!(
                "a compact JWE has 5 dot-separated segments, this has {}",
                segs.len()
            ),
        ));
    }
    for (i, s) in segs.iter().enumerate() {
        if !is_b64url(s) {
            return Err(bad(
                part,
                format!("segment {} is not base64url without padding", i + 1),
            ));
        }
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(segs[0])
        .map_err(|_| bad(part, "the protected header is not base64url"))?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| bad(part, "the protected header is not JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str);
    if alg != Some("RSA-OAEP-256") {
        return Err(bad(
            part,
            format!("header alg is {alg:?}, must be \"RSA-OAEP-256\""),
        ));
    }
    let enc = header.get("enc").and_then(Value::as_str);
    if enc != Some("A256GCM") {
        return Err(bad(
            part,
            format!("header enc is {enc:?}, must be \"A256GCM\""),
        ));
    }
    if let Some(zip) = header.get("zip")
        && zip.as_str() != Some("DEF")
    {
        return Err(bad(part, "header zip must be \"DEF\" or absent"));
    }
    if header.get("crit").is_some() {
        return Err(bad(part, "header crit is not supported"));
    }
    let cty = header.get("cty").and_then(Value::as_str).map(str::to_owned);
    if require_cty && cty.is_none() {
        return Err(bad(
            part,
            "header cty is required (application/json or application/xml)",
        ));
    }
    // Encrypted key: 512 bytes for RSA-4096 (up to 1024 for RSA-8192).
    let ek_len = segs[1].len() * 3 / 4;
    if !(512..=1024).contains(&ek_len) {
        return Err(bad(
            part,
            "the encrypted key does not fit an RSA key of 4096 to 8192 bits",
        ));
    }
    if segs[2].len() != 16 {
        return Err(bad(
            part,
            "the IV must be 96 bits (16 base64url characters)",
        ));
    }
    if segs[4].len() != 22 {
        return Err(bad(
            part,
            "the authentication tag must be 128 bits (22 base64url characters)",
        ));
    }
    Ok(JweInfo {
        authentication_tag: segs[4].to_owned(),
        cty,
    })
}
