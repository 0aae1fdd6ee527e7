//! The Merkle tree of RFC 9162 §2.1, computed from stored complete subtrees.
//!
//! Node `(level k, index i)` is the hash of the `2^k` leaves `[i·2^k, (i+1)·2^k)`. Such a
//! node never changes once its last leaf exists, so storage keeps exactly these nodes and
//! never rewrites one. Every range the RFC's recursive definitions look at —
//! `MTH(D[lo:hi])` in `PATH` and `SUBPROOF` — starts at a multiple of the largest power of
//! two not above its length; its hash is therefore the right fold of the complete nodes
//! that the binary expansion of its length names, largest first. That is how the
//! incomplete subtrees on the right edge are composed, and why a proof needs at most one
//! stored node per level and range: about `2·log2(n)` nodes, all known before fetching.

use std::collections::HashMap;

use crate::hash::{Hash, empty_root, node_hash};

/// A complete subtree: the `2^level` leaves from `index·2^level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn leaf(index: u64) -> NodeId {
        NodeId { level: 0, index }
    }
}

/// A complete subtree with its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub hash: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {first} is larger than tree size {second}")]
    SizeOrder { first: u64, second: u64 },
    #[error("tree size {size} is beyond the {available} leaves known")]
    TooLarge { size: u64, available: u64 },
    #[error("node (level {}, index {}) is missing", .0.level, .0.index)]
    MissingNode(NodeId),
}

/// The largest power of two strictly below `n` (`n >= 2`): the RFC's split point `k`.
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The complete nodes that make up `[start, end)`, largest first. Only called for ranges of
/// the RFC's recursion, which are aligned as the module documentation explains.
fn decompose(mut start: u64, end: u64, out: &mut Vec<NodeId>) {
    while start < end {
        let level = 63 - (end - start).leading_zeros();
        debug_assert_eq!(start % (1u64 << level), 0, "unaligned range");
        out.push(NodeId {
            level: level as u8,
            index: start >> level,
        });
        start += 1u64 << level;
    }
}

