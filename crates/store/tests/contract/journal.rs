//! The journal's storage: queue, sequencer, proofs, export — on every backend.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use journal::{
    Entry, Frontier, Kind, MemoryTree, SignedTreeHead, TreeHead, TreeHeadSigner,
    verify_consistency, verify_inclusion, verify_tree_head,
};
use store::{Store, StoreError};
use time::OffsetDateTime;

use super::each_backend;

fn signer() -> Arc<TreeHeadSigner> {
    Arc::new(TreeHeadSigner::from_pkcs8(&TreeHeadSigner::generate_pkcs8().unwrap()).unwrap())
}

fn entry(i: u64) -> Entry {
    Entry {
        at: 1_767_225_600_000 + i as i64,
        detail: i.is_multiple_of(2).then(|| "clean".to_string()),
        digests: BTreeMap::from([("metadata".into(), format!("{i:0128x}"))]),
        kind: Kind::ALL[i as usize % Kind::ALL.len()],
        // Every fifth entry is about the same submission.
        subject: if i.is_multiple_of(5) {
            "submission:00000000-0000-4000-8000-000000000005".into()
        } else {
            format!("submission:{i:08}")
        },
        tenant: "031510000000".into(),
    }
}

async fn sequence(
    s: &Store,
    batch: usize,
    cache: &mut Option<Frontier>,
    signer: &Arc<TreeHeadSigner>,
) -> Option<SignedTreeHead> {
    let signer = signer.clone();
    s.sequence_journal(
        batch,
        cache,
        OffsetDateTime::now_utc(),
        move |h: &TreeHead| signer.sign(h),
    )
    .await
    .unwrap()
}

/// The tree of the stored leaves, read back entry by entry, checked against the leaf hashes.
async fn stored_tree(s: &Store) -> MemoryTree {
    let mut tree = MemoryTree::new();
    let mut next = 0;
    loop {
        let page = s.journal_entries(next, 100).await.unwrap();
        if page.is_empty() {
            return tree;
        }
        for leaf in page {
            assert_eq!(leaf.seq, next);
            assert_eq!(leaf.leaf_hash, journal::leaf_hash(leaf.entry.as_bytes()));
            leaf.parse().unwrap();
            tree.append(leaf.leaf_hash);
            next += 1;
        }
    }
}

