//! `Runtime::flush`: every event accepted before the call is sealed and
//! written (and synced) when it returns, so a host that leaves through
//! `std::process::exit` or a panic, without `shutdown`, keeps them. The log
//! then has no close seal (incomplete), and no tamper finding.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use auditring::sink::{FileSink, FsyncPolicy, MemorySink, SinkOperation};
use auditring::verify::{FindingKind, Report, Status, Verifier};
use auditring::{AuditPayload, FlushError, FullPolicy, Runtime, RuntimeGuard, SigningKey};

const TIMEOUT: Duration = Duration::from_secs(30);

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-flush-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A runtime that would not seal on its own for an hour: only a flush (or
/// a full batch) seals.
fn runtime(
    key: &SigningKey,
    sink: impl auditring::sink::Sink + 'static,
) -> RuntimeGuard<AuditPayload> {
    Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink)
        .max_batch(1024)
        .max_delay(Duration::from_secs(3600))
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap()
}

fn record(runtime: &Runtime<AuditPayload>, from: u64, n: u64) {
    let mut r = runtime.recorder().unwrap();
    for i in from..from + n {
        r.record(|e| {
            e.set_action("tool.call");
            e.response_size = i;
        })
        .unwrap();
    }
}

/// Asserts a log cut off after a flush: `events` events, all sealed,
/// nothing tampered, only the close seal missing.
fn assert_flushed(report: &Report, events: u64) {
    assert_eq!(report.tamper, 0, "{:#?}", report.findings);
    assert_eq!(
        report.status(),
        Status::Incomplete,
        "{:#?}",
        report.findings
    );
    assert!(
        report.has(FindingKind::MissingClose),
        "{:#?}",
        report.findings
    );
    assert!(
        !report.has(FindingKind::UnsealedTail),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.events, events, "{:#?}", report.findings);
    assert_eq!(report.sealed_events, events, "{:#?}", report.findings);
}

#[test]
fn flush_seals_and_writes_every_recorded_event() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let runtime = runtime(&key, log.clone());
    // 2500 events: two full batches sealed by size and an open batch of 452
    // that only the flush seals.
    record(&runtime, 0, 2500);
    let report = runtime.flush(TIMEOUT).unwrap();
    assert_eq!(report.sealed, 2500);
    assert_eq!(report.last_sink_error, None);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_flushed(&verified, 2500);
    let last = log.lines().pop().unwrap();
    assert!(last.contains(r#""reason":"timer""#), "{last}");

    // A second flush seals only what came after the first.
    record(&runtime, 2500, 10);
    assert_eq!(runtime.flush(TIMEOUT).unwrap().sealed, 2510);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_flushed(&verified, 2510);
    // Nothing new: a flush writes no empty seal.
    let seals = runtime.stats().seals;
    runtime.flush(TIMEOUT).unwrap();
    assert_eq!(runtime.stats().seals, seals);

    let report = runtime.shutdown().unwrap();
    assert_eq!(report.sealed, 2510);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_eq!(
        verified.status(),
        Status::Intact,
        "{:#?}",
        verified.findings
    );
}

#[test]
fn flush_covers_every_producer_that_finished_recording() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let producers = 4;
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .max_producers(producers)
        .lane_capacity(64)
        .max_batch(100)
        .max_delay(Duration::from_secs(3600))
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(producers));
    let workers: Vec<_> = (0..producers as u64)
        .map(|w| {
            let mut r = runtime.recorder().unwrap();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..777 {
                    r.record(|e| e.response_size = w * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total = producers as u64 * 777;
    assert_eq!(runtime.flush(TIMEOUT).unwrap().sealed, total);
    let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    assert_flushed(&verified, total);
    runtime.shutdown().unwrap();
}

#[test]
fn flush_from_another_thread_through_a_handle() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let runtime = runtime(&key, log.clone());
    record(&runtime, 0, 5);
    let handle = runtime.flush_handle();
    let flushed = std::thread::spawn(move || handle.flush(TIMEOUT))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(flushed.sealed, 5);
    // Once the runtime has stopped, a handle says so.
    let handle = runtime.flush_handle();
    runtime.shutdown().unwrap();
    assert_eq!(handle.flush(TIMEOUT), Err(FlushError::Stopped));
}

#[test]
fn flush_syncs_a_file_sink() {
    let dir = tempdir("file");
    let path = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let sink = FileSink::builder(&path)
        .fsync(FsyncPolicy::Never)
        .open()
        .unwrap();
    let runtime = runtime(&key, sink);
    record(&runtime, 0, 300);
    runtime.flush(TIMEOUT).unwrap();
    let verified = Verifier::new([key.public_key()])
        .verify_files(&[&path], |_| {})
        .unwrap();
    assert_flushed(&verified, 300);
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flush_that_cannot_write_names_the_sink_error() {
    // /dev/full fails every write with ENOSPC: a required sink never
    // writes, so the flush times out and says why.
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(
            FileSink::builder("/dev/full")
                .fsync(FsyncPolicy::Never)
                .open()
                .unwrap(),
        )
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = runtime.flush(Duration::from_millis(300)).unwrap_err();
    match &err {
        FlushError::TimedOut {
            timeout,
            last_sink_error: Some(failure),
        } => {
            assert_eq!(*timeout, Duration::from_millis(300));
            assert_eq!(failure.operation, SinkOperation::Write);
            assert_eq!(failure.kind, std::io::ErrorKind::StorageFull);
        }
        other => panic!("expected a timeout naming the sink error, got {other:?}"),
    }
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(runtime.shutdown().is_err());
}

/// The role a child process of `exit_without_shutdown_*` plays.
const CHILD_ROLE: &str = "AUDITRING_FLUSH_CHILD";
const CHILD_LOG: &str = "AUDITRING_FLUSH_CHILD_LOG";

/// Runs this test binary again as a child in `role`, writing to `log`.
fn run_child(test: &str, role: &str, log: &Path) -> std::process::Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_LOG, log)
        .output()
        .expect("run the child");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("running 0 tests"),
        "the child ran no test: is {test} still the test's name?"
    );
    out
}

