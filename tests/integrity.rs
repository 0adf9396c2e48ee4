//! The holes an outside review found in the tamper evidence, each attacked
//! the way a hostile auditor would: trailing runs deleted, crash orphans
//! deleted, high-s twins of signatures, forbidden seal sequences signed
//! with the right key, lines before the first seal, torn lines of every
//! kind, and crafted logs that try to make the verifier slow. Plus the
//! anchors (checkpoints) and incremental verification that close them.

use std::time::{Duration, Instant};

use auditring::Uuid;
use auditring::format::event::event_line;
use auditring::format::merkle::{MerkleBuilder, empty_root, leaf_hash};
use auditring::format::seal::{GENESIS, Orphans, Seal, SealReason};
use auditring::sink::MemorySink;
use auditring::verify::{FindingKind, Report, Severity, Status, Verifier, VerifierState};
use auditring::{AuditPayload, Checkpoint, FullPolicy, Runtime, SigningKey};
use proptest::prelude::*;

#[path = "common/crafted.rs"]
mod crafted;
use crafted::crafted_gap_log;

// ---------------------------------------------------------------------
// A forger: writes any sequence of seals and events, signed with the
// trusted key, as a key-holding attacker (or a buggy writer) could.

/// One step of a forged log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `n` events in the current stream.
    Events(u64),
    /// A seal of this reason, sealing the events since the previous seal.
    Seal(SealReason),
}

struct Forger {
    key: SigningKey,
    out: Vec<u8>,
    stream: Uuid,
    streams: u8,
    index: u64,
    next_seq: u64,
    sealed_next: u64,
    prev: [u8; 32],
    batch: MerkleBuilder,
    batch_count: u64,
    started: bool,
}

impl Forger {
    fn new(key: &SigningKey) -> Self {
        Self {
            key: key.clone(),
            out: Vec::new(),
            stream: Uuid::nil(),
            streams: 0,
            index: 0,
            next_seq: 0,
            sealed_next: 0,
            prev: GENESIS,
            batch: MerkleBuilder::default(),
            batch_count: 0,
            started: false,
        }
    }

    fn events(&mut self, n: u64) {
        for _ in 0..n {
            let mut p = AuditPayload::default();
            p.set_action("http.get");
            let mut id = *self.stream.as_bytes();
            id[15] = self.next_seq as u8;
            let id = Uuid::from_bytes(id);
            let line = event_line(self.next_seq, &id, 1_700_000_000_000_000_000, &p);
            self.batch.push(leaf_hash(&line));
            self.batch_count += 1;
            self.out.extend_from_slice(&line);
            self.out.push(b'\n');
            self.next_seq += 1;
        }
    }

    /// Writes a seal as the writer would for this reason; a run-starting
    /// reason after anything but `rotate` (same stream) opens a new stream.
    fn seal(&mut self, reason: SealReason, after: Option<SealReason>) {
        let continues_file = reason == SealReason::Open && after == Some(SealReason::Rotate);
        let starts_run =
            matches!(reason, SealReason::Open | SealReason::Recovered) && !continues_file;
        let mut orphans = Orphans::NONE;
        if starts_run {
            if reason == SealReason::Recovered {
                orphans = Orphans {
                    count: self.batch_count,
                    root: self.batch.root(),
                    torn: 0,
                };
            }
            self.streams += 1;
            let mut stream = [self.streams; 16];
            stream[6] = 0x70;
            self.stream = Uuid::from_bytes(stream);
            self.index = 0;
            self.batch.reset();
            self.batch_count = 0;
            self.next_seq = self.sealed_next;
        } else if self.started {
            self.index += 1;
        }
        self.started = true;
        let seals_events = !starts_run && !continues_file;
        let (count, root) = if seals_events {
            (self.batch_count, self.batch.root())
        } else {
            (0, empty_root())
        };
        let seal = Seal {
            stream: self.stream,
            index: self.index,
            reason,
            seq_start: self.sealed_next,
            count,
            root,
            prev: self.prev,
            dropped: 0,
            dropped_total: 0,
            sink_errors: 0,
            orphans,
            unix_nanos: 1_700_000_000_000_000_000 + u64::from(self.streams),
            key_id: self.key.key_id(),
        };
        self.out
            .extend_from_slice(&seal.to_line(&seal.sign(&self.key)));
        self.out.push(b'\n');
        self.prev = seal.hash();
        if seals_events {
            self.sealed_next += count;
            self.batch.reset();
            self.batch_count = 0;
        }
    }

