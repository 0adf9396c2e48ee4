//! A long soak: many events through the runtime from several producers
//! with `FullPolicy::Block` and size rotation, verified incrementally as
//! the files rotate, with the process's memory sampled throughout.
//!
//! ```sh
//! scripts/soak.sh 1000000000      # or: cargo run --release --example soak -- EVENTS
//! ```
//!
//! Settings (environment): `SOAK_PRODUCERS` (4), `SOAK_ROTATE_BYTES`
//! (256 MiB), `SOAK_VERIFY_EVERY_S` (5), `SOAK_MAX_FILES` (16: producers
//! pause while more files wait to be verified), `SOAK_DIR` (a new temporary directory), `SOAK_KEEP_FILES`
//! (unset: a rotated file is deleted once fully verified, so the disk
//! holds a few files whatever the event count; the verifier's saved state
//! carries the verdict across).
//!
//! It prints one progress line per verification round and ends with
//! `soak events=... accepted=... sealed=... verified=... findings=...
//! rss_min_mib=... rss_max_mib=... seconds=...`, exiting non-zero unless
//! accepted == sealed == verified and no finding but restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditring::sink::{FileSink, FsyncPolicy};
use auditring::verify::{Severity, Status, Verifier, VerifierState};
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Verifies what was added to the log since `state`, deletes the rotated
/// files before the one the new state stands in (verified, and no longer
/// needed to resume), and returns the new state.
fn verify_round(
    verifier: &Verifier,
    log: &Path,
    state: Option<VerifierState>,
    keep: bool,
) -> Result<VerifierState, Box<dyn std::error::Error>> {
    let files = auditring::verify::log_files_opened(log)?;
    let mut pass = match state {
        Some(state) => verifier.resume(state),
        None => verifier.start(),
    };
    pass.feed_opened(files, &mut |_| {})?;
    let state = pass.state();
    if !keep {
        // Listed again: the file the state stands in may have been renamed
        // by a rotation meanwhile; rotated files keep their names.
        let mut files = auditring::verify::log_files_opened(log)?;
        let done = state.verified_before(&mut files)?.unwrap_or(0);
        for (path, _) in &files[..done] {
            std::fs::remove_file(path)?;
        }
    }
    Ok(state)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let producers = env_u64("SOAK_PRODUCERS", 4).max(1);
    let rotate = env_u64("SOAK_ROTATE_BYTES", 256 << 20);
    let keep = std::env::var_os("SOAK_KEEP_FILES").is_some();
    let dir = std::env::var_os("SOAK_DIR").map_or_else(
        || std::env::temp_dir().join(format!("auditring-soak-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let verifier = Verifier::new([key.public_key()]);
    println!(
        "soak: {events} events, {producers} producers, rotation at {} MiB, log {}",
        rotate >> 20,
        log.display()
    );

    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(
            FileSink::builder(&log)
                .fsync(FsyncPolicy::default())
                .rotate_bytes(rotate)
                .open()?,
        )
        .max_producers(producers as usize)
        .full_policy(FullPolicy::Block)
        .build()?;
    let started = Instant::now();
    // Producers pause while the unverified files pile up, so the disk holds
    // a bounded backlog however long the soak runs.
    let pause = Arc::new(AtomicBool::new(false));
    let max_backlog = env_u64("SOAK_MAX_FILES", 16) as usize;
    let mut workers = Vec::new();
    for p in 0..producers {
        let pause = Arc::clone(&pause);
        let share = events / producers + u64::from(p < events % producers);
        let mut recorder = runtime.recorder()?;
        workers.push(std::thread::spawn(move || {
            for i in 0..share {
                if i % 1024 == 0 {
                    while pause.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                recorder
                    .record(|e| {
                        e.set_session_id("soak-session")
                            .set_agent_id("soak-agent")
                            .set_action(if i % 3 == 0 { "http.post" } else { "http.get" })
                            .set_resource("https://api.example.com/v1/orders");
                        e.decision = if i % 10 == 0 {
                            Decision::Deny
                        } else {
                            Decision::Allow
                        };
                        e.enforcement_latency_us = 5 + i % 50;
                        e.response_size = i;
                    })
                    .expect("Block never refuses while the sink writes");
            }
        }));
    }

    // Verify as the files rotate; sample memory meanwhile.
    let (mut rss_min, mut rss_max) = (f64::MAX, 0.0f64);
    let mut state = None;
    let every = Duration::from_secs(env_u64("SOAK_VERIFY_EVERY_S", 5));
    let mut next_round = Instant::now() + every;
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        if !keep {
            let backlog = std::fs::read_dir(&dir)?.count();
            pause.store(backlog > max_backlog, Ordering::Relaxed);
        }
        let rss = rss_mib();
        rss_min = rss_min.min(rss);
        rss_max = rss_max.max(rss);
        if Instant::now() >= next_round {
            next_round = Instant::now() + every;
            let s = verify_round(&verifier, &log, state.take(), keep)?;
            let report = s.report();
            println!(
                "t={:.0}s accepted={} verified_sealed={} tamper={} rss_mib={rss:.0}",
                started.elapsed().as_secs_f64(),
                runtime.stats().accepted,
                report.sealed_events,
                report.tamper
            );
            for f in report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Tamper)
            {
                println!("  {f}");
            }
            state = Some(s);
        }
    }
    for w in workers {
        w.join().expect("producer");
    }
    let report = runtime.shutdown()?;
    let seconds = started.elapsed().as_secs_f64();

    let files = auditring::verify::log_files_opened(&log)?;
    let mut pass = match state {
        Some(s) => verifier.resume(s),
        None => verifier.start(),
    };
    pass.feed_opened(files, &mut |_| {})?;
    let verified = pass.finish();
    let unexpected = verified
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .count() as u64
        + verified.findings_not_kept;
    println!(
        "soak events={events} accepted={} sealed={} verified={} status={:?} findings={unexpected} rss_min_mib={rss_min:.0} rss_max_mib={rss_max:.0} seconds={seconds:.0} events_per_s={:.0}",
        report.accepted,
        report.sealed,
        verified.sealed_events,
        verified.status(),
        events as f64 / seconds
    );
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let ok = report.accepted == events
        && report.sealed == events
        && verified.sealed_events == events
        && verified.status() == Status::Intact
        && unexpected == 0;
    if ok {
        Ok(())
    } else {
        Err("the soak failed: counts differ or the log has findings".into())
    }
}
