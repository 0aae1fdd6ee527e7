//! Regenerates the TEST-ONLY key fixtures in `crates/crypto/testdata/` used by
//! `crypto::testkey`. The output is a public test fixture, never a production key.
//!
//! Usage: `cargo run -p crypto --example generate_test_key -- [sign|enc]`; without an argument
//! both keys are regenerated (which changes every `kid` the tests of other crates may see).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1);
    let (sign, enc) = match which.as_deref() {
        None => (true, true),
        Some("sign") => (true, false),
        Some("enc") => (false, true),
        Some(_) => return Err("usage: generate_test_key [sign|enc]".into()),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    std::fs::create_dir_all(&dir)?;
    if sign {
        let key = crypto::RsaSigningKey::generate("Rathaus TEST-ONLY signing key")?;
        std::fs::write(
            dir.join("TEST-ONLY-rsa4096-key.pkcs8.der"),
            &*key.pkcs8_der(),
        )?;
        std::fs::write(dir.join("TEST-ONLY-rsa4096-cert.der"), key.cert_der())?;
        println!(
            "wrote test-only signing key {} to {}",
            key.kid(),
            dir.display()
        );
    }
    if enc {
        let key = crypto::RsaDecryptionKey::generate("Rathaus TEST-ONLY decryption key")?;
        std::fs::write(
            dir.join("TEST-ONLY-rsa4096-enc-key.pkcs8.der"),
            &*key.pkcs8_der(),
        )?;
        std::fs::write(dir.join("TEST-ONLY-rsa4096-enc-cert.der"), key.cert_der())?;
        println!(
            "wrote test-only decryption key {} to {}",
            key.kid(),
            dir.display()
        );
    }
    Ok(())
}
