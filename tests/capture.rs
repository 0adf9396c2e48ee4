//! Behaviour of the capture ring as users see it: policies, counters,
//! shutdown, lanes, panics and a multi-producer stress run.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auditring::{
    AuditPayload, Capture, ConfigError, Decision, FullPolicy, RecordError, RecorderError, capacity,
};

fn capture(
    lane_capacity: usize,
    producers: usize,
    policy: FullPolicy,
) -> (Capture<AuditPayload>, auditring::Consumer<AuditPayload>) {
    Capture::<AuditPayload>::builder()
        .lane_capacity(lane_capacity)
        .max_producers(producers)
        .full_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn bad_configuration_is_refused_with_the_fix() {
    let err = Capture::<AuditPayload>::builder()
        .lane_capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroLaneCapacity);
    assert!(err.to_string().contains("at least 1"));
    let err = Capture::<AuditPayload>::builder()
        .max_producers(0)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroProducers);
    let err = Capture::<AuditPayload>::builder()
        .lane_capacity(auditring::capture::MAX_LANE_CAPACITY + 1)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::LaneCapacityTooLarge(_)));
    assert!(
        Capture::<AuditPayload>::builder()
            .max_producers(auditring::capture::MAX_PRODUCERS + 1)
            .build()
            .is_err()
    );
}

#[test]
fn capacity_rounds_up_to_a_power_of_two() {
    let (c, _consumer) = capture(1000, 1, FullPolicy::Drop);
    assert_eq!(c.lane_capacity(), 1024);
    let (c, _consumer) = capture(1, 1, FullPolicy::Drop);
    assert_eq!(c.lane_capacity(), 1);
}

#[test]
fn drop_policy_counts_exactly() {
    let (c, mut consumer) = capture(8, 1, FullPolicy::Drop);
    let mut r = c.recorder().unwrap();
    let mut full = 0;
    for i in 0..20u64 {
        match r.record(|e| e.response_size = i) {
            Ok(()) => {}
            Err(RecordError::Full) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(full, 12);
    let stats = c.stats();
    assert_eq!((stats.accepted, stats.dropped), (8, 12));
    let mut sizes = Vec::new();
    consumer.drain(usize::MAX, |e| sizes.push(e.payload().response_size));
    assert_eq!(
        sizes,
        (0..8).collect::<Vec<_>>(),
        "accepted events are never overwritten"
    );
}

#[test]
fn block_policy_loses_nothing() {
    let (c, mut consumer) = capture(4, 1, FullPolicy::Block);
    let mut r = c.recorder().unwrap();
    let n: u64 = 20_000;
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            r.record(|e| e.response_size = i).unwrap();
        }
    });
    let mut next = 0;
    while next < n {
        consumer.drain(3, |e| {
            assert_eq!(e.payload().response_size, next);
            next += 1;
        });
    }
    producer.join().unwrap();
    assert_eq!(c.stats().dropped, 0);
    assert_eq!(c.stats().accepted, n);
}

#[test]
fn block_for_gives_up_after_its_bound_and_counts() {
    let (c, _consumer) = capture(1, 1, FullPolicy::BlockFor(Duration::from_millis(20)));
    let mut r = c.recorder().unwrap();
    r.record(|_| {}).unwrap();
    let started = Instant::now();
    assert_eq!(r.record(|_| {}), Err(RecordError::Full));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(20),
        "gave up after {waited:?}"
    );
    assert_eq!(c.stats().dropped, 1);
}

#[test]
fn closing_wakes_blocked_producers() {
    let (c, mut consumer) = capture(1, 1, FullPolicy::Block);
    let mut r = c.recorder().unwrap();
    r.record(|_| {}).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let blocked = std::thread::spawn(move || {
        b.wait();
        r.record(|_| {})
    });
    barrier.wait();
    assert_eq!(consumer.close(), 1);
    assert_eq!(blocked.join().unwrap(), Err(RecordError::Closed));
    assert_eq!(consumer.drain(usize::MAX, |_| {}), 1);
    assert_eq!(c.stats().dropped, 0, "a refusal at shutdown is not loss");
}

#[test]
fn after_shutdown_recording_and_new_recorders_are_refused() {
    let (c, mut consumer) = capture(8, 2, FullPolicy::Drop);
    let mut r = c.recorder().unwrap();
    consumer.close();
    assert!(c.is_closed());
    assert_eq!(r.record(|_| {}), Err(RecordError::Closed));
    assert_eq!(r.try_record(|_| {}), Err(RecordError::Closed));
    assert_eq!(c.recorder().unwrap_err(), RecorderError::Closed);
    assert!(RecordError::Closed.to_string().contains("closed"));
}

#[test]
fn dropping_the_consumer_closes_the_ring() {
    let (c, consumer) = capture(8, 1, FullPolicy::Block);
    let mut r = c.recorder().unwrap();
    drop(consumer);
    assert_eq!(r.record(|_| {}), Err(RecordError::Closed));
}

