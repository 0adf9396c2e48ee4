//! Exhaustive checks of the lane protocol under loom's scheduler (the
//! symmetric-fence variant of the close protocol). Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//! cargo test --profile loom --lib loom_models`.
use super::*;
use loom::thread;

/// Drains every published event's value into `seen`.
fn drain_into(c: &mut RingConsumer<u64>, seen: &mut Vec<u64>) -> usize {
    c.drain(usize::MAX, |e| seen.push(*e.value))
}

fn push(p: &mut LaneProducer<u64>, v: u64) -> Result<bool, Closed> {
    if !p.has_space() {
        return Ok(false);
    }
    p.publish(v, |slot| *slot = v).map(|()| true)
}

/// Publish and consume across a wrap-around: every value arrives once,
/// in order, and each slot read sees the complete write.
#[test]
fn publish_consume_wraps() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 2, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || {
            let mut p = LaneProducer::claim(&s).unwrap();
            let mut v = 1;
            while v <= 3 {
                if push(&mut p, v).unwrap() {
                    v += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut seen = Vec::new();
        while seen.len() < 3 {
            if drain_into(&mut c, &mut seen) == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(seen, [1, 2, 3]);
    });
}

/// A full lane refuses; the producer succeeds only after the consumer
/// frees a slot, and never overwrites an unread event.
#[test]
fn full_lane_never_overwrites() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 1, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || {
            let mut p = LaneProducer::claim(&s).unwrap();
            assert!(push(&mut p, 1).unwrap());
            let second = push(&mut p, 2).unwrap();
            second
        });
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        let second = producer.join().unwrap();
        drain_into(&mut c, &mut seen);
        // The first event is never lost, and the second is present
        // exactly when the producer was told it was accepted.
        let expected: &[u64] = if second { &[1, 2] } else { &[1] };
        assert_eq!(seen, expected);
    });
}

/// Two producers on two lanes and one consumer: nothing lost or
/// duplicated, per-producer order kept.
#[test]
fn two_producers_one_consumer() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(2, 2, || 0u64);
        let producers: Vec<_> = (0..2u64)
            .map(|id| {
                let s = Arc::clone(&shared);
                thread::spawn(move || {
                    let mut p = LaneProducer::claim(&s).unwrap();
                    for i in 0..2u64 {
                        while !push(&mut p, id * 10 + i).unwrap() {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        while seen.len() < 4 {
            if drain_into(&mut c, &mut seen) == 0 {
                thread::yield_now();
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let a: Vec<u64> = seen.iter().copied().filter(|v| *v < 10).collect();
        let b: Vec<u64> = seen.iter().copied().filter(|v| *v >= 10).collect();
        assert_eq!(a, [0, 1]);
        assert_eq!(b, [10, 11]);
    });
}

/// A lane handed from one producer to the next (drop, then claim) keeps
/// its count: the next owner neither overwrites nor repeats an event.
#[test]
fn lane_handoff_between_producers() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 2, || 0u64);
        // Two producers each try once to claim the only lane and publish;
        // a claim fails only while the other one owns the lane.
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let s = Arc::clone(&shared);
                thread::spawn(move || match LaneProducer::claim(&s) {
                    Ok(mut p) => push(&mut p, v).unwrap().then_some(v),
                    Err(e) => {
                        assert_eq!(e, ClaimError::NoFreeLane);
                        None
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        let mut accepted: Vec<u64> = producers
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect();
        drain_into(&mut c, &mut seen);
        assert!(!accepted.is_empty(), "one producer always gets the lane");
        seen.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(seen, accepted);
    });
}

/// Close racing a publish: the event is either accepted and drained, or
/// refused with `Closed` and never seen. Nothing in between.
#[test]
fn close_races_publish() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 2, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || match LaneProducer::claim(&s) {
            Ok(mut p) => matches!(push(&mut p, 7), Ok(true)),
            Err(e) => {
                assert_eq!(e, ClaimError::Closed);
                false
            }
        });
        c.close();
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        let accepted = producer.join().unwrap();
        assert_eq!(seen.len(), usize::from(accepted));
        assert_eq!(shared.published(), u64::from(accepted));
    });
}

/// Two publishes racing close on a one-slot lane, with a drain between:
/// what the producer was told was accepted is exactly what is drained.
#[test]
fn close_races_two_publishes_one_slot() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 1, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || {
            let mut accepted = Vec::new();
            if let Ok(mut p) = LaneProducer::claim(&s) {
                for v in [1u64, 2] {
                    match push(&mut p, v) {
                        Ok(true) => accepted.push(v),
                        Ok(false) => {}
                        Err(Closed) => break,
                    }
                }
            }
            accepted
        });
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        c.close();
        drain_into(&mut c, &mut seen);
        assert_eq!(seen, producer.join().unwrap());
    });
}

/// A panicking write racing close: the close does not wait for it,
/// nothing of it is drained, and the next publish behaves.
#[test]
fn panicking_write_races_close() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 1, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || {
            let Ok(mut p) = LaneProducer::claim(&s) else {
                return false;
            };
            assert!(p.has_space());
            // Panics unless the close came first (then the write never
            // runs).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = p.publish(1, |v| {
                    *v = 9;
                    panic!("writer failed");
                });
            }));
            matches!(push(&mut p, 2), Ok(true))
        });
        c.close();
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        let second = producer.join().unwrap();
        let expected: &[u64] = if second { &[2] } else { &[] };
        assert_eq!(seen, expected);
    });
}

/// A consumer that panics while handling an event frees it; the producer
/// then reuses the one slot without overwriting anything unread.
#[test]
fn consumer_panic_then_slot_reuse() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 1, || 0u64);
        let s = Arc::clone(&shared);
        let producer = thread::spawn(move || {
            let mut p = LaneProducer::claim(&s).unwrap();
            assert!(push(&mut p, 1).unwrap());
            for _ in 0..3 {
                if push(&mut p, 2).unwrap() {
                    return true;
                }
                thread::yield_now();
            }
            false
        });
        let mut seen = Vec::new();
        while seen.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.drain(usize::MAX, |e| {
                    seen.push(*e.value);
                    panic!("sink failed");
                });
            }));
            if seen.is_empty() {
                thread::yield_now();
            }
        }
        let second = producer.join().unwrap();
        drain_into(&mut c, &mut seen);
        let expected: &[u64] = if second { &[1, 2] } else { &[1] };
        assert_eq!(seen, expected);
    });
}

/// Close racing a lane handoff (drop on one thread, claim again): the
/// first owner's event is kept, the second's only if accepted.
#[test]
fn close_races_lane_handoff() {
    loom::model(|| {
        let (shared, mut c) = Shared::new(1, 2, || 0u64);
        let s = Arc::clone(&shared);
        let mut p = LaneProducer::claim(&shared).unwrap();
        assert!(push(&mut p, 1).unwrap());
        let producer = thread::spawn(move || {
            drop(p);
            match LaneProducer::claim(&s) {
                Ok(mut q) => matches!(push(&mut q, 2), Ok(true)),
                Err(_) => false,
            }
        });
        c.close();
        let mut seen = Vec::new();
        drain_into(&mut c, &mut seen);
        let second = producer.join().unwrap();
        let expected: &[u64] = if second { &[1, 2] } else { &[1] };
        assert_eq!(seen, expected);
    });
}
