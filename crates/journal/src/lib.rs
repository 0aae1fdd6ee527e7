//! The tamper-evident journal: a transparency log after RFC 9162 (Certificate Transparency
//! 2.0), without its certificate-specific parts.
//!
//! Every entry ([`Entry`]: references and digests, never personal data in clear) becomes a
//! leaf of a Merkle tree; the log periodically signs its size and root ([`SignedTreeHead`],
//! Ed25519). Anyone holding a signed head can check that an entry is in the log
//! ([`verify_inclusion`]) and that a later head extends an earlier one without rewriting it
//! ([`verify_consistency`]); the whole log can be exported and checked offline
//! ([`verify_export`]).
//!
//! Storage keeps the complete subtrees ([`NodeId`]): the `*_nodes` functions name the
//! nodes a proof needs so that they can be fetched at once, the proof functions compose
//! them, and [`Frontier`] is all a sequencer holds to append.
//!
//! **Invariants:** pure — no I/O beyond the reader/writer handed in, no clock (callers pass
//! times), no SQL. Hashes are SHA-256 and signatures Ed25519, both from aws-lc-rs.

pub mod entry;
pub mod export;
mod hash;
pub mod sth;
pub mod tree;

pub use entry::{Entry, EntryError, Kind};
pub use export::{
    EXPORT_FORMAT, ExportError, ExportHeader, ExportWriter, VerifyError, VerifyReport,
    verify_export, verify_export_with_keys,
};
pub use hash::{Hash, HashParseError, empty_root, leaf_hash, node_hash, sha256};
pub use sth::{
    PublicKeyInfo, STH_CONTEXT, SignedTreeHead, SignerError, TreeHead, TreeHeadSigner, key_id,
    verify_tree_head,
};
pub use tree::{
    Frontier, MemoryTree, Node, NodeId, ProofError, consistency_proof, consistency_proof_nodes,
    inclusion_proof, inclusion_proof_nodes, root_from_nodes, root_nodes, verify_consistency,
    verify_inclusion,
};
