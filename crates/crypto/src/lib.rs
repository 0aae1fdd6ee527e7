//! Cryptography for Rathaus, kept in one crate so that every primitive comes from a single
//! audited implementation (aws-lc via `aws-lc-rs`) and the rest of the workspace never touches
//! key material directly.
//!
//! * [`RsaSigningKey`] / [`verify_compact_ps512`]: the PS512 JWS and JWK handling FIT-Connect
//!   requires (destination signatures, routing JWKS).
//! * [`Kek`]: wraps secrets such as private keys before they are written to the database.
//! * [`random_token`], [`constant_time_eq`], [`sha256_hex`]: small helpers that are easy to get
//!   subtly wrong when re-implemented ad hoc.

mod error;
mod jws;
mod kek;
mod util;

#[cfg(feature = "test-support")]
pub mod testkey;

pub use error::Error;
pub use jws::{RsaSigningKey, rsa_jwk_thumbprint, verify_compact_ps512};
pub use kek::Kek;
pub use util::{Sha256, constant_time_eq, random_token, sha256_hex};
