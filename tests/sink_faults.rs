//! Sinks under faults: unwritable paths, a full disk, I/O errors, slow and
//! panicking sinks, existing logs with a torn tail or another key. Counts
//! are exact and `record` returns what the failure policy promises.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use auditring::sink::{
    Batch, FileSink, FsyncPolicy, MemorySink, Sink, SinkOperation, SinkPolicy, WriterSink,
};
use auditring::verify::{FindingKind, Status, Verifier};
use auditring::{
    AuditPayload, BuildError, FullPolicy, RecordError, Runtime, ShutdownError, SigningKey,
};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (bounded) until `cond` holds; the runtime's writer works on its
/// own thread, so its effects are observed, not scheduled.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::yield_now();
    }
}

fn record_n(runtime: &Runtime<AuditPayload>, n: u64) {
    let mut r = runtime.recorder().unwrap();
    for i in 0..n {
        r.record(|e| {
            e.set_action("test");
            e.response_size = i;
        })
        .unwrap();
    }
}

/// A writer whose writes fail with `kind` while `failures` is above zero.
#[derive(Clone)]
struct Flaky {
    failures: Arc<AtomicU64>,
    kind: io::ErrorKind,
    data: Arc<Mutex<Vec<u8>>>,
}

impl Flaky {
    fn new(kind: io::ErrorKind, failures: u64) -> Self {
        Self {
            failures: Arc::new(AtomicU64::new(failures)),
            kind,
            data: Arc::default(),
        }
    }
}

impl Write for Flaky {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(io::Error::new(self.kind, "injected failure"));
        }
        self.data.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn unwritable_directory_is_reported_with_the_path() {
    let err = FileSink::open("/nonexistent-auditring-dir/audit.jsonl").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent-auditring-dir/audit.jsonl"),
        "{msg}"
    );
    assert!(msg.contains("directory exists and is writable"), "{msg}");
}

#[test]
fn disk_full_best_effort_counts_and_goes_on() {
    // /dev/full fails every write with ENOSPC.
    let full = FileSink::builder("/dev/full")
        .fsync(FsyncPolicy::Never)
        .open()
        .unwrap();
    let log = MemorySink::new();
    let key = SigningKey::generate();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink_with(full, SinkPolicy::BestEffort)
        .sink(log.clone())
        .max_batch(10)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    record_n(&runtime, 100);
    // The runtime names the failure: the sink, ENOSPC's kind and message.
    eventually("a failed write", || runtime.stats().sink_errors > 0);
    let failure = runtime.last_sink_error().expect("a sink failed");
    assert_eq!(
        (failure.sink.as_str(), failure.operation, failure.kind),
        ("file", SinkOperation::Write, io::ErrorKind::StorageFull)
    );
    assert!(
        failure.message.contains("No space left on device"),
        "{failure}"
    );
    let report = runtime.shutdown().unwrap();
    assert_eq!(
        (
            report.accepted,
            report.sealed,
            report.dropped,
            report.refused
        ),
        (100, 100, 0, 0)
    );
    // One failed attempt per sealed batch (open, ten full batches, close,
    // and any a timer cut), plus the final flush.
    assert!(report.seals >= 12);
    assert_eq!(report.sink_errors, report.seals + 1, "{report:?}");
    // The last failure was the final flush (fsync of /dev/full).
    let failure = report.last_sink_error.as_ref().expect("a sink failed");
    assert_eq!(
        (failure.sink.as_str(), failure.operation),
        ("file", SinkOperation::Flush)
    );
    // The failures are signed into the next seals of the healthy log.
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_eq!(verified.status(), Status::Intact, "{:?}", verified.findings);
    // A batch's failure is signed by a later seal once the writer has
    // reported it; the last ones have no later seal.
    let signed: u64 = verified
        .of_kind(FindingKind::SinkErrors)
        .map(|f| f.count.unwrap())
        .sum();
    assert!(
        signed > 0 && signed <= report.seals,
        "signed sink errors: {signed}"
    );
}

