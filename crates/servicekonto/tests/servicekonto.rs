//! The async password hasher through the public API: blocking pool, permits, missing accounts,
//! rehash on parameter change. (The pure parts are tested next to their code.)
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use servicekonto::password::{Argon2Params, PasswordHasher, Verified};

const PASSWORD: &str = "Kastanienallee im Herbst";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_and_verify() {
    let hasher = PasswordHasher::new(Argon2Params::default(), 2);
    let phc = hasher.hash(PASSWORD.to_owned()).await.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert_eq!(
        hasher
            .verify(PASSWORD.to_owned(), Some(phc.clone()))
            .await
            .unwrap(),
        Verified::Yes {
            needs_rehash: false
        }
    );
    let wrong = hasher
        .verify("Kastanienallee im Winter".to_owned(), Some(phc))
        .await
        .unwrap();
    assert_eq!(wrong, Verified::No);
    assert!(!wrong.is_yes());
    assert_eq!(hasher.available_permits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_account_costs_a_computation_and_says_no() {
    let hasher = PasswordHasher::new(Argon2Params::default(), 1);
    let phc = hasher.hash(PASSWORD.to_owned()).await.unwrap();

    let start = Instant::now();
    let existing = hasher.verify(PASSWORD.to_owned(), Some(phc)).await.unwrap();
    let existing_took = start.elapsed();
    let start = Instant::now();
    let missing = hasher.verify(PASSWORD.to_owned(), None).await.unwrap();
    let missing_took = start.elapsed();

    assert!(existing.is_yes());
    assert_eq!(missing, Verified::No);
    // Both ran one Argon2id computation; allow generous noise on a busy two-core machine.
    assert!(
        missing_took * 3 > existing_took && existing_took * 3 > missing_took,
        "existing {existing_took:?}, missing {missing_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_change_asks_for_a_rehash() {
    let old = PasswordHasher::new(Argon2Params::default(), 1);
    let phc = old.hash(PASSWORD.to_owned()).await.unwrap();

    let new = PasswordHasher::new(Argon2Params::new(19_456, 3, 1).unwrap(), 1);
    assert!(new.needs_rehash(&phc));
    assert!(!old.needs_rehash(&phc));
    // The old hash still verifies (its own parameters are used), with a hint to rehash.
    assert_eq!(
        new.verify(PASSWORD.to_owned(), Some(phc.clone()))
            .await
            .unwrap(),
        Verified::Yes { needs_rehash: true }
    );
    assert_eq!(
        new.verify("falsch".to_owned(), Some(phc)).await.unwrap(),
        Verified::No
    );
    let rehashed = new.hash(PASSWORD.to_owned()).await.unwrap();
    assert!(rehashed.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"));
    assert!(!new.needs_rehash(&rehashed));

    // Argon2i hashes (another variant) verify too, and need a rehash.
    let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                   aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    assert!(new.needs_rehash(argon2i));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_by_permits() {
    let hasher = PasswordHasher::new(Argon2Params::default(), 1);
    assert_eq!(hasher.max_concurrent(), 1);
    assert_eq!(hasher.available_permits(), 1);

    let first = tokio::spawn({
        let h = hasher.clone();
        async move { h.hash(PASSWORD.to_owned()).await }
    });
    let second = tokio::spawn({
        let h = hasher.clone();
        async move { h.hash(PASSWORD.to_owned()).await }
    });
    // While one computation holds the only permit, none is available.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hasher.available_permits() != 0 {
        assert!(Instant::now() < deadline, "no hash started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (a, b) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_ne!(a, b);
    assert_eq!(hasher.available_permits(), 1);
}

#[test]
fn zero_permits_means_one_per_cpu() {
    let hasher = PasswordHasher::new(Argon2Params::default(), 0);
    assert_eq!(
        hasher.max_concurrent(),
        servicekonto::password::default_concurrency()
    );
    assert!(hasher.max_concurrent() >= 1);
}
