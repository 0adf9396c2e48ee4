//! The fleet against a real nats-server: exactly once and in order across
//! server and shipper crashes, an outage on the hot path, parts, silence,
//! truncation and tampering.

mod common;

/// The gateway's steady rate: 50k events/s in an optimised build (CI runs
/// these tests with `--release`); a debug build's signer cannot sustain
/// that on a loaded 2-core machine, so it records more slowly.
const RATE: u64 = if cfg!(debug_assertions) {
    8_000
} else {
    50_000
};

use std::time::Duration;

use auditring::SigningKey;
use auditring::verify::{Status, Verifier};
use auditring_nats::{Collector, CollectorConfig, GatewayId, Shipper, ShipperConfig};
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

fn collector(
    url: &str,
    dir: &std::path::Path,
    partition: &str,
    keys: &[(&str, &SigningKey)],
) -> Collector {
    let mut config =
        CollectorConfig::new(url, dir.join("archive")).durable(format!("c-{partition}"));
    config.filter = format!("audit.{partition}.>");
    for (gw, key) in keys {
        config = config.trust(GatewayId::new(partition, *gw), key.public_key());
    }
    Collector::open(config).unwrap()
}

/// Polls until the collector archived `batches` batches of the gateway.
fn collect_all(c: &mut Collector, partition: &str, gateway: &str, batches: usize) {
    eventually("the collector has every batch", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report()
            .gateway(partition, gateway)
            .is_some_and(|g| g.batches as usize >= batches)
    });
}

/// The archive is the local log, byte for byte, and verifies intact.
fn assert_archive_is_the_log(
    c: &mut Collector,
    dir: &std::path::Path,
    (partition, gateway): (&str, &str),
    log: &std::path::Path,
    key: &SigningKey,
) {
    c.sync().unwrap();
    let archive = dir
        .join("archive")
        .join(partition)
        .join(gateway)
        .join("audit.jsonl");
    let archived = std::fs::read(&archive).unwrap();
    assert!(
        archived == local_bytes(log),
        "the archive differs from the local log"
    );
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
    assert!(
        metrics.retries > 0,
        "the outage should have caused retries: {metrics:?}"
    );
    let batches = local_batches(&log).len();
    assert_eq!(
        stored_messages(&server.url(), "audit.kill.gw-kill"),
        batches as u64,
        "every batch stored exactly once"
    );
    let mut c = collector(&server.url(), &dir, "kill", &[("gw-kill", &key)]);
    collect_all(&mut c, "kill", "gw-kill", batches);
    let g = c.report().gateway("kill", "gw-kill").unwrap().clone();
    assert_eq!(g.status, "ok", "{g:?}");
    assert_eq!(g.events, 2 * n);
    assert_archive_is_the_log(&mut c, &dir, ("kill", "gw-kill"), &log, &key);
}

/// Not a test of its own: the shipper process that
/// `a_shipper_killed_with_a_stale_cursor_skips_what_is_stored` SIGKILLs.
#[test]
fn shipper_child_process() {
    let (Ok(url), Ok(log)) = (
        std::env::var("FLEET_CHILD_URL"),
        std::env::var("FLEET_CHILD_LOG"),
    ) else {
        return;
    };
    let partition = std::env::var("FLEET_CHILD_PARTITION").unwrap_or_default();
    let _ship = shipper(&url, std::path::Path::new(&log), "gw-stale", &partition);
    std::thread::sleep(Duration::from_secs(600));
}

fn wait_stored(url: &str, subject: &str, log: &std::path::Path) {
    eventually("every local batch stored", || {
        stored_messages(url, subject) == local_batches(log).len() as u64
    });
}

