//! Single-use tokens for links sent by e-mail (address verification, password reset,
//! invitations).
//!
//! The link carries the token; the database stores only [`token_hash`] of it, so a leaked
//! database does not contain usable links. A plain SHA-256 suffices (no salt, no slow hash):
//! the token has 256 random bits, so there is nothing to guess, and the hash can be looked up
//! directly by an index.

/// A new token: `(token, hash)`. Send the first (43 characters of base64url, 32 random bytes)
/// to the user; store only the second (64 lower-case hex digits).
pub fn new_token() -> (String, String) {
    let token = crypto::random_token(32);
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a token: lower-case hex SHA-256 of its text. Surrounding white space
/// (from copying a link by hand) is ignored.
pub fn token_hash(token: &str) -> String {
    crypto::sha256_hex(token.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_what_is_stored() {
        let (t1, h1) = new_token();
        let (t2, h2) = new_token();
        assert_ne!(t1, t2);
        assert_ne!(h1, h2);
        assert_eq!(t1.len(), 43);
        assert!(
            t1.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(h1.len(), 64);
        assert_eq!(token_hash(&t1), h1);
        assert_eq!(token_hash(&format!(" {t1}\n")), h1);
        assert_ne!(token_hash(&t2), h1);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
