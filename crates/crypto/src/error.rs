/// Errors from this crate.
///
/// Messages are meant for logs and operators, so they never include key material, plaintext,
/// or the raw input that failed to parse (a mistyped secret must not end up in a log line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The system could not produce an RSA key (RNG or allocation failure inside aws-lc).
    #[error("RSA key generation failed")]
    KeyGeneration,

    /// The private key is not an acceptable RSA PKCS#8 key.
    #[error("invalid RSA private key: {0}")]
    InvalidPrivateKey(&'static str),

    /// Building the self-signed certificate failed.
    #[error("could not create X.509 certificate: {0}")]
    CertificateGeneration(String),

    /// The certificate could not be parsed or is not usable.
    #[error("invalid X.509 certificate: {0}")]
    InvalidCertificate(&'static str),

    /// The certificate is well-formed but certifies a different public key, which would make
    /// every published `x5c` contradict the JWK it sits in.
    #[error("the certificate's public key does not match the private key")]
    CertificateKeyMismatch,

    /// aws-lc refused to produce a signature.
    #[error("signing failed")]
    Signing,

    /// The JWS is not a well-formed compact serialisation.
    #[error("malformed JWS: {0}")]
    MalformedJws(&'static str),

    /// The JWS header names an algorithm other than PS512 (only a bounded prefix is echoed).
    #[error("unsupported JWS algorithm {0:?}, expected \"PS512\"")]
    UnsupportedAlgorithm(String),

    /// The JWK cannot be used as an RSA verification key.
    #[error("invalid RSA JWK: {0}")]
    InvalidJwk(&'static str),

    /// The signature does not verify under the given key.
    #[error("JWS signature verification failed")]
    BadSignature,

    /// A key-encryption key could not be loaded.
    #[error("invalid key-encryption key: {0}")]
    InvalidKek(&'static str),

    /// The wrapped blob is structurally wrong (too short, unknown format version).
    #[error("malformed wrapped secret: {0}")]
    MalformedWrapped(&'static str),

    /// AES-GCM authentication failed: wrong key, wrong associated data, or tampered ciphertext.
    /// These cases are deliberately indistinguishable.
    #[error("could not unwrap secret: wrong key, wrong associated data, or corrupted data")]
    UnwrapFailed,

    /// The private JWK cannot be loaded (wrong `kty`/`alg`/`key_ops`, missing or undecodable
    /// members, no `x5c`); the message names the member, never its value.
    #[error("invalid private RSA JWK: {0}")]
    InvalidPrivateJwk(&'static str),

    /// The JWE is not an acceptable FIT-Connect compact serialisation. Detected without any
    /// key, so a server can answer precisely at upload time; [`crate::JweProblem`] says what
    /// is wrong.
    #[error("malformed JWE: {0}")]
    MalformedJwe(crate::JweProblem),

    /// Decryption failed: the content-encryption key did not unwrap under this key, or the
    /// ciphertext, IV, tag or protected header was altered. These cases are deliberately
    /// indistinguishable (no padding or tag oracle).
    #[error("JWE decryption failed: wrong key or altered JWE")]
    JweDecryptionFailed,

    /// The plaintext (after decompression, if any) would exceed the caller's limit.
    #[error("JWE plaintext exceeds the limit of {limit} bytes")]
    JwePlaintextTooLarge {
        /// The limit the caller passed, in bytes.
        limit: usize,
    },

    /// The authenticated plaintext is not valid raw DEFLATE (RFC 1951) data although the
    /// header says `"zip":"DEF"`.
    #[error(
        "JWE payload is not valid DEFLATE data (truncated, corrupt or followed by extra bytes)"
    )]
    JweDecompressionFailed,

    /// aws-lc refused to encrypt (should not happen with a validated key).
    #[error("encryption failed")]
    Encryption,
}