#[test]
fn a_shipper_killed_with_a_stale_cursor_skips_what_is_stored() {
    let server = shared_or_start("stale");
    let p = partition("stale");
    let dir = scratch("stale");
    let log = dir.join("audit.jsonl");
    let cursor = dir.join("audit.jsonl.ship-cursor");
    let subject = &format!("audit.{p}.gw-stale");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, None);
    let mut child = ChildGuard(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "shipper_child_process", "--nocapture"])
            .env("FLEET_CHILD_URL", server.url())
            .env("FLEET_CHILD_LOG", &log)
            .env("FLEET_CHILD_PARTITION", &p)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    record(&rt, 2_000, 0);
    rt.flush(DEADLINE).unwrap();
    wait_stored(&server.url(), subject, &log);
    std::thread::sleep(Duration::from_millis(300));
    record(&rt, 10, 0);
    rt.flush(DEADLINE).unwrap();
    eventually("a saved cursor", || cursor.exists());
    let stale = std::fs::read(&cursor).unwrap();
    record(&rt, 3_000, 0);
    rt.flush(DEADLINE).unwrap();
    wait_stored(&server.url(), subject, &log);
    child.kill9();
    // Whatever the kill left, the cursor is stale now.
    std::fs::write(&cursor, &stale).unwrap();
    rt.shutdown().unwrap();
    let ship = shipper(&server.url(), &log, "gw-stale", &p);
    wait_shipped(&ship, &log);
    let m = ship.stop().unwrap();
    assert!(m.skipped > 0, "{m:?}");
    assert_eq!(m.server_behind, 0, "{m:?}");
    let batches = local_batches(&log).len();
    assert_eq!(
        stored_messages(&server.url(), subject),
        batches as u64,
        "stored exactly once"
    );
    let mut c = collector(&server.url(), &dir, &p, &[("gw-stale", &key)]);
    collect_all(&mut c, &p, "gw-stale", batches);
    assert_eq!(c.report().gateway(&p, "gw-stale").unwrap().status, "ok");
    assert_archive_is_the_log(&mut c, &dir, (&p, "gw-stale"), &log, &key);
}

#[test]
fn an_outage_drops_nothing_on_the_hot_path_and_the_backlog_catches_up() {
    let mut server = Server::start("outage");
    let dir = scratch("outage");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, None);
    let ship = shipper(&server.url(), &log, "gw-out", "outage");
    // One second before, five seconds of outage, two seconds after.
    let mut failed = record(&rt, RATE, RATE);
    server.kill9();
    failed += record(&rt, 5 * RATE, RATE);
    server.restart();
    failed += record(&rt, 2 * RATE, RATE);
    let report = rt.shutdown().unwrap();
    assert_eq!(failed, 0, "record() failed during the outage");
    assert_eq!((report.dropped, report.refused), (0, 0), "{report:?}");
    assert_eq!(report.sealed, 8 * RATE);
    wait_shipped(&ship, &log);
    let m = ship.stop().unwrap();
    assert_eq!(m.acked_events, 8 * RATE, "{m:?}");
    assert_eq!(
        stored_messages(&server.url(), "audit.outage.gw-out"),
        local_batches(&log).len() as u64
    );
}

#[test]
fn a_batch_larger_than_the_maximum_payload_ships_in_parts() {
    let server = Server::start_with("parts", &["max_payload: 65536"]);
    let dir = scratch("parts");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, None);
    record(&rt, 3_000, 0);
    rt.shutdown().unwrap();
    let biggest = local_batches(&log)
        .iter()
        .map(|b| b.bytes.len())
        .max()
        .unwrap();
    assert!(
        biggest > 4 * 65536,
        "batches of {biggest} bytes are too small for this test"
    );
    let ship = shipper(&server.url(), &log, "gw-parts", "parts");
    wait_shipped(&ship, &log);
    ship.stop().unwrap();
    let batches = local_batches(&log).len();
    assert!(stored_messages(&server.url(), "audit.parts.gw-parts") > batches as u64 * 2);
    let mut c = collector(&server.url(), &dir, "parts", &[("gw-parts", &key)]);
    collect_all(&mut c, "parts", "gw-parts", batches);
    let g = c.report().gateway("parts", "gw-parts").unwrap().clone();
    assert_eq!((g.status.as_str(), g.events), ("ok", 3_000), "{g:?}");
    assert_archive_is_the_log(&mut c, &dir, ("parts", "gw-parts"), &log, &key);
}

