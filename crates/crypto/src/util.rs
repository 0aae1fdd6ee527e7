use aws_lc_rs::{constant_time, digest, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt::Write as _;

/// Returns `bytes` bytes from the operating system's CSPRNG, base64url-encoded without padding
/// so the result can be put into URLs, cookies and headers unchanged.
///
/// # Panics
/// If the system RNG fails; there is no safe way to continue without randomness.
#[must_use]
pub fn random_token(bytes: usize) -> String {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bytes]);
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(&*buf)
}

/// Compares secrets (tokens, MACs) without leaking the position of the first difference
/// through timing. Lengths are not secret: different lengths simply compare unequal.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Lower-case hex SHA-256, the form used for content digests in logs and stored hashes.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Fills `buf` from the system RNG; a failing RNG is unrecoverable, so this panics.
pub(crate) fn fill_random(buf: &mut [u8]) {
    rand::fill(buf).expect("system random number generator failed");
}

/// Incremental SHA-256, for data that arrives in chunks.
pub struct Sha256(aws_lc_rs::digest::Context);

impl Sha256 {
    pub fn new() -> Self {
        Sha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish_hex(self) -> String {
        self.0
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// base64url (no padding) of SHA-256(`data`), as PKCE S256 (RFC 7636 § 4.2) compares it.
#[must_use]
pub fn sha256_b64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// Lower-case hex HMAC-SHA512 of `message` under `key`: FIT-Connect's
/// `callback-authentication` header (key = the callback secret's UTF-8 bytes, message =
/// `timestamp + "." + body`).
#[must_use]
pub fn hmac_sha512_hex(key: &[u8], message: &[u8]) -> String {
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, key),
        message,
    );
    let mut out = String::with_capacity(128);
    for b in tag.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn random_token_shape() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(t, random_token(32));
        assert_eq!(random_token(0), "");
    }

    #[test]
    fn incremental_sha256_equals_one_shot() {
        let mut h = super::Sha256::new();
        h.update(b"hello ");
        h.update(b"you");
        assert_eq!(h.finish_hex(), super::sha256_hex(b"hello you"));
    }
}
