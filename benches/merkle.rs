//! Merkle hashing: each line's leaf hash one at a time (`merkle::leaf_hash`)
//! against 64 side by side (`merkle::leaf_hashes`), and a chunk's 63
//! interior nodes folded one at a time (`MerkleBuilder`) against a level
//! at a time (`merkle::perfect_root`), in the same run, on three sets of
//! lines:
//!
//! - `bench_events`: the event lines of the benchmarks' events (the
//!   end-to-end bench's lines);
//! - `similar`: lengths drawn evenly from 600 to 660 bytes;
//! - `varied`: lengths drawn evenly from 100 to 1,500 bytes.
//!
//! Each set is 200,000 lines (20,000 with `AUDITRING_BENCH_QUICK=1`) one
//! after the other in one buffer, far more than the caches hold, so lines
//! stream from memory as the signer's helper and the verifier read them. The median of five passes is
//! printed per line, and the digests are checked to be equal.
//!
//! `cargo bench --bench merkle`

use std::hint::black_box;
use std::time::Instant;

use auditring::AuditPayload;
use auditring::format::event::event_line;
use auditring::format::merkle::{Hash, MerkleBuilder, leaf_hash, leaf_hashes, perfect_root};
use uuid::Uuid;

#[path = "common/event.rs"]
mod event;

/// Lines per side-by-side call, as the pipeline and the verifier hand them.
const GROUP: usize = 64;

fn main() {
    let n: usize = if std::env::var_os("AUDITRING_BENCH_QUICK").is_some() {
        20_000
    } else {
        200_000
    };
    let mut payload = AuditPayload::default();
    let bench_events: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| {
            event::fill(&mut payload, i);
            event_line(
                i,
                &Uuid::from_u128(u128::from(i)),
                1_764_000_000_000_000_000 + i,
                &payload,
            )
        })
        .collect();
    for (name, lines) in [
        ("bench_events", bench_events),
        ("similar", random_lines(n, 600, 660)),
        ("varied", random_lines(n, 100, 1500)),
    ] {
        leaves(name, &lines);
    }
    nodes(n);
}

/// `n` lines of lengths drawn evenly from `min..=max` (a fixed seed).
fn random_lines(n: usize, min: usize, max: usize) -> Vec<Vec<u8>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = min + (x >> 33) as usize % (max - min + 1);
            (0..len).map(|j| b' ' + ((i + j) % 90) as u8).collect()
        })
        .collect()
}

/// The median of five timed passes of `pass`, in ns per `items`.
fn median_ns(items: usize, mut pass: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            pass();
            started.elapsed().as_secs_f64() * 1e9 / items as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

fn leaves(name: &str, lines: &[Vec<u8>]) {
    // One buffer, a line after the other, as the signer's batch and the
    // verifier's read buffer hold them.
    let buf: Vec<u8> = lines.concat();
    let mut refs: Vec<&[u8]> = Vec::with_capacity(lines.len());
    let mut at = 0;
    for line in lines {
        refs.push(&buf[at..at + line.len()]);
        at += line.len();
    }
    let mut one = vec![[0u8; 32]; refs.len()];
    let mut side = vec![[0u8; 32]; refs.len()];
    let one_ns = median_ns(refs.len(), || {
        for (line, digest) in refs.iter().zip(one.iter_mut()) {
            *digest = leaf_hash(line);
        }
        black_box(&one);
    });
    let side_ns = median_ns(refs.len(), || {
        for (group, out) in refs.chunks(GROUP).zip(side.chunks_mut(GROUP)) {
            leaf_hashes(group, out);
        }
        black_box(&side);
    });
    assert_eq!(one, side, "the two ways give the same digests");
    let mean = refs.iter().map(|l| l.len()).sum::<usize>() / refs.len();
    println!(
        "bench=merkle_leaves lines={name} count={} mean_bytes={mean} one_at_a_time_ns={one_ns:.0} side_by_side_ns={side_ns:.0}",
        refs.len()
    );
    println!(
        "ratio merkle_leaves side_by_side/one_at_a_time lines={name} ns={:.2}",
        side_ns / one_ns
    );
}

/// The interior nodes of `n / 64` chunks of 64 leaves.
fn nodes(n: usize) {
    let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let chunks = leaves.len() / GROUP;
    let nodes = chunks * (GROUP - 1);
    let mut folded = Vec::with_capacity(chunks);
    let mut levels = Vec::with_capacity(chunks);
    let mut tree = MerkleBuilder::default();
    let one_ns = median_ns(nodes, || {
        folded.clear();
        for chunk in leaves.chunks_exact(GROUP) {
            tree.reset();
            for leaf in chunk {
                tree.push(*leaf);
            }
            folded.push(tree.root());
        }
        black_box(&folded);
    });
    let side_ns = median_ns(nodes, || {
        levels.clear();
        for chunk in leaves.chunks_exact(GROUP) {
            let mut level = [[0u8; 32]; GROUP];
            level.copy_from_slice(chunk);
            levels.push(perfect_root(&mut level));
        }
        black_box(&levels);
    });
    assert_eq!(folded, levels, "the two ways give the same roots");
    println!(
        "bench=merkle_nodes count={nodes} one_at_a_time_ns={one_ns:.0} side_by_side_ns={side_ns:.0}"
    );
    println!(
        "ratio merkle_nodes side_by_side/one_at_a_time ns={:.2}",
        side_ns / one_ns
    );
}
