//! The journal (transparency log): every intake and delivery step is queued as an entry in
//! the transaction that makes it (see `store::zustelldienst`), and the sequencer here moves
//! queued entries into the Merkle tree and signs each new tree head with the platform's
//! Ed25519 key. Reads: the latest signed head, inclusion and consistency proofs, the
//! entries of one subject, and an export that `rathaus journal verify` (or anyone with
//! crate `journal`) checks offline.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use journal::{Frontier, PublicKeyInfo, SignedTreeHead, TreeHeadSigner};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{App, AppError, Result};

const KEY_META: &str = "journal.ed25519";
const KEY_AAD: &[u8] = b"journal-signing-key";
/// Entries per tree head: bounds one transaction; a backlog is worked off in several.
const BATCH: usize = 4096;

/// The sequencer's state: the signing key and the cached right edge of the tree.
pub struct JournalState {
    /// Shared with the sequencing job, which may run on the store's writer thread.
    signer: Arc<TreeHeadSigner>,
    frontier: tokio::sync::Mutex<Option<Frontier>>,
    pub(crate) wake: tokio::sync::Notify,
}

impl JournalState {
    /// Loads the signing key, creating it on the very first start (the first node to store
    /// one wins; the others read it back).
    pub(crate) async fn open(store: &store::Store, kek: &crypto::Kek) -> Result<JournalState> {
        let stored = match store.meta_get(KEY_META).await? {
            Some(v) => v,
            None => {
                let der = TreeHeadSigner::generate_pkcs8()
                    .map_err(|e| AppError::Internal(format!("journal key: {e}")))?;
                let wrapped = STANDARD.encode(kek.wrap(KEY_AAD, &der));
                store.meta_set_if_absent(KEY_META, &wrapped).await?;
                store
                    .meta_get(KEY_META)
                    .await?
                    .ok_or_else(|| AppError::Internal("journal key vanished".into()))?
            }
        };
        let wrapped = STANDARD
            .decode(stored)
            .map_err(|_| AppError::Internal("stored journal key is not base64".into()))?;
        let der = kek.unwrap(KEY_AAD, &wrapped)?;
        let signer = TreeHeadSigner::from_pkcs8(&der)
            .map_err(|e| AppError::Internal(format!("journal key: {e}")))?;
        Ok(JournalState {
            signer: Arc::new(signer),
            frontier: tokio::sync::Mutex::new(None),
            wake: tokio::sync::Notify::new(),
        })
    }
}

fn head_json(h: &SignedTreeHead) -> Value {
    serde_json::to_value(h).unwrap_or(Value::Null)
}

impl App {
    /// The journal's public key as published with the tree heads.
    pub fn journal_public_key(&self) -> PublicKeyInfo {
        self.journal.signer.public_key_info()
    }

    /// Sequences what is queued (one batch); returns the new signed head, if any.
    pub async fn journal_sequence_once(&self) -> Result<Option<SignedTreeHead>> {
        let mut frontier = self.journal.frontier.lock().await;
        let signer = self.journal.signer.clone();
        Ok(self
            .store
            .sequence_journal(BATCH, &mut frontier, OffsetDateTime::now_utc(), move |h| {
                signer.sign(h)
            })
            .await?)
    }

    /// Sequences until the process ends: right after a wake-up (something was queued) and
    /// at least every second (other nodes queue too).
    pub async fn run_journal_sequencer(self: Arc<Self>) {
        loop {
            match self.journal_sequence_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "journal sequencer"),
            }
            tokio::select! {
                () = self.journal.wake.notified() => {
                    // Let a burst gather into one tree head.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// `GET /journal/v1/tree-head`.
    pub async fn journal_tree_head(&self) -> Result<Value> {
        let head = self.store.latest_tree_head().await?;
        Ok(json!({
            "treeHead": head.as_ref().map(head_json),
            "publicKey": self.journal_public_key(),
        }))
    }

    /// `GET /journal/v1/tree-heads/{size}`.
    pub async fn journal_tree_head_at(&self, size: u64) -> Result<Value> {
        let head = self
            .store
            .tree_head(size)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no signed tree head of size {size}")))?;
        Ok(head_json(&head))
    }

    /// `GET /journal/v1/entries/{index}/proof?treeSize=N` (default: the latest head).
    pub async fn journal_inclusion(&self, index: u64, tree_size: Option<u64>) -> Result<Value> {
        let head = match tree_size {
            Some(n) => self.store.tree_head(n).await?,
            None => self.store.latest_tree_head().await?,
        }
        .ok_or_else(|| AppError::NotFound("no signed tree head of that size".into()))?;
        if index >= head.tree_size {
            return Err(AppError::NotFound(format!(
                "entry {index} is not in the tree of size {} (yet)",
                head.tree_size
            )));
        }
        let p = self
            .store
            .journal_inclusion_proof(index, head.tree_size)
            .await?;
        let entry: Value = serde_json::from_str(&p.entry).unwrap_or(Value::Null);
        Ok(json!({
            "index": index,
            "entry": entry,
            "leafHash": p.leaf_hash,
            "auditPath": p.proof,
            "treeHead": head_json(&head),
        }))
    }

    /// `GET /journal/v1/consistency?from=M&to=N`.
    pub async fn journal_consistency(&self, from: u64, to: u64) -> Result<Value> {
        if from == 0 || from > to {
            return Err(AppError::Invalid("from must be between 1 and to".into()));
        }
        let proof = self.store.journal_consistency_proof(from, to).await?;
        Ok(json!({"from": from, "to": to, "proof": proof}))
    }

    /// The entries of one subject (e.g. `submission:<id>`) with their indices.
    pub async fn journal_subject(&self, subject: &str) -> Result<Value> {
        let leaves = self.store.journal_entries_for_subject(subject).await?;
        let entries: Vec<Value> = leaves
            .iter()
            .map(|l| {
                json!({"index": l.seq, "entry": serde_json::from_str::<Value>(&l.entry).unwrap_or(Value::Null)})
            })
            .collect();
        Ok(json!({"subject": subject, "entries": entries}))
    }

    /// Writes the whole log (up to the latest head) to `path`; returns the head.
    pub async fn journal_export_file(
        &self,
        path: &std::path::Path,
    ) -> Result<Option<SignedTreeHead>> {
        let file = std::fs::File::create(path)
            .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
        let out = std::io::BufWriter::new(file);
        let keys = [self.journal_public_key()];
        match self.store.journal_export(out, &keys).await? {
            Some((head, mut w)) => {
                use std::io::Write as _;
                w.flush()
                    .and_then(|()| w.get_ref().sync_all())
                    .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
                Ok(Some(head))
            }
            None => Ok(None),
        }
    }
}
