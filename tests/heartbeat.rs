//! Heartbeat seals: an idle run writes signed, empty `heartbeat` seals, the
//! log stays intact, and a forged, moved, replayed or deleted heartbeat is
//! tampering.

use std::time::{Duration, Instant};

use auditring::sink::MemorySink;
use auditring::verify::{FindingKind, Status, Verifier};
use auditring::{AuditPayload, Runtime, Seal, SealReason, SigningKey};

/// A log with events, an idle stretch with heartbeats, and more events.
fn idle_log(key: &SigningKey) -> Vec<u8> {
    let log = MemorySink::new();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .heartbeat_interval(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let mut recorder = runtime.recorder().unwrap();
    for _ in 0..10 {
        recorder.record(|e| _ = e.set_action("http.get")).unwrap();
    }
    // Idle until at least three heartbeats were written (generous deadline).
    let deadline = Instant::now() + Duration::from_secs(60);
    while heartbeats(&log.bytes()).len() < 3 {
        assert!(Instant::now() < deadline, "no heartbeat seals within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..10 {
        recorder.record(|e| _ = e.set_action("http.post")).unwrap();
    }
    drop(recorder);
    runtime.shutdown().unwrap();
    log.bytes()
}

/// Line numbers (0-based) of the heartbeat seals.
fn heartbeats(log: &[u8]) -> Vec<usize> {
    lines(log)
        .iter()
        .enumerate()
        .filter(|(_, l)| Seal::parse_line(l).is_ok_and(|(s, _)| s.reason == SealReason::Heartbeat))
        .map(|(i, _)| i)
        .collect()
}

fn lines(log: &[u8]) -> Vec<Vec<u8>> {
    log.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[test]
fn an_idle_run_writes_heartbeats_and_stays_intact() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let beats = heartbeats(&log);
    assert!(beats.len() >= 3);
    for &i in &beats {
        let (seal, _) = Seal::parse_line(&lines(&log)[i]).unwrap();
        assert_eq!(seal.count, 0, "a heartbeat seals no events");
    }
    let report = Verifier::new([key.public_key()]).verify_bytes(&log);
    assert_eq!(report.status(), Status::Intact, "{report:?}");
}

#[test]
fn heartbeats_are_off_when_disabled() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key)
        .sink(log.clone())
        .heartbeat_interval(None)
        .max_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    runtime.shutdown().unwrap();
    assert!(heartbeats(&log.bytes()).is_empty());
}

#[test]
fn a_forged_heartbeat_is_a_bad_signature() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    let i = heartbeats(&log)[1];
    // Move its timestamp forward: "the gateway was alive later than it was".
    let text = String::from_utf8(all[i].clone()).unwrap();
    let at = text.find(r#""ts":""#).unwrap() + 6;
    let mut forged = text.into_bytes();
    forged[at + 3] = if forged[at + 3] == b'9' { b'8' } else { b'9' };
    all[i] = forged;
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::BadSignature), "{report:?}");
}

#[test]
fn a_heartbeat_signed_by_another_key_is_unknown() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    let i = heartbeats(&log)[1];
    let (mut seal, _) = Seal::parse_line(&all[i]).unwrap();
    let other = SigningKey::generate();
    seal.key_id = other.key_id();
    all[i] = seal.to_line(&other.sign_seal(&seal));
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::UnknownKey), "{report:?}");
}

#[test]
fn swapped_heartbeats_break_the_chain() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    let beats = heartbeats(&log);
    all.swap(beats[0], beats[1]);
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::BrokenChain), "{report:?}");
    assert_eq!(report.status(), Status::Tampered);
}

#[test]
fn a_replayed_heartbeat_breaks_the_chain() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    let beats = heartbeats(&log);
    let copy = all[beats[0]].clone();
    all.insert(beats[1] + 1, copy);
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::BrokenChain), "{report:?}");
}

#[test]
fn a_deleted_heartbeat_is_a_missing_seal() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    all.remove(heartbeats(&log)[1]);
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::MissingSeals), "{report:?}");
}

#[test]
fn a_heartbeat_that_seals_events_is_malformed_even_when_signed() {
    // Whoever holds the key could sign such a seal; the grammar refuses it.
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let all = lines(&log);
    // The first size or timer seal that seals events: re-sign it as a heartbeat.
    let i = all
        .iter()
        .position(|l| Seal::parse_line(l).is_ok_and(|(s, _)| s.count > 0))
        .unwrap();
    let (mut seal, _) = Seal::parse_line(&all[i]).unwrap();
    seal.reason = SealReason::Heartbeat;
    let mut forged = all[..i].to_vec();
    forged.push(seal.to_line(&key.sign_seal(&seal)));
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&forged));
    assert!(report.has(FindingKind::Malformed), "{report:?}");
    assert_eq!(report.status(), Status::Tampered);
}

#[test]
fn a_heartbeat_after_a_close_is_out_of_order() {
    let key = SigningKey::generate();
    let log = idle_log(&key);
    let mut all = lines(&log);
    let (close, _) = Seal::parse_line(all.last().unwrap()).unwrap();
    assert_eq!(close.reason, SealReason::Close);
    let mut beat = close.clone();
    beat.reason = SealReason::Heartbeat;
    beat.index += 1;
    beat.prev = auditring::Checkpoint::of_seal(&close).hash;
    beat.root = auditring::merkle::empty_root();
    beat.seq_start += close.count;
    beat.count = 0;
    beat.dropped = 0;
    all.push(beat.to_line(&key.sign_seal(&beat)));
    let report = Verifier::new([key.public_key()]).verify_bytes(&join(&all));
    assert!(report.has(FindingKind::SealOrder), "{report:?}");
}
