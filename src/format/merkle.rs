//! RFC 6962 Merkle tree hashing over a batch's event lines, computed in a
//! streaming fashion with O(log n) memory.
//!
//! - leaf hash: `SHA-256(0x00 || line)` where `line` is the exact bytes of
//!   the line without its newline;
//! - node hash: `SHA-256(0x01 || left || right)`;
//! - the root of `n` leaves splits at the largest power of two below `n`
//!   (RFC 6962 §2.1); the root of no leaves is `SHA-256("")`.
//!
//! Folding the stack of complete subtrees from the right gives exactly the
//! RFC 6962 root, so neither the signer nor the verifier keeps a batch's
//! leaves in memory.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The leaf hash of one line (without its newline).
///
/// # Examples
///
/// ```
/// let h = auditring::format::merkle::leaf_hash(b"{}");
/// assert_eq!(h.len(), 32);
/// ```
#[inline]
pub fn leaf_hash(line: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(line);
    h.finalize().into()
}

/// The hash of an interior node.
#[inline]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of an empty tree: `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The root of an empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    EMPTY_ROOT
}

/// Builds the RFC 6962 root of a sequence of leaf hashes, keeping only the
/// roots of complete subtrees (at most 64).
///
/// # Examples
///
/// ```
/// use auditring::format::merkle::{MerkleBuilder, leaf_hash, node_hash};
///
/// let (a, b, c) = (leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c"));
/// let mut m = MerkleBuilder::default();
/// for leaf in [a, b, c] {
///     m.push(leaf);
/// }
/// assert_eq!(m.root(), node_hash(&node_hash(&a, &b), &c));
/// ```
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MerkleBuilder {
    /// (subtree size, subtree root), sizes strictly decreasing powers of two.
    stack: Vec<(u64, Hash)>,
    count: u64,
}

impl MerkleBuilder {
    /// Adds the next leaf hash.
    #[inline]
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (1u64, leaf);
        while let Some(&(size, left)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            self.stack.pop();
            node = (size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    /// Appends a perfect subtree of `size` leaves (a power of two) whose
    /// root is `root`, as if its leaves were pushed one by one. The
    /// leaves pushed so far must be a multiple of `size`, so the subtree is
    /// aligned as RFC 6962's tree aligns it.
    ///
    /// # Panics
    ///
    /// If `size` is not a power of two or the subtree is not aligned.
    #[inline]
    pub fn push_subtree(&mut self, size: u64, root: Hash) {
        assert!(
            size.is_power_of_two() && self.count.is_multiple_of(size),
            "a subtree of {size} leaves does not align after {} leaves",
            self.count
        );
        let mut node = (size, root);
        while let Some(&(left_size, left)) = self.stack.last() {
            if left_size != node.0 {
                break;
            }
            self.stack.pop();
            node = (left_size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.count += size;
    }

    /// Number of leaves pushed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no leaf was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The RFC 6962 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// Forgets all leaves (keeps the allocation).
    pub fn reset(&mut self) {
        self.stack.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursive definition from RFC 6962 §2.1.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                // The largest power of two strictly below n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn streaming_root_matches_the_recursive_definition() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 0..leaves.len() {
            let mut m = MerkleBuilder::default();
            for l in &leaves[..n] {
                m.push(*l);
            }
            assert_eq!(m.root(), reference_root(&leaves[..n]), "n = {n}");
        }
    }

    #[test]
    fn aligned_subtrees_give_the_same_root_as_their_leaves() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in [1usize, 2, 8, 64] {
            for n in [0, 1, size, size + 1, 3 * size, 3 * size + 5, 300] {
                let full = n / size;
                let mut m = MerkleBuilder::default();
                for chunk in leaves[..full * size].chunks(size) {
                    m.push_subtree(size as u64, reference_root(chunk));
                }
                for l in &leaves[full * size..n] {
                    m.push(*l);
                }
                assert_eq!(m.len(), n as u64);
                assert_eq!(
                    m.root(),
                    reference_root(&leaves[..n]),
                    "size {size}, n = {n}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not align")]
    fn a_misaligned_subtree_is_refused() {
        let mut m = MerkleBuilder::default();
        m.push(leaf_hash(b"a"));
        m.push_subtree(2, leaf_hash(b"b"));
    }

    #[test]
    fn split_point_is_largest_power_of_two_below_n() {
        // n = 5: k = 4; n = 4: k = 2; n = 2: k = 1.
        let l: Vec<Hash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let r4 = node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3]));
        assert_eq!(reference_root(&l[..4]), r4);
        assert_eq!(reference_root(&l), node_hash(&r4, &l[4]));
    }

    #[test]
    fn known_vectors() {
        // SHA-256("") and SHA-256(0x00 || "") are fixed constants.
        assert_eq!(
            crate::format::json::hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            crate::format::json::hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
