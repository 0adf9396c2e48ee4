//! The log file against a careless or hostile operator: a path that is not
//! a log, a symbolic link, a log of another key, a forged last seal, a
//! second writer, a log deleted, truncated or replaced under the writer,
//! loose permissions, and size rotation that must hold its bound. Every
//! refusal leaves the file byte for byte as it was.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditring::sink::{FileSink, FsyncPolicy};
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, FullPolicy, RecordError, Runtime, RuntimeGuard, SigningKey};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-fs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime(
    key: &SigningKey,
    sink: FileSink,
) -> Result<RuntimeGuard<AuditPayload>, auditring::BuildError> {
    Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink)
        .max_batch(16)
        .max_delay(Duration::from_millis(2))
        .shutdown_timeout(Duration::from_secs(2))
        .full_policy(FullPolicy::Block)
        .build()
}

fn write_log(key: &SigningKey, path: &Path, events: u64) {
    let rt = runtime(key, FileSink::open(path).unwrap()).unwrap();
    let mut rec = rt.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action("db.query").response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();
}

/// Opening `path` (and continuing it with `key`) is refused with a message
/// containing `says`, and the file at `check` is unchanged.
fn refused(key: &SigningKey, path: &Path, check: &Path, says: &str) {
    let before = std::fs::read(check).ok();
    let err = match FileSink::open(path) {
        Err(e) => e.to_string(),
        Ok(sink) => match runtime(key, sink) {
            Err(e) => e.to_string(),
            Ok(rt) => {
                rt.shutdown().unwrap();
                panic!("{} was opened and continued", path.display());
            }
        },
    };
    assert!(err.contains(says), "{}: {err}", path.display());
    assert_eq!(
        std::fs::read(check).ok(),
        before,
        "{} changed",
        check.display()
    );
}

