//! A simulated multi-threaded gateway: pinned worker threads make
//! enforcement decisions and record one audit event each; the runtime's
//! signer seals them into a signed log file. At the end it prints the
//! hot-path latency of `record` and the capture-to-sealed latency (HDR
//! percentiles), the exact accepted/sealed/dropped counts and the log's
//! path, then verifies the log.
//!
//! Run with `cargo run --release --example gateway`. Settings come from the
//! environment: `GATEWAY_WORKERS` (default 2), `GATEWAY_EVENTS` per worker
//! (default 250000), `GATEWAY_RATE` decisions per second per worker
//! (default 50000; 0 = as fast as possible), `GATEWAY_DIR` for the log and
//! key (default: a new directory under the system's temporary directory).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auditring::sink::FileSink;
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};
use hdrhistogram::Histogram;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a whole number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

const TICK: Duration = Duration::from_millis(1);

const ACTIONS: [&str; 4] = ["http.get", "http.post", "tool.call", "llm.inference"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = env_u64("GATEWAY_WORKERS", 2).max(1) as usize;
    let events = env_u64("GATEWAY_EVENTS", 250_000);
    let rate = env_u64("GATEWAY_RATE", 50_000);
    // Decisions per 1 ms tick and worker; 0 = no pacing.
    let per_tick = rate.div_ceil(1000);
    let cores = auditring::capture::affinity::available_cores();

    let dir = match std::env::var_os("GATEWAY_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("auditring-gateway-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let log_path = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    std::fs::write(dir.join("audit-public.pem"), key.public_key().to_pem())?;

    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(FileSink::open(&log_path)?)
        .lane_capacity(4096)
        .max_producers(workers)
        .full_policy(FullPolicy::Drop)
        .build()?;
    // A panic that ends the process (`panic = "abort"`, or a host that
    // exits on a worker's panic) skips `shutdown`: the events accepted
    // before it would be lost with the open batch. The hook seals and
    // writes them first.
    runtime
        .flush_handle()
        .flush_on_panic(Duration::from_secs(2));
    let capture = runtime.capture().clone();

    let barrier = Arc::new(Barrier::new(workers + 1));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let mut recorder = capture.recorder()?;
            let barrier = Arc::clone(&barrier);
            let core = cores.get(w % cores.len().max(1)).copied();
            Ok(std::thread::Builder::new()
                .name(format!("gateway-worker-{w}"))
                .spawn(move || {
                    if let Some(core) = core
                        && let Err(e) = auditring::capture::affinity::pin_current_thread(core)
                    {
                        eprintln!("worker {w}: {e}");
                    }
                    let clock = quanta::Clock::new();
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
                    let session = format!("sess-{w:04}-0192f3a4-5b6c-7d8e");
                    barrier.wait();
                    // Decisions arrive in 1 ms bursts (`per_tick` each), as
                    // requests do; between bursts the worker sleeps, leaving
                    // the CPU to other work (and to the signer).
                    let mut tick = Instant::now();
                    for i in 0..events {
                        if per_tick > 0 && i % per_tick == 0 && i > 0 {
                            tick += TICK;
                            if let Some(rest) = tick.checked_duration_since(Instant::now()) {
                                std::thread::sleep(rest);
                            }
                        }
                        let deny = i % 10 == 0;
                        let start = clock.raw();
                        let _ = recorder.record(|e| {
                            e.set_session_id(&session)
                                .set_agent_id("agent-research")
                                .set_action(ACTIONS[(i % 4) as usize])
                                .set_resource("https://api.example.com/v1/orders")
                                .set_bundle_version("bundle-2026.11");
                            e.decision = if deny {
                                Decision::Deny
                            } else {
                                Decision::Allow
                            };
                            if deny {
                                e.set_deny_reason("egress not in allowlist");
                            }
                            e.enforcement_latency_us = 3 + i % 17;
                        });
                        let end = clock.raw();
                        hist.saturating_record(clock.delta_as_nanos(start, end));
                    }
                    hist
                })?)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;

    let started = Instant::now();
    barrier.wait();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for h in handles {
        hist.add(h.join().expect("worker panicked"))?;
    }
    let recording = started.elapsed();
    // Seal and write everything accepted (what a host does before
    // `std::process::exit`), then read the histograms.
    runtime.flush(Duration::from_secs(30))?;
    let snapshot = runtime.stats_snapshot();
    let report = runtime.shutdown()?;
    let elapsed = started.elapsed();

    println!("gateway: {workers} workers x {events} decisions, target {rate}/s per worker");
    println!();
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "latency", "count", "p50", "p99", "p99.9", "max", "unit"
    );
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "record() (hot path)",
        hist.len(),
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
        "ns"
    );
    for stage in &snapshot.stages {
        let l = &stage.latency;
        println!(
            "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            stage.stage.as_str(),
            l.count,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            stage.unit
        );
    }
    println!();
    println!(
        "{:<16} {:<8} {:>10} {:>12} {:>12} {:>12}",
        "action", "decision", "events", "enforce p50", "p99", "max (us)"
    );
    for row in &snapshot.payload {
        let e = &row.enforcement_us;
        println!(
            "{:<16} {:<8} {:>10} {:>12} {:>12} {:>12}",
            row.action, row.decision, e.count, e.p50, e.p99, e.max
        );
    }
    println!();
    println!(
        "accepted={} sealed={} dropped={} refused={} seals={} sink_errors={}; recorded in {:.2?}, all sealed after {:.2?}",
        report.accepted,
        report.sealed,
        report.dropped,
        report.refused,
        report.seals,
        report.sink_errors,
        recording,
        elapsed
    );
    println!(
        "log: {} (public key: {})",
        log_path.display(),
        dir.join("audit-public.pem").display()
    );
    assert_eq!(report.accepted + report.dropped, workers as u64 * events);
    assert_eq!(report.sealed, report.accepted);

    let verified = Verifier::new([key.public_key()]).verify_files(&[&log_path], |_| {})?;
    println!(
        "verify: {:?}: {} events, {} seals, {} findings",
        verified.status(),
        verified.events,
        verified.seals,
        verified.findings.len()
    );
    for f in verified.findings.iter().take(10) {
        println!("  {f}");
    }
    if verified.findings.len() > 10 {
        println!("  ... {} more", verified.findings.len() - 10);
    }
    // Signed loss (drops under the Drop policy) makes a log incomplete, not
    // tampered.
    assert_ne!(verified.status(), Status::Tampered);
    Ok(())
}
