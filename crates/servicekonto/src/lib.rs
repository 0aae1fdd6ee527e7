//! The logic of the Servicekonto (citizen account): passwords, second factors, login
//! throttling and single-use tokens — everything about accounts that is pure computation.
//!
//! * [`password`]: the NIST SP 800-63B password policy ([`password::PasswordPolicy`]) and
//!   Argon2id hashing on blocking threads with bounded concurrency
//!   ([`password::PasswordHasher`]).
//! * [`totp`]: RFC 6238 one-time codes with replay refusal, `otpauth://` URIs, recovery codes.
//! * [`throttle`]: the delay schedule after failed logins (the caller keeps the counters).
//! * [`token`]: random tokens for e-mail verification, password reset and invitation links,
//!   of which only the SHA-256 is stored.
//!
//! **Invariants:** no I/O of any kind — no HTTP, no SQL, no files, no network, no clock (the
//! caller passes the time); only CPU work, and the expensive part (Argon2id) never runs on an
//! async worker. Passwords, codes, secrets and tokens are never logged, never put into error
//! messages and never printed by `Debug`; password buffers are zeroised after hashing.

pub mod password;
pub mod throttle;
pub mod token;
pub mod totp;

/// Fills `buf` from the system RNG (aws-lc). A failing system RNG is unrecoverable.
pub(crate) fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("system random number generator failed");
}