#[test]
fn disk_full_required_refuses_new_events() {
    let full = FileSink::builder("/dev/full")
        .fsync(FsyncPolicy::Never)
        .open()
        .unwrap();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(full)
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The opening seal already fails: the runtime refuses events.
    eventually("the intake to close", || runtime.stats().sink_errors > 0);
    let mut r = runtime.recorder().unwrap();
    assert_eq!(r.record(|_| {}), Err(RecordError::Unavailable));
    assert_eq!(r.try_record(|_| {}), Err(RecordError::Unavailable));
    assert!(
        RecordError::Unavailable
            .to_string()
            .contains("required audit sink")
    );
    let stats = runtime.stats();
    assert_eq!((stats.accepted, stats.dropped, stats.refused), (0, 0, 2));
    drop(r);
    let failure = runtime.last_sink_error().expect("the sink failed");
    assert_eq!(failure.kind, io::ErrorKind::StorageFull);
    // The sink never recovers: shutdown gives up after its timeout, and
    // says why.
    let err = runtime.shutdown().unwrap_err();
    let message = err.to_string();
    match &err {
        ShutdownError::TimedOut {
            timeout,
            last_sink_error: Some(failure),
        } => {
            assert_eq!(*timeout, Duration::from_millis(300));
            assert_eq!(failure.sink, "file");
            assert_eq!(failure.operation, SinkOperation::Write);
            assert_eq!(failure.kind, io::ErrorKind::StorageFull);
        }
        other => panic!("expected a timeout naming the sink error, got {other:?}"),
    }
    assert!(message.contains("No space left on device"), "{message}");
    assert!(message.contains("StorageFull"), "{message}");
    assert!(message.contains("sink 'file' write failed"), "{message}");
}

#[test]
fn io_error_required_retries_then_resumes_without_loss() {
    let flaky = Flaky::new(io::ErrorKind::Other, 5);
    let key = SigningKey::generate();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(WriterSink::new("flaky", flaky.clone()))
        .max_batch(8)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    // The opening seal fails five times, then the sink recovers.
    eventually("the sink to recover", || {
        flaky.failures.load(Ordering::SeqCst) == 0 && !flaky.data.lock().unwrap().is_empty()
    });
    eventually("recording to resume", || {
        runtime.recorder().unwrap().record(|_| {}).is_ok()
    });
    record_n(&runtime, 50);
    let report = runtime.shutdown().unwrap();
    assert_eq!(report.sealed, report.accepted);
    assert_eq!(report.sink_errors, 5);
    // The sink recovered; its last failure is still on record.
    let failure = report.last_sink_error.expect("the sink failed");
    assert_eq!(
        (
            failure.sink.as_str(),
            failure.kind,
            failure.message.as_str()
        ),
        ("flaky", io::ErrorKind::Other, "injected failure")
    );
    assert_eq!(report.dropped, 0);
    let bytes = flaky.data.lock().unwrap().clone();
    let verified = Verifier::new([key.public_key()]).verify_bytes(&bytes);
    assert_eq!(verified.status(), Status::Intact, "{:?}", verified.findings);
    assert_eq!(
        verified.events, report.accepted,
        "every accepted event written exactly once"
    );
}

/// A sink that takes `delay` per batch.
struct Slow(Duration, MemorySink);

impl Sink for Slow {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        std::thread::sleep(self.0);
        self.1.write_batch(batch)
    }
}

