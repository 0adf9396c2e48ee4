//! Merkle roots of a batch's lines, hashed while the batch is encoded.
//!
//! Hashing dominates the signer's cost (SHA-256 of every line, about 340 ns
//! for a 630-byte line on these machines with 64 lines hashed side by side,
//! plus one node hash per line).
//! With a helper thread, the signer hands out each run of [`CHUNK`] lines
//! as soon as it has encoded them, and the helper hashes them into the
//! chunk's subtree root while the signer encodes the next ones. A chunk is
//! a power of two of lines at an aligned position, so it is a perfect
//! subtree of RFC 6962's tree, and the batch root is built from the chunk
//! roots and the leaves of the last, partial chunk
//! ([`MerkleBuilder::push_subtree`]).
//!
//! The work is balanced by the queue: a chunk is handed out only if the
//! helper has nothing waiting; otherwise the signer hashes it itself. At
//! the seal, the signer hashes the partial chunk and any chunk the helper
//! has not started, and waits only for the one in progress. Hashing no
//! longer waits for the batch to end, and the helper is woken only when it
//! sleeps (at most once per chunk, none while it keeps up).
//!
//! A handed-out chunk is a copy (one `memcpy` of bytes just written, hot in
//! cache): the signer keeps appending to the batch's buffer, which the
//! sinks receive whole.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::format::merkle::{Hash, MerkleBuilder, empty_root, leaf_hashes, perfect_root};
use crate::pipeline::shared::lock;

/// Lines per handed-out chunk: a power of two. 64 lines (about 45 KB, some
/// 35 µs of hashing) make a hand-off rare against the work it carries and
/// bound what the signer may wait for at the seal.
pub(crate) const CHUNK: usize = 64;

/// The lines of one batch: a buffer and the byte range of each line
/// (without its newline).
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) buf: Vec<u8>,
    pub(crate) ranges: Vec<Range<usize>>,
}

impl Lines {
    /// The leaf hashes of `lines` (at most [`CHUNK`]) into `out`, hashed
    /// side by side.
    fn leaf_hashes(&self, lines: Range<usize>, out: &mut [Hash; CHUNK]) -> usize {
        let n = lines.len();
        debug_assert!(n <= CHUNK);
        let mut bodies: [&[u8]; CHUNK] = [&[]; CHUNK];
        for (body, r) in bodies.iter_mut().zip(&self.ranges[lines]) {
            *body = &self.buf[r.clone()];
        }
        leaf_hashes(&bodies[..n], &mut out[..n]);
        n
    }

    /// Pushes the leaf hash of each line of `lines` into `tree`.
    fn push_leaves(&self, lines: Range<usize>, tree: &mut MerkleBuilder) {
        let mut leaves = [[0u8; 32]; CHUNK];
        let mut at = lines.start;
        while at < lines.end {
            let end = (at + CHUNK).min(lines.end);
            let n = self.leaf_hashes(at..end, &mut leaves);
            for leaf in &leaves[..n] {
                tree.push(*leaf);
            }
            at = end;
        }
    }

    /// The root of the perfect subtree over `lines` (a power of two, at
    /// most [`CHUNK`]).
    fn subtree_root(&self, lines: Range<usize>) -> Hash {
        let mut leaves = [[0u8; 32]; CHUNK];
        let n = self.leaf_hashes(lines, &mut leaves);
        perfect_root(&mut leaves[..n])
    }
}

/// One chunk handed to the helper: its index in the batch and a copy of
/// its lines (ranges relative to the copy).
#[derive(Default)]
struct Job {
    chunk: usize,
    lines: Lines,
}

/// What the signer and the helper share, under one lock taken a few times
/// per chunk.
#[derive(Default)]
struct Queue {
    /// Chunks not started yet, in order.
    jobs: VecDeque<Job>,
    /// Roots of finished chunks: (chunk index, root).
    roots: Vec<(usize, Hash)>,
    /// Emptied jobs, for reuse: in steady state nothing is allocated.
    spare: Vec<Job>,
    /// The helper is hashing a chunk.
    busy: bool,
    /// The helper waits for work (needs a wake-up).
    sleeping: bool,
    /// The signer waits for the chunk in progress.
    waited: bool,
    stop: bool,
}

