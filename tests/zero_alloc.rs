//! Recording allocates nothing on the heap after start-up, for the in-place
//! and the copy forms, with fitting and over-long inputs, and on the drop
//! path of a full lane; nor does the derived encoder, with or without
//! redaction rules, once its buffer has grown.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use auditring::format::encode::Redactor;
use auditring::{AuditPayload, Capture, Decision, EncodeJson, FullPolicy, RecordError, Redaction};

/// Counts every allocation and reallocation, per thread, so that tests
/// running in parallel (and the test harness) do not count for each other.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const EVENTS: u64 = 100_000;

/// Allocations made so far by the calling thread.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Fills an event; every 7th one has over-long strings, including a
/// multi-byte character cut at the limit.
fn fill(e: &mut AuditPayload, i: u64, long: &str) {
    e.set_session_id("0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6")
        .set_token_id("tok_7f3a9c")
        .set_agent_id("agent-research-3")
        .set_action("http.get")
        .set_context_hash("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
        .set_bundle_version("bundle-2026.11.3")
        .set_sandbox_id("sbx-12");
    if i.is_multiple_of(7) {
        e.set_resource(long).set_deny_reason(long);
        e.decision = Decision::Deny;
    } else {
        e.set_resource("https://api.example.com/v1/orders?id=42");
        e.decision = Decision::Allow;
    }
    e.enforcement_latency_us = i % 97;
    e.dispatch_status = 200;
    e.dispatch_latency_us = i % 1013;
    e.response_size = i;
}

#[test]
fn record_allocates_nothing() {
    // All set-up (ring, recorder, long inputs, template) happens before the
    // counter is read.
    let (capture, mut consumer) = Capture::<AuditPayload>::builder()
        .lane_capacity(4096)
        .max_producers(1)
        .full_policy(FullPolicy::Drop)
        .build()
        .unwrap();
    let mut recorder = capture.recorder().unwrap();
    let long = "é".repeat(600); // 1200 bytes: over every capacity, cut mid-character
    let mut template = AuditPayload::default();
    fill(&mut template, 7, &long);
    assert!(!template.truncated().is_empty());
    let mut truncated_seen = 0u64;
    let mut drained = 0u64;

    let before = allocations();
    for i in 0..EVENTS {
        let r = if i % 2 == 0 {
            recorder.record(|e| fill(e, i, &long))
        } else {
            recorder.record_copy(&template)
        };
        r.unwrap();
        if i % 1024 == 1023 {
            drained += consumer.drain(usize::MAX, |ev| {
                truncated_seen += u64::from(!ev.payload().truncated().is_empty());
            }) as u64;
        }
    }
    drained += consumer.drain(usize::MAX, |ev| {
        truncated_seen += u64::from(!ev.payload().truncated().is_empty());
    }) as u64;
    let after = allocations();

    assert_eq!(
        after - before,
        0,
        "record() allocated {} times",
        after - before
    );
    assert_eq!(drained, EVENTS);
    // Every copy (half) plus every 7th in-place event carries the marker.
    let expected = EVENTS / 2 + (0..EVENTS).filter(|i| i % 2 == 0 && i % 7 == 0).count() as u64;
    assert_eq!(truncated_seen, expected);
}

#[test]
fn drop_path_allocates_nothing() {
    let (capture, _consumer) = Capture::<AuditPayload>::builder()
        .lane_capacity(64)
        .max_producers(1)
        .build()
        .unwrap();
    let mut recorder = capture.recorder().unwrap();
    let long = "x".repeat(2000);
    let before = allocations();
    let mut full = 0u64;
    for i in 0..EVENTS {
        match recorder.try_record(|e| fill(e, i, &long)) {
            Ok(()) => {}
            Err(RecordError::Full) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "the drop path allocated {} times",
        after - before
    );
    assert_eq!(full, EVENTS - 64);
    let stats = capture.stats();
    assert_eq!(stats.accepted + stats.dropped, EVENTS);
}

#[test]
fn encoding_allocates_nothing() {
    let long = "\u{1}\"é".repeat(400);
    let events: Vec<AuditPayload> = (0..64)
        .map(|i| {
            let mut e = AuditPayload::default();
            fill(&mut e, i, &long);
            e
        })
        .collect();
    let rules = Redactor::new(
        [
            ("session_id".to_owned(), Redaction::Hmac),
            ("agent_id".to_owned(), Redaction::Mask),
            ("deny_reason".to_owned(), Redaction::Remove),
            ("enforcement_latency_us".to_owned(), Redaction::Hmac),
        ],
        b"0123456789abcdef-redaction".to_vec(),
    );
    let mut out = Vec::with_capacity(1 << 20);
    let before = allocations();
    for _ in 0..100 {
        out.clear();
        for e in &events {
            e.write_json(&mut out, Redactor::none());
            e.write_json(&mut out, &rules);
        }
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "encoding allocated {} times",
        after - before
    );
    assert!(out.len() > 64 * 600, "the events were written");
}
