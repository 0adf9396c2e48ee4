//! Every tamper class is reported at the right place, and an untouched log
//! verifies clean. A property test applies random mutations and checks that
//! none goes unreported.

use auditring::sink::MemorySink;
use auditring::verify::{FindingKind, Report, Status, Verifier};
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};
use proptest::prelude::*;

#[path = "common/lines.rs"]
mod log_lines;
use log_lines::{join, lines};

/// A closed log of `events` events sealed in batches of `batch`.
fn make_log(key: &SigningKey, events: u64, batch: usize) -> Vec<u8> {
    let sink = MemorySink::new();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink.clone())
        .max_batch(batch)
        // Only full batches are sealed (and the rest at close): the tests
        // rely on where the seals fall.
        .max_delay(std::time::Duration::from_secs(3600))
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut rec = runtime.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_session_id(&format!("sess-{}", i % 3))
                .set_action("http.get")
                .set_resource(&format!("https://api.example.com/items/{i}"));
            e.decision = if i % 5 == 0 {
                Decision::Deny
            } else {
                Decision::Allow
            };
            e.response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    let report = runtime.shutdown().unwrap();
    assert_eq!(report.sealed, events);
    sink.bytes()
}

fn is_seal(line: &[u8]) -> bool {
    line.starts_with(br#"{"v":3,"kind":"seal""#)
}

/// Index (0-based) of the n-th event line.
fn event_index(lines: &[Vec<u8>], n: usize) -> usize {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !is_seal(l))
        .nth(n)
        .map(|(i, _)| i)
        .unwrap()
}

struct Fixture {
    key: SigningKey,
    log: Vec<u8>,
}

fn fixture() -> Fixture {
    let key = SigningKey::generate();
    // 40 events in batches of 8: open seal, 5 full batches (size seals),
    // then a close seal with no events.
    let log = make_log(&key, 40, 8);
    Fixture { key, log }
}

fn verify(f: &Fixture, log: &[u8]) -> Report {
    Verifier::new([f.key.public_key()]).verify_bytes(log)
}

fn kinds(r: &Report) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn untouched_log_is_intact() {
    let f = fixture();
    let r = verify(&f, &f.log);
    assert_eq!(r.status(), Status::Intact, "{:#?}", r.findings);
    assert!(r.findings.is_empty());
    assert_eq!(
        (r.events, r.sealed_events, r.seals, r.streams),
        (40, 40, 7, 1)
    );
}

#[test]
fn changed_byte_in_payload_is_modified_in_its_batch() {
    let f = fixture();
    let mut l = lines(&f.log);
    let i = event_index(&l, 10); // seq 10, second batch (seq 8..15)
    let text = String::from_utf8(l[i].clone()).unwrap();
    l[i] = text.replacen("items/10", "items/11", 1).into_bytes();
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    assert_eq!(kinds(&r), [FindingKind::Modified], "{:#?}", r.findings);
    let m = &r.findings[0];
    assert_eq!(m.seq, Some((8, 15)));
    let line = i as u64 + 1;
    assert!(
        m.lines.0 <= line && line <= m.lines.1,
        "{m:?} should include line {line}"
    );
}

#[test]
fn deleted_event_is_missing_with_its_seq() {
    let f = fixture();
    let mut l = lines(&f.log);
    let i = event_index(&l, 20); // seq 20
    l.remove(i);
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    let missing: Vec<_> = r.of_kind(FindingKind::Missing).collect();
    assert_eq!(missing.len(), 1, "{:#?}", r.findings);
    assert_eq!(missing[0].seq, Some((20, 20)));
    assert!(
        !r.has(FindingKind::Modified),
        "a deletion is named as such: {:#?}",
        r.findings
    );
}

#[test]
fn deleted_last_event_of_a_batch_is_missing() {
    let f = fixture();
    let mut l = lines(&f.log);
    let i = event_index(&l, 15); // seq 15, last of batch 8..15
    l.remove(i);
    let r = verify(&f, &join(&l));
    let missing: Vec<_> = r.of_kind(FindingKind::Missing).collect();
    assert_eq!(missing.len(), 1, "{:#?}", r.findings);
    assert_eq!(missing[0].seq, Some((15, 15)));
}

