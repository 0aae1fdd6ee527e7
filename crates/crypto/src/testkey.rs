//! A fixed RSA-4096 signing key for tests, so that tests across the workspace need no
//! multi-second key generation.
//!
//! **These keys are public test fixtures.** The private key is committed to the repository
//! (`crates/crypto/testdata/TEST-ONLY-*`) and must never be used, trusted or registered with
//! FIT-Connect outside tests. The module only exists with the `test-support` feature, which
//! belongs in `[dev-dependencies]` only. Regenerate with
//! `cargo run -p crypto --example generate_test_key` (the certificate is valid for ten years
//! from its generation).

use crate::RsaSigningKey;
use std::sync::OnceLock;

/// PKCS#8 DER of the test-only private key.
pub const TEST_ONLY_PKCS8_DER: &[u8] =
    include_bytes!("../testdata/TEST-ONLY-rsa4096-key.pkcs8.der");
/// DER of the self-signed certificate for [`TEST_ONLY_PKCS8_DER`].
pub const TEST_ONLY_CERT_DER: &[u8] = include_bytes!("../testdata/TEST-ONLY-rsa4096-cert.der");

/// The shared test key, parsed once per process.
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