#[test]
fn a_gateway_that_stops_shipping_is_reported_silent() {
    let server = shared_or_start("silent");
    let p = partition("silent");
    let dir = scratch("silent");
    let key = SigningKey::generate();
    let (log_a, log_b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let (rt_a, rt_b) = (runtime(&key, &log_a, None), runtime(&key, &log_b, None));
    record(&rt_a, 1_000, 0);
    record(&rt_b, 1_000, 0);
    let ship_a = shipper(&server.url(), &log_a, "gw-a", &p);
    let ship_b = shipper(&server.url(), &log_b, "gw-b", &p);
    let mut config = CollectorConfig::new(server.url(), dir.join("archive"))
        .durable(format!("c-{p}"))
        .trust_any(key.public_key())
        .expect_gateway(GatewayId::new(&p, "gw-a"))
        .expect_gateway(GatewayId::new(&p, "gw-b"))
        .expect_gateway(GatewayId::new(&p, "gw-never"))
        .silent_after(Duration::from_secs(3));
    config.filter = format!("audit.{p}.>");
    let mut c = Collector::open(config).unwrap();
    eventually("both gateways ok", || {
        c.poll(Duration::from_millis(200)).unwrap();
        let r = c.report();
        r.gateway(&p, "gw-a").is_some_and(|g| g.status == "ok")
            && r.gateway(&p, "gw-b").is_some_and(|g| g.status == "ok")
    });
    // gw-a stops shipping; gw-b stays idle but alive (heartbeat seals).
    ship_a.stop().unwrap();
    eventually("gw-a silent", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report()
            .gateway(&p, "gw-a")
            .is_some_and(|g| g.silent && g.status == "silent")
    });
    let r = c.report();
    let b = r.gateway(&p, "gw-b").unwrap();
    assert_eq!(
        b.status, "ok",
        "an idle gateway with heartbeat seals is not silent: {b:?}"
    );
    assert!(b.lag_seconds.unwrap() < 30.0, "{b:?}");
    assert_eq!(r.gateway(&p, "gw-never").unwrap().status, "never_seen");
    assert!(!r.any_tampered());
    drop(ship_b);
    drop((rt_a, rt_b));
}

#[test]
fn deleting_a_trailing_run_after_shipping_is_truncated() {
    let server = shared_or_start("trunc");
    let p = partition("trunc");
    let dir = scratch("trunc");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    for _ in 0..2 {
        let rt = runtime(&key, &log, None);
        record(&rt, 500, 0);
        rt.shutdown().unwrap();
    }
    let ship = shipper(&server.url(), &log, "gw-t", &p);
    wait_shipped(&ship, &log);
    ship.stop().unwrap();
    let mut c = collector(&server.url(), &dir, &p, &[("gw-t", &key)]);
    let batches = local_batches(&log);
    collect_all(&mut c, &p, "gw-t", batches.len());
    assert_eq!(c.report().gateway(&p, "gw-t").unwrap().status, "ok");
    // The attacker cuts the second run and the gateway goes on.
    let first_close = batches
        .iter()
        .find(|b| b.seal.reason == auditring::format::seal::SealReason::Close)
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(first_close.end.offset).unwrap();
    drop(f);
    let rt = runtime(&key, &log, None);
    record(&rt, 100, 0);
    rt.shutdown().unwrap();
    // Locally the log verifies: nothing shows the missing run.
    let local = Verifier::new([key.public_key()]).verify_bytes(&local_bytes(&log));
    assert_eq!(local.status(), Status::Intact, "{local:?}");
    let ship = shipper(&server.url(), &log, "gw-t", &p);
    wait_shipped(&ship, &log);
    let m = ship.stop().unwrap();
    assert!(m.server_behind > 0, "the shipper raises the alarm: {m:?}");
    eventually("the collector reports the truncation", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report().gateway(&p, "gw-t").is_some_and(|g| g.truncated)
    });
    let r = c.report();
    let g = r.gateway(&p, "gw-t").unwrap();
    assert_eq!(g.status, "tampered");
    assert!(
        g.tampering.iter().any(|t| t.starts_with("truncated")),
        "{g:?}"
    );
}