#[test]
fn lanes_are_limited_and_freed_by_drop() {
    let (c, _consumer) = capture(8, 2, FullPolicy::Drop);
    let a = c.recorder().unwrap();
    let _b = c.recorder().unwrap();
    let err = c.recorder().unwrap_err();
    assert_eq!(err, RecorderError::NoFreeLane { lanes: 2 });
    assert!(err.to_string().contains("max_producers"));
    drop(a);
    assert!(c.recorder().is_ok());
}

#[test]
fn a_panicking_fill_is_counted_and_does_not_wedge_the_lane() {
    let (c, mut consumer) = capture(4, 1, FullPolicy::Drop);
    let mut r = c.recorder().unwrap();
    r.record(|e| {
        e.set_action("before");
    })
    .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = r.record(|e| {
            e.set_action("half-written");
            panic!("gateway bug while filling");
        });
    }));
    assert!(result.is_err());
    r.record(|e| {
        e.set_action("after");
    })
    .unwrap();
    let mut actions = Vec::new();
    consumer.drain(usize::MAX, |e| {
        actions.push(e.payload().action().to_owned())
    });
    assert_eq!(
        actions,
        ["before", "after"],
        "the half-written event is never visible"
    );
    let stats = c.stats();
    assert_eq!((stats.accepted, stats.dropped), (2, 1));
}

#[test]
fn slots_are_cleared_between_events() {
    let (c, mut consumer) = capture(1, 1, FullPolicy::Drop);
    let mut r = c.recorder().unwrap();
    r.record(|e| {
        e.set_deny_reason("first")
            .set_resource(&"x".repeat(capacity::RESOURCE + 1));
        e.decision = Decision::Deny;
        e.response_size = 5;
    })
    .unwrap();
    consumer.drain(usize::MAX, |_| {});
    r.record(|e| {
        e.set_action("second");
    })
    .unwrap();
    consumer.drain(usize::MAX, |e| {
        let p = e.payload();
        assert_eq!(p.action(), "second");
        assert_eq!(p.deny_reason(), "");
        assert_eq!(p.decision, Decision::Allow);
        assert_eq!(p.response_size, 0);
        assert!(p.truncated().is_empty());
    });
}

#[test]
fn timestamps_are_wall_clock_and_ordered() {
    let (c, mut consumer) = capture(64, 2, FullPolicy::Drop);
    let mut a = c.recorder().unwrap();
    let mut b = c.recorder().unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for i in 0..10u64 {
        let r = if i % 2 == 0 { &mut a } else { &mut b };
        r.record(|e| e.response_size = i).unwrap();
    }
    let mut times = Vec::new();
    let mut order = Vec::new();
    consumer.drain(usize::MAX, |e| {
        times.push(e.unix_nanos());
        order.push(e.payload().response_size);
    });
    assert_eq!(
        order,
        (0..10).collect::<Vec<_>>(),
        "merged in capture order"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        times[0] + 1_000_000 >= before,
        "capture time is wall-clock time"
    );
}

/// Several producers with the Block policy: every accepted event is
/// consumed exactly once and in per-producer order, and the counters add up.
#[test]
fn stress_many_producers_exactly_once() {
    let producers = 4;
    let per_producer: u64 = 200_000;
    let (c, mut consumer) = capture(256, producers, FullPolicy::Block);
    let barrier = Arc::new(Barrier::new(producers + 1));
    let handles: Vec<_> = (0..producers as u64)
        .map(|p| {
            let mut r = c.recorder().unwrap();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..per_producer {
                    r.record(|e| {
                        e.dispatch_latency_us = p;
                        e.response_size = i;
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let mut next = vec![0u64; producers];
    let mut total = 0;
    while total < producers as u64 * per_producer {
        let n = consumer.drain(1024, |e| {
            let p = e.payload().dispatch_latency_us as usize;
            assert_eq!(
                e.payload().response_size,
                next[p],
                "producer {p} out of order"
            );
            next[p] += 1;
        });
        if n == 0 {
            std::thread::yield_now();
        }
        total += n as u64;
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(consumer.is_empty());
    assert_eq!(next, vec![per_producer; producers]);
    let stats = c.stats();
    assert_eq!(
        (stats.accepted, stats.dropped),
        (producers as u64 * per_producer, 0)
    );
}

/// Producers with the Drop policy against a slow consumer, closed mid-run:
/// accepted + dropped == attempted, and the consumer sees exactly the
/// accepted events.
#[test]
fn stress_drop_and_close_accounting_is_exact() {
    let producers = 3;
    let (c, mut consumer) = capture(64, producers, FullPolicy::Drop);
    let barrier = Arc::new(Barrier::new(producers + 1));
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let mut r = c.recorder().unwrap();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let (mut ok, mut full) = (0u64, 0u64);
                loop {
                    match r.record(|e| e.response_size = ok) {
                        Ok(()) => ok += 1,
                        Err(RecordError::Full) => full += 1,
                        Err(RecordError::Closed) => return (ok, full),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let mut drained = 0u64;
    while drained < 50_000 {
        drained += consumer.drain(16, |_| {}) as u64;
    }
    consumer.close();
    drained += consumer.drain(usize::MAX, |_| {}) as u64;
    let (ok, full) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let stats = c.stats();
    assert_eq!(drained, ok);
    assert_eq!(stats.accepted, ok);
    assert_eq!(stats.dropped, full);
}
