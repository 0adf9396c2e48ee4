//! One runtime shared by many threads: each worker takes its own recorder
//! from a shared reference, an `Arc` or a cloned handle, and every event
//! is sealed once; after the guard shuts the pipeline down, a handle
//! refuses new recorders and still reports.

use std::sync::Arc;

use auditring::sink::MemorySink;
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, FullPolicy, Runtime, SigningKey};

#[test]
fn workers_take_recorders_from_a_shared_runtime() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let guard = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let runtime = guard.runtime();
    let per_thread = if cfg!(miri) { 10 } else { 5_000 };
    std::thread::scope(|scope| {
        for worker in 0..4u64 {
            let runtime = &runtime;
            scope.spawn(move || {
                let mut recorder = runtime.recorder().expect("a lane per worker");
                for i in 0..per_thread {
                    recorder
                        .record(|e| {
                            e.set_action("shared").response_size = worker * 1_000_000 + i;
                        })
                        .unwrap();
                }
            });
        }
    });
    // And through an Arc, from a thread that outlives no borrow.
    let runtime = Arc::new(runtime);
    let shared = Arc::clone(&runtime);
    std::thread::spawn(move || {
        let mut recorder = shared.recorder().unwrap();
        recorder
            .record(|e| {
                e.set_action("arc");
            })
            .unwrap();
    })
    .join()
    .unwrap();
    // And a cloned handle moved into a thread.
    let handle = runtime.as_ref().clone();
    std::thread::spawn(move || {
        handle
            .recorder()
            .unwrap()
            .record(|e| {
                e.set_action("clone");
            })
            .unwrap();
    })
    .join()
    .unwrap();
    // The last seal written so far is a checkpoint the final log holds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let written = loop {
        if let Some(c) = runtime.stats().checkpoint {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "no seal written");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert_eq!(written.key_id, key.key_id());
    let report = guard.shutdown().unwrap();
    assert_eq!(report.accepted, 4 * per_thread + 2);
    assert_eq!(report.sealed, report.accepted);
    // The handles outlive the pipeline: no new recorders, counters final.
    assert!(matches!(
        runtime.recorder(),
        Err(auditring::RecorderError::Closed)
    ));
    assert_eq!(runtime.stats().sealed, report.sealed);
    assert_eq!(
        runtime.stats_snapshot().stages[0].latency.count,
        report.accepted
    );
    let verified = Verifier::new([key.public_key()])
        .expect_checkpoint(written)
        .verify_bytes(&log.bytes());
    assert_eq!(verified.status(), Status::Intact);
    assert_eq!(verified.events, 4 * per_thread + 2);
}
