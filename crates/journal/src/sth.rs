//! Signed tree heads: the log's commitment to its size and root, signed with Ed25519.
//!
//! The signature covers a fixed binary encoding (not JSON, so that no canonicalisation is
//! involved):
//!
//! ```text
//! b"rathaus-journal-sth-v1\0"   23 bytes, domain separation and version
//! tree size                     u64, big-endian
//! timestamp                     i64, big-endian, Unix milliseconds
//! root hash                     32 bytes
//! ```
//!
//! Published as JSON: `{"treeSize":…,"rootHash":"<base64>","timestamp":…,
//! "signature":"<base64>","keyId":"…"}`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::hash::{Hash, sha256};

/// Domain separation for the signed bytes.
pub const STH_CONTEXT: &[u8; 23] = b"rathaus-journal-sth-v1\0";

/// What the log commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub timestamp_ms: i64,
}

impl TreeHead {
    /// The signed bytes (see the module documentation).
    pub fn signing_input(&self) -> [u8; 71] {
        let mut out = [0u8; 71];
        out[..23].copy_from_slice(STH_CONTEXT);
        out[23..31].copy_from_slice(&self.size.to_be_bytes());
        out[31..39].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[39..].copy_from_slice(&self.root.0);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedTreeHead {
    pub tree_size: u64,
    pub root_hash: Hash,
    pub timestamp: i64,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub key_id: String,
}

impl SignedTreeHead {
    pub fn head(&self) -> TreeHead {
        TreeHead {
            size: self.tree_size,
            root: self.root_hash,
            timestamp_ms: self.timestamp,
        }
    }
}

/// A public key as published next to the tree heads (and in exports).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKeyInfo {
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The raw 32-byte Ed25519 key, standard base64.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
}

impl PublicKeyInfo {
    pub fn ed25519(public_key: &[u8]) -> PublicKeyInfo {
        PublicKeyInfo {
            key_id: key_id(public_key),
            algorithm: "Ed25519".into(),
            public_key: public_key.to_vec(),
        }
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// The key's name: base64url of SHA-256 of the raw public key, first 16 characters.
pub fn key_id(public_key: &[u8]) -> String {
    let mut id = URL_SAFE_NO_PAD.encode(sha256(public_key).0);
    id.truncate(16);
    id
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("not an Ed25519 PKCS#8 key")]
    BadKey,
    #[error("Ed25519 key generation failed")]
    Generate,
}

/// Signs tree heads. `Debug` shows the key id only.
pub struct TreeHeadSigner {
    key: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for TreeHeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TreeHeadSigner({})", self.key_id)
    }
}

impl TreeHeadSigner {
    /// A new key as PKCS#8 v1 DER, for the caller to wrap (under the KEK) and store.
    pub fn generate_pkcs8() -> Result<zeroize::Zeroizing<Vec<u8>>, SignerError> {
        let key = Ed25519KeyPair::generate().map_err(|_| SignerError::Generate)?;
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&key)
            .map_err(|_| SignerError::Generate)?;
        Ok(zeroize::Zeroizing::new(der.as_ref().to_vec()))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<TreeHeadSigner, SignerError> {
        let key = Ed25519KeyPair::from_pkcs8(der).map_err(|_| SignerError::BadKey)?;
        let key_id = key_id(key.public_key().as_ref());
        Ok(TreeHeadSigner { key, key_id })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.public_key())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key_info(&self) -> PublicKeyInfo {
        PublicKeyInfo::ed25519(self.public_key())
    }

    pub fn sign(&self, head: &TreeHead) -> SignedTreeHead {
        SignedTreeHead {
            tree_size: head.size,
            root_hash: head.root,
            timestamp: head.timestamp_ms,
            signature: self.key.sign(&head.signing_input()).as_ref().to_vec(),
            key_id: self.key_id.clone(),
        }
    }
}

/// True if `sth` names this key and carries its valid signature.
pub fn verify_tree_head(public_key: &[u8], sth: &SignedTreeHead) -> bool {
    key_id(public_key) == sth.key_id
        && signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
            .verify(&sth.head().signing_input(), &sth.signature)
            .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn head() -> TreeHead {
        TreeHead {
            size: 42,
            root: crate::leaf_hash(b"root"),
            timestamp_ms: 1_767_225_600_123,
        }
    }

    #[test]
    fn signing_input_layout() {
        let bytes = head().signing_input();
        assert_eq!(&bytes[..23], b"rathaus-journal-sth-v1\0");
        assert_eq!(&bytes[23..31], &[0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(
            i64::from_be_bytes(bytes[31..39].try_into().unwrap()),
            1_767_225_600_123
        );
        assert_eq!(&bytes[39..], &head().root.0);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let der = TreeHeadSigner::generate_pkcs8().unwrap();
        let signer = TreeHeadSigner::from_pkcs8(&der).unwrap();
        assert_eq!(signer.key_id().len(), 16);
        assert_eq!(signer.public_key().len(), 32);
        assert!(!format!("{signer:?}").contains(&signer.public_key_b64()));
        let sth = signer.sign(&head());
        assert!(verify_tree_head(signer.public_key(), &sth));

        let json = serde_json::to_value(&sth).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(|k| &**k).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["keyId", "rootHash", "signature", "timestamp", "treeSize"]
        );
        assert_eq!(json["rootHash"], head().root.to_base64());
        let back: SignedTreeHead = serde_json::from_value(json).unwrap();
        assert_eq!(back, sth);

        let mut bigger = sth.clone();
        bigger.tree_size += 1;
        assert!(!verify_tree_head(signer.public_key(), &bigger));
        let mut later = sth.clone();
        later.timestamp += 1;
        assert!(!verify_tree_head(signer.public_key(), &later));
        let mut other_root = sth.clone();
        other_root.root_hash.0[0] ^= 1;
        assert!(!verify_tree_head(signer.public_key(), &other_root));
        let other = TreeHeadSigner::from_pkcs8(&TreeHeadSigner::generate_pkcs8().unwrap()).unwrap();
        assert!(!verify_tree_head(other.public_key(), &sth));
        let mut renamed = other.sign(&head());
        renamed.key_id = sth.key_id.clone();
        assert!(!verify_tree_head(signer.public_key(), &renamed));

        assert_eq!(
            TreeHeadSigner::from_pkcs8(b"not a key").unwrap_err(),
            SignerError::BadKey
        );
    }
}