#[test]
fn deleted_batch_with_its_seal_is_missing_seals_and_seqs() {
    let f = fixture();
    let mut l = lines(&f.log);
    // Batch seq 16..23: its 8 events and its seal.
    let first = event_index(&l, 16);
    l.drain(first..first + 9);
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    let seals: Vec<_> = r.of_kind(FindingKind::MissingSeals).collect();
    assert_eq!(seals.len(), 1, "{:#?}", r.findings);
    assert_eq!(seals[0].count, Some(1));
    let missing: Vec<_> = r.of_kind(FindingKind::Missing).collect();
    assert_eq!(missing.len(), 1, "{:#?}", r.findings);
    assert_eq!(missing[0].seq, Some((16, 23)));
}

#[test]
fn swapped_events_are_reordered() {
    let f = fixture();
    let mut l = lines(&f.log);
    let (a, b) = (event_index(&l, 3), event_index(&l, 4));
    l.swap(a, b);
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    let re: Vec<_> = r.of_kind(FindingKind::Reordered).collect();
    assert_eq!(re.len(), 1, "{:#?}", r.findings);
    assert_eq!(re[0].seq, Some((3, 3)));
    assert_eq!(re[0].lines.0, b as u64 + 1);
    assert!(!r.has(FindingKind::Missing), "{:#?}", r.findings);
}

#[test]
fn forged_event_is_inserted() {
    let f = fixture();
    let mut l = lines(&f.log);
    // A forged copy of seq 5 with another decision, placed after it.
    let i = event_index(&l, 5);
    let forged = String::from_utf8(l[i].clone()).unwrap().replacen(
        r#""decision":"allow""#,
        r#""decision":"deny""#,
        1,
    );
    l.insert(i + 1, forged.into_bytes());
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    let ins: Vec<_> = r.of_kind(FindingKind::Inserted).collect();
    assert_eq!(ins.len(), 1, "{:#?}", r.findings);
    assert_eq!(ins[0].lines.0, i as u64 + 2);
    assert_eq!(ins[0].seq, Some((5, 5)));
}

#[test]
fn forged_event_with_fresh_seq_is_inserted() {
    let f = fixture();
    let mut l = lines(&f.log);
    let i = event_index(&l, 7); // last of the first batch (0..7)
    let forged = String::from_utf8(l[i].clone())
        .unwrap()
        .replacen(r#""seq":7,"#, r#""seq":8,"#, 1);
    l.insert(i + 1, forged.into_bytes());
    let r = verify(&f, &join(&l));
    assert_eq!(r.status(), Status::Tampered);
    assert!(r.has(FindingKind::Inserted), "{:#?}", r.findings);
}

#[test]
fn truncation_mid_batch_is_unsealed_tail_and_missing_close() {
    let f = fixture();
    let l = lines(&f.log);
    let cut = event_index(&l, 27); // keep seq 0..26: the batch 24..31 is torn
    let mut bytes = join(&l[..cut]);
    bytes.extend_from_slice(&l[cut][..40]); // a torn half line
    let r = verify(&f, &bytes);
    assert_eq!(r.status(), Status::Incomplete, "{:#?}", r.findings);
    let tail: Vec<_> = r.of_kind(FindingKind::UnsealedTail).collect();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].count, Some(3)); // seq 24, 25, 26
    assert_eq!(tail[0].seq, Some((24, 26)));
    // The half line is a torn write, not part of the log.
    assert_eq!(
        r.of_kind(FindingKind::TornLine).count(),
        1,
        "{:#?}",
        r.findings
    );
    assert!(r.has(FindingKind::MissingClose));
}

#[test]
fn truncation_after_a_seal_is_missing_close() {
    let f = fixture();
    let l = lines(&f.log);
    let after_seal = event_index(&l, 24); // everything up to the seal of 16..23
    let r = verify(&f, &join(&l[..after_seal]));
    assert_eq!(r.status(), Status::Incomplete);
    assert_eq!(kinds(&r), [FindingKind::MissingClose], "{:#?}", r.findings);
}

