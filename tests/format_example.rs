//! The worked example in docs/FORMAT.md is what this crate produces: every
//! line, hash, preimage and signature quoted there is recomputed here.
//! `AUDITRING_PRINT_FORMAT_EXAMPLE=1` prints the values.

use auditring::Uuid;
use auditring::format::event::event_line;
use auditring::format::keys::is_low_s;
use auditring::format::merkle::{empty_root, leaf_hash, node_hash};
use auditring::format::seal::{GENESIS, Orphans, Seal, SealReason};
use auditring::verify::{FindingKind, Severity, Status, Verifier};
use auditring::{AuditPayload, Decision, SigningKey};

const FORMAT: &str = include_str!("../docs/FORMAT.md");

/// The test key printed in docs/FORMAT.md (never use it for real logs).
fn test_key() -> SigningKey {
    let start = FORMAT
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("test key in FORMAT.md");
    let end = FORMAT
        .find("-----END PRIVATE KEY-----")
        .expect("test key end")
        + "-----END PRIVATE KEY-----".len();
    SigningKey::from_pem(&FORMAT[start..end]).expect("valid test key")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const STREAM: Uuid = Uuid::from_bytes([
    0x01, 0x93, 0x6b, 0x2a, 0x5f, 0x00, 0x7c, 0x3a, 0x8d, 0x4e, 0x2b, 0x1f, 0x0a, 0x9c, 0x7e, 0x15,
]);
/// The second run's stream.
const STREAM2: Uuid = Uuid::from_bytes([
    0x01, 0x93, 0x6b, 0x2a, 0x5f, 0x10, 0x7c, 0x3a, 0x8d, 0x4e, 0x2b, 0x1f, 0x0a, 0x9c, 0x7e, 0x15,
]);
const T0: u64 = 1_732_615_200_000_000_000; // 2024-11-26T10:00:00Z

/// The event line of seq `seq` in the example.
fn example_event(seq: u64) -> Vec<u8> {
    let mut p = AuditPayload::default();
    p.set_session_id("sess-1")
        .set_agent_id("agent-7")
        .set_action("http.get");
    match seq {
        0 => {
            p.set_resource("https://api.example.com/v1/orders");
            p.decision = Decision::Allow;
            p.enforcement_latency_us = 12;
            p.dispatch_status = 200;
            p.dispatch_latency_us = 840;
            p.response_size = 5120;
        }
        1 => {
            p.set_resource("https://billing.internal/export");
            p.decision = Decision::Deny;
            p.set_deny_reason("egress not in allowlist");
            p.enforcement_latency_us = 9;
        }
        _ => {
            p.set_resource("https://api.example.com/v1/orders/7");
            p.decision = Decision::Allow;
            p.enforcement_latency_us = 11;
        }
    }
    let mut id = *STREAM.as_bytes();
    id[5] = 0x01 + seq as u8;
    event_line(
        seq,
        &Uuid::from_bytes(id),
        T0 + 1_000_000 + seq * 250_000,
        &p,
    )
}

#[test]
fn worked_example_matches_the_document() {
    let key = test_key();
    let print = std::env::var_os("AUDITRING_PRINT_FORMAT_EXAMPLE").is_some();
    let mut values: Vec<(&str, String)> = vec![("key_id", key.key_id().to_string())];

    let open = Seal {
        stream: STREAM,
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
        unix_nanos: T0,
        key_id: key.key_id(),
    };
    let open_line = open.to_line(&open.sign(&key));
    values.push(("open preimage", hex(&open.preimage())));
    values.push(("open seal hash", hex(&open.hash())));
    values.push(("open line", String::from_utf8(open_line.clone()).unwrap()));

    let mut lines = vec![open_line];
    let mut leaves = Vec::new();
    for seq in 0..2u64 {
        let line = example_event(seq);
        let leaf = leaf_hash(&line);
        values.push(if seq == 0 {
            ("event 0 line", String::from_utf8(line.clone()).unwrap())
        } else {
            ("event 1 line", String::from_utf8(line.clone()).unwrap())
        });
        values.push(if seq == 0 {
            ("leaf 0", hex(&leaf))
        } else {
            ("leaf 1", hex(&leaf))
        });
        leaves.push(leaf);
        lines.push(line);
    }
    let root = node_hash(&leaves[0], &leaves[1]);
    values.push(("root", hex(&root)));
    let size = Seal {
        stream: STREAM,
        index: 1,
        reason: SealReason::Size,
        seq_start: 0,
        count: 2,
        root,
        prev: open.hash(),
        dropped: 0,
        dropped_total: 0,
        sink_errors: 0,
        orphans: Orphans::NONE,
        unix_nanos: T0 + 5_000_000,
        key_id: key.key_id(),
    };
    let sig = size.sign(&key);
    assert!(is_low_s(&sig));
    values.push(("size preimage", hex(&size.preimage())));
    values.push(("size seal hash", hex(&size.hash())));
    values.push(("size signature", hex(&sig)));
    let size_line = size.to_line(&sig);
    values.push(("size line", String::from_utf8(size_line.clone()).unwrap()));
    lines.push(size_line);

    // The run crashes after writing one more event line: an orphan.
    let orphan = example_event(2);
    let orphan_leaf = leaf_hash(&orphan);
    values.push(("event 2 line", String::from_utf8(orphan.clone()).unwrap()));
    values.push(("orphan root", hex(&orphan_leaf)));
    lines.push(orphan);

    // The next run continues the log and commits to the orphan.
    let recovered = Seal {
        stream: STREAM2,
        index: 0,
        reason: SealReason::Recovered,
        seq_start: 2,
        count: 0,
        root: empty_root(),
        prev: size.hash(),
        dropped: 0,
        dropped_total: 0,
        sink_errors: 0,
        orphans: Orphans {
            count: 1,
            root: orphan_leaf,
            torn: 0,
        },
        unix_nanos: T0 + 60_000_000_000,
        key_id: key.key_id(),
    };
    let sig = recovered.sign(&key);
    values.push(("recovered preimage", hex(&recovered.preimage())));
    values.push(("recovered seal hash", hex(&recovered.hash())));
    let recovered_line = recovered.to_line(&sig);
    values.push((
        "recovered line",
        String::from_utf8(recovered_line.clone()).unwrap(),
    ));
    lines.push(recovered_line);

    let close = Seal {
        stream: STREAM2,
        index: 1,
        reason: SealReason::Close,
        seq_start: 2,
        count: 0,
        root: empty_root(),
        prev: recovered.hash(),
        dropped: 0,
        dropped_total: 0,
        sink_errors: 0,
        orphans: Orphans::NONE,
        unix_nanos: T0 + 60_005_000_000,
        key_id: key.key_id(),
    };
    let sig = close.sign(&key);
    let close_line = close.to_line(&sig);
    values.push(("close line", String::from_utf8(close_line.clone()).unwrap()));
    lines.push(close_line);

    // The example verifies as the document says: authentic, incomplete
    // (one orphan), nothing tampered.
    let mut log = Vec::new();
    for l in &lines {
        log.extend_from_slice(l);
        log.push(b'\n');
    }
    let report = Verifier::new([key.public_key()]).verify_bytes(&log);
    assert_eq!(
        report.status(),
        Status::Incomplete,
        "{:#?}",
        report.findings
    );
    let kinds: Vec<FindingKind> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, [FindingKind::UnsealedTail], "{:#?}", report.findings);
    assert_eq!(
        report
            .of_kind(FindingKind::UnsealedTail)
            .next()
            .unwrap()
            .lines,
        (5, 5)
    );
    assert!(report.has(FindingKind::Restart));

    // Removing the orphan is detected: the recovered seal committed to it.
    let mut without = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i != 4 {
            without.extend_from_slice(l);
            without.push(b'\n');
        }
    }
    let report = Verifier::new([key.public_key()]).verify_bytes(&without);
    assert_eq!(report.status(), Status::Tampered);
    assert!(report.has(FindingKind::Orphans), "{:#?}", report.findings);

    for (name, value) in &values {
        if print {
            println!("{name}:\n{value}\n");
        } else {
            // Long values are wrapped in the document at 64 characters.
            let found = FORMAT.contains(value.as_str())
                || value
                    .as_bytes()
                    .chunks(64)
                    .all(|c| FORMAT.contains(std::str::from_utf8(c).unwrap()));
            assert!(found, "docs/FORMAT.md does not show the {name}: {value}");
        }
    }
}

/// docs/FORMAT.md's findings table names every finding kind with the
/// severity and exit code the verifier gives it.
#[test]
fn every_finding_kind_is_in_the_format_table() {
    use auditring::verify::ALL_KINDS;
    for kind in ALL_KINDS {
        let (severity, exit) = match kind.severity() {
            Severity::Tamper => ("tamper", "1"),
            Severity::Incomplete => ("incomplete", "3"),
            Severity::Info => ("info", "-"),
        };
        let row = format!("| `{}` | {severity} | {exit} |", kind.as_str());
        assert!(FORMAT.contains(&row), "docs/FORMAT.md lacks the row {row}");
    }
    // And the table names no kind the verifier does not have.
    let table = &FORMAT[FORMAT
        .find("| finding | severity | exit | meaning |")
        .unwrap()..];
    let rows = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .count();
    assert_eq!(rows, ALL_KINDS.len());
}
