//! Shipping and collecting against a real local nats-server (started on a
//! free loopback port with its store in a temporary directory, and
//! stopped by its pid).
//!
//! - `bench=ship mode=backlog gateways=<n>`: each gateway's log (1,000
//!   events per seal) is written first; then one shipper per gateway
//!   ships it at window 1 with no catch-up cap. Events per second over all
//!   gateways, publish-to-ack latency percentiles.
//! - `bench=ship mode=steady gateways=1`: a gateway records 50,000 events
//!   per second while its shipper ships: seal-to-ack lag p99.
//! - `bench=collect gateways=4`: a collector pulls, verifies and archives
//!   the four gateways' batches: events per second.
//!
//! Run with `cargo bench -p auditring-nats --bench ship`;
//! `AUDITRING_BENCH_QUICK=1` shrinks the runs (a smoke run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use auditring::sink::FileSink;
use auditring::{AuditPayload, FullPolicy, Runtime, RuntimeGuard, SigningKey};
use auditring_nats::{Collector, CollectorConfig, GatewayId, Shipper, ShipperConfig};

fn quick() -> bool {
    std::env::var_os("AUDITRING_BENCH_QUICK").is_some()
}

/// Writes a closed log of `events` events, 1,000 per seal.
fn write_log(
    key: &SigningKey,
    path: &PathBuf,
    events: u64,
    rate: u64,
) -> RuntimeGuard<AuditPayload> {
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(FileSink::open(path).unwrap())
        .max_batch(1000)
        .lane_capacity(16384)
        .full_policy(if rate == 0 {
            FullPolicy::Block
        } else {
            FullPolicy::Drop
        })
        .build()
        .unwrap();
    let failed = common::record(&rt, events, rate);
    assert_eq!(failed, 0, "the gateway refused or dropped events");
    rt
}

fn shipper(url: &str, log: &PathBuf, gateway: &str, partition: &str) -> Shipper {
    Shipper::spawn(
        ShipperConfig::new(url, log, gateway)
            .partition(partition)
            .catch_up_bytes_per_s(None),
    )
    .unwrap()
}

fn wait_acked(shippers: &[Shipper], events: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while shippers
        .iter()
        .map(|s| s.metrics().acked_events)
        .sum::<u64>()
        < events
    {
        assert!(Instant::now() < deadline, "shipping did not finish");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn backlog(
    url: &str,
    dir: &std::path::Path,
    gateways: usize,
    events: u64,
) -> Vec<(String, SigningKey)> {
    let mut logs = Vec::new();
    std::fs::create_dir_all(dir).unwrap();
    let partition = format!("b{gateways}");
    for g in 0..gateways {
        let key = SigningKey::generate();
        let name = format!("gw{gateways}-{g}");
        let path = dir.join(format!("{name}.jsonl"));
        write_log(&key, &path, events, 0).shutdown().unwrap();
        logs.push((name, key, path));
    }
    let started = Instant::now();
    let shippers: Vec<Shipper> = logs
        .iter()
        .map(|(n, _, p)| shipper(url, p, n, &partition))
        .collect();
    wait_acked(&shippers, events * gateways as u64);
    let elapsed = started.elapsed();
    let metrics: Vec<_> = shippers.into_iter().map(|s| s.stop().unwrap()).collect();
    let p50 = metrics.iter().map(|m| m.ack_p50_us).max().unwrap_or(0);
    let p99 = metrics.iter().map(|m| m.ack_p99_us).max().unwrap_or(0);
    let lag = metrics.iter().map(|m| m.lag_p99_ms).max().unwrap_or(0);
    println!(
        "bench=ship mode=backlog gateways={gateways} events_per_s={:.0} ack_p50_us={p50} ack_p99_us={p99} lag_p99_ms={lag}",
        (events * gateways as u64) as f64 / elapsed.as_secs_f64()
    );
    logs.into_iter().map(|(n, k, _)| (n, k)).collect()
}

fn steady(url: &str, dir: &std::path::Path, seconds: u64) {
    let key = SigningKey::generate();
    let path = dir.join("steady.jsonl");
    let rate = 50_000;
    // The shipper starts first and follows the log as it is written.
    std::fs::write(&path, b"").unwrap();
    let ship = shipper(url, &path, "steady", "steady");
    let rt = write_log(&key, &path, rate * seconds, rate);
    let report = rt.shutdown().unwrap();
    wait_acked(std::slice::from_ref(&ship), report.sealed);
    let m = ship.stop().unwrap();
    println!(
        "bench=ship mode=steady gateways=1 rate={rate} events_per_s={rate} ack_p50_us={} ack_p99_us={} lag_p99_ms={} dropped={} refused={}",
        m.ack_p50_us, m.ack_p99_us, m.lag_p99_ms, report.dropped, report.refused
    );
}

fn collect(url: &str, dir: &std::path::Path, gateways: &[(String, SigningKey)], events: u64) {
    let mut config = CollectorConfig::new(url, dir.join("archive")).durable("bench");
    config.filter = "audit.b4.>".into();
    for (name, key) in gateways {
        config = config.trust(GatewayId::new("b4", name), key.public_key());
    }
    let mut c = Collector::open(config).unwrap();
    let total = events * gateways.len() as u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        c.poll(Duration::from_millis(100)).unwrap();
        let r = c.report();
        let done: u64 = gateways
            .iter()
            .filter_map(|(n, _)| r.gateway("b4", n))
            .map(|g| g.events)
            .sum();
        if done >= total {
            assert!(!r.any_tampered());
            break;
        }
        assert!(Instant::now() < deadline, "collecting did not finish");
    }
    println!(
        "bench=collect gateways={} events_per_s={:.0}",
        gateways.len(),
        total as f64 / started.elapsed().as_secs_f64()
    );
}

fn main() {
    let server = common::Server::start("bench");
    let dir = common::scratch("bench");
    let (one, four, seconds) = if quick() {
        (20_000, 10_000, 1)
    } else {
        (400_000, 200_000, 10)
    };
    backlog(&server.url(), &dir.join("one"), 1, one);
    let gateways = backlog(&server.url(), &dir.join("four"), 4, four);
    steady(&server.url(), &dir, seconds);
    // The four gateways' partition only.
    collect(&server.url(), &dir, &gateways, four);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
