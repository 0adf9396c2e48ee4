//! A crash leaves a log cut at an arbitrary byte: inside an event line,
//! inside a seal line, right after either, inside the opening seal of a
//! new run. For every kind of cut: before restart the verdict is
//! incomplete (exit 3), never tampered; the restarted writer commits to
//! the orphaned lines in its `recovered` seal; and deleting or changing any
//! orphan afterwards is detected.

use std::path::Path;
use std::time::Duration;

use auditring::sink::{FileSink, FsyncPolicy};
use auditring::verify::{FindingKind, Severity, Status, Verifier};
use auditring::{AuditPayload, FullPolicy, Runtime, SigningKey};

fn write_run(key: &SigningKey, path: &Path, events: u64) {
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(
            FileSink::builder(path)
                .fsync(FsyncPolicy::Never)
                .open()
                .unwrap(),
        )
        .max_batch(8)
        .max_delay(Duration::from_secs(3600))
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut rec = runtime.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action("tool.call").response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    runtime.shutdown().unwrap();
}

/// Byte offsets where a crash can cut the log: a few inside and at the end
/// of every line of the second run (events, size seals, the close seal),
/// and inside the opening seal of a third run.
fn cut_points(log: &[u8], from: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut start = from;
    for (i, &b) in log.iter().enumerate().skip(from) {
        if b == b'\n' {
            let len = i - start;
            for at in [1, 20, len / 2, len - 1, len, len + 1] {
                cuts.push(start + at.min(len + 1));
            }
            start = i + 1;
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn every_crash_cut_is_incomplete_then_committed_on_restart() {
    let key = SigningKey::generate();
    let verifier = Verifier::new([key.public_key()]);
    let dir = std::env::temp_dir().join(format!("auditring-orphans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");

    // Two clean runs and the start of a third: the second run (and the
    // third's open seal) is where the crashes happen.
    write_run(&key, &path, 20);
    let first_len = std::fs::metadata(&path).unwrap().len() as usize;
    write_run(&key, &path, 20);
    write_run(&key, &path, 0);
    let full = std::fs::read(&path).unwrap();
    assert_eq!(verifier.verify_bytes(&full).status(), Status::Intact);

    let cuts = cut_points(&full, first_len);
    assert!(cuts.len() > 100, "{} cut points", cuts.len());
    let mut orphans_seen = 0;
    let mut torn_seen = 0;
    for (n, &cut) in cuts.iter().enumerate() {
        let crashed = &full[..cut];
        let before = verifier.verify_bytes(crashed);
        let tamper: Vec<_> = before
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Tamper)
            .collect();
        assert!(tamper.is_empty(), "cut at {cut}: {tamper:#?}");
        // Only a cut right after a close seal reads as complete: that is
        // what checkpoints are for (tests/integrity.rs).
        let after_close = crashed.ends_with(b"\n")
            && crashed[..cut - 1]
                .rsplit(|&b| b == b'\n')
                .next()
                .is_some_and(|l| String::from_utf8_lossy(l).contains(r#""reason":"close""#));
        if !after_close {
            assert_eq!(before.status(), Status::Incomplete, "cut at {cut}");
        }

        // Verify only every few cuts after restart: each restart is a run.
        if n % 3 != 0 {
            continue;
        }
        std::fs::write(&path, crashed).unwrap();
        write_run(&key, &path, 3);
        let restarted = std::fs::read(&path).unwrap();
        let after = verifier.verify_bytes(&restarted);
        assert_eq!(after.tamper, 0, "cut at {cut}: {:#?}", after.findings);
        assert!(after.has(FindingKind::Restart));
        if after.has(FindingKind::TornLine) {
            torn_seen += 1;
        }
        let Some(tail) = after.of_kind(FindingKind::UnsealedTail).next().cloned() else {
            continue;
        };
        orphans_seen += 1;
        // Delete the first orphan, or change one byte of the last: both are
        // caught by the recovered seal's commitment.
        let lines: Vec<&[u8]> = restarted.split_inclusive(|&b| b == b'\n').collect();
        let first = (tail.lines.0 - 1) as usize;
        let last = (tail.lines.1 - 1) as usize;
        let deleted: Vec<u8> = lines
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != first)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        let r = verifier.verify_bytes(&deleted);
        assert_eq!(r.status(), Status::Tampered, "cut at {cut}, orphan deleted");
        assert!(r.has(FindingKind::Orphans), "{:#?}", r.findings);
        let mut changed: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        let at = changed[last].len() / 2;
        changed[last][at] ^= 0x20;
        let r = verifier.verify_bytes(&changed.concat());
        assert_eq!(r.status(), Status::Tampered, "cut at {cut}, orphan changed");
    }
    assert!(orphans_seen > 5, "{orphans_seen} restarts found orphans");
    assert!(torn_seen > 5, "{torn_seen} restarts cut a torn line");
    std::fs::remove_dir_all(&dir).unwrap();
}