#[derive(Default)]
struct HelperShared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued while the helper sleeps, or on stop.
    work: Condvar,
    /// Signalled when the helper finishes a chunk the signer waits for.
    done: Condvar,
}

/// A helper thread that hashes chunks.
struct Helper {
    shared: Arc<HelperShared>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn spawn() -> std::io::Result<Self> {
        let shared = Arc::new(HelperShared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("auditring-hasher".into())
            .spawn(move || helper_loop(&theirs))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }
}

fn helper_loop(shared: &HelperShared) {
    let mut queue = lock(&shared.queue);
    loop {
        if let Some(mut job) = queue.jobs.pop_front() {
            queue.busy = true;
            drop(queue);
            let n = job.lines.ranges.len();
            let root = job.lines.subtree_root(0..n);
            job.lines.buf.clear();
            job.lines.ranges.clear();
            queue = lock(&shared.queue);
            queue.roots.push((job.chunk, root));
            queue.spare.push(job);
            queue.busy = false;
            if queue.waited {
                queue.waited = false;
                shared.done.notify_one();
            }
            continue;
        }
        if queue.stop {
            return;
        }
        queue.sleeping = true;
        queue = shared
            .work
            .wait(queue)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queue.sleeping = false;
    }
}

/// Computes batch roots, with or without a helper thread.
pub(crate) struct BatchHasher {
    helper: Option<Helper>,
    /// Lines of the current batch already handed out or hashed (a multiple
    /// of [`CHUNK`]).
    covered: usize,
    /// Root of each chunk of the current batch, once known.
    chunk_roots: Vec<Option<Hash>>,
    /// Chunks taken back from the queue at the seal.
    stolen: Vec<Job>,
    /// Leaf hashes of the partial chunk, at the seal.
    tail: [Hash; CHUNK],
    batch_tree: MerkleBuilder,
}

impl BatchHasher {
    /// A hasher; with `parallel`, a helper thread named
    /// `auditring-hasher` is started.
    pub(crate) fn new(parallel: bool) -> std::io::Result<Self> {
        Ok(Self {
            helper: if parallel {
                Some(Helper::spawn()?)
            } else {
                None
            },
            covered: 0,
            chunk_roots: Vec::new(),
            stolen: Vec::new(),
            tail: [[0u8; 32]; CHUNK],
            batch_tree: MerkleBuilder::default(),
        })
    }

    /// Called after lines were appended to the batch: hands out (or
    /// hashes) every complete chunk not yet covered. Does nothing without
    /// a helper: the root is then computed at the seal.
    pub(crate) fn lines_added(&mut self, lines: &Lines) {
        let Some(helper) = &self.helper else { return };
        while lines.ranges.len() - self.covered >= CHUNK {
            let chunk = self.covered / CHUNK;
            let range = self.covered..self.covered + CHUNK;
            self.covered += CHUNK;
            let mut queue = lock(&helper.shared.queue);
            if !queue.jobs.is_empty() {
                // The helper is behind: hashing here keeps both threads
                // busy instead of growing its queue.
                drop(queue);
                let root = lines.subtree_root(range);
                set_root(&mut self.chunk_roots, chunk, root);
                continue;
            }
            let mut job = queue.spare.pop().unwrap_or_default();
            drop(queue);
            let bytes = lines.ranges[range.start].start..lines.ranges[range.end - 1].end;
            job.chunk = chunk;
            job.lines.buf.extend_from_slice(&lines.buf[bytes.clone()]);
            job.lines.ranges.extend(
                lines.ranges[range]
                    .iter()
                    .map(|r| r.start - bytes.start..r.end - bytes.start),
            );
            let mut queue = lock(&helper.shared.queue);
            queue.jobs.push_back(job);
            if queue.sleeping {
                helper.shared.work.notify_one();
            }
        }
    }