#[test]
fn tampering_with_a_stored_message_is_detected() {
    let server = shared_or_start("tamper");
    let p = partition("tamper");
    let dir = scratch("tamper");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, None);
    record(&rt, 3_000, 0);
    rt.shutdown().unwrap();
    let mut c = collector(&server.url(), &dir, &p, &[("gw-x", &key)]);
    // Whoever can publish on the subject stores a changed batch first.
    let batches = local_batches(&log);
    block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for (i, b) in batches.iter().enumerate() {
            let mut bytes = b.bytes.clone();
            if i == 1 {
                let at = bytes.windows(5).position(|w| w == b"12345").unwrap();
                bytes[at] = b'9';
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Auditring-Gateway", "gw-x");
            headers.insert("Auditring-Stream", b.stream().as_str());
            headers.insert("Auditring-Seal", b.seal.index.to_string().as_str());
            js.publish_with_headers(format!("audit.{p}.gw-x"), headers, bytes.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    collect_all(&mut c, &p, "gw-x", batches.len());
    let r = c.report();
    let g = r.gateway(&p, "gw-x").unwrap();
    assert_eq!(g.status, "tampered", "{g:?}");
    assert!(
        g.tampering.iter().any(|t| t.starts_with("modified")),
        "{g:?}"
    );
}

#[test]
fn retention_deletes_only_below_the_verified_watermark() {
    let server = shared_or_start("retain");
    let p = partition("retain");
    let dir = scratch("retain");
    let log = dir.join("audit.jsonl");
    let key = SigningKey::generate();
    let rt = runtime(&key, &log, Some(256 << 10));
    // Paced, so that batches are small and files rotate often.
    record(&rt, 5_000, 5_000);
    rt.flush(DEADLINE).unwrap();
    let rotated = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy().into_owned();
                name.starts_with("audit.jsonl.") && name[12..].bytes().all(|b| b.is_ascii_digit())
            })
            .count()
    };
    let before = rotated(&dir);
    assert!(before >= 3, "the test should rotate");
    let ship = Shipper::spawn(
        ShipperConfig::new(server.url(), &log, "gw-r")
            .partition(&p)
            .heartbeat_interval(Duration::from_millis(200))
            .retention(true),
    )
    .unwrap();
    wait_shipped(&ship, &log);
    // Acknowledged by the server, but verified by no collector yet: kept.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rotated(&dir),
        before,
        "files deleted below a merely acknowledged point"
    );
    assert_eq!(ship.metrics().deleted_files, 0);
    let mut c = collector(&server.url(), &dir, &p, &[("gw-r", &key)]);
    let batches = local_batches(&log).len();
    collect_all(&mut c, &p, "gw-r", batches);
    c.sync().unwrap();
    eventually("rotated files below the watermark deleted", || {
        ship.metrics().deleted_files > 0
    });
    assert!(log.exists(), "the active file is never deleted");
    assert!(rotated(&dir) < before);
    // What is left still continues the archived chain: the collector's
    // archive verifies, and the gateway goes on writing and shipping.
    record(&rt, 1_000, 0);
    rt.shutdown().unwrap();
    wait_shipped(&ship, &log);
    ship.stop().unwrap();
    eventually("the collector has the rest", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report()
            .gateway(&p, "gw-r")
            .is_some_and(|g| g.events >= 6_000)
    });
    c.sync().unwrap();
    let g = c.report().gateway(&p, "gw-r").unwrap().clone();
    assert_eq!(g.status, "ok", "{g:?}");
    let archived = std::fs::read(&g.archive).unwrap();
    let report = Verifier::new([key.public_key()]).verify_bytes(&archived);
    assert_eq!(report.status(), Status::Intact, "{report:?}");
}

