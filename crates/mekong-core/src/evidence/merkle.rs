//! RFC 6962 (Certificate Transparency) Merkle tree hashing: leaf and node hashes, tree heads, and
//! inclusion and consistency proofs with their verification (the algorithms of RFC 9162 §2.1).
//! Trees are given as their leaf hashes; [`Frontier`] grows a tree head one leaf at a time from
//! O(log n) hashes, which is all a notary keeps between checkpoints.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The head of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The tree head (MTH) of these leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of these leaves (RFC 6962 §2.1.1).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(
        index < leaves.len(),
        "leaf {index} is not in a tree of {}",
        leaves.len()
    );
    let mut path = Vec::new();
    fn walk(m: usize, d: &[Hash], path: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            walk(m, &d[..k], path);
            path.push(root(&d[k..]));
        } else {
            walk(m - k, &d[k..], path);
            path.push(root(&d[..k]));
        }
    }
    walk(index, leaves, &mut path);
    path
}

/// The proof that the tree of the first `old_size` leaves is a prefix of the tree of all of them
/// (RFC 6962 §2.1.2).
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(old_size <= leaves.len());
    let mut proof = Vec::new();
    fn sub(m: usize, d: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
        if m == d.len() {
            if !complete {
                proof.push(root(d));
            }
            return;
        }
        let k = split(d.len());
        if m <= k {
            sub(m, &d[..k], complete, proof);
            proof.push(root(&d[k..]));
        } else {
            sub(m - k, &d[k..], false, proof);
            proof.push(root(&d[..k]));
        }
    }
    if old_size > 0 {
        sub(old_size, leaves, true, &mut proof);
    }
    proof
}

/// Whether `path` proves the leaf with hash `leaf` at `index` in the tree of `size` with head
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Whether `proof` shows the tree of `old_size` with head `old_root` to be a prefix of the tree of
/// `new_size` with head `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        // Every tree extends the empty one.
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

/// A tree known only by its size and the heads of its perfect subtrees, largest first (one per
/// bit set in the size): enough to append leaves and to compute the head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// The heads of the perfect subtrees the tree decomposes into, left to right.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// A frontier from a checkpoint's size and peaks; `None` when they do not fit together.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (size.count_ones() as usize == peaks.len()).then_some(Frontier { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a subtree of the new leaf's height: merge it.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per bit set");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the test vectors shared by RFC 6962 implementations (certificate-transparency).
    fn vectors() -> Vec<Hash> {
        [
            &b""[..],
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ]
        .iter()
        .map(|d| leaf_hash(d))
        .collect()
    }

    fn h(hex: &str) -> Hash {
        hex::decode(hex).unwrap().try_into().unwrap()
    }

    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn tree_heads_match_the_rfc_6962_test_vectors() {
        let leaves = vectors();
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let mut frontier = Frontier::default();
        for (n, expected) in ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..=n]), h(expected), "tree of {}", n + 1);
            frontier.push(leaves[n]);
            assert_eq!(frontier.root(), h(expected), "frontier of {}", n + 1);
            let back = Frontier::from_parts(frontier.size(), frontier.peaks().to_vec()).unwrap();
            assert_eq!(back, frontier);
        }
    }

    #[test]
    fn proofs_match_the_test_vectors() {
        let leaves = vectors();
        let path = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
        .map(h);
        assert_eq!(inclusion_proof(0, &leaves), path);
        // From a tree of one leaf, the consistency proof is that leaf's audit path.
        assert_eq!(consistency_proof(1, &leaves), path);
        let six_to_eight = [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]
        .map(h);
        assert_eq!(consistency_proof(6, &leaves), six_to_eight);
    }

    #[test]
    fn every_proof_verifies_and_no_changed_one_does() {
        let leaves = vectors();
        for n in 1..=leaves.len() {
            let head = root(&leaves[..n]);
            for i in 0..n {
                let path = inclusion_proof(i, &leaves[..n]);
                assert!(verify_inclusion(
                    i as u64, n as u64, &leaves[i], &path, &head
                ));
                let other = leaves[(i + 1) % leaves.len()];
                assert!(!verify_inclusion(i as u64, n as u64, &other, &path, &head));
                if n > 1 {
                    assert!(!verify_inclusion(
                        ((i + 1) % n) as u64,
                        n as u64,
                        &leaves[i],
                        &path,
                        &head
                    ));
                    let mut bent = path.clone();
                    bent[0][0] ^= 1;
                    assert!(!verify_inclusion(
                        i as u64, n as u64, &leaves[i], &bent, &head
                    ));
                }
            }
            for m in 0..=n {
                let old = root(&leaves[..m]);
                let proof = consistency_proof(m, &leaves[..n]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old, &head, &proof),
                    "{m} → {n}"
                );
                if m > 0 && m < n {
                    let mut changed = leaves[..m].to_vec();
                    changed[m - 1][5] ^= 1;
                    assert!(
                        !verify_consistency(m as u64, n as u64, &root(&changed), &head, &proof),
                        "a changed prefix {m} → {n}"
                    );
                    let mut bent = proof.clone();
                    bent.last_mut().unwrap()[0] ^= 1;
                    assert!(!verify_consistency(m as u64, n as u64, &old, &head, &bent));
                }
            }
        }
    }
}
