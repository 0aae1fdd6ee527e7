//! Regenerates the TEST-ONLY key fixtures in `crates/crypto/testdata/` used by
//! `crypto::testkey`. The output is a public test fixture, never a production key.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    std::fs::create_dir_all(&dir)?;
    let key = crypto::RsaSigningKey::generate("Rathaus TEST-ONLY signing key")?;
    std::fs::write(
        dir.join("TEST-ONLY-rsa4096-key.pkcs8.der"),
        &*key.pkcs8_der(),
    )?;
    std::fs::write(dir.join("TEST-ONLY-rsa4096-cert.der"), key.cert_der())?;
    println!("wrote test-only key {} to {}", key.kid(), dir.display());
    Ok(())
}
