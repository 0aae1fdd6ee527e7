//! Second factors: time-based one-time passwords (RFC 6238, as in authenticator apps) and
//! recovery codes.
//!
//! TOTP here is always HMAC-SHA1, 6 digits, 30-second steps — the only combination every
//! authenticator app supports (SHA-1's collision weakness does not affect HMAC). The
//! algorithm itself is `totp-rs`'s; this module adds the secret type, replay refusal and
//! input tolerance.

use std::fmt;

use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Bytes of a generated secret (RFC 4226 recommends 160 bits).
pub const SECRET_LEN: usize = 20;
/// Shortest secret accepted from storage (RFC 4226: at least 128 bits).
const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted from storage.
const MAX_SECRET_LEN: usize = 64;

/// The shared secret of one authenticator. Zeroised on drop; `Debug` prints `TotpSecret(..)`.
///
/// Store it like a password-equivalent: whoever has it can produce codes. (Wrap it with the
/// key-encryption key before it goes to the database.)
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new random secret of [`SECRET_LEN`] bytes.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        crate::fill_random(&mut bytes);
        TotpSecret(bytes)
    }

    /// RFC 4648 base32, upper case, without padding: what authenticator apps show and what
    /// goes into the `otpauth://` URI (32 characters for a generated secret).
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.0.as_slice()).to_base32()
    }

    /// Parses base32 as written by [`TotpSecret::to_base32`] or typed by a person: case,
    /// white space and `=` padding do not matter. The secret must have 16 to 64 bytes.
    pub fn from_base32(s: &str) -> Result<Self, InvalidTotpSecret> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            s.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let secret =
            totp_rs::Secret::try_from_base32(cleaned.as_str()).map_err(|_| InvalidTotpSecret)?;
        Self::from_bytes(secret.as_bytes())
    }

    /// The raw secret, 16 to 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidTotpSecret> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            Ok(TotpSecret(Zeroizing::new(bytes.to_vec())))
        } else {
            Err(InvalidTotpSecret)
        }
    }

    /// The raw secret, e.g. to wrap it before storing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, digits: u8) -> Totp {
        // Every `TotpSecret` has at least 128 bits and `digits` is 6 or 8 here, so this is
        // what `build` would check; skew 0 because `verify` walks the window itself.
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits)
            .with_skew(0)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.as_slice())
            .build_noncompliant()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// Not a valid TOTP secret (not base32, or not 16–64 bytes). Says nothing about the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid TOTP secret (base32 of 16 to 64 bytes)")]
pub struct InvalidTotpSecret;

/// The `otpauth://totp/…` URI for enrolling `secret` in an authenticator app (Key URI
/// Format: SHA1, 6 digits, 30 s, which are the format's defaults and so not spelled out).
/// `issuer` is shown as the service name, `account` (the e-mail address) below it. The
/// format forbids `:` in both; any is replaced by a space (runs of white space collapse to
/// one). An empty `account` becomes
/// `Servicekonto`.
///
/// The URI contains the secret: render it as a QR code and as text on the enrolment page only,
/// never log it.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let clean = |s: &str| {
        s.replace(':', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let issuer = clean(issuer);
    let mut account = clean(account);
    if account.is_empty() {
        account = "Servicekonto".to_owned();
    }
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.as_bytes())
        .with_issuer((!issuer.is_empty()).then_some(issuer))
        .with_account_name(account)
        .build_noncompliant()
        .to_url()
        .expect("account and issuer are non-empty and free of ':'")
}

/// The time step `unix` (seconds since the epoch) falls into.
pub fn step_at(unix: u64) -> u64 {
    unix / STEP_SECS
}

/// Checks a code typed by the user at `now_unix`.
///
/// Accepts the codes of the current step and of one step either side (clock drift, slow
/// typing), white space anywhere in `code` is ignored, anything but six ASCII digits is
/// refused. A step at or before `last_used_step` is refused, so a code works only once
/// (RFC 6238 section 5.2) and no older code works after a newer one. Returns the matched
/// step: store it as the new `last_used_step`.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now_unix: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code: Zeroizing<String> =
        Zeroizing::new(code.chars().filter(|c| !c.is_whitespace()).collect());
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = secret.totp(DIGITS as u8);
    let now = step_at(now_unix);
    (now.saturating_sub(1)..=now.saturating_add(1))
        .filter(|step| last_used_step.is_none_or(|last| *step > last))
        .find(|step| {
            step.checked_mul(STEP_SECS)
                .is_some_and(|t| totp.check(&code, t).is_some())
        })
}

