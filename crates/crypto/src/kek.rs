use crate::Error;
use crate::util::fill_random;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Format version of [`Kek::wrap`] output, so that a future change of algorithm or layout can
/// still read blobs written today.
const VERSION_1: u8 = 1;

/// Key-encryption key: AES-256-GCM wrapping of secrets (private keys) at rest, with associated
/// data naming what is wrapped.
///
/// The associated data binds a blob to its purpose (for example `b"destination-key:<uuid>"`),
/// so a wrapped key copied into another row of the database fails to unwrap instead of being
/// silently used for the wrong thing. Nonces are random (96 bit); a single KEK must therefore
/// not wrap more than about 2^32 secrets, which is far beyond what this platform stores.
pub struct Kek {
    raw: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
}

impl Kek {
    /// Creates a fresh random KEK (for first-time setup or tests).
    ///
    /// # Panics
    /// If the system RNG fails.
    #[must_use]
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut raw[..]);
        Self::from_raw(raw)
    }

    /// Loads a KEK from configuration. Both base64 alphabets are accepted, with or without
    /// padding, and surrounding whitespace is ignored, because operators paste these values
    /// from different tools; anything that does not decode to exactly 32 bytes is rejected.
    ///
    /// # Errors
    /// [`Error::InvalidKek`] describing what is wrong, without echoing the input.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::InvalidKek(
                "empty value, expected base64 of 32 bytes",
            ));
        }
        let lenient = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(false);
        let standard = GeneralPurpose::new(&alphabet::STANDARD, lenient);
        let url_safe = GeneralPurpose::new(&alphabet::URL_SAFE, lenient);
        let decoded = standard
            .decode(s)
            .or_else(|_| url_safe.decode(s))
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::InvalidKek("not valid base64 (standard or URL-safe alphabet expected)")
            })?;
        if decoded.len() != KEY_LEN {
            return Err(Error::InvalidKek(
                "wrong length: must decode to exactly 32 bytes (AES-256)",
            ));
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        raw.copy_from_slice(&decoded);
        Ok(Self::from_raw(raw))
    }

    /// Standard base64 with padding, the form [`Kek::from_base64`] reads back.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.raw[..]))
    }

    /// Encrypts `plaintext`, bound to `aad`. Output: version byte || 12-byte nonce ||
    /// ciphertext || 16-byte tag.
    ///
    /// # Panics
    /// If the system RNG fails, or the plaintext exceeds AES-GCM's 64 GiB limit.
    #[must_use]
    pub fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION_1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (_, in_out) = out.split_at_mut(1 + NONCE_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .expect("AES-GCM sealing only fails for inputs larger than 64 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Reverses [`Kek::wrap`]; the plaintext is returned in a zeroizing buffer because it is
    /// normally a private key.
    ///
    /// # Errors
    /// [`Error::MalformedWrapped`] for truncated input or an unknown version byte;
    /// [`Error::UnwrapFailed`] if authentication fails (wrong key, wrong `aad`, tampering).
    pub fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (&version, rest) = wrapped
            .split_first()
            .ok_or(Error::MalformedWrapped("empty input"))?;
        if version != VERSION_1 {
            return Err(Error::MalformedWrapped("unknown format version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::MalformedWrapped("too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::MalformedWrapped("bad nonce length"))?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf[..])
            .map_err(|_| Error::UnwrapFailed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// A separate key for one purpose (`label`), derived with HKDF-SHA256, so that e.g. the
    /// key sealing access tokens can never open a wrapped private key.
    #[must_use]
    pub fn derive(&self, label: &str) -> Kek {
        Self::from_raw(self.derive_raw(label))
    }

    /// A MAC key for one purpose, derived like [`Kek::derive`].
    #[must_use]
    pub fn derive_mac(&self, label: &str) -> MacKey {
        let raw = self.derive_raw(label);
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, &raw[..]))
    }

    fn derive_raw(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, b"rathaus/kek-derive/v1").extract(&self.raw[..]);
        let info = [label.as_bytes()];
        let okm = prk
            .expand(&info, hkdf::HKDF_SHA256)
            .expect("HKDF-SHA256 can always produce 32 bytes");
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        okm.fill(&mut raw[..])
            .expect("HKDF-SHA256 can always produce 32 bytes");
        raw
    }

    fn from_raw(raw: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &raw[..])
            .expect("a 32-byte key is always valid for AES-256-GCM");
        Self {
            raw,
            key: LessSafeKey::new(unbound),
        }
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

/// HMAC-SHA256 under a key derived from the KEK: keyed digests of client secrets (fast
/// enough for the token path, useless to whoever steals the table without the KEK).
pub struct MacKey(hmac::Key);

impl MacKey {
    /// Lower-case hex of HMAC-SHA256(key, data).
    #[must_use]
    pub fn mac_hex(&self, data: &[u8]) -> String {
        let tag = hmac::sign(&self.0, data);
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// base64url (no padding) of HMAC-SHA256(key, data).
    #[must_use]
    pub fn mac_b64(&self, data: &[u8]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, data).as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn layout() {
        let kek = Kek::generate();
        let w = kek.wrap(b"a", b"hello");
        assert_eq!(w.len(), 1 + 12 + 5 + 16);
        assert_eq!(w[0], 1);
        assert_eq!(&*kek.unwrap(b"a", &w).unwrap(), b"hello");
    }

    #[test]
    fn empty_plaintext() {
        let kek = Kek::generate();
        let w = kek.wrap(b"", b"");
        assert!(kek.unwrap(b"", &w).unwrap().is_empty());
    }
}
