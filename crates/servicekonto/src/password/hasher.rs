//! Argon2id password hashing off the async workers, with bounded concurrency.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use argon2::password_hash::{self, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Argon2id cost parameters.
///
/// The floor is OWASP's recommended minimum for Argon2id (Password Storage Cheat Sheet):
/// 19 MiB of memory (19,456 KiB) and two passes. OWASP lists other combinations of equal
/// strength (47,104 KiB × 1 pass, 12,288 KiB × 3, …); we accept only "at least 19,456 KiB
/// and at least 2 passes", which is simpler to state and never weaker. The ceilings (1 GiB,
/// 64 passes, 16 lanes) only catch configuration mistakes: every concurrent hash allocates
/// `memory_kib`.
///
/// `parallelism` is the number of Argon2 lanes, part of the hash; the `argon2` crate computes
/// the lanes one after another, so a value above 1 costs time without using more cores.
/// Fields are private so that every value went through [`Argon2Params::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Argon2Params {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Argon2Params {
    pub const MIN_MEMORY_KIB: u32 = 19_456;
    pub const MIN_ITERATIONS: u32 = 2;
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    pub const MAX_ITERATIONS: u32 = 64;
    pub const MAX_PARALLELISM: u32 = 16;

    /// Validated parameters; see the type's documentation for the limits.
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, InvalidArgon2Params> {
        let params = Argon2Params {
            memory_kib,
            iterations,
            parallelism,
        };
        let ok = (Self::MIN_MEMORY_KIB..=Self::MAX_MEMORY_KIB).contains(&memory_kib)
            && (Self::MIN_ITERATIONS..=Self::MAX_ITERATIONS).contains(&iterations)
            && (1..=Self::MAX_PARALLELISM).contains(&parallelism);
        if ok {
            Ok(params)
        } else {
            Err(InvalidArgon2Params(params))
        }
    }

    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn to_argon2(self) -> Result<Params, HashError> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(Params::DEFAULT_OUTPUT_LEN),
        )
        .map_err(|e| HashError::Argon2(e.to_string()))
    }
}

impl Default for Argon2Params {
    /// OWASP's minimum: m = 19,456 KiB, t = 2, p = 1.
    fn default() -> Self {
        Argon2Params {
            memory_kib: Self::MIN_MEMORY_KIB,
            iterations: Self::MIN_ITERATIONS,
            parallelism: 1,
        }
    }
}

/// Parameters outside the accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "Argon2id parameters m={} KiB, t={}, p={} are outside the accepted range \
     (m 19456..=1048576 KiB, t 2..=64, p 1..=16)",
    .0.memory_kib, .0.iterations, .0.parallelism
)]
pub struct InvalidArgon2Params(pub Argon2Params);

/// Hashing or verification could not be carried out. Never contains the password or the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The stored value is not an Argon2 PHC string we can verify against (unparsable, another
    /// algorithm, parameters beyond [`Argon2Params`]' ceilings). A data error worth logging.
    #[error("the stored password hash is not a usable Argon2 PHC string")]
    MalformedHash,
    /// The Argon2 implementation refused (should not happen with validated parameters).
    #[error("Argon2 failed: {0}")]
    Argon2(String),
    /// The blocking task panicked or was cancelled.
    #[error("the password hashing task failed")]
    TaskFailed,
}

/// The outcome of [`PasswordHasher::verify`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password is right. If `needs_rehash`, the stored hash was made with other
    /// parameters (or another Argon2 variant): hash the password again and store the result.
    Yes { needs_rehash: bool },
    /// Wrong password, or no such account.
    No,
}

impl Verified {
    pub fn is_yes(self) -> bool {
        matches!(self, Verified::Yes { .. })
    }
}

/// Hashes and verifies passwords with Argon2id (version 0x13, 32-byte output, random 16-byte
/// salt, PHC string format `$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// Each computation costs tens of milliseconds of one core and `memory_kib` of memory, so the
/// async methods run it on tokio's blocking pool behind a semaphore of `max_concurrent`
/// permits: async workers are never blocked, and at most `max_concurrent` hashes (and
/// `max_concurrent × memory_kib` of memory) are in flight; further callers wait their turn.
/// A permit is held until the computation ends, even if the caller stopped waiting.
///
/// Cloning is cheap (one `Arc`); share one hasher for the whole process.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Argon2Params,
    argon2: Params,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
}

/// Salt for the computation that stands in for a missing account. Not secret: the result is
/// thrown away.
const DUMMY_SALT: &[u8; 16] = b"rathaus-no-such!";