/// The last watermark the collector published for a gateway.
fn watermark(url: &str, partition: &str, gateway: &str) -> Option<auditring::Checkpoint> {
    block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(auditring_nats::WATERMARK_STREAM).await.ok()?;
        let subject = auditring_nats::watermark_subject(partition, gateway);
        let m = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()?;
        Some(auditring::Checkpoint::from_json(std::str::from_utf8(&m.payload).unwrap()).unwrap())
    })
}

/// Waits for `n` liveness messages on `subject` sent after this call: the
/// last one ends a housekeeping round (watermark read, retention) that
/// started after the call.
fn wait_heartbeats(url: &str, subject: &str, n: usize) {
    use futures_util::StreamExt;
    block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
        client.flush().await.unwrap();
        for _ in 0..n {
            tokio::time::timeout(DEADLINE, sub.next())
                .await
                .expect("a liveness message within the deadline")
                .expect("the subscription is open");
        }
    });
}

fn rotated_files(log: &std::path::Path) -> usize {
    local_files(log) - 1
}

fn local_files(log: &std::path::Path) -> usize {
    auditring::verify::log_files(log).unwrap().len()
}

#[test]
fn two_gateways_of_the_same_name_in_two_partitions_are_two_gateways() {
    // Its own server: the collector pulls every partition.
    let server = Server::start("twins");
    let url = server.url();
    let dir = scratch("twins");
    let name = "gw-twin";
    let (east_key, west_key) = (SigningKey::generate(), SigningKey::generate());
    std::fs::create_dir_all(dir.join("east")).unwrap();
    std::fs::create_dir_all(dir.join("west")).unwrap();
    let (east_log, west_log) = (
        dir.join("east").join("audit.jsonl"),
        dir.join("west").join("audit.jsonl"),
    );
    // West writes more than east: its watermark is past every seq of east's
    // log, so it would cover east's files were it taken for east's.
    for (key, log, events) in [(&east_key, &east_log, 2_000), (&west_key, &west_log, 4_000)] {
        let rt = runtime(key, log, Some(64 << 10));
        assert_eq!(record(&rt, events, 4_000), 0);
        rt.shutdown().unwrap();
    }
    let (east_rotated, west_rotated) = (rotated_files(&east_log), rotated_files(&west_log));
    assert!(east_rotated >= 2, "east's log should rotate");
    assert!(west_rotated >= 2, "west's log should rotate");
    let (east_bytes, west_bytes) = (local_bytes(&east_log), local_bytes(&west_log));
    let retaining = |log: &std::path::Path, partition: &str| {
        Shipper::spawn(
            ShipperConfig::new(&url, log, name)
                .partition(partition)
                .heartbeat_interval(Duration::from_millis(200))
                .retention(true),
        )
        .unwrap()
    };
    let config = CollectorConfig::new(&url, dir.join("archive"))
        .trust(GatewayId::new("east", name), east_key.public_key())
        .trust(GatewayId::new("west", name), west_key.public_key());
    let mut c = Collector::open(config).unwrap();

    // West first: shipped, verified, its watermark published.
    let west = retaining(&west_log, "west");
    wait_shipped(&west, &west_log);
    collect_all(&mut c, "west", name, local_batches(&west_log).len());
    c.sync().unwrap();
    let west_mark = watermark(&url, "west", name).expect("west's watermark");
    assert!(west_mark.key_id == west_key.public_key().key_id());
    assert!(west_mark.next_seq > 2_000, "{}", west_mark.to_json());
    assert!(watermark(&url, "east", name).is_none());

    // East, with retention on, ships everything and keeps checking its
    // watermark: there is none of east's yet, and west's is not east's.
    let east = retaining(&east_log, "east");
    wait_shipped(&east, &east_log);
    wait_heartbeats(&url, &auditring_nats::heartbeat_subject("east", name), 3);
    assert_eq!(east.metrics().deleted_files, 0, "{:?}", east.metrics());
    assert_eq!(rotated_files(&east_log), east_rotated);

    // Now the collector verifies east too: two gateways, two archives.
    collect_all(&mut c, "east", name, local_batches(&east_log).len());
    c.sync().unwrap();
    let report = c.report();
    let (e, w) = (
        report.gateway("east", name).unwrap(),
        report.gateway("west", name).unwrap(),
    );
    assert_eq!((e.status.as_str(), e.events), ("ok", 2_000), "{e:?}");
    assert_eq!((w.status.as_str(), w.events), ("ok", 4_000), "{w:?}");
    assert!(e.expected && w.expected);
    let archive = dir.join("archive");
    assert_eq!(
        e.archive,
        archive.join("east").join(name).join("audit.jsonl")
    );
    assert_eq!(
        w.archive,
        archive.join("west").join(name).join("audit.jsonl")
    );
    let text = report.to_string();
    assert!(text.contains(&format!("east/{name} ")), "{text}");
    assert!(text.contains(&format!("west/{name} ")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let ids: Vec<(String, String)> = json["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["partition"].as_str().unwrap().into(),
                g["gateway"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [("east".into(), name.into()), ("west".into(), name.into())]
    );
    for (g, bytes, key, other) in [
        (e, &east_bytes, &east_key, &west_key),
        (w, &west_bytes, &west_key, &east_key),
    ] {
        let archived = std::fs::read(&g.archive).unwrap();
        assert!(
            &archived == bytes,
            "{}: the archive differs from its log",
            g.archive.display()
        );
        let report = Verifier::new([key.public_key()]).verify_bytes(&archived);
        assert_eq!(report.status(), Status::Intact, "{report:?}");
        let report = Verifier::new([other.public_key()]).verify_bytes(&archived);
        assert_ne!(report.status(), Status::Intact, "one chain, one key");
    }
    let east_mark = watermark(&url, "east", name).expect("east's watermark");
    assert!(east_mark.key_id == east_key.public_key().key_id());
    assert!(watermark(&url, "west", name).unwrap().key_id == west_key.public_key().key_id());

    // Each shipper deletes its own files below its own watermark, and what
    // each keeps is the end of its archived chain.
    eventually("both spools trimmed below their watermarks", || {
        east.metrics().deleted_files > 0 && west.metrics().deleted_files > 0
    });
    let (east_m, west_m) = (east.stop().unwrap(), west.stop().unwrap());
    for (log, bytes, m, rotated) in [
        (&east_log, &east_bytes, &east_m, east_rotated),
        (&west_log, &west_bytes, &west_m, west_rotated),
    ] {
        assert!(log.exists(), "the active file is never deleted");
        assert_eq!(rotated_files(log) as u64 + m.deleted_files, rotated as u64);
        let kept = local_bytes(log);
        assert!(
            !kept.is_empty() && bytes.ends_with(&kept),
            "{}",
            log.display()
        );
    }
}

#[test]
fn a_watermark_stream_made_for_gateway_names_alone_is_updated() {
    // Its own server: the stream is made the old way before anyone else.
    let server = Server::start("oldmarks");
    let dir = scratch("oldmarks");
    let subjects = || {
        block_on(async {
            let client = async_nats::connect(server.url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let mut stream = js
                .get_stream(auditring_nats::WATERMARK_STREAM)
                .await
                .unwrap();
            stream.info().await.unwrap().config.subjects.clone()
        })
    };
    block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: auditring_nats::WATERMARK_STREAM.into(),
            subjects: vec!["auditring.watermark.*".into()],
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    });
    assert_eq!(subjects(), ["auditring.watermark.*"]);
    let key = SigningKey::generate();
    let c = collector(&server.url(), &dir, "p", &[("gw", &key)]);
    assert_eq!(subjects(), ["auditring.watermark.>"]);
    drop(c);
}
