//! The fleet against a real nats-server: exactly once and in order across
//! server and shipper crashes, an outage on the hot path, parts, silence,
//! truncation and tampering.

mod common;

/// The gateway's steady rate: 50k events/s in an optimised build (CI runs
/// these tests with `--release`); a debug build's signer cannot sustain
/// that on a loaded 2-core machine, so it records more slowly.
const RATE: u64 = if cfg!(debug_assertions) { 8_000 } else { 50_000 };

use std::time::Duration;

use auditring::SigningKey;
use auditring::verify::{Status, Verifier};
use auditring_nats::{Collector, CollectorConfig, Shipper, ShipperConfig};
use common::*;

fn shipper(url: &str, log: &std::path::Path, gateway: &str, partition: &str) -> Shipper {
    Shipper::spawn(
        ShipperConfig::new(url, log, gateway)
            .partition(partition)
            .heartbeat_interval(Duration::from_millis(200)),
    )
    .unwrap()
}

/// Waits until the shipper acknowledged the last local batch.
fn wait_shipped(shipper: &Shipper, log: &std::path::Path) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let last = local_batches(log).pop().expect("a batch");
        let m = shipper.metrics();
        if m.acked_stream == last.stream() && m.acked_seal == Some(last.seal.index) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every batch acknowledged: local last {}:{}, metrics {m:?}",
            last.stream(),
            last.seal.index
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn collector(url: &str, dir: &std::path::Path, partition: &str, keys: &[(&str, &SigningKey)]) -> Collector {
    let mut config = CollectorConfig::new(url, dir.join("archive")).durable(format!("c-{partition}"));
    config.filter = format!("audit.{partition}.>");
    for (gw, key) in keys {
        config = config.trust(*gw, key.public_key());
    }
    Collector::open(config).unwrap()
}

/// Polls until the collector archived `batches` batches of `gateway`.
fn collect_all(c: &mut Collector, gateway: &str, batches: usize) {
    eventually("the collector has every batch", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report()
            .gateway(gateway)
            .is_some_and(|g| g.batches as usize >= batches)
    });
}

/// The archive is the local log, byte for byte, and verifies intact.
fn assert_archive_is_the_log(dir: &std::path::Path, gateway: &str, log: &std::path::Path, key: &SigningKey) {
    let archive = dir.join("archive").join(gateway).join("audit.jsonl");
    let archived = std::fs::read(&archive).unwrap();
    assert!(archived == local_bytes(log), "the archive differs from the local log");
    let report = Verifier::new([key.public_key()]).verify_bytes(&archived);
    assert_eq!(report.status(), Status::Intact, "{report:?}");
}

#[test]
fn exactly_once_and_in_order_across_a_server_kill() {
    let mut server = Server::start("kill");
    let dir = scratch("kill");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, Some(1 << 20));
    let ship = shipper(&server.url(), &log, "gw-kill", "kill");
    let n = RATE;
    let dropped = record(&rt, n, RATE);
    eventually("some batches acknowledged", || ship.acked_batches() > 5);
    server.kill9();
    let dropped2 = record(&rt, n, RATE);
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    let report = rt.shutdown().unwrap();
    assert_eq!(dropped + dropped2, 0);
    assert_eq!(report.sealed, 2 * n);
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files > 3, "the test should rotate");
    wait_shipped(&ship, &log);
    let metrics = ship.stop().unwrap();
    assert!(metrics.retries > 0, "the outage should have caused retries: {metrics:?}");
    let batches = local_batches(&log).len();
    assert_eq!(
        stored_messages(&server.url(), "audit.kill.gw-kill"),
        batches as u64,
        "every batch stored exactly once"
    );
    let mut c = collector(&server.url(), &dir, "kill", &[("gw-kill", &key)]);
    collect_all(&mut c, "gw-kill", batches);
    let g = c.report().gateway("gw-kill").unwrap().clone();
    assert_eq!(g.status, "ok", "{g:?}");
    assert_eq!(g.events, 2 * n);
    assert_archive_is_the_log(&dir, "gw-kill", &log, &key);
}

#[test]
fn a_restarted_shipper_with_a_stale_cursor_skips_what_is_stored() {
    let server = Server::start("stale");
    let dir = scratch("stale");
    let log = dir.join("audit.jsonl");
    let cursor = dir.join("audit.jsonl.ship-cursor");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, None);
    let ship = shipper(&server.url(), &log, "gw-stale", "stale");
    record(&rt, 5_000, 0);
    wait_shipped(&ship, &log);
    // What a SIGKILL leaves: the cursor as saved some batches earlier.
    std::thread::sleep(Duration::from_millis(300));
    drop(ship);
    let stale = std::fs::read(&cursor).unwrap();
    let ship = shipper(&server.url(), &log, "gw-stale", "stale");
    record(&rt, 5_000, 0);
    wait_shipped(&ship, &log);
    std::thread::sleep(Duration::from_millis(300));
    // Kill it: no stop, the cursor set back to the stale one.
    std::mem::forget(ship);
    std::fs::write(&cursor, &stale).unwrap();
    let stored_before = stored_messages(&server.url(), "audit.stale.gw-stale");
    rt.shutdown().unwrap();
    let ship = shipper(&server.url(), &log, "gw-stale", "stale");
    wait_shipped(&ship, &log);
    let m = ship.stop().unwrap();
    assert!(m.skipped > 0, "{m:?}");
    assert_eq!(m.server_behind, 0, "{m:?}");
    let batches = local_batches(&log).len() as u64;
    // Only the close batch (and heartbeats) were new.
    assert_eq!(stored_messages(&server.url(), "audit.stale.gw-stale"), batches);
    assert!(stored_before < batches);
    let mut c = collector(&server.url(), &dir, "stale", &[("gw-stale", &key)]);
    collect_all(&mut c, "gw-stale", batches as usize);
    assert_eq!(c.report().gateway("gw-stale").unwrap().status, "ok");
    assert_archive_is_the_log(&dir, "gw-stale", &log, &key);
}
