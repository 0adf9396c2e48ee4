//! Merkle roots of a batch's lines, optionally computed on two threads.
//!
//! Hashing dominates the signer's cost (SHA-256 of every line, about 480 ns
//! for a 700-byte line on these machines, plus one node hash per line).
//! RFC 6962 splits a tree of `n` leaves at `k`, the largest power of two
//! below `n`, so the left subtree (`k` leaves) and the right subtree
//! (`n - k`) can be hashed independently and joined with one node hash: a
//! helper thread hashes the left subtree while the signer hashes the right.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::format::merkle::{Hash, MerkleBuilder, empty_root, leaf_hash, node_hash};

/// Below this many lines a batch is hashed on the signer thread alone:
/// handing work to another thread costs a wake-up (microseconds).
const PARALLEL_MIN_LINES: usize = 64;

/// The lines of one batch: a buffer and the byte range of each line
/// (without its newline).
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) buf: Vec<u8>,
    pub(crate) ranges: Vec<Range<usize>>,
}

impl Lines {
    fn root_of(&self, lines: Range<usize>) -> Hash {
        let mut tree = MerkleBuilder::default();
        for r in &self.ranges[lines] {
            tree.push(leaf_hash(&self.buf[r.clone()]));
        }
        tree.root()
    }
}

struct Job {
    lines: Arc<Lines>,
    range: Range<usize>,
}

/// A helper thread that hashes left subtrees.
struct Helper {
    jobs: SyncSender<Job>,
    roots: Receiver<Hash>,
    thread: JoinHandle<()>,
}

/// Computes batch roots, with or without a helper thread.
pub(crate) struct BatchHasher {
    helper: Option<Helper>,
}

impl BatchHasher {
    /// A hasher; with `parallel`, a helper thread named
    /// `auditring-hasher` is started.
    pub(crate) fn new(parallel: bool) -> std::io::Result<Self> {
        if !parallel {
            return Ok(Self { helper: None });
        }
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (root_tx, roots) = sync_channel::<Hash>(1);
        let thread = std::thread::Builder::new()
            .name("auditring-hasher".into())
            .spawn(move || {
                for job in job_rx {
                    let root = job.lines.root_of(job.range);
                    // Release our share of the lines before answering, so the
                    // signer gets its buffer back without copying.
                    drop(job.lines);
                    if root_tx.send(root).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            helper: Some(Helper {
                jobs,
                roots,
                thread,
            }),
        })
    }

    /// The RFC 6962 root of every line in `lines` (the empty-tree root for
    /// none). `lines` is handed back unchanged.
    pub(crate) fn root(&mut self, lines: Lines) -> (Hash, Lines) {
        let n = lines.ranges.len();
        if n == 0 {
            return (empty_root(), lines);
        }
        let Some(helper) = self.helper.as_ref().filter(|_| n >= PARALLEL_MIN_LINES) else {
            let root = lines.root_of(0..n);
            return (root, lines);
        };
        // The largest power of two strictly below n.
        let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
        let shared = Arc::new(lines);
        let sent = helper.jobs.send(Job {
            lines: Arc::clone(&shared),
            range: 0..k,
        });
        let right = shared.root_of(k..n);
        let left = match sent.ok().and_then(|()| helper.roots.recv().ok()) {
            Some(root) => root,
            // The helper is gone (it cannot panic short of a bug): hash here.
            None => shared.root_of(0..k),
        };
        let lines = Arc::try_unwrap(shared).unwrap_or_else(|shared| Lines {
            buf: shared.buf.clone(),
            ranges: shared.ranges.clone(),
        });
        (node_hash(&left, &right), lines)
    }
}

impl Drop for BatchHasher {
    fn drop(&mut self) {
        if let Some(helper) = self.helper.take() {
            drop(helper.jobs);
            let _ = helper.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Lines {
        let mut l = Lines::default();
        for i in 0..n {
            let start = l.buf.len();
            l.buf.extend_from_slice(format!("line {i}").as_bytes());
            l.ranges.push(start..l.buf.len());
            l.buf.push(b'\n');
        }
        l
    }

    #[test]
    fn parallel_and_sequential_roots_agree() {
        let mut seq = BatchHasher::new(false).unwrap();
        let mut par = BatchHasher::new(true).unwrap();
        for n in [0, 1, 2, 63, 64, 65, 100, 128, 1000, 1024, 1025] {
            let (a, back) = seq.root(lines(n));
            let (b, back2) = par.root(back);
            assert_eq!(a, b, "n = {n}");
            assert_eq!(back2.ranges.len(), n, "lines come back");
            let mut reference = MerkleBuilder::default();
            for r in &back2.ranges {
                reference.push(leaf_hash(&back2.buf[r.clone()]));
            }
            assert_eq!(a, reference.root());
        }
    }
}