#[test]
fn files_that_are_not_our_logs_are_refused_unchanged() {
    let dir = tempdir("refuse");
    let key = SigningKey::generate();

    for (name, content) in [
        ("blob", &b"blob"[..]),
        ("text", &b"shopping list\nmilk\neggs"[..]),
        ("lines", &b"one\ntwo\n"[..]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        refused(&key, &path, &path, "not an auditring log");
    }

    // A log of the earlier format: named as such.
    let old = dir.join("v1.jsonl");
    std::fs::write(&old, "{\"v\":1,\"kind\":\"seal\",\"stream\":\"x\"}\n").unwrap();
    refused(&key, &old, &old, "format version 1");
    let old = dir.join("v2.jsonl");
    std::fs::write(&old, "{\"v\":2,\"kind\":\"seal\",\"stream\":\"x\"}\n").unwrap();
    refused(&key, &old, &old, "format version 2");

    // A log signed by another key, with a torn tail that must stay.
    let other = dir.join("other.jsonl");
    write_log(&SigningKey::generate(), &other, 20);
    let mut bytes = std::fs::read(&other).unwrap();
    bytes.extend_from_slice(br#"{"seq":20,"id":"0190"#);
    std::fs::write(&other, &bytes).unwrap();
    refused(&key, &other, &other, "not by this runtime's key");

    // A forged last seal: our key id, a signature that does not verify.
    let forged = dir.join("forged.jsonl");
    write_log(&key, &forged, 20);
    let text = std::fs::read_to_string(&forged).unwrap();
    let at = text.rfind(r#""seq_start":"#).unwrap();
    let mut tampered = text.clone();
    tampered.replace_range(at..at + 13, r#""seq_start":9"#);
    // Keep the signature well-formed: change one of its hex digits.
    let sig = tampered.rfind(r#""sig":""#).unwrap() + 7;
    let digit = if &tampered[sig..sig + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig..sig + 1, digit);
    std::fs::write(&forged, &tampered).unwrap();
    refused(&key, &forged, &forged, "does not verify");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_refused_unless_allowed() {
    use std::os::unix::fs::symlink;
    let dir = tempdir("links");
    let key = SigningKey::generate();
    let log = dir.join("real.jsonl");
    write_log(&key, &log, 10);
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "do not touch\n").unwrap();

    let dangling = dir.join("dangling.jsonl");
    let target = dir.join("created-through-link");
    symlink(&target, &dangling).unwrap();
    refused(&key, &dangling, &target, "symbolic link");
    assert!(!target.exists(), "a dangling link created its target");

    let to_log = dir.join("to-log.jsonl");
    symlink(&log, &to_log).unwrap();
    refused(&key, &to_log, &log, "symbolic link");

    let to_notes = dir.join("to-notes.jsonl");
    symlink(&notes, &to_notes).unwrap();
    refused(&key, &to_notes, &notes, "symbolic link");

    // Allowed explicitly, a link to our own log is continued.
    let sink = FileSink::builder(&to_log)
        .follow_symlinks(true)
        .open()
        .unwrap();
    runtime(&key, sink).unwrap().shutdown().unwrap();
    let r = Verifier::new([key.public_key()])
        .verify_files(&[&log], |_| {})
        .unwrap();
    assert_eq!(r.status(), Status::Intact, "{:#?}", r.findings);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_writer_is_refused_and_the_log_stays_intact() {
    let dir = tempdir("two-writers");
    let key = SigningKey::generate();
    let log = dir.join("audit.jsonl");
    let first = runtime(&key, FileSink::open(&log).unwrap()).unwrap();
    let mut rec = first.recorder().unwrap();
    for _ in 0..100 {
        rec.record(|e| {
            e.set_action("first");
        })
        .unwrap();
    }
    // A second runtime in this process, and a second process.
    let err = FileSink::open(&log).unwrap_err();
    assert!(
        err.to_string().contains("in use by another writer"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // (A second process: cli/tests/cli_integrity.rs.)
    drop(rec);
    first.shutdown().unwrap();
    let r = Verifier::new([key.public_key()])
        .verify_files(&[&log], |_| {})
        .unwrap();
    assert_eq!(r.status(), Status::Intact, "{:#?}", r.findings);
    assert_eq!(r.events, 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Records until `record` says the log is unavailable (a required sink
/// failing closed), within a bound.
fn fails_closed(rt: &Runtime<AuditPayload>) {
    let mut rec = rt.recorder().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rec.try_record(|e| {
            e.set_action("after");
        }) {
            Err(RecordError::Unavailable) => return,
            _ if Instant::now() > deadline => panic!("record never became unavailable"),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[test]
fn a_log_changed_under_the_writer_is_a_sink_error_and_fails_closed() {
    let dir = tempdir("under");
    let key = SigningKey::generate();
    for change in ["deleted", "truncated", "replaced"] {
        let log = dir.join(format!("{change}.jsonl"));
        let rt = runtime(
            &key,
            FileSink::builder(&log)
                .fsync(FsyncPolicy::Never)
                .open()
                .unwrap(),
        )
        .unwrap();
        let mut rec = rt.recorder().unwrap();
        for _ in 0..40 {
            rec.record(|e| {
                e.set_action("before");
            })
            .unwrap();
        }
        drop(rec);
        let deadline = Instant::now() + Duration::from_secs(10);
        while rt.stats().sealed < 40 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        match change {
            "deleted" => std::fs::remove_file(&log).unwrap(),
            "truncated" => std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(10)
                .unwrap(),
            _ => {
                let aside = dir.join("aside");
                std::fs::write(&aside, "someone else's file\n").unwrap();
                std::fs::rename(&aside, &log).unwrap();
            }
        }
        fails_closed(&rt);
        assert!(rt.stats().sink_errors > 0, "{change}");
        let err = rt.shutdown().unwrap_err();
        let failure = err.last_sink_error().expect("the sink error is named");
        assert!(failure.message.contains(change), "{change}: {failure:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn loose_permissions_are_reported_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("perms");
    let key = SigningKey::generate();
    let log = dir.join("audit.jsonl");
    write_log(&key, &log, 5);
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&log).unwrap();
    let err = FileSink::builder(&log)
        .refuse_loose_permissions(true)
        .open()
        .unwrap_err();
    assert!(err.to_string().contains("mode 644"), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    // By default it opens (with a warning).
    drop(FileSink::open(&log).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn size_rotation_holds_its_bound_also_after_a_restart() {
    let dir = tempdir("rotation");
    let key = SigningKey::generate();
    for limit in [40_000u64, 100_000, 250_000] {
        let log = dir.join(format!("audit-{limit}.jsonl"));
        let mut largest_batch = 0u64;
        for run in 0..2 {
            let sink = FileSink::builder(&log).rotate_bytes(limit).open().unwrap();
            let rt = Runtime::<AuditPayload>::builder()
                .signing_key(key.clone())
                .sink(sink)
                .max_batch(16)
                .full_policy(FullPolicy::Block)
                .build()
                .unwrap();
            let mut rec = rt.recorder().unwrap();
            for i in 0..1_500u64 {
                rec.record(|e| {
                    e.set_action("db.query")
                        .set_resource(&"r".repeat((i % 200) as usize))
                        .response_size = run * 10_000 + i;
                })
                .unwrap();
            }
            drop(rec);
            rt.shutdown().unwrap();
            // The largest batch this log holds: its longest run of lines
            // between two seals.
            let mut batch = 0u64;
            for f in auditring::verify::log_files(&log).unwrap() {
                for line in std::fs::read(&f).unwrap().split_inclusive(|&b| b == b'\n') {
                    batch += line.len() as u64;
                    if line.starts_with(br#"{"v":3,"kind":"seal""#) {
                        largest_batch = largest_batch.max(batch);
                        batch = 0;
                    }
                }
            }
        }
        let files = auditring::verify::log_files(&log).unwrap();
        assert!(files.len() >= 3, "limit {limit}: {} files", files.len());
        assert!(
            largest_batch < limit / 2,
            "batches are small beside the limit"
        );
        for f in &files {
            let size = std::fs::metadata(f).unwrap().len();
            // One batch over at most, plus the next file's open seal line
            // and a rotate seal line.
            assert!(
                size <= limit + largest_batch + 2_000,
                "limit {limit}: {} is {size} bytes (largest batch {largest_batch})",
                f.display()
            );
        }
        let r = Verifier::new([key.public_key()])
            .verify_files(&files, |_| {})
            .unwrap();
        assert_eq!(r.status(), Status::Intact, "{:#?}", r.findings);
        assert_eq!(r.events, 3_000);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_live_rotating_log_verifies_without_false_alarms() {
    use auditring::verify::{Severity, VerifierState};
    let dir = tempdir("live");
    let key = SigningKey::generate();
    let log = dir.join("audit.jsonl");
    let sink = FileSink::builder(&log)
        .fsync(FsyncPolicy::Never)
        .rotate_bytes(24_000)
        .open()
        .unwrap();
    let rt = runtime(&key, sink).unwrap();
    let mut rec = rt.recorder().unwrap();
    // The writer waits for a verification round every 2,000 events, so the
    // rounds interleave with writing and rotating however slow either is.
    let rounds_done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&rounds_done);
    let writer = std::thread::spawn(move || {
        for i in 0..20_000u64 {
            if i % 2_000 == 0 {
                let want = i / 2_000;
                let deadline = Instant::now() + Duration::from_secs(60);
                while seen.load(std::sync::atomic::Ordering::Acquire) < want
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            rec.record(|e| {
                e.set_action("db.query").response_size = i;
            })
            .unwrap();
        }
    });
    // Verify incrementally, as a collector would, while the writer rotates
    // every few milliseconds.
    let verifier = Verifier::new([key.public_key()]);
    let mut state: Option<VerifierState> = None;
    let mut rounds = 0;
    loop {
        let finished = writer.is_finished();
        let files = auditring::verify::log_files_opened(&log).unwrap();
        let mut pass = match state.take() {
            Some(s) => verifier.resume(s),
            None => verifier.start(),
        };
        pass.feed_opened(files, &mut |_| {}).unwrap();
        let saved = pass.state();
        let report = pass.report();
        let alarms: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Tamper)
            .collect();
        assert!(alarms.is_empty(), "round {rounds}: {alarms:#?}");
        state = Some(saved);
        rounds += 1;
        rounds_done.store(rounds, std::sync::atomic::Ordering::Release);
        if finished {
            break;
        }
    }
    writer.join().unwrap();
    rt.shutdown().unwrap();
    let files = auditring::verify::log_files_opened(&log).unwrap();
    assert!(files.len() > 20, "{} files", files.len());
    let mut pass = verifier.resume(state.unwrap());
    pass.feed_opened(files, &mut |_| {}).unwrap();
    let report = pass.finish();
    assert_eq!(report.status(), Status::Intact, "{:#?}", report.findings);
    assert_eq!(report.sealed_events, 20_000);
    assert!(rounds >= 10, "{rounds} rounds");
    std::fs::remove_dir_all(&dir).unwrap();
}