    fn run(key: &SigningKey, steps: &[Step]) -> Vec<u8> {
        let mut f = Forger::new(key);
        let mut last = None;
        for step in steps {
            match *step {
                Step::Events(n) => f.events(n),
                Step::Seal(reason) => {
                    f.seal(reason, last);
                    last = Some(reason);
                }
            }
        }
        f.out
    }
}

fn verify(key: &SigningKey, log: &[u8]) -> Report {
    Verifier::new([key.public_key()]).verify_bytes(log)
}

fn kinds(r: &Report, severity: Severity) -> Vec<FindingKind> {
    r.findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.kind)
        .collect()
}

fn lines(log: &[u8]) -> Vec<Vec<u8>> {
    log.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn is_seal(line: &[u8]) -> bool {
    line.starts_with(br#"{"v":3,"kind":"seal""#)
}

/// `prefix` followed by a closed run of `events` events in batches of 4
/// that continues its chain, with the run's checkpoint.
fn run_after(key: &SigningKey, prefix: &[u8], events: u64) -> (Vec<u8>, Checkpoint) {
    let sink = MemorySink::new();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink.clone())
        .continue_chain(tail_of(key, prefix))
        .max_batch(4)
        .max_delay(Duration::from_secs(3600))
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut rec = runtime.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action("db.query").response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    let checkpoint = runtime.shutdown().unwrap().checkpoint;
    ([prefix, &sink.bytes()].concat(), checkpoint)
}

/// Where a memory log ends, for the next run.
fn tail_of(key: &SigningKey, log: &[u8]) -> auditring::format::seal::ChainHead {
    let verifier = Verifier::new([key.public_key()]);
    let mut pass = verifier.start();
    pass.feed("<memory>", log, &mut |_| {}).unwrap();
    match pass.checkpoint() {
        None => auditring::format::seal::ChainHead::genesis(),
        Some(c) => auditring::format::seal::ChainHead {
            prev: c.hash,
            next_seq: c.next_seq,
            previous_closed: true,
            orphans: Orphans::NONE,
        },
    }
}

// ---------------------------------------------------------------------
// 1. Whole trailing runs deleted: caught against a checkpoint.

#[test]
fn deleting_a_trailing_run_is_caught_by_the_checkpoint() {
    let key = SigningKey::generate();
    let (one, first) = run_after(&key, b"", 10);
    let first_len = one.len();
    let (log, head) = run_after(&key, &one, 7);
    assert_ne!(first, head);

    // Untouched: intact, with or without the anchor.
    assert_eq!(verify(&key, &log).status(), Status::Intact);
    let anchored = Verifier::new([key.public_key()]).expect_checkpoint(head);
    assert_eq!(anchored.verify_bytes(&log).status(), Status::Intact);

    // Cut right after the first run's close seal: the log alone cannot
    // tell (it is a complete, closed log) ...
    let cut = &log[..first_len];
    let alone = verify(&key, cut);
    assert_eq!(alone.status(), Status::Intact, "{:#?}", alone.findings);
    // ... the anchor can: exit 1, naming the seal and seq it expected.
    let r = anchored.verify_bytes(cut);
    assert_eq!(r.status(), Status::Tampered);
    assert_eq!(kinds(&r, Severity::Tamper), [FindingKind::Truncated]);
    let finding = r.of_kind(FindingKind::Truncated).next().unwrap();
    assert!(
        finding.detail.contains(&format!("seal #{}", head.seal)),
        "{}",
        finding.detail
    );
    assert!(
        finding
            .detail
            .contains(&format!("next seq {}", head.next_seq))
    );

    // An anchor from the first run still holds on the whole log.
    let old = Verifier::new([key.public_key()]).expect_checkpoint(first);
    assert_eq!(old.verify_bytes(&log).status(), Status::Intact);

    // A rewritten tail with the anchored seal index but other content.
    let (rewritten, other_head) = run_after(&key, &log[..first_len], 7);
    assert_eq!(other_head.seal, head.seal);
    assert_ne!(other_head.hash, head.hash);
    let r = anchored.verify_bytes(&rewritten);
    assert_eq!(r.status(), Status::Tampered);
    assert!(r.has(FindingKind::Truncated));
}

// ---------------------------------------------------------------------
// 2. A crashed run's orphans deleted, changed or added after recovery.

fn crashed_and_recovered(key: &SigningKey) -> Vec<u8> {
    use SealReason::*;
    Forger::run(
        key,
        &[
            Step::Seal(Open),
            Step::Events(3),
            Step::Seal(Size),
            Step::Events(2), // orphans: the run crashes here
            Step::Seal(Recovered),
            Step::Events(1),
            Step::Seal(Close),
        ],
    )
}

#[test]
fn orphans_stay_incomplete_and_their_deletion_is_tampering() {
    let key = SigningKey::generate();
    let log = crashed_and_recovered(&key);
    let r = verify(&key, &log);
    assert_eq!(r.status(), Status::Incomplete, "{:#?}", r.findings);
    assert_eq!(kinds(&r, Severity::Incomplete), [FindingKind::UnsealedTail]);
    assert_eq!(
        r.of_kind(FindingKind::UnsealedTail).next().unwrap().count,
        Some(2)
    );

    let l = lines(&log);
    let orphan_lines = [5usize, 6]; // 0-based: open, e, e, e, size, o, o, recovered
    assert!(!is_seal(&l[5]) && is_seal(&l[7]));
    // Delete one, delete both, duplicate one, change one byte.
    let mut variants: Vec<Vec<Vec<u8>>> = Vec::new();
    for &i in &orphan_lines {
        let mut v = l.clone();
        v.remove(i);
        variants.push(v);
    }
    let mut both = l.clone();
    both.drain(5..7);
    variants.push(both);
    let mut dup = l.clone();
    dup.insert(6, l[6].clone());
    variants.push(dup);
    let mut changed = l.clone();
    let at = changed[6].len() - 10;
    changed[6][at] ^= 0x01;
    variants.push(changed);
    for v in variants {
        let r = verify(&key, &v.concat());
        assert_eq!(r.status(), Status::Tampered, "{:#?}", r.findings);
        assert!(
            r.has(FindingKind::Orphans) || r.has(FindingKind::Inserted),
            "{:#?}",
            r.findings
        );
    }
}

// ---------------------------------------------------------------------
// 3. High-s twins of genuine signatures.

/// `n - s` of a 64-byte P-256 signature.
fn flip_s(sig_hex: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let bytes: Vec<u8> = (0..64)
        .map(|i| u8::from_str_radix(&sig_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let s = &bytes[32..];
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    let mut hex = sig_hex[..64].to_owned();
    for b in out {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[test]
fn every_high_s_twin_is_a_bad_signature() {
    let key = SigningKey::generate();
    let (log, _) = run_after(&key, b"", 40);
    let l = lines(&log);
    let mut seals = 0;
    for (i, line) in l.iter().enumerate().filter(|(_, l)| is_seal(l)) {
        seals += 1;
        let text = String::from_utf8(line.clone()).unwrap();
        let at = text.find(r#""sig":""#).unwrap() + 7;
        let sig = &text[at..at + 128];
        let twin = text.replacen(sig, &flip_s(sig), 1);
        let mut v = l.clone();
        v[i] = twin.into_bytes();
        let r = verify(&key, &v.concat());
        assert_eq!(r.status(), Status::Tampered);
        let bad: Vec<_> = r.of_kind(FindingKind::BadSignature).collect();
        assert_eq!(bad.len(), 1, "{:#?}", r.findings);
        assert!(bad[0].detail.contains("high-s"), "{}", bad[0].detail);
    }
    assert_eq!(seals, 12);
}

// ---------------------------------------------------------------------
// 4. Seal sequences the format forbids, signed with the trusted key.

#[test]
fn forbidden_seal_sequences_are_seal_order_tampering() {
    use SealReason::*;
    let key = SigningKey::generate();
    let cases: &[(&str, &[Step])] = &[
        (
            "open after an unclosed run",
            &[
                Step::Seal(Open),
                Step::Events(2),
                Step::Seal(Size),
                Step::Seal(Open),
                Step::Seal(Close),
            ],
        ),
        (
            "recovered after a clean close",
            &[
                Step::Seal(Open),
                Step::Events(2),
                Step::Seal(Close),
                Step::Seal(Recovered),
                Step::Seal(Close),
            ],
        ),
        (
            "size right after rotate",
            &[
                Step::Seal(Open),
                Step::Events(2),
                Step::Seal(Rotate),
                Step::Events(1),
                Step::Seal(Size),
                Step::Seal(Close),
            ],
        ),
        (
            "close after close",
            &[Step::Seal(Open), Step::Seal(Close), Step::Seal(Close)],
        ),
        (
            "rotate after close",
            &[Step::Seal(Open), Step::Seal(Close), Step::Seal(Rotate)],
        ),
    ];
    for (name, steps) in cases {
        let r = verify(&key, &Forger::run(&key, steps));
        assert_eq!(r.status(), Status::Tampered, "{name}: {:#?}", r.findings);
        assert!(r.has(FindingKind::SealOrder), "{name}: {:#?}", r.findings);
    }
    // A log cannot start with a recovered seal (there is no run to recover).
    let r = verify(
        &key,
        &Forger::run(&key, &[Step::Seal(Recovered), Step::Seal(Close)]),
    );
    assert_eq!(r.status(), Status::Tampered, "{:#?}", r.findings);
}

/// What a writer can produce: runs of open, batches, then close, rotate
/// (followed by an open of the same stream) or a crash (the next run
/// recovers), in any combination.
fn writer_sequence() -> impl Strategy<Value = Vec<Step>> {
    let batch = (0u64..3).prop_map(|n| vec![Step::Events(n), Step::Seal(SealReason::Size)]);
    let run_body = prop::collection::vec(
        prop_oneof![
            batch,
            (0u64..3).prop_map(|n| vec![
                Step::Events(n),
                Step::Seal(SealReason::Rotate),
                Step::Seal(SealReason::Open)
            ]),
        ],
        0..4,
    );
    // How a run ends: 0 close, 1 crash (maybe with orphans), 2 crash mid-rotation.
    let run = (run_body, 0u8..3, 0u64..3).prop_map(|(body, end, orphans)| (body, end, orphans));
    prop::collection::vec(run, 1..5).prop_map(|runs| {
        let mut steps = Vec::new();
        let mut previous_end = 0;
        for (i, (body, end, orphans)) in runs.iter().enumerate() {
            let opening = if i == 0 || previous_end == 0 {
                SealReason::Open
            } else {
                SealReason::Recovered
            };
            steps.push(Step::Seal(opening));
            for part in body {
                steps.extend_from_slice(part);
            }
            match end {
                0 => {
                    steps.push(Step::Events(*orphans));
                    steps.push(Step::Seal(SealReason::Close));
                }
                1 => steps.push(Step::Events(*orphans)),
                _ => steps.push(Step::Seal(SealReason::Rotate)),
            }
            previous_end = *end;
        }
        steps
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every sequence a writer produces verifies without tampering.
    #[test]
    fn every_writer_sequence_is_accepted(steps in writer_sequence()) {
        let key = SigningKey::generate();
        let r = verify(&key, &Forger::run(&key, &steps));
        prop_assert_eq!(r.tamper, 0, "{:?}\n{:#?}", steps, r.findings);
    }

    /// Changing the reason of one seal of a writer's sequence to another
    /// reason (re-signed with the right key) is rejected, unless the
    /// result is itself a sequence a writer produces.
    #[test]
    fn every_other_sequence_is_rejected(
        steps in writer_sequence(),
        pick in any::<prop::sample::Index>(),
        to in 0u8..6,
    ) {
        use SealReason::*;
        let reasons = [Open, Size, Timer, Close, Rotate, Recovered];
        let seal_positions: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Seal(_)))
            .map(|(i, _)| i)
            .collect();
        let at = seal_positions[pick.index(seal_positions.len())];
        let mut changed = steps.clone();
        changed[at] = Step::Seal(reasons[usize::from(to)]);
        prop_assume!(changed != steps);
        prop_assume!(!is_writer_sequence(&changed));
        let key = SigningKey::generate();
        let r = verify(&key, &Forger::run(&key, &changed));
        prop_assert!(r.tamper > 0, "accepted: {:?}\n{:#?}", changed, r.findings);
    }
}

/// The grammar of docs/FORMAT.md section 6.2, written out independently
/// of the verifier, on the forger's steps (with the forger's choices of
/// stream and count: a run-starting seal opens a new stream).
fn is_writer_sequence(steps: &[Step]) -> bool {
    use SealReason::*;
    let mut last: Option<SealReason> = None;
    for step in steps {
        match *step {
            Step::Events(n) => {
                if n > 0 && matches!(last, None | Some(Close) | Some(Rotate)) {
                    return false;
                }
            }
            Step::Seal(reason) => {
                let ok = match (last, reason) {
                    (None, Open) => true,
                    (None, _) => false,
                    (Some(Close), Open) => true,
                    (Some(Close), _) => false,
                    (Some(Rotate), Open | Recovered) => true,
                    (Some(Rotate), _) => false,
                    (Some(_), Recovered) => true,
                    (Some(_), Open) => false,
                    (Some(_), _) => true,
                };
                if !ok {
                    return false;
                }
                last = Some(reason);
            }
        }
    }
    true
}

// ---------------------------------------------------------------------
// 5. Lines before the first seal.

#[test]
fn lines_before_the_first_seal_are_inserted() {
    let key = SigningKey::generate();
    let (log, _) = run_after(&key, b"", 5);
    let l = lines(&log);
    let forged = l[1].clone(); // an event line, put before everything
    let r = verify(&key, &[forged.clone(), log.clone()].concat());
    assert_eq!(r.status(), Status::Tampered);
    let inserted: Vec<_> = r.of_kind(FindingKind::Inserted).collect();
    assert_eq!(inserted.len(), 1, "{:#?}", r.findings);
    assert_eq!(inserted[0].lines, (1, 1));
    assert!(
        !r.has(FindingKind::UnsealedTail),
        "no previous run to have crashed"
    );
}

/// Event lines carry no stream (format 3): one taken from another run of
/// the same key, with the same seq, swapped in or added, is still caught,
/// by the batch's root or by its seq.
#[test]
fn an_event_line_from_another_run_is_caught() {
    let key = SigningKey::generate();
    let (a, _) = run_after(&key, b"", 8);
    let (b, _) = run_after(&key, b"", 8);
    let (la, lb) = (lines(&a), lines(&b));
    assert_eq!(verify(&key, &a).status(), Status::Intact);
    // Event lines (not seals) of the same seq: both runs start at seq 0.
    let events: Vec<usize> = (0..la.len()).filter(|&i| !is_seal(&la[i])).collect();
    assert_eq!(events.len(), 8);
    for &i in &events {
        assert!(!is_seal(&lb[i]) && la[i] != lb[i]);
        assert_eq!(la[i][..10], lb[i][..10], "the same seq at line {i}");
        let mut swapped = la.clone();
        swapped[i] = lb[i].clone();
        let r = verify(&key, &swapped.concat());
        assert_eq!(r.status(), Status::Tampered, "line {i} swapped");
        assert!(r.has(FindingKind::Modified), "{:#?}", r.findings);

        let mut added = la.clone();
        added.insert(i + 1, lb[i].clone());
        let r = verify(&key, &added.concat());
        assert_eq!(r.status(), Status::Tampered, "line {i} added");
        assert!(r.has(FindingKind::Inserted), "{:#?}", r.findings);
    }
}

// ---------------------------------------------------------------------
// 6. Torn lines: one rule, the same verdict, and a crash never reads as
// tampering.

#[test]
fn every_torn_last_line_is_incomplete_never_tampered() {
    let key = SigningKey::generate();
    let (log, _) = run_after(&key, b"", 9);
    let l = lines(&log);
    // Cut the log at every byte of its last three lines (a partial event,
    // a partial seal, a complete line missing only its newline), and after
    // a close seal with a partial next open seal appended.
    let from = log.len() - l[l.len() - 3..].concat().len();
    for cut in from..log.len() {
        let r = verify(&key, &log[..cut]);
        assert_ne!(
            r.status(),
            Status::Tampered,
            "cut at {cut}: {:#?}",
            r.findings
        );
        assert_eq!(r.status(), Status::Incomplete, "cut at {cut}");
        let torn = log[..cut].last() != Some(&b'\n');
        assert_eq!(
            r.has(FindingKind::TornLine),
            torn,
            "cut at {cut}: {:#?}",
            r.findings
        );
    }
    let next_open = run_after(&key, &log, 0).0[log.len()..].to_vec();
    for cut in 1..next_open.len() {
        let mut torn = log.clone();
        torn.extend_from_slice(&next_open[..cut]);
        let r = verify(&key, &torn);
        assert_eq!(
            r.status(),
            Status::Incomplete,
            "open cut at {cut}: {:#?}",
            r.findings
        );
    }
    // A close seal missing its newline is torn too: not intact.
    let r = verify(&key, &log[..log.len() - 1]);
    assert_eq!(r.status(), Status::Incomplete);
    assert!(r.has(FindingKind::TornLine));
}

#[test]
fn a_partial_line_inside_the_log_is_tampering() {
    let key = SigningKey::generate();
    let (log, _) = run_after(&key, b"", 9);
    // The first file of a two-file log has lost its final newline.
    let verifier = Verifier::new([key.public_key()]);
    let mut pass = verifier.start();
    let split = log.len() / 2;
    let split = split + log[split..].iter().position(|&b| b == b'\n').unwrap();
    pass.feed("a", &log[..split], &mut |_| {}).unwrap();
    pass.feed("b", &log[split + 1..], &mut |_| {}).unwrap();
    let r = pass.finish();
    assert_eq!(r.status(), Status::Tampered, "{:#?}", r.findings);
    assert!(r.has(FindingKind::Malformed));
}

// ---------------------------------------------------------------------
// 7. Linear time, no overflow.

/// CPU time this thread has run, from the scheduler's own account
/// (`/proc/thread-self/schedstat`), so that other processes on a loaded
/// machine do not count; wall time where that is not available.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[test]
fn crafted_gaps_verify_in_linear_time() {
    let key = SigningKey::generate();
    let verifier = Verifier::new([key.public_key()]);
    let small_log = crafted_gap_log(&key, 25_000);
    let large_log = crafted_gap_log(&key, 100_000);
    let time = |log: &[u8]| {
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        let r = verifier.verify_bytes(log);
        let took = match (cpu, thread_cpu_time()) {
            (Some(a), Some(b)) => b - a,
            _ => wall.elapsed(),
        };
        assert_eq!(r.status(), Status::Tampered);
        took
    };
    // Interleaved, best of five each: the two sizes see the same machine.
    let (mut small, mut large) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        small = small.min(time(&small_log));
        large = large.min(time(&large_log));
    }
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
    assert!(
        ratio < 6.0,
        "4x the lines took {ratio:.1}x the time ({small:?} vs {large:?})"
    );
}

#[test]
fn crafted_counters_saturate_instead_of_wrapping() {
    let key = SigningKey::generate();
    let mut f = Forger::new(&key);
    f.seal(SealReason::Open, None);
    // Two seals that each claim nearly 2^64 events.
    let mut log = f.out.clone();
    for (index, start) in [(1u64, 0u64), (2, u64::MAX - 1)] {
        let seal = Seal {
            stream: f.stream,
            index,
            reason: SealReason::Size,
            seq_start: start,
            count: u64::MAX - 1,
            root: empty_root(),
            prev: GENESIS,
            dropped: u64::MAX,
            dropped_total: u64::MAX,
            sink_errors: 0,
            orphans: Orphans::NONE,
            unix_nanos: 0,
            key_id: key.key_id(),
        };
        log.extend_from_slice(&seal.to_line(&seal.sign(&key)));
        log.push(b'\n');
    }
    let r = verify(&key, &log);
    assert_eq!(r.status(), Status::Tampered);
    assert_eq!(r.sealed_events, u64::MAX);
    assert_eq!(r.dropped, u64::MAX);
}

// ---------------------------------------------------------------------
// Incremental verification: the same verdict as a full pass, reading only
// the new bytes.

#[test]
fn resumed_verification_equals_a_full_pass_at_every_line() {
    let key = SigningKey::generate();
    let (one, _) = run_after(&key, b"", 6);
    let (log, _) = run_after(&key, &one, 5);
    let verifier = Verifier::new([key.public_key()]);
    let full = verifier.verify_bytes(&log);
    assert_eq!(full.status(), Status::Intact);
    let dir = std::env::temp_dir().join(format!("auditring-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    // Grow the file line by line (and by half lines), saving and resuming
    // the state at every step, through JSON.
    let mut state: Option<String> = None;
    let mut end = 0;
    while end < log.len() {
        end = (end + 97).min(log.len());
        std::fs::write(&path, &log[..end]).unwrap();
        let mut pass = match &state {
            None => verifier.start(),
            Some(s) => verifier.resume(VerifierState::from_json(s).unwrap()),
        };
        pass.feed_files(&[&path], &mut |_| {}).unwrap();
        state = Some(pass.state().to_json());
        let so_far = pass.finish();
        let direct = verifier.verify_bytes(&log[..end]);
        assert_eq!(so_far.status(), direct.status(), "at byte {end}");
        assert_eq!(so_far.events, direct.events, "at byte {end}");
    }
    let resumed = verifier.resume(VerifierState::from_json(state.as_ref().unwrap()).unwrap());
    let mut pass = resumed;
    pass.feed_files(&[&path], &mut |_| {}).unwrap();
    let r = pass.finish();
    assert_eq!(r.status(), Status::Intact);
    assert_eq!(r.sealed_events, full.sealed_events);
    assert_eq!(r.bytes, full.bytes);

    // A rewritten file under a saved state is caught, not skipped.
    let mut changed = log.clone();
    let i = changed.len() - 20;
    changed[i] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    let mut pass = verifier.resume(VerifierState::from_json(state.as_ref().unwrap()).unwrap());
    pass.feed_files(&[&path], &mut |_| {}).unwrap();
    assert_eq!(pass.finish().status(), Status::Tampered);
    std::fs::remove_dir_all(&dir).unwrap();
}