#[tokio::test]
async fn journal_sequences_batches_and_proves() {
    each_backend(|db| async move {
        let s = db.store();
        let key = signer();
        let mut cache = None;
        assert!(s.latest_tree_head().await.unwrap().is_none());
        assert!(
            sequence(s, 10, &mut cache, &key).await.is_none(),
            "empty queue"
        );

        let n = 150u64;
        s.enqueue_journal(&entry(0)).await.unwrap();
        let rest: Vec<Entry> = (1..n).map(entry).collect();
        s.enqueue_journal_batch(&rest).await.unwrap();
        assert_eq!(s.journal_queue_len().await.unwrap(), n);

        let mut heads = Vec::new();
        while let Some(head) = sequence(s, 32, &mut cache, &key).await {
            assert!(verify_tree_head(key.public_key(), &head));
            if let Some(prev) = heads.last() {
                let prev: &SignedTreeHead = prev;
                assert!(head.timestamp >= prev.timestamp);
            }
            heads.push(head);
        }
        assert_eq!(
            heads.iter().map(|h| h.tree_size).collect::<Vec<_>>(),
            [32, 64, 96, 128, 150]
        );
        assert_eq!(s.journal_queue_len().await.unwrap(), 0);
        assert_eq!(s.latest_tree_head().await.unwrap().as_ref(), heads.last());
        assert_eq!(s.tree_head(64).await.unwrap().as_ref(), Some(&heads[1]));
        assert!(s.tree_head(65).await.unwrap().is_none());

        // The stored leaves, in queue order, make the signed roots.
        let tree = stored_tree(s).await;
        assert_eq!(tree.size(), n);
        for h in &heads {
            assert_eq!(tree.root_at(h.tree_size).unwrap(), h.root_hash);
        }
        for i in 0..n {
            let leaf = s.journal_entry(i).await.unwrap().unwrap();
            assert_eq!(leaf.parse().unwrap(), entry(i));
        }
        assert!(s.journal_entry(n).await.unwrap().is_none());
        let same = s
            .journal_entries_for_subject("submission:00000000-0000-4000-8000-000000000005")
            .await
            .unwrap();
        assert_eq!(
            same.iter().map(|l| l.seq).collect::<Vec<_>>(),
            (0..n).step_by(5).collect::<Vec<_>>()
        );

        // Inclusion of every entry in every signed head that contains it.
        for h in &heads {
            for seq in 0..h.tree_size {
                let p = s.journal_inclusion_proof(seq, h.tree_size).await.unwrap();
                assert_eq!(p.entry, entry(seq).canonical_json().unwrap());
                assert_eq!(p.proof, tree.inclusion_proof(seq, h.tree_size).unwrap());
                assert!(verify_inclusion(
                    &p.leaf_hash,
                    seq,
                    h.tree_size,
                    &p.proof,
                    &h.root_hash
                ));
            }
        }
        // Consistency between every pair of heads.
        for (i, a) in heads.iter().enumerate() {
            for b in &heads[i..] {
                let proof = s
                    .journal_consistency_proof(a.tree_size, b.tree_size)
                    .await
                    .unwrap();
                assert!(verify_consistency(
                    a.tree_size,
                    b.tree_size,
                    &proof,
                    &a.root_hash,
                    &b.root_hash
                ));
            }
        }
        // Sizes that are not heads work as well, and beyond the log nothing is found.
        let p = s.journal_inclusion_proof(3, 7).await.unwrap();
        assert!(verify_inclusion(
            &p.leaf_hash,
            3,
            7,
            &p.proof,
            &tree.root_at(7).unwrap()
        ));
        for result in [
            s.journal_inclusion_proof(n, n).await.err(),
            s.journal_inclusion_proof(3, n + 1).await.err(),
            s.journal_inclusion_proof(n, n + 1).await.err(),
        ] {
            assert!(
                matches!(result, Some(StoreError::NotFound(_))),
                "{result:?}"
            );
        }
        assert!(matches!(
            s.journal_consistency_proof(10, n + 1).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.journal_consistency_proof(11, 10).await,
            Err(StoreError::NotFound(_))
        ));

        // The export verifies offline and shows the latest head.
        let (head, bytes) = s
            .journal_export(Vec::new(), &[key.public_key_info()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&head, heads.last().unwrap());
        let report =
            journal::verify_export_with_keys(&bytes[..], &[key.public_key_info()]).unwrap();
        assert_eq!(report.entries, n);
        assert_eq!(&report.tree_head, heads.last().unwrap());
    })
    .await;
}

#[tokio::test]
async fn journal_refuses_invalid_entries_and_empty_exports() {
    each_backend(|db| async move {
        let s = db.store();
        let bad = Entry {
            subject: "max.mustermann@example.org".into(),
            ..entry(1)
        };
        assert!(matches!(
            s.enqueue_journal(&bad).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.enqueue_journal_batch(&[entry(1), bad]).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.journal_queue_len().await.unwrap(),
            0,
            "nothing half-queued"
        );
        let key = signer();
        assert!(
            s.journal_export(Vec::new(), &[key.public_key_info()])
                .await
                .unwrap()
                .is_none()
        );
        // A signer that signs another head than the one asked for is refused.
        s.enqueue_journal(&entry(1)).await.unwrap();
        let mut cache = None;
        let k = key.clone();
        let wrong = s
            .sequence_journal(10, &mut cache, OffsetDateTime::now_utc(), move |h| {
                k.sign(&TreeHead {
                    size: h.size + 1,
                    ..*h
                })
            })
            .await;
        assert!(matches!(wrong, Err(StoreError::Conflict(_))));
        assert!(s.latest_tree_head().await.unwrap().is_none());
        assert_eq!(s.journal_queue_len().await.unwrap(), 1, "rolled back");
    })
    .await;
}

#[tokio::test]
async fn journal_sequencer_restarts_from_storage() {
    each_backend(|db| async move {
        let s = db.store();
        let key = signer();
        let entries: Vec<Entry> = (0..100).map(entry).collect();
        s.enqueue_journal_batch(&entries[..37]).await.unwrap();
        let mut first = None;
        sequence(s, 1000, &mut first, &key).await.unwrap();
        let stale = first.clone();

        // A new process: no cache, continues from the stored right edge.
        s.enqueue_journal_batch(&entries[37..61]).await.unwrap();
        let mut restarted = None;
        let h = sequence(s, 1000, &mut restarted, &key).await.unwrap();
        assert_eq!(h.tree_size, 61);
        assert_eq!(restarted.as_ref().unwrap().size(), 61);

        // A cache another node has overtaken is noticed and rebuilt.
        s.enqueue_journal_batch(&entries[61..]).await.unwrap();
        let mut old = stale;
        assert_eq!(old.as_ref().unwrap().size(), 37);
        let h = sequence(s, 1000, &mut old, &key).await.unwrap();
        assert_eq!(h.tree_size, 100);

        let tree = stored_tree(s).await;
        let mut expected = MemoryTree::new();
        for e in &entries {
            expected.append(e.leaf_hash().unwrap());
        }
        assert_eq!(tree.root(), expected.root());
        assert_eq!(h.root_hash, expected.root());
        assert_eq!(old.unwrap().root(), expected.root());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_concurrent_sequencers_keep_one_tree() {
    each_backend(|db| async move {
        let s = db.store().clone();
        let key = signer();
        let n = 400u64;
        let producer = {
            let s = s.clone();
            tokio::spawn(async move {
                for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
                    let batch: Vec<Entry> = chunk.iter().map(|&i| entry(i)).collect();
                    s.enqueue_journal_batch(&batch).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut sequencers = Vec::new();
        for _ in 0..2 {
            let s = s.clone();
            let key = key.clone();
            sequencers.push(tokio::spawn(async move {
                let mut cache = None;
                let mut heads = Vec::new();
                let mut idle = 0;
                while idle < 3 {
                    match sequence(&s, 16, &mut cache, &key).await {
                        Some(h) => {
                            idle = 0;
                            heads.push(h);
                        }
                        None => {
                            idle += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    }
                }
                heads
            }));
        }
        producer.await.unwrap();
        let mut heads = Vec::new();
        for t in sequencers {
            heads.extend(t.await.unwrap());
        }
        // Whatever the sequencers left when they stopped.
        let mut cache = None;
        while let Some(h) = sequence(&s, 1000, &mut cache, &key).await {
            heads.push(h);
        }

        let tree = stored_tree(&s).await;
        assert_eq!(tree.size(), n);
        let mut subjects_and_times = HashSet::new();
        for leaf in s.journal_entries(0, 10_000).await.unwrap() {
            let e = leaf.parse().unwrap();
            assert!(subjects_and_times.insert((e.subject, e.at)), "twice");
        }
        assert_eq!(subjects_and_times.len() as u64, n);

        heads.sort_by_key(|h| h.tree_size);
        let sizes: Vec<u64> = heads.iter().map(|h| h.tree_size).collect();
        let mut unique = sizes.clone();
        unique.dedup();
        assert_eq!(sizes, unique, "each size signed once");
        assert_eq!(sizes.last(), Some(&n));
        let last = heads.last().unwrap();
        for h in &heads {
            assert_eq!(tree.root_at(h.tree_size).unwrap(), h.root_hash);
            let proof = s
                .journal_consistency_proof(h.tree_size, last.tree_size)
                .await
                .unwrap();
            assert!(verify_consistency(
                h.tree_size,
                last.tree_size,
                &proof,
                &h.root_hash,
                &last.root_hash
            ));
        }
    })
    .await;
}
