//! Cryptography for Rathaus, kept in one crate so that every primitive comes from a single
//! audited implementation (aws-lc via `aws-lc-rs`) and the rest of the workspace never touches
//! key material directly.
//!
//! * [`RsaSigningKey`] / [`verify_compact_ps512`]: the PS512 JWS and JWK handling FIT-Connect
//!   requires (destination signatures, routing JWKS).
//! * [`RsaDecryptionKey`] / [`jwe`]: FIT-Connect's JWE (RSA-OAEP-256 + A256GCM, optional
//!   DEFLATE): destination encryption keys, structural checks without a key
//!   ([`JweCompact::parse`]), decryption and encryption.
//! * [`JwtSigningKey`] / [`verify_jwt`]: the OpenID provider's ES256/RS256 keys and the
//!   verification of client assertions.
//! * [`Kek`]: wraps secrets such as private keys before they are written to the database.
//! * [`random_token`], [`constant_time_eq`], [`sha256_hex`]: small helpers that are easy to get
//!   subtly wrong when re-implemented ad hoc.

mod error;
pub mod jwe;
mod jws;
mod jwt;
mod kek;
mod rsa;
mod util;

#[cfg(feature = "test-support")]
pub mod testkey;

pub use error::Error;
pub use jwe::{Decrypted, JweCompact, JweHeader, JweProblem, RsaDecryptionKey, RsaEncryptionKey};
pub use jws::{RsaSigningKey, rsa_jwk_thumbprint, verify_compact_ps512};
pub use jwt::{JwtAlg, JwtSigningKey, VerifiedJwt, jwk_thumbprint, jwt_header, verify_jwt};
pub use kek::{Kek, MacKey};
pub use util::{
    Sha256, constant_time_eq, hmac_sha512_hex, random_token, sha256_b64url, sha256_hex,
};
