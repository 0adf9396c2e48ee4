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

/// Below this many messages, side-by-side hashing has too few lanes to
/// fill and one message at a time is as fast.
const SIDE_BY_SIDE_FROM: usize = 4;

/// Messages hashed in one call of the side-by-side kernels (bounds the
/// stack arrays of slices).
const GROUP: usize = 64;

/// The leaf hashes of many lines at once: `out[i] = leaf_hash(lines[i])`.
///
/// SHA-256 of one message is a chain of dependent rounds; independent
/// messages are hashed side by side (SHA-NI streams or SIMD lanes, picked
/// for the CPU at run time). What that saves depends on the lines and
/// the host: on the machines of BENCHMARKS.md, lines just written or read
/// (in cache, as the signer's helper and the verifier hash them) take
/// 0.82-0.87 of the time of hashing them one by one; lines streamed from
/// memory gain nothing, or lose, and so do lines of widely different
/// lengths. The digests are those of [`leaf_hash`], bit for bit.
///
/// # Panics
///
/// If `lines` and `out` differ in length.
///
/// # Examples
///
/// ```
/// use auditring::format::merkle::{leaf_hash, leaf_hashes};
///
/// let lines: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
/// let mut out = [[0u8; 32]; 3];
/// leaf_hashes(&lines, &mut out);
/// assert_eq!(out[2], leaf_hash(b"ccc"));
/// ```
pub fn leaf_hashes(lines: &[&[u8]], out: &mut [Hash]) {
    assert_eq!(lines.len(), out.len(), "one digest per line");
    if lines.len() < SIDE_BY_SIDE_FROM {
        for (line, digest) in lines.iter().zip(out) {
            *digest = leaf_hash(line);
        }
        return;
    }
    tape_sha256::hash_many_prefixed(&[0x00], lines, out);
}

/// The root of a perfect tree (a power of two of leaves), computed in
/// place: each level's nodes are hashed side by side, as in
/// [`leaf_hashes`]. `nodes` holds the leaf hashes on entry and is
/// overwritten.
///
/// # Panics
///
/// If the number of leaves is not a power of two.
///
/// # Examples
///
/// ```
/// use auditring::format::merkle::{leaf_hash, node_hash, perfect_root};
///
/// let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
/// assert_eq!(perfect_root(&mut [a, b]), node_hash(&a, &b));
/// ```
pub fn perfect_root(nodes: &mut [Hash]) -> Hash {
    assert!(
        nodes.len().is_power_of_two(),
        "a perfect tree has a power of two of leaves, not {}",
        nodes.len()
    );
    let mut width = nodes.len();
    while width > 1 {
        let half = width / 2;
        if half < SIDE_BY_SIDE_FROM {
            for i in 0..half {
                nodes[i] = node_hash(&nodes[2 * i], &nodes[2 * i + 1]);
            }
        } else {
            let mut parents = [[0u8; 32]; GROUP];
            let mut done = 0;
            while done < half {
                let k = (half - done).min(GROUP);
                let mut left: [&[u8]; GROUP] = [&[]; GROUP];
                let mut right: [&[u8]; GROUP] = [&[]; GROUP];
                for j in 0..k {
                    left[j] = &nodes[2 * (done + j)];
                    right[j] = &nodes[2 * (done + j) + 1];
                }
                tape_sha256::hash_pairs(&[0x01], &left[..k], &right[..k], &mut parents[..k]);
                // Parent `done + j` lands below every child still to be
                // read (`2 * (done + k)` and up).
                nodes[done..done + k].copy_from_slice(&parents[..k]);
                done += k;
            }
        }
        width = half;
    }
    nodes[0]
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

    /// Lines of every length around SHA-256's block and padding edges,
    /// hashed side by side in groups of every size, against one at a
    /// time.
    #[test]
    fn side_by_side_leaves_equal_one_at_a_time() {
        // Every length from 0 to 699 once, in a scrambled order (389 is
        // prime to 700), so each group mixes block counts.
        let lines: Vec<Vec<u8>> = (0..700usize)
            .map(|k| k * 389 % 700)
            .map(|n| (0..n).map(|i| (i * 31 + n) as u8).collect())
            .collect();
        for group in [1usize, 2, 3, 4, 5, 7, 8, 13, 16, 17, 31, 64, 65, 700] {
            for (at, chunk) in lines.chunks(group).enumerate() {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                let mut out = vec![[0u8; 32]; refs.len()];
                leaf_hashes(&refs, &mut out);
                for (i, line) in chunk.iter().enumerate() {
                    assert_eq!(
                        out[i],
                        leaf_hash(line),
                        "group {group}, chunk {at}, line {i}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// Random lines, against SHA-256 computed by the `sha2` crate
        /// directly.
        #[test]
        fn side_by_side_leaves_are_sha256_of_the_prefixed_line(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..1500), 0..80)
        ) {
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let mut out = vec![[0u8; 32]; refs.len()];
            leaf_hashes(&refs, &mut out);
            for (line, digest) in lines.iter().zip(&out) {
                let mut prefixed = vec![0u8];
                prefixed.extend_from_slice(line);
                let expected: Hash = Sha256::digest(&prefixed).into();
                proptest::prop_assert_eq!(*digest, expected);
            }
        }
    }

    #[test]
    fn perfect_roots_equal_the_streaming_root() {
        let leaves: Vec<Hash> = (0..512u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in [1usize, 2, 4, 8, 16, 64, 128, 256, 512] {
            for chunk in leaves.chunks(size) {
                let mut nodes = chunk.to_vec();
                assert_eq!(
                    perfect_root(&mut nodes),
                    reference_root(chunk),
                    "size {size}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn a_perfect_root_of_three_leaves_is_refused() {
        perfect_root(&mut [[0u8; 32]; 3]);
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
