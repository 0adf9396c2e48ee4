//! Unit and stress tests of the ring (scaled down under Miri).

use super::*;
use std::sync::Barrier;

fn ring(lanes: usize, capacity: usize) -> (Arc<Shared<u64>>, RingConsumer<u64>) {
    Shared::new(lanes, capacity, || 0u64)
}

#[test]
fn an_allocation_that_cannot_be_made_is_an_error() {
    // 2^62 slots of 16 bytes overflow the address space: refused before
    // anything is allocated or initialised.
    let mut initialised = 0;
    let result = Shared::try_new(1, 1 << 62, || {
        initialised += 1;
        0u64
    });
    assert!(result.is_err());
    assert_eq!(initialised, 0);
    assert_eq!(Shared::<u64>::bytes_for(4, 1 << 62), None);
    let one = Shared::<u64>::bytes_for(1, 8).unwrap();
    assert_eq!(Shared::<u64>::bytes_for(3, 8), Some(3 * one));
    assert!(one >= 8 * 16);
}

fn push(p: &mut LaneProducer<u64>, stamp: u64, v: u64) -> Result<bool, Closed> {
    if !p.has_space() {
        return Ok(false);
    }
    p.publish(stamp, |slot| *slot = v).map(|()| true)
}

fn drain_all(c: &mut RingConsumer<u64>) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    c.drain(usize::MAX, |p| out.push((p.lane, p.stamp, *p.value)));
    out
}

#[test]
fn index_arithmetic_wraps_over_many_laps() {
    let (shared, mut c) = ring(1, 4);
    let mut p = LaneProducer::claim(&shared).unwrap();
    let mut expected = 0;
    for lap in 0..25u64 {
        for i in 0..3 {
            assert!(push(&mut p, lap * 10 + i, lap * 3 + i).unwrap());
        }
        let got: Vec<u64> = drain_all(&mut c).into_iter().map(|e| e.2).collect();
        assert_eq!(got, (expected..expected + 3).collect::<Vec<_>>());
        expected += 3;
    }
    assert_eq!(shared.published(), 75);
}

#[test]
fn full_lane_refuses_until_drained() {
    let (shared, mut c) = ring(1, 2);
    let mut p = LaneProducer::claim(&shared).unwrap();
    assert!(push(&mut p, 1, 1).unwrap());
    assert!(push(&mut p, 2, 2).unwrap());
    assert!(!push(&mut p, 3, 3).unwrap(), "a full lane must refuse");
    let mut seen = Vec::new();
    assert_eq!(c.drain(1, |e| seen.push(*e.value)), 1);
    assert!(push(&mut p, 3, 3).unwrap(), "one freed slot is reusable");
    seen.extend(drain_all(&mut c).into_iter().map(|e| e.2));
    assert_eq!(seen, [1, 2, 3]);
}

#[test]
fn drain_merges_lanes_in_stamp_order() {
    let (shared, mut c) = ring(3, 8);
    let mut a = LaneProducer::claim(&shared).unwrap();
    let mut b = LaneProducer::claim(&shared).unwrap();
    let mut d = LaneProducer::claim(&shared).unwrap();
    for (p, stamps) in [
        (&mut a, [1, 5, 9]),
        (&mut b, [2, 3, 10]),
        (&mut d, [4, 6, 7]),
    ] {
        for s in stamps {
            push(p, s, s * 100).unwrap();
        }
    }
    let stamps: Vec<u64> = drain_all(&mut c).iter().map(|e| e.1).collect();
    assert_eq!(stamps, [1, 2, 3, 4, 5, 6, 7, 9, 10]);
}

#[test]
fn lanes_are_exclusive_and_reusable() {
    let (shared, _c) = ring(2, 2);
    let a = LaneProducer::claim(&shared).unwrap();
    let b = LaneProducer::claim(&shared).unwrap();
    assert_ne!(a.lane_index(), b.lane_index());
    assert_eq!(shared.lanes_in_use(), 2);
    assert_eq!(
        LaneProducer::claim(&shared).err(),
        Some(ClaimError::NoFreeLane)
    );
    drop(a);
    let again = LaneProducer::claim(&shared).unwrap();
    assert_eq!(again.lane_index(), 0);
}

#[test]
fn reclaimed_lane_continues_its_count() {
    let (shared, mut c) = ring(1, 4);
    let mut p = LaneProducer::claim(&shared).unwrap();
    push(&mut p, 1, 1).unwrap();
    push(&mut p, 2, 2).unwrap();
    drop(p);
    let mut p = LaneProducer::claim(&shared).unwrap();
    assert_eq!(p.lane_published(), 2);
    push(&mut p, 3, 3).unwrap();
    let got: Vec<u64> = drain_all(&mut c).into_iter().map(|e| e.2).collect();
    assert_eq!(got, [1, 2, 3]);
}

