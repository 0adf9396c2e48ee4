//! Latency statistics through the runtime: a known distribution comes back
//! as recorded, every stage is measured, exports are well-formed, and bad
//! settings are refused with the fix.

use auditring::sink::MemorySink;
use auditring::stats::Stage;
use auditring::{
    AuditPayload, BuildError, Decision, FullPolicy, Runtime, RuntimeGuard, SigningKey,
};

fn runtime() -> RuntimeGuard<AuditPayload> {
    Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .max_batch(64)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap()
}

#[test]
fn complete_snapshot_after_events_are_sealed() {
    let runtime = runtime();
    let mut r = runtime.recorder().unwrap();
    for v in 1..=10u64 {
        r.record(|e| {
            e.set_action("db.query");
            e.decision = Decision::Deny;
            e.enforcement_latency_us = 100 + v;
        })
        .unwrap();
    }
    for v in 1..=1000u64 {
        r.record(|e| {
            e.set_action("db.query");
            e.decision = Decision::Allow;
            e.enforcement_latency_us = v;
            if v % 2 == 0 {
                e.dispatch_status = 200;
                e.dispatch_latency_us = 7;
            }
        })
        .unwrap();
    }
    drop(r);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runtime.stats().sealed < 1010 {
        assert!(
            std::time::Instant::now() < deadline,
            "events not sealed in time"
        );
        std::thread::yield_now();
    }
    let snapshot = runtime.stats_snapshot();
    let row = snapshot
        .payload
        .iter()
        .find(|r| r.action == "db.query" && r.decision == "allow")
        .expect("a row for the pair");
    let e = row.enforcement_us;
    assert_eq!(e.count, 1000);
    let close = |a: u64, b: u64| a.abs_diff(b) * 200 <= b; // within 0.5 %
    assert!(close(e.p50, 500), "p50 {}", e.p50);
    assert!(close(e.p99, 990), "p99 {}", e.p99);
    assert!(close(e.p999, 999), "p999 {}", e.p999);
    assert_eq!((e.min, e.saturated), (1, 0));
    assert!(close(e.max, 1000));
    assert_eq!(row.dispatch_us.count, 500, "only dispatched calls");
    assert_eq!(row.dispatch_us.p50, 7);
    let deny = snapshot
        .payload
        .iter()
        .find(|r| r.decision == "deny")
        .unwrap();
    assert_eq!(
        deny.enforcement_us.count, 10,
        "each decision has its own row"
    );
    assert_eq!(
        (deny.enforcement_us.min, deny.enforcement_us.max),
        (101, 110)
    );

    // The HdrHistogram percentile-distribution export.
    let text = runtime
        .payload_percentile_distribution("db.query", "allow", false)
        .expect("the pair was seen");
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(
        text.contains("#[Max     =     1000.000, Total count    =         1000]"),
        "{text}"
    );
    assert!(
        runtime
            .payload_percentile_distribution("nope", "allow", false)
            .is_none()
    );
    let stage = runtime.percentile_distribution(Stage::Sealed);
    assert!(stage.contains("Total count    =         1010]"), "{stage}");

    for stage in &snapshot.stages {
        assert!(stage.latency.count > 0, "{:?} measured", stage.stage);
    }
    let sealed = snapshot
        .stages
        .iter()
        .find(|s| s.stage == Stage::Sealed)
        .unwrap();
    assert_eq!(sealed.latency.count, 1010);
    assert_eq!(sealed.unit, "us");
    runtime.shutdown().unwrap();
}

#[test]
fn a_core_that_does_not_exist_is_refused_at_build() {
    let err = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .signer_core(100_000)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Pin(_)), "{err}");
    assert!(
        err.to_string().contains("core 100000 is not available"),
        "{err}"
    );
    let core = auditring::capture::affinity::available_cores()[0];
    let pinned = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .signer_core(core)
        .build()
        .unwrap();
    pinned.shutdown().unwrap();
}