/// The code for `secret` at `unix` — what the authenticator app shows then (tests, demos).
pub fn code_at(secret: &TotpSecret, unix: u64) -> String {
    secret.totp(DIGITS as u8).generate(unix).to_string()
}

// ---------------------------------------------------------------------------------------------
// Recovery codes

/// How many recovery codes an account gets.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Lower-case letters and digits without the look-alikes 0/o, 1/l/i: 31 symbols, so a
/// 10-character code carries 10 × log2(31) ≈ 49.5 bits.
const RECOVERY_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// `n` new single-use recovery codes (use [`RECOVERY_CODE_COUNT`]), each 10 random characters
/// shown as `abcde-fghij`. Show them once; store only [`hash_recovery_code`] of each.
pub fn generate_recovery_codes(n: usize) -> Vec<String> {
    (0..n).map(|_| random_recovery_code()).collect()
}

fn random_recovery_code() -> String {
    // Rejection sampling: bytes 248..=255 would make the first seven symbols likelier.
    const LIMIT: u8 = (256 - 256 % RECOVERY_ALPHABET.len()) as u8;
    let mut code = String::with_capacity(11);
    let mut chars = 0;
    while chars < 10 {
        let mut buf = Zeroizing::new([0u8; 16]);
        crate::fill_random(&mut *buf);
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if chars == 10 {
                break;
            }
            if chars == 5 {
                code.push('-');
            }
            code.push(char::from(
                RECOVERY_ALPHABET[usize::from(b) % RECOVERY_ALPHABET.len()],
            ));
            chars += 1;
        }
    }
    code
}

