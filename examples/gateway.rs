//! A simulated multi-threaded gateway: pinned worker threads make
//! enforcement decisions and record one audit event each; the runtime's
//! signer seals them into a signed log file. At the end it prints the
//! hot-path latency of `record`, every pipeline stage and the gateway's
//! own latencies per action and decision (HDR percentiles), the exact
//! accepted/sealed/dropped counts and the log's path, then verifies the
//! log.
//!
//! The gateway behaves like one: each action draws its enforcement and
//! dispatch latency from its own distribution (a log-normal body and a
//! Pareto tail: an LLM call in hundreds of milliseconds with a heavy
//! tail, an HTTP GET in tens of microseconds, denies faster than allows,
//! an occasional stall), and decisions arrive in bursts. The draws are
//! deterministic under `GATEWAY_SEED`. The runtime writes its stage
//! histograms as `.hgrm` files next to the log (and the example adds
//! `record.hgrm`), ready for `auditring stats --plot` and `auditring
//! report`.
//!
//! Run with `cargo run --release --example gateway`. Settings come from the
//! environment: `GATEWAY_WORKERS` (default 2), `GATEWAY_EVENTS` per worker
//! (default 250000), `GATEWAY_RATE` decisions per second per worker
//! outside bursts (default 50000; 0 = as fast as possible), `GATEWAY_SEED`
//! (default 1), `GATEWAY_DIR` for the log and key (default: a new
//! directory under the system's temporary directory).

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

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same decisions and latencies on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Log-normal with this median and shape (Box-Muller).
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        let normal =
            (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos();
        median * (sigma * normal).exp()
    }

    /// Pareto from `min` with tail index `alpha` (smaller is heavier).
    fn pareto(&mut self, min: f64, alpha: f64) -> f64 {
        min / self.unit().powf(1.0 / alpha)
    }
}

/// A latency: a log-normal body, and with probability `tail` a Pareto
/// tail from `tail_from`, capped at `cap` (a timeout), in microseconds.
#[derive(Clone, Copy)]
struct Latency {
    median: f64,
    sigma: f64,
    tail: f64,
    tail_from: f64,
    alpha: f64,
    cap: f64,
}

impl Latency {
    const fn new(median: f64, sigma: f64, tail: f64, tail_from: f64, alpha: f64, cap: f64) -> Self {
        Self {
            median,
            sigma,
            tail,
            tail_from,
            alpha,
            cap,
        }
    }

    fn draw(&self, rng: &mut Rng) -> u64 {
        let v = if rng.unit() < self.tail {
            rng.pareto(self.tail_from, self.alpha)
        } else {
            rng.log_normal(self.median, self.sigma)
        };
        v.clamp(1.0, self.cap) as u64
    }
}

/// How one action behaves.
struct Profile {
    action: &'static str,
    /// Share of the traffic, in thousandths.
    weight: u64,
    resource: &'static str,
    deny: f64,
    abort: f64,
    allow_enforce: Latency,
    deny_enforce: Latency,
    dispatch: Latency,
    /// Share of dispatched calls that fail upstream.
    upstream_errors: f64,
}

/// Policy evaluation: tens of microseconds, denies cut short, content
/// scanning of prompts slower; the dispatched call: an HTTP GET in tens of
/// microseconds (a cache or a service on the same host), a POST slower, a
/// sandboxed tool in milliseconds, an LLM inference in hundreds of
/// milliseconds with a heavy tail and a 60 s timeout.
const PROFILES: [Profile; 4] = [
    Profile {
        action: "http.get",
        weight: 500,
        resource: "https://api.example.com/v1/orders",
        deny: 0.05,
        abort: 0.001,
        allow_enforce: Latency::new(9.0, 0.30, 0.002, 40.0, 2.5, 50_000.0),
        deny_enforce: Latency::new(4.0, 0.25, 0.002, 20.0, 2.5, 50_000.0),
        dispatch: Latency::new(45.0, 0.45, 0.01, 250.0, 1.8, 30_000_000.0),
        upstream_errors: 0.002,
    },
    Profile {
        action: "http.post",
        weight: 200,
        resource: "https://api.example.com/v1/orders/submit",
        deny: 0.12,
        abort: 0.002,
        allow_enforce: Latency::new(16.0, 0.35, 0.003, 60.0, 2.2, 50_000.0),
        deny_enforce: Latency::new(7.0, 0.30, 0.003, 30.0, 2.2, 50_000.0),
        dispatch: Latency::new(180.0, 0.55, 0.01, 1_200.0, 1.6, 30_000_000.0),
        upstream_errors: 0.01,
    },
    Profile {
        action: "tool.call",
        weight: 200,
        resource: "tool://sandbox/python-exec",
        deny: 0.20,
        abort: 0.01,
        allow_enforce: Latency::new(35.0, 0.40, 0.005, 150.0, 2.0, 50_000.0),
        deny_enforce: Latency::new(14.0, 0.35, 0.005, 60.0, 2.0, 50_000.0),
        dispatch: Latency::new(2_500.0, 0.80, 0.02, 20_000.0, 1.5, 30_000_000.0),
        upstream_errors: 0.03,
    },
    Profile {
        action: "llm.inference",
        weight: 100,
        resource: "llm://gpt-class/chat-completions",
        deny: 0.08,
        abort: 0.003,
        allow_enforce: Latency::new(70.0, 0.45, 0.01, 400.0, 1.8, 50_000.0),
        deny_enforce: Latency::new(25.0, 0.40, 0.01, 150.0, 1.8, 50_000.0),
        dispatch: Latency::new(450_000.0, 0.60, 0.03, 1_500_000.0, 1.3, 60_000_000.0),
        upstream_errors: 0.02,
    },
];

