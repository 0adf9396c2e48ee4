//! The signer's work per event (numbering, encoding, hashing, statistics
//! per action and decision) allocates nothing in steady state: recording
//! three times as many events costs no more allocations than a few per
//! batch, counted over every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditring::sink::WriterSink;
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of the whole process while `events` events go through a
/// runtime (start-up and shutdown excluded as far as they are fixed).
fn allocations_for(events: u64) -> u64 {
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(WriterSink::new("null", std::io::sink()))
        .max_batch(1024)
        .max_delay(Duration::from_secs(3600))
        .parallel_hashing(false)
        .full_policy(FullPolicy::Block)
        .report_interval(None)
        .build()
        .unwrap();
    let mut recorder = runtime.recorder().unwrap();
    // Warm up: the first batches size the recycled buffers and add the
    // (action, decision) pairs.
    for i in 0..4_096u64 {
        record(&mut recorder, i);
    }
    let sealed = |n: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while runtime.stats().sealed < n {
            assert!(std::time::Instant::now() < deadline, "the signer stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    sealed(4_096);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..events {
        record(&mut recorder, i);
    }
    sealed(4_096 + events / 1024 * 1024);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    drop(recorder);
    runtime.shutdown().unwrap();
    after - before
}

fn record(recorder: &mut auditring::Recorder<AuditPayload>, i: u64) {
    recorder
        .record(|e| {
            e.set_action(["http.get", "http.post", "db.query", "tool.call"][(i % 4) as usize]);
            e.decision = if i.is_multiple_of(7) {
                Decision::Deny
            } else {
                Decision::Allow
            };
            e.enforcement_latency_us = i % 100;
            e.dispatch_status = 200;
            e.dispatch_latency_us = i % 1000;
        })
        .unwrap();
}

#[test]
fn per_event_work_on_the_signer_allocates_nothing() {
    let small = allocations_for(16 * 1024);
    let large = allocations_for(64 * 1024);
    let extra_events = 48 * 1024;
    let extra = large.saturating_sub(small);
    // A few allocations per batch at most (48 more batches), never one per
    // event.
    assert!(
        extra < 48 * 8,
        "{extra} more allocations for {extra_events} more events ({small} vs {large})"
    );
}
