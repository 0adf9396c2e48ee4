//! A simulated multi-threaded gateway: pinned worker threads make
//! enforcement decisions and record one audit event each; a consumer thread
//! drains the ring. At the end it prints the hot-path latency of `record`
//! (HDR percentiles), the consumer's totals and the drop count.
//!
//! Run with `cargo run --release --example gateway`. Settings come from the
//! environment: `GATEWAY_WORKERS` (default 2), `GATEWAY_EVENTS` per worker
//! (default 500000), `GATEWAY_RATE` decisions per second per worker
//! (default 200000; 0 = as fast as possible).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auditring::{AuditPayload, Capture, Decision, FullPolicy};
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

const ACTIONS: [&str; 4] = ["http.get", "http.post", "tool.call", "llm.inference"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = env_u64("GATEWAY_WORKERS", 2).max(1) as usize;
    let events = env_u64("GATEWAY_EVENTS", 500_000);
    let rate = env_u64("GATEWAY_RATE", 200_000);
    let pace = Duration::from_nanos(1_000_000_000u64.checked_div(rate).unwrap_or(0));
    let cores = auditring::available_cores();

    let (capture, mut consumer) = Capture::<AuditPayload>::builder()
        .lane_capacity(4096)
        .max_producers(workers)
        .full_policy(FullPolicy::Drop)
        .build()?;

    let barrier = Arc::new(Barrier::new(workers + 1));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let mut recorder = capture.recorder()?;
            let barrier = Arc::clone(&barrier);
            let core = cores.get(w % cores.len().max(1)).copied();
            Ok(std::thread::Builder::new()
                .name(format!("gateway-worker-{w}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if let Err(e) = auditring::pin_current_thread(core) {
                            eprintln!("worker {w}: {e}");
                        }
                    }
                    let clock = quanta::Clock::new();
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
                    let session = format!("sess-{w:04}-0192f3a4-5b6c-7d8e");
                    barrier.wait();
                    let mut next = Instant::now();
                    for i in 0..events {
                        next += pace;
                        while Instant::now() < next {
                            std::hint::spin_loop();
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
    let mut drained = 0u64;
    let mut denied = 0u64;
    while handles.iter().any(|h| !h.is_finished()) || !consumer.is_empty() {
        let n = consumer.drain(4096, |ev| {
            denied += u64::from(ev.payload().decision == Decision::Deny);
        });
        if n == 0 {
            std::thread::yield_now();
        }
        drained += n as u64;
    }
    let elapsed = started.elapsed();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for h in handles {
        hist.add(h.join().expect("worker panicked"))?;
    }
    consumer.close();
    drained += consumer.drain(usize::MAX, |_| {}) as u64;

    let stats = consumer.stats();
    println!("gateway: {workers} workers x {events} decisions, target {rate}/s per worker");
    println!(
        "record() latency ns: p50={} p99={} p99.9={} max={}",
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max()
    );
    println!(
        "accepted={} dropped={} drained={} denied={} in {:.2?} ({:.0} events/s)",
        stats.accepted,
        stats.dropped,
        drained,
        denied,
        elapsed,
        drained as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(stats.accepted + stats.dropped, workers as u64 * events);
    assert_eq!(drained, stats.accepted);
    Ok(())
}