#[test]
fn close_freezes_what_was_accepted() {
    let (shared, mut c) = ring(2, 4);
    let mut p = LaneProducer::claim(&shared).unwrap();
    push(&mut p, 1, 1).unwrap();
    push(&mut p, 2, 2).unwrap();
    assert_eq!(c.close(), 2);
    assert!(p.is_closed());
    assert!(p.has_space());
    assert_eq!(p.publish(3, |v| *v = 3), Err(Closed));
    assert_eq!(shared.published(), 2, "a refused publish is undone");
    assert_eq!(LaneProducer::claim(&shared).err(), Some(ClaimError::Closed));
    let got: Vec<u64> = drain_all(&mut c).into_iter().map(|e| e.2).collect();
    assert_eq!(got, [1, 2]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn panic_in_writer_publishes_nothing_and_keeps_the_lane() {
    let (shared, mut c) = ring(1, 2);
    let mut p = LaneProducer::claim(&shared).unwrap();
    assert!(p.has_space());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = p.publish(7, |v| {
            *v = 99;
            panic!("writer failed");
        });
    }));
    assert!(r.is_err());
    assert_eq!(shared.dropped(), 1, "the abandoned attempt is counted");
    assert!(drain_all(&mut c).is_empty());
    assert!(push(&mut p, 8, 8).unwrap());
    assert!(push(&mut p, 9, 9).unwrap());
    let got: Vec<u64> = drain_all(&mut c).into_iter().map(|e| e.2).collect();
    assert_eq!(got, [8, 9]);
}

#[test]
fn panic_in_consumer_frees_handled_events_only() {
    let (shared, mut c) = ring(1, 8);
    let mut p = LaneProducer::claim(&shared).unwrap();
    for v in 0..5 {
        push(&mut p, v, v).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.drain(usize::MAX, |e| {
            if *e.value == 2 {
                panic!("sink failed");
            }
        });
    }));
    assert!(r.is_err());
    let got: Vec<u64> = drain_all(&mut c).into_iter().map(|e| e.2).collect();
    assert_eq!(got, [3, 4], "handled events are not handed out twice");
}

#[test]
fn producers_and_consumer_exactly_once_in_order() {
    let producers = 3usize;
    let per_producer: u64 = if cfg!(miri) { 60 } else { 100_000 };
    let (shared, mut c) = ring(producers, 8);
    let barrier = Arc::new(Barrier::new(producers + 1));
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let shared = Arc::clone(&shared);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut p = LaneProducer::claim(&shared).unwrap();
                let lane = p.lane_index() as u64;
                barrier.wait();
                for i in 0..per_producer {
                    while !p.has_space() {
                        std::thread::yield_now();
                    }
                    p.publish(i, |v| *v = (lane << 32) | i).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let mut next = vec![0u64; producers];
    let mut total = 0;
    while total < producers as u64 * per_producer {
        let n = c.drain(usize::MAX, |e| {
            let lane = (*e.value >> 32) as usize;
            assert_eq!(lane, e.lane);
            assert_eq!(*e.value & 0xffff_ffff, next[lane], "per-producer order");
            next[lane] += 1;
        });
        if n == 0 {
            std::thread::yield_now();
        }
        total += n as u64;
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(next.iter().all(|&n| n == per_producer));
    assert_eq!(drain_all(&mut c).len(), 0, "nothing consumed twice");
}

/// A producer that keeps calling `publish` after the close is refused
/// at once and never announces again, so `close` does not wait on it.
#[test]
fn close_is_not_held_up_by_a_producer_retrying_after_closed() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        // Room for everything the producer can publish before the close.
        let (shared, mut c) = ring(1, if cfg!(miri) { 64 } else { 1 << 16 });
        let s = Arc::clone(&shared);
        let barrier = Arc::new(Barrier::new(2));
        let b = Arc::clone(&barrier);
        // Publishes, then keeps retrying after the close until it has
        // been refused many times (or the lane is full).
        let producer = std::thread::spawn(move || {
            let mut p = LaneProducer::claim(&s).unwrap();
            b.wait();
            let mut refused = 0u64;
            while refused < 10_000 && p.has_space() {
                if p.publish(1, |v| *v = 1).is_err() {
                    refused += 1;
                }
            }
            refused
        });
        barrier.wait();
        let started = std::time::Instant::now();
        c.close();
        let took = started.elapsed();
        producer.join().unwrap();
        assert!(
            took < std::time::Duration::from_secs(1),
            "close took {took:?}"
        );
        // Everything accepted before the close is drainable.
        let drained = drain_all(&mut c).len() as u64;
        assert_eq!(drained, shared.published());
    }
}

#[test]
fn close_races_publish_without_loss_or_phantoms() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let (shared, mut c) = ring(2, 64);
        let barrier = Arc::new(Barrier::new(3));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mut p = LaneProducer::claim(&shared).unwrap();
                    barrier.wait();
                    let mut accepted = 0u64;
                    for i in 0..1_000u64 {
                        if !p.has_space() {
                            continue;
                        }
                        match p.publish(i, |v| *v = i) {
                            Ok(()) => accepted += 1,
                            Err(Closed) => break,
                        }
                    }
                    accepted
                })
            })
            .collect();
        barrier.wait();
        let mut drained = drain_all(&mut c).len() as u64;
        c.close();
        drained += drain_all(&mut c).len() as u64;
        let accepted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(drained, accepted);
        assert_eq!(shared.published(), accepted);
    }
}