#[test]
fn foreign_key_is_unknown_and_forged_key_id_is_bad_signature() {
    let f = fixture();
    // The same content signed by an attacker's key.
    let attacker = SigningKey::generate();
    let forged = make_log(&attacker, 40, 8);
    let r = verify(&f, &forged);
    assert_eq!(r.status(), Status::Tampered);
    assert_eq!(
        r.of_kind(FindingKind::UnknownKey).count(),
        7,
        "{:#?}",
        r.findings
    );

    // The attacker's seal relabelled with the trusted key id: the signature
    // no longer verifies.
    let mut l = lines(&f.log);
    let theirs = lines(&forged);
    let ours_id = f.key.key_id().to_string();
    let their_id = attacker.key_id().to_string();
    let seal_at = l.iter().position(|x| is_seal(x)).unwrap();
    let relabelled = String::from_utf8(theirs[seal_at].clone())
        .unwrap()
        .replacen(&their_id, &ours_id, 1);
    l[seal_at] = relabelled.into_bytes();
    let r = verify(&f, &join(&l));
    assert!(r.has(FindingKind::BadSignature), "{:#?}", r.findings);
}

#[test]
fn altered_seal_field_is_bad_signature() {
    let f = fixture();
    let mut l = lines(&f.log);
    let seal_at = l.iter().rposition(|x| is_seal(x)).unwrap() - 1;
    let text = String::from_utf8(l[seal_at].clone()).unwrap();
    assert!(text.contains(r#""dropped":0,"dropped_total":0"#));
    l[seal_at] = text
        .replacen(
            r#""dropped":0,"dropped_total":0"#,
            r#""dropped":0,"dropped_total":1"#,
            1,
        )
        .into_bytes();
    let r = verify(&f, &join(&l));
    assert!(r.has(FindingKind::BadSignature), "{:#?}", r.findings);
}

#[test]
fn bad_input_gets_findings_not_panics() {
    let f = fixture();
    let v = Verifier::new([f.key.public_key()]);
    let empty = v.verify_bytes(b"");
    assert_eq!(empty.status(), Status::Incomplete);
    assert!(empty.has(FindingKind::Empty));

    let garbage = v.verify_bytes(b"\x00\xff garbage\nmore garbage\n{\"not\":\"ours\"}\n");
    assert_eq!(garbage.status(), Status::Tampered);
    let malformed: Vec<_> = garbage.of_kind(FindingKind::Malformed).collect();
    assert_eq!(malformed.len(), 1, "consecutive bad lines are one finding");
    assert_eq!(malformed[0].lines, (1, 3));

    let mut l = lines(&f.log);
    l.insert(3, b"not json at all".to_vec());
    let r = v.verify_bytes(&join(&l));
    assert!(r.has(FindingKind::Malformed));

    // A seal with a malformed signature.
    let mut l = lines(&f.log);
    let s = String::from_utf8(l[0].clone()).unwrap();
    let cut = s.rfind(r#""sig":""#).unwrap() + 7;
    l[0] = format!("{}zz{}", &s[..cut], &s[cut + 2..]).into_bytes();
    let r = v.verify_bytes(&join(&l));
    assert!(r.has(FindingKind::Malformed), "{:#?}", r.findings);

    // A huge line.
    let mut huge = f.log.clone();
    let at = join(&lines(&f.log)[..2]).len();
    huge.splice(at..at, std::iter::repeat_n(b'x', 5 << 20).chain([b'\n']));
    let r = v.verify_bytes(&huge);
    assert_eq!(r.status(), Status::Tampered);
}

#[test]
fn restart_after_crash_is_reported_and_chain_continues() {
    // Run 1 closes; run 2 continues the chain from run 1's head.
    let key = SigningKey::generate();
    let sink = MemorySink::new();
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink.clone())
        .max_batch(4)
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for _ in 0..6 {
        rec.record(|e| {
            e.set_action("a");
        })
        .unwrap();
    }
    drop(rec);
    let head = rt.shutdown().unwrap().chain_head;
    assert_eq!(head.next_seq, 6);
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink.clone())
        .continue_chain(head)
        .build()
        .unwrap();
    rt.recorder()
        .unwrap()
        .record(|e| {
            e.set_action("b");
        })
        .unwrap();
    rt.shutdown().unwrap();
    let r = Verifier::new([key.public_key()]).verify_bytes(&sink.bytes());
    assert_eq!(r.status(), Status::Intact, "{:#?}", r.findings);
    assert_eq!(r.streams, 2);
    assert_eq!(kinds(&r), [FindingKind::Restart]);
    assert_eq!(r.events, 7);
}

/// Mutations of a valid log.
#[derive(Clone, Debug)]
enum Mutation {
    FlipByte { at: usize, bit: u8 },
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
    InsertLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipByte { at, bit }),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::InsertLine),
    ]
}