/// One stall (a pause of the policy engine: GC, a lock, a page fault
/// storm) in this many decisions, of 2-20 ms.
const STALL_ONE_IN: u64 = 20_000;

/// Bursts: in every 200 ms, the first 20 ms bring four times the load.
const BURST_PERIOD_TICKS: u64 = 200;
const BURST_TICKS: u64 = 20;
const BURST_FACTOR: u64 = 4;

/// One decision, drawn before it is recorded (the hot path only copies).
struct Decided {
    profile: &'static Profile,
    decision: Decision,
    enforcement_us: u64,
    dispatch: Option<(u16, u64, u64)>,
}

fn decide(rng: &mut Rng) -> Decided {
    let mut pick = rng.next_u64() % 1000;
    let profile = PROFILES
        .iter()
        .find(|p| {
            let hit = pick < p.weight;
            pick = pick.saturating_sub(p.weight);
            hit
        })
        .unwrap_or(&PROFILES[0]);
    let roll = rng.unit();
    let decision = if roll < profile.abort {
        Decision::Abort
    } else if roll < profile.abort + profile.deny {
        Decision::Deny
    } else {
        Decision::Allow
    };
    let mut enforcement_us = match decision {
        Decision::Allow => profile.allow_enforce.draw(rng),
        _ => profile.deny_enforce.draw(rng),
    };
    if rng.next_u64().is_multiple_of(STALL_ONE_IN) {
        enforcement_us += 2_000 + rng.next_u64() % 18_000;
    }
    let dispatch = (decision == Decision::Allow).then(|| {
        let status = if rng.unit() < profile.upstream_errors {
            if rng.next_u64().is_multiple_of(2) {
                503
            } else {
                429
            }
        } else {
            200
        };
        let size = 200 + rng.next_u64() % 16_000;
        (status, profile.dispatch.draw(rng), size)
    });
    Decided {
        profile,
        decision,
        enforcement_us,
        dispatch,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = env_u64("GATEWAY_WORKERS", 2).max(1) as usize;
    let events = env_u64("GATEWAY_EVENTS", 250_000);
    let rate = env_u64("GATEWAY_RATE", 50_000);
    let seed = env_u64("GATEWAY_SEED", 1);
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
        // Stage histograms next to the log, every second and at shutdown.
        .stage_histograms(&dir, Duration::from_secs(1))
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
                    let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
                    barrier.wait();
                    // Decisions arrive in 1 ms ticks (`per_tick` each, four
                    // times as many during a burst), as requests do; between
                    // ticks the worker sleeps, leaving the CPU to other work
                    // (and to the signer).
                    let mut tick = Instant::now();
                    let (mut tick_no, mut in_tick) = (0u64, 0u64);
                    for _ in 0..events {
                        let budget = if tick_no % BURST_PERIOD_TICKS < BURST_TICKS {
                            per_tick * BURST_FACTOR
                        } else {
                            per_tick
                        };
                        if per_tick > 0 && in_tick == budget {
                            tick += TICK;
                            tick_no += 1;
                            in_tick = 0;
                            if let Some(rest) = tick.checked_duration_since(Instant::now()) {
                                std::thread::sleep(rest);
                            }
                        }
                        in_tick += 1;
                        let d = decide(&mut rng);
                        let start = clock.raw();
                        let _ = recorder.record(|e| {
                            e.set_session_id(&session)
                                .set_agent_id("agent-research")
                                .set_action(d.profile.action)
                                .set_resource(d.profile.resource)
                                .set_bundle_version("bundle-2026.11");
                            e.decision = d.decision;
                            match d.decision {
                                Decision::Deny => {
                                    e.set_deny_reason("egress not in allowlist");
                                }
                                Decision::Abort => {
                                    e.set_deny_reason("policy evaluation timed out");
                                }
                                Decision::Allow => {}
                            }
                            e.enforcement_latency_us = d.enforcement_us;
                            if let Some((status, latency, size)) = d.dispatch {
                                e.dispatch_status = status;
                                e.dispatch_latency_us = latency;
                                e.response_size = size;
                            }
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
    // The hot path's own histogram beside the runtime's stage files.
    std::fs::write(
        dir.join("record.hgrm"),
        auditring::stats::hgrm::Distribution::of(&hist, 1000.0).to_text(),
    )?;

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
        "{:<16} {:<8} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "action", "decision", "events", "enforce", "p99", "max", "dispatch", "p99", "max"
    );
    for row in &snapshot.payload {
        let (e, d) = (&row.enforcement_us, &row.dispatch_us);
        let or_dash = |v: u64| {
            if d.count == 0 {
                "-".to_owned()
            } else {
                v.to_string()
            }
        };
        println!(
            "{:<16} {:<8} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            row.action,
            row.decision,
            e.count,
            e.p50,
            e.p99,
            e.max,
            or_dash(d.p50),
            or_dash(d.p99),
            or_dash(d.max)
        );
    }
    println!("(gateway latencies in microseconds: p50, p99, max)");
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
    println!(
        "stage histograms: {}/*.hgrm (HdrHistogram percentile distributions, us)",
        dir.display()
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
    let (public, log) = (
        dir.join("audit-public.pem").display().to_string(),
        log_path.display().to_string(),
    );
    let stages = dir.join("*.hgrm").display().to_string();
    println!();
    println!("next:");
    println!("  cargo run --release -- stats --key {public} --plot latency.svg {log} {stages}");
    println!("  cargo run --release -- report --key {public} {log} --out report.html");
    Ok(())
}
