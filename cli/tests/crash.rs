//! Crash safety: a child process records continuously into a `FileSink`
//! with `FsyncPolicy::EveryBatch` and is killed with SIGKILL at random
//! moments, then restarted on the same log. Every batch the child reported
//! as written before the kill must be in the log and verify; the torn tail
//! is reported as an unsealed tail, never as tampering; each restart
//! continues the chain, and the whole file verifies.
//!
//! `AUDITRING_CRASH_ROUNDS` sets the number of kills (default 20),
//! `AUDITRING_CRASH_VERIFY_EVERY` how often the log is verified (default
//! every round), `AUDITRING_CRASH_SEED` replays a run.
//! `scripts/crash-soak.sh` runs 1,000.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use auditring::verify::{FindingKind, Severity, Verifier};
use auditring::{PublicKey, SigningKey};

const BIN: &str = env!("CARGO_BIN_EXE_auditring");

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// SplitMix64: a reproducible stream of kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Runs the demo writer until `kill_after` (or to completion when `None`);
/// returns the last `sealed <n>` count it reported.
fn run_child(key: &Path, log: &Path, events: u64, kill_after: Option<Duration>) -> u64 {
    let mut child = Command::new(BIN)
        .args(["demo", "--key"])
        .arg(key)
        .arg("--out")
        .arg(log)
        .args([
            "--events",
            &events.to_string(),
            "--max-batch",
            "64",
            "--fsync",
            "every-batch",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("sealed ").and_then(|n| n.parse().ok()) {
                let _ = tx.send(n);
            }
        }
    });
    let mut last = 0;
    match kill_after {
        Some(delay) => {
            let deadline = Instant::now() + delay;
            // Collect reports until the deadline, then kill at once.
            while let Ok(n) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                last = n;
                if Instant::now() >= deadline {
                    break;
                }
            }
            child.kill().expect("SIGKILL the writer");
            let _ = child.wait();
        }
        None => {
            let status = child.wait().expect("writer runs to completion");
            assert!(status.success(), "the demo writer failed: {status}");
        }
    }
    reader.join().expect("reader");
    // Reports already in the pipe were made before the kill.
    while let Ok(n) = rx.try_recv() {
        last = n;
    }
    last
}

#[test]
fn killed_writers_leave_a_verifiable_log() {
    let rounds = env_u64("AUDITRING_CRASH_ROUNDS").unwrap_or(20);
    // Verifying re-reads the whole log: a long soak checks every n-th round
    // (and always the last one).
    let verify_every = env_u64("AUDITRING_CRASH_VERIFY_EVERY").unwrap_or(1).max(1);
    let seed = env_u64("AUDITRING_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("crash test: {rounds} rounds, AUDITRING_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let dir = std::env::temp_dir().join(format!("auditring-crash-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("key.pem");
    let key = SigningKey::generate();
    std::fs::write(&key_path, key.to_pkcs8_pem().as_bytes()).unwrap();
    let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
    let log = dir.join("audit.jsonl");

    let mut promised = 0u64;
    // Runs that reported a written batch: each of them wrote (and synced)
    // its opening seal, so each is a stream of the final log.
    let mut reporting_runs = 0u64;
    for round in 0..rounds {
        // Kill between 5 ms and 150 ms after start: sometimes before the
        // first batch, usually mid-stream.
        let delay = Duration::from_millis(5 + rng.next() % 146);
        let sealed = run_child(&key_path, &log, 0, Some(delay));
        promised += sealed;
        if sealed > 0 {
            reporting_runs += 1;
        }
        if (round + 1) % verify_every != 0 && round + 1 != rounds {
            continue;
        }
        if !log.exists() {
            // Every child so far was killed before it created the log (a
            // slow start on a loaded machine): a valid outcome as long as
            // none of them promised anything.
            assert_eq!(
                promised, 0,
                "round {round} (seed {seed}): {promised} events reported written, but there is no log"
            );
            continue;
        }

        let report = Verifier::new([public.clone()])
            .verify_files(&[&log], |_| {})
            .unwrap();
        let tamper: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Tamper)
            .collect();
        assert!(
            tamper.is_empty(),
            "round {round} (seed {seed}): {tamper:#?}"
        );
        assert!(
            report.sealed_events >= promised,
            "round {round} (seed {seed}): {} events sealed in the file, {promised} reported written",
            report.sealed_events
        );
    }
    // A last run that finishes cleanly continues the chain and closes it.
    promised += run_child(&key_path, &log, 500, None);
    let report = Verifier::new([public])
        .verify_files(&[&log], |_| {})
        .unwrap();
    for f in &report.findings {
        assert!(
            matches!(
                f.kind,
                FindingKind::UnsealedTail | FindingKind::Restart | FindingKind::TornLine
            ),
            "seed {seed}: unexpected finding {f}"
        );
    }
    assert!(
        !report.has(FindingKind::MissingClose),
        "the last run closed the log"
    );
    assert!(report.sealed_events >= promised);
    // Every run that got as far as its opening seal opened its own stream on
    // the same chain (a writer killed within milliseconds may not have; one
    // that reported a written batch has).
    assert!(
        report.streams > reporting_runs && report.streams <= rounds + 1,
        "seed {seed}: {} streams, {reporting_runs} killed runs reported writes",
        report.streams
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
