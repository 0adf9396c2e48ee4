//! A crafted log that once made a verifier quadratic: one opening seal,
//! one far-ahead seq, then seqs that bisect the gap again and again, so
//! every line falls inside a tracked gap. Shared by the linear-time test
//! and the verifier benchmark.

use auditring::format::event::event_line;
use auditring::format::merkle::empty_root;
use auditring::format::seal::{GENESIS, Orphans, Seal, SealReason};
use auditring::{AuditPayload, SigningKey, Uuid};

/// `lines` event lines of the bisecting pattern after an opening seal
/// signed by `key`.
pub fn crafted_gap_log(key: &SigningKey, lines: u64) -> Vec<u8> {
    let stream = Uuid::from_bytes([0x42; 16]);
    let open = Seal {
        stream,
        index: 0,
        reason: SealReason::Open,
        seq_start: 0,
        count: 0,
        root: empty_root(),
        prev: GENESIS,
        dropped: 0,
        dropped_total: 0,
        sink_errors: 0,
        orphans: Orphans::NONE,
        unix_nanos: 0,
        key_id: key.key_id(),
    };
    let mut log = open.to_line(&open.sign(key));
    log.push(b'\n');
    let mut payload = AuditPayload::default();
    payload
        .set_action("http.get")
        .set_resource("https://api.example.com/v1/orders");
    let mut push = |seq: u64| {
        log.extend_from_slice(&event_line(seq, &stream, 0, &payload));
        log.push(b'\n');
    };
    push(1 << 40);
    let mut frontier = vec![(0u64, 1u64 << 40)];
    let mut written = 1;
    while written < lines {
        let mut next = Vec::with_capacity(frontier.len() * 2);
        for &(a, b) in &frontier {
            if written >= lines {
                break;
            }
            let mid = a + (b - a) / 2;
            push(mid);
            written += 1;
            next.push((a, mid));
            next.push((mid + 1, b));
        }
        frontier = next;
    }
    log
}