/// The canonical form of a typed recovery code: lower case, without white space and dashes.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The stored form of a recovery code: lower-case hex SHA-256 of the normalised code.
///
/// A fast unsalted hash is enough, unlike for passwords: the codes are random with ~49.5 bits,
/// not chosen by people, so there is no dictionary to try; online guessing is throttled like
/// logins; and a code is only a second factor — whoever holds a database copy to attack the
/// hashes offline still needs the password (Argon2id) and could read the TOTP secret anyway.
/// Being deterministic, the hash can be looked up directly.
pub fn hash_recovery_code(code: &str) -> String {
    let normalized = Zeroizing::new(normalize_recovery_code(code));
    crypto::sha256_hex(normalized.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The RFC 6238 appendix B SHA-1 secret.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        let secret = rfc_secret();
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, expected) in vectors {
            assert_eq!(secret.totp(8).generate(t).to_string(), expected, "t={t}");
            // Six digits are the last six of the eight (both are the value mod 10^n).
            assert_eq!(code_at(&secret, t), expected[2..], "t={t}");
        }
    }

    #[test]
    fn verify_accepts_the_window_and_refuses_replays() {
        let secret = rfc_secret();
        let now = 1_111_111_111; // step 37037037
        let step = step_at(now);
        assert_eq!(step, 37_037_037);
        let current = code_at(&secret, now);
        assert_eq!(verify(&secret, &current, now, None), Some(step));
        // Replay of the same code, and of any older step.
        assert_eq!(verify(&secret, &current, now, Some(step)), None);
        assert_eq!(verify(&secret, &current, now + 5, Some(step)), None);
        // One step either side is accepted; two are not.
        let previous = code_at(&secret, now - 30);
        let next = code_at(&secret, now + 30);
        let too_old = code_at(&secret, now - 60);
        let too_new = code_at(&secret, now + 60);
        assert_eq!(verify(&secret, &previous, now, None), Some(step - 1));
        assert_eq!(verify(&secret, &next, now, None), Some(step + 1));
        assert_eq!(verify(&secret, &too_old, now, None), None);
        assert_eq!(verify(&secret, &too_new, now, None), None);
        // After the next step's code was used, the current one no longer works.
        assert_eq!(verify(&secret, &current, now, Some(step + 1)), None);
        assert_eq!(verify(&secret, &next, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn verify_input_tolerance() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let code = code_at(&secret, now);
        assert_eq!(code, "005924");
        let step = Some(step_at(now));
        assert_eq!(verify(&secret, " 005 924\n", now, None), step);
        assert_eq!(verify(&secret, "005\u{a0}924", now, None), step);
        for bad in [
            "005-924",
            "05924",
            "0059240",
            "oo5924",
            "+05924",
            "００５９２４",
            "",
        ] {
            assert_eq!(verify(&secret, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(verify(&secret, "123456", now, None), None);
    }

    #[test]
    fn verify_near_the_epoch_and_far_future() {
        let secret = rfc_secret();
        assert_eq!(verify(&secret, &code_at(&secret, 0), 0, None), Some(0));
        assert_eq!(verify(&secret, &code_at(&secret, 0), 10, Some(0)), None);
        assert_eq!(verify(&secret, "000000", u64::MAX, None), None);
    }

    #[test]
    fn secrets() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let b32 = a.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(
            b32.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(
            TotpSecret::from_base32(&b32).unwrap().as_bytes(),
            a.as_bytes()
        );
        // As typed from an app's display: lower case, in groups of four.
        let lower = b32.to_lowercase();
        let groups: Vec<&str> = (0..8).map(|i| &lower[i * 4..i * 4 + 4]).collect();
        let typed = format!(" {} ", groups.join(" "));
        assert_eq!(
            TotpSecret::from_base32(&typed).unwrap().as_bytes(),
            a.as_bytes()
        );
        // The RFC 6238 test secret.
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32("GEZDGNBV").unwrap_err(),
            InvalidTotpSecret
        );
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert!(TotpSecret::from_bytes(&[0; 15]).is_err());
        assert!(TotpSecret::from_bytes(&[0; 65]).is_err());
        assert_eq!(format!("{a:?}"), "TotpSecret(..)");
    }

    #[test]
    fn otpauth_uris() {
        let secret = rfc_secret();
        assert_eq!(
            otpauth_uri(&secret, "Rathaus Musterstadt", "erika@example.de"),
            "otpauth://totp/Rathaus%20Musterstadt:erika%40example.de\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Rathaus%20Musterstadt"
        );
        assert_eq!(
            otpauth_uri(&secret, "Stadt: Köln", "a:b@example.de"),
            "otpauth://totp/Stadt%20K%C3%B6ln:a%20b%40example.de\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Stadt%20K%C3%B6ln"
        );
        assert_eq!(
            otpauth_uri(&secret, "", ""),
            "otpauth://totp/Servicekonto?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        // What an app would read back from the URI produces our codes.
        let uri = otpauth_uri(&secret, "Rathaus", "erika@example.de");
        let app = Totp::from_url(&uri).unwrap();
        assert_eq!(app.generate(59).to_string(), code_at(&secret, 59));
    }

    #[test]
    fn recovery_codes() {
        let codes = generate_recovery_codes(RECOVERY_CODE_COUNT);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(code.as_bytes()[5], b'-', "{code}");
            assert!(
                code.bytes()
                    .enumerate()
                    .all(|(i, b)| i == 5 || RECOVERY_ALPHABET.contains(&b)),
                "{code}"
            );
        }
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        // All symbols turn up (10,000 draws; missing one has probability ~31·(30/31)^10000).
        let many: std::collections::HashSet<u8> = generate_recovery_codes(1000)
            .iter()
            .flat_map(|c| c.bytes())
            .collect();
        assert_eq!(many.len(), 32); // 31 symbols and the dash
    }

    #[test]
    fn recovery_code_normalisation_and_hash() {
        assert_eq!(normalize_recovery_code(" ABCDE-fghjk "), "abcdefghjk");
        assert_eq!(normalize_recovery_code("abc de\tfg-hjk"), "abcdefghjk");
        let h = hash_recovery_code("abcde-fghjk");
        assert_eq!(h, crypto::sha256_hex(b"abcdefghjk"));
        assert_eq!(hash_recovery_code("ABCDE FGHJK"), h);
        assert_ne!(hash_recovery_code("abcde-fghjm"), h);
        assert_eq!(h.len(), 64);
    }
}
