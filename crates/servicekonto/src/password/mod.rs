//! Passwords: which ones we accept ([`PasswordPolicy`]) and how we store them
//! ([`PasswordHasher`], Argon2id).

mod hasher;
mod policy;

pub use hasher::{
    Argon2Params, HashError, InvalidArgon2Params, PasswordHasher, Verified, default_concurrency,
};
pub use policy::{PasswordPolicy, PasswordProblem, is_common_password};