#[test]
fn slow_sink_with_drop_policy_counts_and_signs_every_loss() {
    let log = MemorySink::new();
    let key = SigningKey::generate();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(Slow(Duration::from_millis(5), log.clone()))
        .max_batch(64)
        .lane_capacity(64)
        .full_policy(FullPolicy::Drop)
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    let attempts = 20_000u64;
    let mut full = 0;
    for i in 0..attempts {
        match r.record(|e| e.response_size = i) {
            Ok(()) => {}
            Err(RecordError::Full) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    drop(r);
    let report = runtime.shutdown().unwrap();
    assert!(full > 0, "a 5 ms sink must fall behind 20k events");
    assert_eq!(report.dropped, full);
    assert_eq!(report.accepted + report.dropped, attempts);
    assert_eq!(report.sealed, report.accepted);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_eq!(
        verified.status(),
        Status::Incomplete,
        "loss is incompleteness, not tampering"
    );
    assert!(
        verified
            .findings
            .iter()
            .all(|f| f.kind == FindingKind::Loss)
    );
    assert_eq!(verified.dropped, full, "every drop is signed");
    assert_eq!(verified.events, report.accepted);
}

#[test]
fn slow_sink_with_block_policy_loses_nothing() {
    let log = MemorySink::new();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(Slow(Duration::from_millis(2), log.clone()))
        .max_batch(64)
        .lane_capacity(64)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    record_n(&runtime, 3_000);
    let report = runtime.shutdown().unwrap();
    assert_eq!(
        (report.accepted, report.sealed, report.dropped),
        (3_000, 3_000, 0)
    );
}

struct Panicking;

impl Sink for Panicking {
    fn write_batch(&mut self, _: &Batch<'_>) -> io::Result<()> {
        panic!("sink bug");
    }
}

#[test]
fn panicking_sink_is_a_failed_sink_not_a_dead_signer() {
    let log = MemorySink::new();
    let key = SigningKey::generate();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink_with(Panicking, SinkPolicy::BestEffort)
        .sink(log.clone())
        .max_batch(10)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    record_n(&runtime, 30);
    let report = runtime.shutdown().unwrap();
    assert_eq!((report.accepted, report.sealed), (30, 30));
    assert_eq!(
        report.sink_errors, report.seals,
        "one failure per sealed batch"
    );
    let failure = report.last_sink_error.expect("the sink panicked");
    assert_eq!(failure.message, "the sink panicked: sink bug");
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_eq!(verified.status(), Status::Intact);
    assert_eq!(verified.events, 30);
}

#[test]
fn torn_tail_is_cut_and_the_chain_continues() {
    let dir = tempdir("torn");
    let path = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let build = || {
        Runtime::<AuditPayload>::builder()
            .signing_key(key.clone())
            .sink(FileSink::open(&path).unwrap())
            .max_batch(8)
            .max_delay(Duration::from_secs(3600))
            .full_policy(FullPolicy::Block)
            .build()
            .unwrap()
    };
    let runtime = build();
    record_n(&runtime, 20);
    runtime.shutdown().unwrap();
    // A crash mid-write: the close seal never made it (its four events,
    // seq 16..19, stay unsealed) and the last line is torn in half.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let close = lines.pop().unwrap();
    assert!(close.contains(r#""reason":"close""#));
    let mut crashed = lines.join("\n");
    crashed.push('\n');
    crashed.push_str(&lines[lines.len() - 1][..50]);
    std::fs::write(&path, crashed).unwrap();

    let runtime = build();
    record_n(&runtime, 5);
    runtime.shutdown().unwrap();
    let verified = Verifier::new([key.public_key()])
        .verify_files(&[&path], |_| {})
        .unwrap();
    assert_eq!(
        verified.status(),
        Status::Incomplete,
        "{:#?}",
        verified.findings
    );
    let tail: Vec<_> = verified.of_kind(FindingKind::UnsealedTail).collect();
    assert_eq!(tail.len(), 1, "{:#?}", verified.findings);
    assert_eq!(tail[0].count, Some(4), "the close seal's four events");
    assert_eq!(tail[0].seq, Some((16, 19)));
    assert!(verified.has(FindingKind::Restart));
    assert_eq!(verified.sealed_events, 16 + 5);
    // The half line is gone: every line is a whole record.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().all(
            |l| (l.starts_with(r#"{"seq":"#) || l.starts_with(r#"{"v":3,"#)) && l.ends_with('}')
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn existing_log_of_another_key_continues_only_when_trusted_and_needs_both_keys() {
    let dir = tempdir("rekey");
    let path = dir.join("audit.jsonl");
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(old.clone())
        .sink(FileSink::open(&path).unwrap())
        .build()
        .unwrap();
    record_n(&runtime, 10);
    runtime.shutdown().unwrap();
    // A new key does not continue a log it cannot verify ...
    let before = std::fs::read(&path).unwrap();
    let err = Runtime::<AuditPayload>::builder()
        .signing_key(new.clone())
        .sink(FileSink::open(&path).unwrap())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("trust_key"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // ... unless told to trust the old one (a key rotation).
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(new.clone())
        .sink(
            FileSink::builder(&path)
                .trust_key(old.public_key())
                .open()
                .unwrap(),
        )
        .build()
        .unwrap();
    record_n(&runtime, 10);
    runtime.shutdown().unwrap();
    let both = Verifier::new([old.public_key(), new.public_key()])
        .verify_files(&[&path], |_| {})
        .unwrap();
    assert_eq!(both.status(), Status::Intact, "{:#?}", both.findings);
    assert_eq!(both.events, 20);
    let only_new = Verifier::new([new.public_key()])
        .verify_files(&[&path], |_| {})
        .unwrap();
    assert_eq!(
        only_new.of_kind(FindingKind::UnknownKey).count(),
        2,
        "the old run's seals"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_is_not_a_log_is_refused() {
    let dir = tempdir("garbage");
    let path = dir.join("notes.txt");
    std::fs::write(&path, "shopping list\nmilk\n").unwrap();
    let err = FileSink::open(&path).unwrap_err();
    assert!(err.to_string().contains("is not an auditring log"), "{err}");
    // Through the runtime builder as well (a sink that reports a bad tail).
    struct BadTail;
    impl Sink for BadTail {
        fn write_batch(&mut self, _: &Batch<'_>) -> io::Result<()> {
            Ok(())
        }
        fn resume(
            &mut self,
            _: &auditring::PublicKey,
        ) -> io::Result<Option<auditring::sink::LogTail>> {
            Err(io::Error::other("damaged"))
        }
    }
    let err = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(BadTail)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Resume { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotation_by_size_keeps_one_verifiable_chain() {
    let dir = tempdir("rotate");
    let path = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let sink = FileSink::builder(&path)
        .rotate_bytes(20_000)
        .fsync(FsyncPolicy::Never)
        .open()
        .unwrap();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink)
        .max_batch(16)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    record_n(&runtime, 500);
    runtime.shutdown().unwrap();
    let mut files = FileSink::open(&path).unwrap().rotated_files().unwrap();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.lines()
                .last()
                .unwrap()
                .contains(r#""reason":"rotate""#),
            "{f:?} ends with a rotate seal"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    files.push(path.clone());
    let verified = Verifier::new([key.public_key()])
        .verify_files(&files, |_| {})
        .unwrap();
    assert_eq!(
        verified.status(),
        Status::Intact,
        "{:#?}",
        verified.findings
    );
    assert_eq!((verified.events, verified.streams), (500, 1));
    // One file missing from the middle is detected.
    let mut gap = files.clone();
    gap.remove(1);
    let broken = Verifier::new([key.public_key()])
        .verify_files(&gap, |_| {})
        .unwrap();
    assert_eq!(broken.status(), Status::Tampered);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shutdown_with_many_producers_writes_everything_accepted() {
    let producers = 4;
    let log = MemorySink::new();
    let key = SigningKey::generate();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .max_producers(producers)
        .lane_capacity(256)
        .full_policy(FullPolicy::Drop)
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(producers + 1));
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let mut r = runtime.recorder().unwrap();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let (mut ok, mut full) = (0u64, 0u64);
                loop {
                    match r.record(|e| e.response_size = ok) {
                        Ok(()) => ok += 1,
                        Err(RecordError::Full) => full += 1,
                        Err(RecordError::Closed) => return (ok, full),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    // Let the producers run until the log holds a good amount.
    eventually("events to be sealed", || runtime.stats().sealed > 20_000);
    let report = runtime.shutdown().unwrap();
    let (ok, full) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(report.accepted, ok);
    assert_eq!(report.sealed, ok, "accepted == written after shutdown");
    assert_eq!(report.dropped, full);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_ne!(verified.status(), Status::Tampered);
    assert!(verified.has(FindingKind::Restart) || verified.streams == 1);
    assert_eq!(verified.events, ok);
    assert_eq!(verified.dropped, full);
}
