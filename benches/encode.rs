//! Encoding one execution event as its JSON payload: the three candidates
//! for the signer's hot loop, on the same events, in the same run.
//!
//! - `serde_json`: `serde_json::to_writer` through the payload's
//!   `Serialize` implementation;
//! - `simd_json`: `simd_json::serde::to_writer`, simd-json's serde
//!   serializer, through the same implementation;
//! - `hand_written`: `Payload::write_json`, the encoder the signer uses.
//!
//! Each candidate encodes the same 200,000 events (20,000 in quick mode)
//! into a reused buffer, five times; the median time per event is printed,
//! and the outputs are checked to be byte-identical.
//!
//! `cargo bench --bench encode`; `AUDITRING_BENCH_QUICK=1` for a short run.

use std::hint::black_box;
use std::time::Instant;

use auditring::{AuditPayload, Payload};

#[path = "common/event.rs"]
mod event;

fn main() {
    let n: u64 = if std::env::var_os("AUDITRING_BENCH_QUICK").is_some() {
        20_000
    } else {
        200_000
    };
    let events: Vec<AuditPayload> = (0..n)
        .map(|i| {
            let mut e = AuditPayload::default();
            event::fill(&mut e, i);
            e
        })
        .collect();

    // Correctness first: the three encoders agree byte for byte.
    for e in events.iter().take(1000) {
        let mut hand = Vec::new();
        e.write_json(&mut hand);
        assert_eq!(hand, serde_json::to_vec(e).unwrap(), "serde_json differs");
        assert_eq!(
            hand,
            simd_json::serde::to_vec(e).unwrap(),
            "simd_json differs"
        );
    }

    type Encoder = fn(&AuditPayload, &mut Vec<u8>);
    let candidates: [(&str, Encoder); 3] = [
        ("serde_json", |e, out| {
            serde_json::to_writer(out, e).unwrap()
        }),
        ("simd_json", |e, out| {
            simd_json::serde::to_writer(out, e).unwrap()
        }),
        ("hand_written", |e, out| e.write_json(out)),
    ];
    let mut results = Vec::new();
    for (name, encode) in candidates {
        let mut buf = Vec::with_capacity(1024);
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let mut bytes = 0usize;
            for e in &events {
                buf.clear();
                encode(black_box(e), &mut buf);
                bytes += black_box(buf.len());
            }
            times.push(started.elapsed().as_nanos() as f64 / n as f64);
            black_box(bytes);
        }
        times.sort_by(f64::total_cmp);
        let median = times[2];
        println!("bench=encode encoder={name} events={n} ns_per_event={median:.0}");
        results.push((name, median));
    }
    let hand = results[2].1;
    for (name, t) in &results[..2] {
        println!("ratio {name}/hand_written={:.2}", t / hand);
    }
}
