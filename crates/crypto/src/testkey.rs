//! Fixed RSA-4096 keys for tests, so that tests across the workspace need no multi-second key
//! generation: a PS512 signing key ([`shared`]) and an RSA-OAEP-256 decryption key
//! ([`shared_decryption`]).
//!
//! **These keys are public test fixtures.** The private keys are committed to the repository
//! (`crates/crypto/testdata/TEST-ONLY-*`) and must never be used, trusted or registered with
//! FIT-Connect outside tests. The module only exists with the `test-support` feature, which
//! belongs in `[dev-dependencies]` only. Regenerate with
//! `cargo run -p crypto --example generate_test_key -- [sign|enc]` (the certificates are valid
//! for ten years from their generation).

use crate::{RsaDecryptionKey, RsaSigningKey};
use std::sync::OnceLock;

/// PKCS#8 DER of the test-only signing key.
pub const TEST_ONLY_PKCS8_DER: &[u8] =
    include_bytes!("../testdata/TEST-ONLY-rsa4096-key.pkcs8.der");
/// DER of the self-signed certificate for [`TEST_ONLY_PKCS8_DER`].
pub const TEST_ONLY_CERT_DER: &[u8] = include_bytes!("../testdata/TEST-ONLY-rsa4096-cert.der");

/// PKCS#8 DER of the test-only decryption (RSA-OAEP-256) key.
pub const TEST_ONLY_ENC_PKCS8_DER: &[u8] =
    include_bytes!("../testdata/TEST-ONLY-rsa4096-enc-key.pkcs8.der");
/// DER of the self-signed certificate for [`TEST_ONLY_ENC_PKCS8_DER`].
pub const TEST_ONLY_ENC_CERT_DER: &[u8] =
    include_bytes!("../testdata/TEST-ONLY-rsa4096-enc-cert.der");

/// The shared test signing key, parsed once per process.
///
/// # Panics
/// If the fixture files are corrupt, which is a bug in this crate.
#[must_use]
pub fn shared() -> &'static RsaSigningKey {
    static KEY: OnceLock<RsaSigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RsaSigningKey::from_der(TEST_ONLY_PKCS8_DER, TEST_ONLY_CERT_DER)
            .expect("the committed test key fixtures are valid")
    })
}

/// The shared test decryption key (a different key from [`shared`]), parsed once per process.
///
/// # Panics
/// If the fixture files are corrupt, which is a bug in this crate.
#[must_use]
pub fn shared_decryption() -> &'static RsaDecryptionKey {
    static KEY: OnceLock<RsaDecryptionKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RsaDecryptionKey::from_der(TEST_ONLY_ENC_PKCS8_DER, TEST_ONLY_ENC_CERT_DER)
            .expect("the committed test key fixtures are valid")
    })
}