    /// The RFC 6962 root of every line in `lines` (the empty-tree root for
    /// none), and the start of the next batch.
    pub(crate) fn root(&mut self, lines: &Lines) -> Hash {
        let n = lines.ranges.len();
        self.batch_tree.reset();
        if n == 0 {
            debug_assert_eq!(self.covered, 0);
            return empty_root();
        }
        let Some(helper) = &self.helper else {
            lines.push_leaves(0..n, &mut self.batch_tree);
            return self.batch_tree.root();
        };
        // Take back the chunks the helper has not started; hash them and
        // the partial chunk here while it finishes the one in progress.
        let mut queue = lock(&helper.shared.queue);
        self.stolen.extend(queue.jobs.drain(..));
        drop(queue);
        for job in &mut self.stolen {
            let m = job.lines.ranges.len();
            let root = job.lines.subtree_root(0..m);
            set_root(&mut self.chunk_roots, job.chunk, root);
            job.lines.buf.clear();
            job.lines.ranges.clear();
        }
        let tail = lines.leaf_hashes(self.covered..n, &mut self.tail);
        let mut queue = lock(&helper.shared.queue);
        queue.spare.append(&mut self.stolen);
        while queue.busy {
            queue.waited = true;
            queue = helper
                .shared
                .done
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        for (chunk, root) in queue.roots.drain(..) {
            set_root(&mut self.chunk_roots, chunk, root);
        }
        drop(queue);
        for root in self.chunk_roots.drain(..) {
            let root = root.expect("every handed-out chunk is hashed");
            self.batch_tree.push_subtree(CHUNK as u64, root);
        }
        // The partial chunk's leaves come after the full chunks.
        for leaf in &self.tail[..tail] {
            self.batch_tree.push(*leaf);
        }
        self.covered = 0;
        self.batch_tree.root()
    }
}

fn set_root(roots: &mut Vec<Option<Hash>>, chunk: usize, root: Hash) {
    if roots.len() <= chunk {
        roots.resize(chunk + 1, None);
    }
    roots[chunk] = Some(root);
}

impl Drop for BatchHasher {
    fn drop(&mut self) {
        if let Some(mut helper) = self.helper.take() {
            lock(&helper.shared.queue).stop = true;
            helper.shared.work.notify_one();
            if let Some(thread) = helper.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::merkle::leaf_hash;

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

    /// Feeds `all` to `hasher` in steps of `step` lines, as the signer
    /// appends them, and returns the root.
    fn streamed(hasher: &mut BatchHasher, all: &Lines, step: usize) -> Hash {
        let mut growing = Lines::default();
        let mut at = 0;
        while at < all.ranges.len() {
            let end = (at + step).min(all.ranges.len());
            for r in &all.ranges[at..end] {
                let start = growing.buf.len();
                growing.buf.extend_from_slice(&all.buf[r.clone()]);
                growing.ranges.push(start..growing.buf.len());
                growing.buf.push(b'\n');
            }
            hasher.lines_added(&growing);
            at = end;
        }
        hasher.root(&growing)
    }

    #[test]
    fn parallel_and_sequential_roots_agree() {
        let mut seq = BatchHasher::new(false).unwrap();
        let mut par = BatchHasher::new(true).unwrap();
        for n in [0, 1, 2, 63, 64, 65, 100, 128, 129, 1000, 1024, 1025] {
            let batch = lines(n);
            let mut reference = MerkleBuilder::default();
            for r in &batch.ranges {
                reference.push(leaf_hash(&batch.buf[r.clone()]));
            }
            let expected = reference.root();
            assert_eq!(streamed(&mut seq, &batch, 7), expected, "n = {n}");
            // Batches one after the other on the same hasher, fed in
            // steps that do and do not line up with chunks.
            for step in [1, 13, CHUNK, 1000] {
                assert_eq!(
                    streamed(&mut par, &batch, step),
                    expected,
                    "n = {n}, step = {step}"
                );
            }
        }
    }
}