impl PasswordHasher {
    /// A hasher with `params` and at most `max_concurrent` simultaneous computations;
    /// 0 means [`default_concurrency`].
    pub fn new(params: Argon2Params, max_concurrent: usize) -> Self {
        let max_concurrent = if max_concurrent == 0 {
            default_concurrency()
        } else {
            max_concurrent
        };
        // Validated parameters are always accepted by `argon2`; the fallback keeps this
        // constructor infallible should that ever change (and is checked by a test).
        let argon2 = params.to_argon2().unwrap_or_default();
        PasswordHasher {
            inner: Arc::new(Inner {
                params,
                argon2,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                max_concurrent,
            }),
        }
    }

    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    /// Permits currently free (equals `max_concurrent` when idle).
    pub fn available_permits(&self) -> usize {
        self.inner.permits.available_permits()
    }

    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// Hashes a new password; returns the PHC string to store. The password is zeroised.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let password = Zeroizing::new(password);
        self.run_blocking(move |this| this.hash_blocking(&password))
            .await
    }

    /// Checks `password` against the stored PHC string. `phc = None` means there is no such
    /// account: one Argon2id computation with the current parameters still runs, so the answer
    /// takes as long as for an existing account, and the result is [`Verified::No`]. The
    /// password is zeroised.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<Verified, HashError> {
        let password = Zeroizing::new(password);
        self.run_blocking(move |this| this.verify_blocking(&password, phc.as_deref()))
            .await
    }

    /// [`PasswordHasher::hash`] on the calling thread, without a permit (benchmarks, tests,
    /// command-line tools). Never call it on an async worker.
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        let mut salt = Zeroizing::new([0u8; 16]);
        crate::fill_random(&mut *salt);
        let salt = password_hash::SaltString::encode_b64(&*salt)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let hash = self
            .argon2()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// [`PasswordHasher::verify`] on the calling thread, without a permit.
    pub fn verify_blocking(
        &self,
        password: &str,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        let Some(phc) = phc else {
            let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
            // Same work as a real verification; the result does not matter.
            let _ = self
                .argon2()
                .hash_password_into(password.as_bytes(), DUMMY_SALT, &mut *out);
            return Ok(Verified::No);
        };
        let parsed = PasswordHash::new(phc).map_err(|_| HashError::MalformedHash)?;
        let stored = Params::try_from(&parsed).map_err(|_| HashError::MalformedHash)?;
        if stored.m_cost() > Argon2Params::MAX_MEMORY_KIB
            || stored.t_cost() > Argon2Params::MAX_ITERATIONS
            || stored.p_cost() > Argon2Params::MAX_PARALLELISM
        {
            return Err(HashError::MalformedHash);
        }
        // `verify_password` takes variant, version and parameters from the stored hash and
        // compares in constant time.
        match self.argon2().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(Verified::Yes {
                needs_rehash: self.parsed_needs_rehash(&parsed),
            }),
            Err(password_hash::Error::Password) => Ok(Verified::No),
            Err(_) => Err(HashError::MalformedHash),
        }
    }

    /// Whether a stored PHC string was made with other settings than this hasher's (variant,
    /// version, parameters, output length). Unparsable strings need a rehash too.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        PasswordHash::new(phc).map_or(true, |p| self.parsed_needs_rehash(&p))
    }

    fn parsed_needs_rehash(&self, hash: &PasswordHash<'_>) -> bool {
        let current = &self.inner.argon2;
        let same_params = Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == current.m_cost()
                && p.t_cost() == current.t_cost()
                && p.p_cost() == current.p_cost()
        });
        let same_output = hash
            .hash
            .is_some_and(|h| h.len() == Params::DEFAULT_OUTPUT_LEN);
        !(hash.algorithm == Algorithm::Argon2id.ident()
            && hash.version == Some(Version::V0x13.into())
            && same_params
            && same_output)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.argon2.clone(),
        )
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> Result<T, HashError> + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::TaskFailed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = work(&this);
            drop(permit);
            result
        })
        .await
        .map_err(|_| HashError::TaskFailed)?
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("available_permits", &self.available_permits())
            .finish()
    }
}

/// The default bound on concurrent hashes: all CPUs this process may use but one (at least
/// one). The core left over serves everything else — pages, API, database — so that a
/// flood of logins neither starves other users nor slows the hashes down by preempting them.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Params::default(), 2)
    }

    #[test]
    fn params_are_validated() {
        assert!(Argon2Params::new(19_456, 2, 1).is_ok());
        assert!(Argon2Params::new(65_536, 3, 4).is_ok());
        assert!(Argon2Params::new(19_455, 2, 1).is_err());
        assert!(Argon2Params::new(47_104, 1, 1).is_err());
        assert!(Argon2Params::new(19_456, 2, 0).is_err());
        assert!(Argon2Params::new(2 * 1024 * 1024, 2, 1).is_err());
        assert_eq!(
            Argon2Params::default(),
            Argon2Params::new(19_456, 2, 1).unwrap()
        );
        let e = Argon2Params::new(1, 1, 1).unwrap_err().to_string();
        assert!(e.contains("m=1 KiB"), "{e}");
        // Every accepted corner is accepted by the argon2 crate, too.
        for (m, t, p) in [(19_456, 2, 1), (1024 * 1024, 64, 16), (19_456, 2, 16)] {
            let params = Argon2Params::new(m, t, p).unwrap();
            assert!(params.to_argon2().is_ok());
        }
    }

    #[test]
    fn hash_then_verify_blocking() {
        let h = hasher();
        let phc = h.hash_blocking("Zaunkönig-71 am Teich").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify_blocking("Zaunkönig-71 am Teich", Some(&phc))
                .unwrap(),
            Verified::Yes {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify_blocking("zaunkönig-71 am Teich", Some(&phc))
                .unwrap(),
            Verified::No
        );
        // Salts are random.
        assert_ne!(h.hash_blocking("Zaunkönig-71 am Teich").unwrap(), phc);
        assert!(!h.needs_rehash(&phc));
    }

    #[test]
    fn malformed_hashes_are_errors() {
        let h = hasher();
        assert_eq!(
            h.verify_blocking("x", Some("not a hash")),
            Err(HashError::MalformedHash)
        );
        assert_eq!(
            h.verify_blocking(
                "x",
                Some("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
            ),
            Err(HashError::MalformedHash)
        );
        // Parameters beyond the ceiling are refused before any memory is allocated.
        assert_eq!(
            h.verify_blocking(
                "x",
                Some(
                    "$argon2id$v=19$m=4000000,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                )
            ),
            Err(HashError::MalformedHash)
        );
        assert!(h.needs_rehash("garbage"));
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s = format!("{:?}", hasher());
        assert!(s.contains("memory_kib: 19456"), "{s}");
    }
}
