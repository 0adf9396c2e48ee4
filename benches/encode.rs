//! Encoding one execution event as its JSON payload: the three candidates
//! for the signer's hot loop, on the same events, in the same run.
//!
//! - `serde_json`: `serde_json::to_writer` through the payload's
//!   `Serialize` implementation;
//! - `simd_json`: `simd_json::serde::to_writer`, simd-json's serde
//!   serializer, through the same implementation;
//! - `derived`: `EncodeJson::write_json`, the encoder `#[derive(Payload)]`
//!   generated, which the signer uses;
//! - `derived_redacting`: the same with one masking and one HMAC rule
//!   (`agent_id`, `session_id`), applied while encoding.
//!
//! Each candidate encodes the same 200,000 events (20,000 in quick mode)
//! into a reused buffer, five times; the median time per event is printed,
//! and the outputs are checked to be byte-identical. The 200,000 events
//! take 260 MB, so they stream from memory as the candidates read them;
//! `AUDITRING_BENCH_EVENTS=<n>` makes only `n` distinct events, encoded in
//! turn as many times as fit in each pass (2,000 events, 2.6 MB, stay in
//! cache: what encoding itself costs).
//!
//! `cargo bench --bench encode`; `AUDITRING_BENCH_QUICK=1` for a short run;
//! `AUDITRING_BENCH_ONLY=derived` runs one candidate (for example under
//! `valgrind --tool=callgrind`, whose instruction counts are stable on a
//! busy machine).

use std::hint::black_box;
use std::time::Instant;

use auditring::format::encode::Redactor;
use auditring::{AuditPayload, EncodeJson, Redaction};

#[path = "common/event.rs"]
mod event;

fn main() {
    let n: u64 = if std::env::var_os("AUDITRING_BENCH_QUICK").is_some() {
        20_000
    } else {
        200_000
    };
    let distinct: u64 = std::env::var("AUDITRING_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
        .clamp(1, n);
    // Each pass encodes the distinct events `rounds` times over.
    let rounds = n / distinct;
    let n = rounds * distinct;
    let events: Vec<AuditPayload> = (0..distinct)
        .map(|i| {
            let mut e = AuditPayload::default();
            event::fill(&mut e, i);
            e
        })
        .collect();

    // Correctness first: the three encoders agree byte for byte.
    for e in events.iter().take(1000) {
        let mut hand = Vec::new();
        e.write_json(&mut hand, Redactor::none());
        assert_eq!(hand, serde_json::to_vec(e).unwrap(), "serde_json differs");
        assert_eq!(
            hand,
            simd_json::serde::to_vec(e).unwrap(),
            "simd_json differs"
        );
    }

    let rules = Redactor::new(
        [
            ("agent_id".to_owned(), Redaction::Mask),
            ("session_id".to_owned(), Redaction::Hmac),
        ],
        b"0123456789abcdef-bench".to_vec(),
    );
    type Encoder = fn(&AuditPayload, &mut Vec<u8>, &Redactor);
    let candidates: [(&str, Encoder); 4] = [
        ("serde_json", |e, out, _| {
            serde_json::to_writer(out, e).unwrap()
        }),
        ("simd_json", |e, out, _| {
            simd_json::serde::to_writer(out, e).unwrap()
        }),
        ("derived", |e, out, _| e.write_json(out, Redactor::none())),
        ("derived_redacting", |e, out, rules| {
            e.write_json(out, rules)
        }),
    ];
    let only = std::env::var("AUDITRING_BENCH_ONLY").ok();
    let mut results = Vec::new();
    for (name, encode) in candidates {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let mut buf = Vec::with_capacity(1024);
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let mut bytes = 0usize;
            for _ in 0..rounds {
                for e in &events {
                    buf.clear();
                    encode(black_box(e), &mut buf, &rules);
                    bytes += black_box(buf.len());
                }
            }
            times.push(started.elapsed().as_nanos() as f64 / n as f64);
            black_box(bytes);
        }
        times.sort_by(f64::total_cmp);
        let median = times[2];
        if distinct < n {
            println!(
                "bench=encode encoder={name} events={n} distinct={distinct} ns_per_event={median:.0}"
            );
        } else {
            println!("bench=encode encoder={name} events={n} ns_per_event={median:.0}");
        }
        results.push((name, median));
    }
    if let Some(&(_, derived)) = results.iter().find(|(name, _)| *name == "derived") {
        for (name, t) in results.iter().filter(|(name, _)| *name != "derived") {
            println!("ratio {name}/derived={:.2}", t / derived);
        }
    }
}