/// In a child: records, flushes, records more without a flush, and exits
/// without shutting the runtime down.
fn child_exits(log: &Path) -> ! {
    let key = SigningKey::from_file(log.with_extension("pem")).unwrap();
    // The default fsync policy (every second) and an hour's batch delay:
    // without a flush, nothing recorded here would be sealed or synced.
    let runtime = runtime(&key, FileSink::open(log).unwrap());
    record(&runtime, 0, 1000);
    runtime.flush(TIMEOUT).unwrap();
    // Accepted but never flushed: lost on exit.
    record(&runtime, 1000, 50);
    std::process::exit(0);
}

/// In a child: records, then panics with the flush-on-panic hook
/// installed; the hook flushes, and the process exits.
fn child_panics(log: &Path) -> ! {
    let key = SigningKey::from_file(log.with_extension("pem")).unwrap();
    let runtime = runtime(&key, FileSink::open(log).unwrap());
    runtime.flush_handle().flush_on_panic(TIMEOUT);
    record(&runtime, 0, 700);
    let _ = std::panic::catch_unwind(|| panic!("the host fails"));
    std::process::exit(70);
}

fn parent_log(name: &str) -> (PathBuf, SigningKey) {
    let dir = tempdir(name);
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    std::fs::write(log.with_extension("pem"), key.to_pkcs8_pem().as_bytes()).unwrap();
    (log, key)
}

#[test]
fn exit_without_shutdown_keeps_flushed_events() {
    if let Some(log) = std::env::var_os(CHILD_LOG) {
        if std::env::var(CHILD_ROLE).as_deref() == Ok("exit") {
            child_exits(Path::new(&log));
        }
        return;
    }
    let (log, key) = parent_log("exit");
    let out = run_child("exit_without_shutdown_keeps_flushed_events", "exit", &log);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verified = Verifier::new([key.public_key()])
        .verify_files(&[&log], |_| {})
        .unwrap();
    // The 1000 flushed events are sealed; the 50 recorded after the flush
    // were lost with the process, which is what the docs promise.
    assert_flushed(&verified, 1000);
    std::fs::remove_dir_all(log.parent().unwrap()).unwrap();
}

#[test]
fn panic_hook_flushes_before_the_process_ends() {
    if let Some(log) = std::env::var_os(CHILD_LOG) {
        if std::env::var(CHILD_ROLE).as_deref() == Ok("panic") {
            child_panics(Path::new(&log));
        }
        return;
    }
    let (log, key) = parent_log("panic");
    let out = run_child("panic_hook_flushes_before_the_process_ends", "panic", &log);
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the host fails"),
        "the previous hook still ran: {out:?}"
    );
    let verified = Verifier::new([key.public_key()])
        .verify_files(&[&log], |_| {})
        .unwrap();
    assert_flushed(&verified, 700);
    std::fs::remove_dir_all(log.parent().unwrap()).unwrap();
}
