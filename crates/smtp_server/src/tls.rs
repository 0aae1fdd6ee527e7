//! The STARTTLS side: the server's rustls configuration from PEM files (aws-lc provider,
//! TLS 1.2 and 1.3, no client certificates).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1), for [`crate::Config::tls`].
pub fn load_tls(
    cert_pem_path: &Path,
    key_pem_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = CertificateDer::pem_file_iter(cert_pem_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Certificates {
            path: cert_pem_path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: cert_pem_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem_path).map_err(|source| Error::PrivateKey {
        path: key_pem_path.to_owned(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn loads_a_certificate_and_reports_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        assert!(load_tls(&cert_path, &key_path).is_ok());

        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            load_tls(&missing, &key_path),
            Err(Error::Certificates { .. })
        ));
        assert!(matches!(
            load_tls(&cert_path, &missing),
            Err(Error::PrivateKey { .. })
        ));
        // The key file holds no certificate, the certificate file no key.
        assert!(matches!(
            load_tls(&key_path, &key_path),
            Err(Error::NoCertificate { .. })
        ));
        assert!(matches!(
            load_tls(&cert_path, &cert_path),
            Err(Error::PrivateKey { .. })
        ));
        // A key that does not belong to the certificate.
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        let other_key = dir.path().join("other.pem");
        std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
        assert!(matches!(
            load_tls(&cert_path, &other_key),
            Err(Error::Tls(_))
        ));
    }
}