/// `MTH(D[lo:hi])` from stored nodes.
fn range_hash(
    lo: u64,
    hi: u64,
    lookup: &mut impl FnMut(NodeId) -> Option<Hash>,
    scratch: &mut Vec<NodeId>,
) -> Result<Hash, ProofError> {
    scratch.clear();
    decompose(lo, hi, scratch);
    let mut ids = scratch.iter().rev();
    let Some(&last) = ids.next() else {
        return Ok(empty_root());
    };
    let mut acc = lookup(last).ok_or(ProofError::MissingNode(last))?;
    for &id in ids {
        let left = lookup(id).ok_or(ProofError::MissingNode(id))?;
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The ranges whose hashes form `PATH(index, D[0:size])` (RFC 9162 §2.1.3.1), leaf first.
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The ranges whose hashes form `PROOF(m, D[0:n])` (RFC 9162 §2.1.4.1), deepest first.
/// Empty for `m == n` and for `m == 0` (every tree extends the empty one).
fn consistency_ranges(m: u64, n: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if m > n {
        return Err(ProofError::SizeOrder {
            first: m,
            second: n,
        });
    }
    let mut ranges = Vec::new();
    if m == 0 || m == n {
        return Ok(ranges);
    }
    // `m` is relative to `lo`; `whole` is the SUBPROOF flag b (still the original tree's
    // left edge, whose root the verifier already has).
    let (mut lo, mut hi, mut m, mut whole) = (0, n, m, true);
    loop {
        if m == hi - lo {
            if !whole {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split(hi - lo);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

fn nodes_of(ranges: &[(u64, u64)]) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(ranges.len() * 2);
    for &(lo, hi) in ranges {
        decompose(lo, hi, &mut out);
    }
    out
}

fn hashes_of(
    ranges: &[(u64, u64)],
    mut lookup: impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    let mut scratch = Vec::new();
    ranges
        .iter()
        .map(|&(lo, hi)| range_hash(lo, hi, &mut lookup, &mut scratch))
        .collect()
}

/// The stored nodes [`inclusion_proof`] needs: fetch them in one query.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(nodes_of(&inclusion_ranges(index, size)?))
}

/// The RFC 9162 inclusion proof (audit path) of leaf `index` in the tree of `size`
/// leaves, from the nodes [`inclusion_proof_nodes`] named.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Vec<Hash>, ProofError> {
    hashes_of(&inclusion_ranges(index, size)?, |id| {
        nodes.get(&id).copied()
    })
}

/// The stored nodes [`consistency_proof`] needs: fetch them in one query.
pub fn consistency_proof_nodes(m: u64, n: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(nodes_of(&consistency_ranges(m, n)?))
}

/// The RFC 9162 consistency proof between the trees of `m` and `n` leaves, from the nodes
/// [`consistency_proof_nodes`] named.
pub fn consistency_proof(
    m: u64,
    n: u64,
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Vec<Hash>, ProofError> {
    hashes_of(&consistency_ranges(m, n)?, |id| nodes.get(&id).copied())
}

/// The stored nodes the root of the tree of `size` leaves is composed from (its right
/// edge: one node per set bit of `size`, largest first).
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    decompose(0, size, &mut out);
    out
}

/// `MTH(D[0:size])` from the nodes [`root_nodes`] named.
pub fn root_from_nodes(size: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Hash, ProofError> {
    range_hash(0, size, &mut |id| nodes.get(&id).copied(), &mut Vec::new())
}

/// Checks an inclusion proof as RFC 9162 §2.1.3.2 prescribes.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks a consistency proof as RFC 9162 §2.1.4.2 prescribes. Trees of equal size are
/// consistent with an empty proof if their roots are equal; the empty tree (`m == 0`) with
/// an empty proof is consistent with every tree.
pub fn verify_consistency(m: u64, n: u64, proof: &[Hash], root_m: &Hash, root_n: &Hash) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    if m == 0 {
        return proof.is_empty() && *root_m == empty_root();
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    // A first tree of 2^k leaves is a node of the second; the RFC then prepends its root.
    let (start, rest) = if m.is_power_of_two() {
        (*root_m, proof)
    } else {
        (*first, rest)
    };
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *root_m && sr == *root_n && s == 0
}

/// The right edge of the tree — one complete node per set bit of its size — which is all a
/// sequencer needs to append and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Largest (leftmost) first.
    stack: Vec<Node>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge nodes, largest first.
    pub fn nodes(&self) -> &[Node] {
        &self.stack
    }

    /// Appends a leaf and returns every node that became complete: the leaf itself
    /// (level 0) and each parent it completed, lowest first. Storage keeps these.
    pub fn append(&mut self, leaf: Hash) -> Vec<Node> {
        let mut out = Vec::with_capacity(2);
        self.append_with(leaf, |n| out.push(n));
        out
    }

    /// [`append`](Self::append) without the allocation: `completed` sees each node.
    pub fn append_with(&mut self, leaf: Hash, mut completed: impl FnMut(Node)) {
        let mut node = Node {
            id: NodeId::leaf(self.size),
            hash: leaf,
        };
        completed(node);
        while let Some(left) = self.stack.last()
            && left.id.level == node.id.level
        {
            node = Node {
                id: NodeId {
                    level: node.id.level + 1,
                    index: node.id.index >> 1,
                },
                hash: node_hash(&left.hash, &node.hash),
            };
            self.stack.pop();
            completed(node);
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// `MTH` of the whole tree.
    pub fn root(&self) -> Hash {
        let mut nodes = self.stack.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(last.hash, |acc, n| node_hash(&n.hash, &acc))
    }

    /// The nodes [`from_nodes`](Self::from_nodes) needs for a tree of `size` leaves.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        root_nodes(size)
    }

    /// Rebuilds the frontier of a stored tree, so that a restarted sequencer continues it.
    pub fn from_nodes(
        size: u64,
        mut lookup: impl FnMut(NodeId) -> Option<Hash>,
    ) -> Result<Frontier, ProofError> {
        let stack = root_nodes(size)
            .into_iter()
            .map(|id| {
                lookup(id)
                    .map(|hash| Node { id, hash })
                    .ok_or(ProofError::MissingNode(id))
            })
            .collect::<Result<_, _>>()?;
        Ok(Frontier { size, stack })
    }
}

/// The whole tree in memory: every complete node of every level. For tests, and to check
/// proofs offline against a downloaded export.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[k][i]` is node `(k, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Appends a leaf hash; returns its index.
    pub fn append(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        let levels = &mut self.levels;
        self.frontier.append_with(leaf, |n| {
            let level = usize::from(n.id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(n.hash);
        });
        index
    }

    /// Appends the leaf of `data` (`SHA-256(0x00 || data)`); returns its index.
    pub fn append_data(&mut self, data: &[u8]) -> u64 {
        self.append(crate::leaf_hash(data))
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    pub fn node(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.node(NodeId::leaf(index))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::TooLarge {
                size,
                available: self.size(),
            });
        }
        Ok(())
    }

    /// The root the tree had when it held `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        range_hash(0, size, &mut |id| self.node(id), &mut Vec::new())
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        hashes_of(&inclusion_ranges(index, size)?, |id| self.node(id))
    }

    pub fn consistency_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(n)?;
        hashes_of(&consistency_ranges(m, n)?, |id| self.node(id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::leaf_hash;

    /// MTH straight from RFC 9162 §2.1.1, recursively over the leaf data.
    fn naive_root(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D[n]) straight from RFC 9162 §2.1.3.1.
    fn naive_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    /// SUBPROOF(m, D[n], b) straight from RFC 9162 §2.1.4.1.
    fn naive_subproof(m: usize, leaves: &[Vec<u8>], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![naive_root(leaves)]
            };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &leaves[..k], b);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &leaves[k..], false);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn data(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    fn tree(leaves: &[Vec<u8>]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.append_data(l);
        }
        t
    }

    /// The eight leaves widely used as RFC 6962 test data, with the root of every prefix,
    /// an audit path and a consistency proof — values computed independently (a Python
    /// transcription of the RFC's recursive definitions), not by this crate.
    #[test]
    fn reference_vectors() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let leaves: Vec<Vec<u8>> = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| hex(s))
        .collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut t = MemoryTree::new();
        for (l, root) in leaves.iter().zip(roots) {
            t.append_data(l);
            assert_eq!(t.root().to_hex(), root, "size {}", t.size());
            assert_eq!(naive_root(&leaves[..t.size() as usize]).to_hex(), root);
        }
        // Inclusion proof of leaf 0 in the tree of 8, from the same test data.
        let path: Vec<String> = t
            .inclusion_proof(0, 8)
            .unwrap()
            .iter()
            .map(Hash::to_hex)
            .collect();
        assert_eq!(
            path,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        // Consistency proof 6 → 8, from the same test data.
        let proof: Vec<String> = t
            .consistency_proof(6, 8)
            .unwrap()
            .iter()
            .map(Hash::to_hex)
            .collect();
        assert_eq!(
            proof,
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
    }

    #[test]
    fn frontier_matches_the_definition_and_reports_each_node_once() {
        let leaves = data(70);
        let mut f = Frontier::new();
        let mut all: HashMap<NodeId, Hash> = HashMap::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in leaves.iter().enumerate() {
            let done = f.append(leaf_hash(l));
            assert_eq!(done[0].id, NodeId::leaf(i as u64));
            for n in done {
                // Each reported node is complete: its last leaf is this one or earlier.
                assert!((n.id.index + 1) << n.id.level <= i as u64 + 1);
                assert!(all.insert(n.id, n.hash).is_none(), "{:?} twice", n.id);
            }
            let size = i as u64 + 1;
            assert_eq!(f.size(), size);
            assert_eq!(f.root(), naive_root(&leaves[..=i]));
            assert_eq!(root_from_nodes(size, &all).unwrap(), f.root());
            let again = Frontier::from_nodes(size, |id| all.get(&id).copied()).unwrap();
            assert_eq!(again, f);
            assert_eq!(
                Frontier::node_ids(size).len(),
                size.count_ones() as usize,
                "one node per set bit"
            );
        }
        // Every complete node of a 70-leaf tree, and nothing else.
        let complete: usize = (0..8).map(|k| 70usize >> k).sum();
        assert_eq!(all.len(), complete);
        assert_eq!(
            Frontier::from_nodes(70, |_| None),
            Err(ProofError::MissingNode(NodeId { level: 6, index: 0 }))
        );
    }

    #[test]
    fn inclusion_proofs_for_every_leaf_of_every_size() {
        let leaves = data(70);
        let t = tree(&leaves);
        for size in 1..=70u64 {
            let root = t.root_at(size).unwrap();
            assert_eq!(root, naive_root(&leaves[..size as usize]));
            for index in 0..size {
                let proof = t.inclusion_proof(index, size).unwrap();
                assert_eq!(
                    proof,
                    naive_path(index as usize, &leaves[..size as usize]),
                    "index {index} size {size}"
                );
                // Through the storage path: named nodes, then the proof from them.
                let ids = inclusion_proof_nodes(index, size).unwrap();
                let fetched: HashMap<_, _> =
                    ids.iter().map(|&id| (id, t.node(id).unwrap())).collect();
                assert_eq!(inclusion_proof(index, size, &fetched).unwrap(), proof);
                assert!(ids.len() <= 2 * 64);

                let leaf = t.leaf(index).unwrap();
                assert!(verify_inclusion(&leaf, index, size, &proof, &root));
                // Tampering of any kind fails.
                let other = t.leaf((index + 1) % size).unwrap();
                if size > 1 {
                    assert!(!verify_inclusion(&leaf, index, size, &proof, &leaf));
                    assert!(!verify_inclusion(&other, index, size, &proof, &root));
                    assert!(!verify_inclusion(
                        &leaf,
                        (index + 1) % size,
                        size,
                        &proof,
                        &root
                    ));
                }
                // A proof for one size does not pass for the next (a root binds its size
                // only through the signed head, so the next size's root is used).
                if size < 70 {
                    let next_root = t.root_at(size + 1).unwrap();
                    assert!(!verify_inclusion(
                        &leaf,
                        index,
                        size + 1,
                        &proof,
                        &next_root
                    ));
                }
                assert!(!verify_inclusion(&leaf, size, size, &proof, &root));
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i].0[0] ^= 1;
                    assert!(!verify_inclusion(&leaf, index, size, &bad, &root));
                    let mut short = proof.clone();
                    short.remove(i);
                    assert!(!verify_inclusion(&leaf, index, size, &short, &root));
                }
                let mut long = proof.clone();
                long.push(root);
                assert!(!verify_inclusion(&leaf, index, size, &long, &root));
            }
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_of_sizes() {
        let leaves = data(70);
        let t = tree(&leaves);
        let roots: Vec<Hash> = (0..=70).map(|s| t.root_at(s).unwrap()).collect();
        for n in 1..=70u64 {
            for m in 0..=n {
                let proof = t.consistency_proof(m, n).unwrap();
                if m > 0 && m < n {
                    assert_eq!(
                        proof,
                        naive_subproof(m as usize, &leaves[..n as usize], true),
                        "m {m} n {n}"
                    );
                } else {
                    assert!(proof.is_empty());
                }
                let ids = consistency_proof_nodes(m, n).unwrap();
                let fetched: HashMap<_, _> =
                    ids.iter().map(|&id| (id, t.node(id).unwrap())).collect();
                assert_eq!(consistency_proof(m, n, &fetched).unwrap(), proof);

                let (rm, rn) = (&roots[m as usize], &roots[n as usize]);
                assert!(verify_consistency(m, n, &proof, rm, rn), "m {m} n {n}");
                if m < n {
                    // A root that was not the log's at m, or not at n, fails.
                    assert!(!verify_consistency(m, n, &proof, rn, rn) || rm == rn);
                    assert!(!verify_consistency(n, m, &proof, rn, rm));
                    if m > 0 {
                        let mut wrong = *rn;
                        wrong.0[31] ^= 0x80;
                        assert!(!verify_consistency(m, n, &proof, rm, &wrong));
                        if n < 70 {
                            let next = &roots[n as usize + 1];
                            assert!(!verify_consistency(m, n + 1, &proof, rm, next));
                        }
                        assert!(!verify_consistency(m, n, &[], rm, rn));
                    }
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i].0[5] ^= 1;
                    assert!(!verify_consistency(m, n, &bad, rm, rn), "m {m} n {n} i {i}");
                    let mut short = proof.clone();
                    short.remove(i);
                    assert!(!verify_consistency(m, n, &short, rm, rn));
                }
                let mut long = proof.clone();
                long.push(*rn);
                assert!(!verify_consistency(m, n, &long, rm, rn));
            }
        }
    }

    #[test]
    fn proof_errors() {
        let t = tree(&data(5));
        assert_eq!(
            t.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            t.consistency_proof(4, 3),
            Err(ProofError::SizeOrder {
                first: 4,
                second: 3
            })
        );
        assert_eq!(
            t.root_at(6),
            Err(ProofError::TooLarge {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            inclusion_proof(0, 5, &HashMap::new()),
            Err(ProofError::MissingNode(NodeId::leaf(1)))
        );
    }

    #[test]
    fn proof_size_is_logarithmic_at_ten_million() {
        let size = 10_000_000;
        for index in [0, 1, 4_999_999, 9_999_998, 9_999_999] {
            let ids = inclusion_proof_nodes(index, size).unwrap();
            assert!(ids.len() <= 2 * 24, "{} nodes", ids.len());
        }
    }
}