fn apply(log: &[u8], m: &Mutation) -> Vec<u8> {
    let mut l = lines(log);
    let n = l.len();
    if n == 0 {
        return log.to_vec();
    }
    match *m {
        Mutation::FlipByte { at, bit } => {
            let mut out = log.to_vec();
            let at = at % out.len();
            out[at] ^= 1 << bit;
            return out;
        }
        Mutation::DeleteLine(i) => {
            l.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let i = i % n;
            let copy = l[i].clone();
            l.insert(i, copy);
        }
        Mutation::SwapLines(a, b) => l.swap(a % n, b % n),
        Mutation::Truncate(at) => return log[..at % log.len()].to_vec(),
        Mutation::InsertLine(i) => l.insert(i % (n + 1), br#"{"seq":0,"id":"x"}"#.to_vec()),
    }
    join(&l)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 96 } else { 512 }))]

    #[test]
    fn no_mutation_goes_unreported(muts in proptest::collection::vec(mutation(), 1..4)) {
        thread_local! {
            static FIXTURE: Fixture = {
                let key = SigningKey::generate();
                let log = make_log(&key, 24, 5);
                Fixture { key, log }
            };
        }
        FIXTURE.with(|f| {
            let mut log = f.log.clone();
            for m in &muts {
                log = apply(&log, m);
            }
            prop_assume!(log != f.log);
            let r = verify(f, &log);
            prop_assert_ne!(r.status(), Status::Intact, "mutations {:?} went unreported", muts);
            Ok(())
        })?;
    }
}

/// Gives out the log in pieces of the given sizes, in turn: lines then
/// reach the verifier whole, cut in two, or in many reads.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    turn: usize,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 256 }))]

    /// The report of a log, tampered with or not, does not depend on how
    /// its bytes arrive: whole lines are hashed side by side, lines cut by
    /// a read one piece at a time.
    #[test]
    fn the_report_does_not_depend_on_how_the_bytes_arrive(
        muts in proptest::collection::vec(mutation(), 0..3),
        sizes in proptest::collection::vec(1usize..3000, 1..20),
        capacity in 1usize..5000,
    ) {
        thread_local! {
            static FIXTURE: Fixture = {
                let key = SigningKey::generate();
                let log = make_log(&key, 150, 16);
                Fixture { key, log }
            };
        }
        FIXTURE.with(|f| {
            let mut log = f.log.clone();
            for m in &muts {
                log = apply(&log, m);
            }
            let whole = verify(f, &log);
            let verifier = Verifier::new([f.key.public_key()]);
            let mut run = verifier.start();
            let reader = std::io::BufReader::with_capacity(
                capacity,
                Pieces { data: &log, sizes: sizes.clone(), turn: 0 },
            );
            run.feed("<memory>", reader, &mut |_| {}).unwrap();
            let pieces = run.finish();
            prop_assert_eq!(&whole, &pieces, "pieces {:?}, capacity {}", sizes, capacity);
            if muts.is_empty() {
                prop_assert_eq!(pieces.status(), Status::Intact);
            }
            Ok(())
        })?;
    }
}
