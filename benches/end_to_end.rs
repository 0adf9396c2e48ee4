//! End to end: record -> signed, sealed line written to a file -> verified.
//!
//! Every contender writes the same events to a JSON-lines file with nothing
//! lost (auditring with `FullPolicy::Block`, the seed pipeline with a
//! blocking channel send), in the same run:
//!
//! - `auditring`: default batching (one seal per 1024 events);
//! - `auditring_disk`: the same with the default fsync policy (every
//!   second), the log on disk (the temporary directory);
//! - `auditring_small_events`: the default contender with three string
//!   fields emptied (token, resource, context hash), so that the cost of a
//!   byte of log line is the difference between the two (`ratio
//!   cpu_ns_per_line_byte`);
//! - `auditring_fsync_every_batch`: the same with `FsyncPolicy::EveryBatch`
//!   (every batch on stable storage before it counts as written), on disk;
//! - `auditring_paced_100k`: the default configuration at a steady 100k
//!   events/s, for the seal latency a gateway sees under normal load;
//! - `auditring_batch1`: `max_batch = 1`, one signature per event through the
//!   same code path;
//! - `seed_per_event`: the seed designs' pipeline: an owned-`String` payload
//!   through a bounded crossbeam channel to a sink thread that builds the
//!   event (UUID v7, timestamp), serialises it with serde_json, signs it
//!   with ECDSA P-256 and writes the line.
//!
//! One producer thread records as fast as the pipeline accepts; throughput
//! is events over the time from the first record to the end of shutdown
//! (everything written and flushed); `cpu_ns_per_event` is the CPU time of
//! every thread of the process over the same span, per event, which a
//! shared machine's other load changes much less than the wall clock. `seal_p99_us` is the 99th percentile
//! of each event's capture-to-written latency. Finally the verifier reads
//! the default contender's file: `bench=verify mb_per_s=<x>`; the same
//! file as it grows in 16 steps, resuming from a saved JSON state at each
//! (`bench=verify_incremental`); and a crafted log of as many lines whose
//! seqs split one huge gap again and again (`bench=verify_crafted`, with
//! its time relative to the genuine log's).
//!
//! `bench=sha_floor` is the physical limit of the same run: the default
//! contender's own event lines, read back from its log, hashed as Merkle
//! leaves (SHA-256 of `0x00 || line`) on one core and nothing else, 64
//! side by side as the pipeline hashes them (`merkle::leaf_hashes`); the
//! ratio `auditring/sha_floor` says how far the pipeline is from it.
//! `one_at_a_time_ns_per_event` is the same with `leaf_hash` per line.
//!
//! `AUDITRING_BENCH_QUICK=1` shrinks the runs to finish in well under a
//! minute.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use auditring::sink::{FileSink, FsyncPolicy};
use auditring::verify::{Status, Verifier, VerifierState};
use auditring::{AuditPayload, FullPolicy, Runtime, SigningKey};
use hdrhistogram::Histogram;
use p256::ecdsa::signature::Signer;

#[path = "../tests/common/crafted.rs"]
mod crafted;
#[path = "common/event.rs"]
mod event;

struct Sizes {
    batched: u64,
    per_event: u64,
    paced: u64,
}

fn sizes() -> Sizes {
    if std::env::var_os("AUDITRING_BENCH_QUICK").is_some() {
        Sizes {
            batched: 300_000,
            per_event: 3_000,
            paced: 50_000,
        }
    } else {
        Sizes {
            batched: 2_000_000,
            per_event: 20_000,
            paced: 300_000,
        }
    }
}

/// Where the logs go: `AUDITRING_BENCH_DIR`, else `/dev/shm` (a memory
/// file system, so the disk's write-back throttling on a shared machine
/// does not decide the result), else the temporary directory.
fn bench_dir() -> PathBuf {
    let base = std::env::var_os("AUDITRING_BENCH_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("auditring-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    dir
}

struct Outcome {
    events: u64,
    seconds: f64,
    /// CPU time of the whole process (every thread) over the run.
    cpu_seconds: f64,
    bytes: u64,
    seal_p99_us: u64,
}

fn print(name: &str, o: &Outcome) {
    println!(
        "bench=end_to_end contender={name} producers=1 events={} events_per_s={:.0} bytes_per_event={:.0} seal_p99_us={} cpu_ns_per_event={:.0}",
        o.events,
        o.events as f64 / o.seconds,
        o.bytes as f64 / o.events as f64,
        o.seal_p99_us,
        o.cpu_seconds * 1e9 / o.events as f64
    );
}

/// CPU time consumed so far by every thread of the process, in seconds:
/// on a shared machine, what a run costs whatever share of the cores it
/// got.
fn process_cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } == 0 {
            return t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// `rate` events per second in 1 ms bursts (0: as fast as accepted).
fn run_auditring(
    key: &SigningKey,
    path: &Path,
    events: u64,
    max_batch: usize,
    fsync: FsyncPolicy,
    rate: u64,
    fill: fn(&mut AuditPayload, u64),
) -> Outcome {
    let sink = FileSink::builder(path)
        .fsync(fsync)
        .open()
        .expect("open the log");
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink)
        .report_interval(None)
        .max_batch(max_batch)
        .lane_capacity(4096)
        .max_producers(1)
        .full_policy(FullPolicy::Block)
        .build()
        .expect("runtime");
    let mut recorder = runtime.recorder().expect("recorder");
    let per_ms = rate.div_ceil(1000);
    let cpu_started = process_cpu_seconds();
    let started = Instant::now();
    let mut tick = started;
    for i in 0..events {
        if per_ms > 0 && i > 0 && i % per_ms == 0 {
            tick += std::time::Duration::from_millis(1);
            if let Some(rest) = tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(rest);
            }
        }
        recorder
            .record(|e| fill(e, i))
            .expect("Block policy never drops");
    }
    drop(recorder);
    let report = runtime.shutdown().expect("clean shutdown");
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_started;
    assert_eq!(report.sealed, events, "nothing lost");
    assert_eq!(report.dropped, 0);
    Outcome {
        events,
        seconds,
        cpu_seconds,
        bytes: std::fs::metadata(path).expect("log written").len(),
        seal_p99_us: report.seal_latency_us.value_at_quantile(0.99),
    }
}

/// The seed designs' event: owned strings, built and signed on the sink
/// side.
#[derive(serde::Serialize)]
struct SeedEvent {
    event_id: String,
    session_id: String,
    token_id: String,
    agent_id: String,
    action: String,
    resource: String,
    decision: i32,
    deny_reason: String,
    enforcement_latency_us: i64,
    context_hash: String,
    bundle_version: String,
    timestamp: u128,
    dispatch_status: i32,
    dispatch_latency_us: i64,
    response_size: i64,
    sandbox_id: String,
}

fn run_seed(key: &SigningKey, path: &Path, events: u64) -> Outcome {
    let secret = p256::ecdsa::SigningKey::from_bytes(&key_bytes(key)).expect("same key");
    let (tx, rx) = crossbeam::channel::bounded::<(Instant, event::SeedPayload)>(1024);
    let out = BufWriter::new(File::create(path).expect("create the log"));
    let sink = std::thread::spawn(move || {
        let mut out = out;
        let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        let mut line = Vec::with_capacity(1024);
        for (captured, p) in rx {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let event = SeedEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                session_id: p.session_id,
                token_id: p.token_id,
                agent_id: p.agent_id,
                action: p.action,
                resource: p.resource,
                decision: p.decision,
                deny_reason: p.deny_reason,
                enforcement_latency_us: p.enforcement_latency_us,
                context_hash: p.context_hash,
                bundle_version: p.bundle_version,
                timestamp,
                dispatch_status: p.dispatch_status,
                dispatch_latency_us: p.dispatch_latency_us,
                response_size: p.response_size,
                sandbox_id: p.sandbox_id,
            };
            line.clear();
            serde_json::to_writer(&mut line, &event).unwrap();
            let signature: p256::ecdsa::DerSignature = secret.sign(&line);
            line.pop();
            line.extend_from_slice(br#","signature":""#);
            for b in signature.as_bytes() {
                write!(line, "{b:02x}").unwrap();
            }
            line.extend_from_slice(b"\"}\n");
            out.write_all(&line).unwrap();
            latency.saturating_record((captured.elapsed().as_micros() as u64).max(1));
        }
        out.flush().unwrap();
        out.get_ref().sync_data().unwrap();
        latency
    });
    let cpu_started = process_cpu_seconds();
    let started = Instant::now();
    for i in 0..events {
        tx.send((Instant::now(), event::seed_payload(i)))
            .expect("sink alive");
    }
    drop(tx);
    let latency = sink.join().expect("sink thread");
    let seconds = started.elapsed().as_secs_f64();
    Outcome {
        events,
        seconds,
        cpu_seconds: process_cpu_seconds() - cpu_started,
        bytes: std::fs::metadata(path).expect("log written").len(),
        seal_p99_us: latency.value_at_quantile(0.99),
    }
}

/// The secret scalar, so the seed pipeline signs with the same key.
fn key_bytes(key: &SigningKey) -> p256::FieldBytes {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem())
        .expect("round trip")
        .to_bytes()
}

/// The bench's event with three string fields left empty.
fn fill_small(e: &mut AuditPayload, i: u64) {
    event::fill(e, i);
    e.set_token_id("").set_resource("").set_context_hash("");
}

fn main() {
    let sizes = sizes();
    let dir = bench_dir();
    let key = SigningKey::generate();
    let batched = dir.join("auditring.jsonl");
    let batch1 = dir.join("auditring_batch1.jsonl");
    let seed = dir.join("seed.jsonl");

    let a = run_auditring(
        &key,
        &batched,
        sizes.batched,
        1024,
        FsyncPolicy::default(),
        0,
        event::fill,
    );
    print("auditring", &a);
    let (floor, one_at_a_time) = sha_floor(&batched);
    println!(
        "bench=sha_floor events={} events_per_s={floor:.0} ns_per_event={:.0} one_at_a_time_ns_per_event={:.0}",
        a.events,
        1e9 / floor,
        1e9 / one_at_a_time
    );
    println!(
        "ratio auditring/sha_floor events_per_s={:.2}",
        a.events as f64 / a.seconds / floor
    );
    if std::env::var_os("AUDITRING_BENCH_BATCHED_ONLY").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // The log on disk, default fsync policy.
    let disk =
        std::env::temp_dir().join(format!("auditring-bench-disk-{}.jsonl", std::process::id()));
    let d = run_auditring(
        &key,
        &disk,
        sizes.batched / 2,
        1024,
        FsyncPolicy::default(),
        0,
        event::fill,
    );
    let _ = std::fs::remove_file(&disk);
    print("auditring_disk", &d);
    let small = dir.join("auditring_small.jsonl");
    let sm = run_auditring(
        &key,
        &small,
        sizes.batched / 2,
        1024,
        FsyncPolicy::default(),
        0,
        fill_small,
    );
    let _ = std::fs::remove_file(&small);
    print("auditring_small_events", &sm);
    let per_event = |o: &Outcome| o.cpu_seconds * 1e9 / o.events as f64;
    let line_bytes = |o: &Outcome| o.bytes as f64 / o.events as f64;
    println!(
        "ratio cpu_ns_per_line_byte={:.2} (auditring - auditring_small_events: {:.0} ns over {:.0} bytes)",
        (per_event(&a) - per_event(&sm)) / (line_bytes(&a) - line_bytes(&sm)),
        per_event(&a) - per_event(&sm),
        line_bytes(&a) - line_bytes(&sm)
    );
    // fsync only costs something on a disk: this one goes to the temporary
    // directory.
    let disk = std::env::temp_dir().join(format!(
        "auditring-bench-fsync-{}.jsonl",
        std::process::id()
    ));
    let f = run_auditring(
        &key,
        &disk,
        sizes.batched / 2,
        1024,
        FsyncPolicy::EveryBatch,
        0,
        event::fill,
    );
    let _ = std::fs::remove_file(&disk);
    print("auditring_fsync_every_batch", &f);
    // Seal latency at a steady 100k events/s (the default max_delay is
    // 10 ms): what a gateway under normal load sees.
    let paced = dir.join("auditring_paced.jsonl");
    let p = run_auditring(
        &key,
        &paced,
        sizes.paced,
        1024,
        FsyncPolicy::default(),
        100_000,
        event::fill,
    );
    print("auditring_paced_100k", &p);
    let b = run_auditring(
        &key,
        &batch1,
        sizes.per_event,
        1,
        FsyncPolicy::default(),
        0,
        event::fill,
    );
    print("auditring_batch1", &b);
    let s = run_seed(&key, &seed, sizes.per_event);
    print("seed_per_event", &s);
    let rate = |o: &Outcome| o.events as f64 / o.seconds;
    println!(
        "ratio auditring/seed_per_event events_per_s={:.1}",
        rate(&a) / rate(&s)
    );
    println!(
        "ratio auditring_batch1/seed_per_event events_per_s={:.2}",
        rate(&b) / rate(&s)
    );

    let verifier = Verifier::new([key.public_key()]);
    let started = Instant::now();
    let report = verifier
        .verify_files(&[&batched], |_| {})
        .expect("readable");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.status(), Status::Intact, "{:?}", report.findings);
    assert_eq!(report.events, sizes.batched);
    println!(
        "bench=verify mb_per_s={:.0} events_per_s={:.0} bytes={}",
        report.bytes as f64 / seconds / 1e6,
        report.events as f64 / seconds,
        report.bytes
    );
    let report = verifier.verify_files(&[&batch1], |_| {}).expect("readable");
    assert_eq!(report.status(), Status::Intact);

    verify_incremental(&verifier, &batched, &dir);
    verify_crafted(&key, &verifier, sizes.batched, seconds);

    let _ = std::fs::remove_dir_all(&dir);
}

/// Event lines per second that one core can hash as Merkle leaves: the
/// event lines of `log` (read into memory first, untimed), each hashed with
/// the leaf prefix, 64 side by side; the best of three passes. Second: the
/// same one line at a time.
fn sha_floor(log: &Path) -> (f64, f64) {
    use auditring::format::merkle::{leaf_hash, leaf_hashes};
    let bytes = std::fs::read(log).expect("readable");
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(br#"{"seq":"#))
        .collect();
    let best_of_three = |hash: &dyn Fn() -> u8| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let started = Instant::now();
            std::hint::black_box(hash());
            best = best.min(started.elapsed().as_secs_f64());
        }
        lines.len() as f64 / best
    };
    let side_by_side = best_of_three(&|| {
        let mut out = [[0u8; 32]; 64];
        let mut acc = 0u8;
        for group in lines.chunks(64) {
            leaf_hashes(group, &mut out[..group.len()]);
            acc ^= out[0][0];
        }
        acc
    });
    let one_at_a_time = best_of_three(&|| lines.iter().fold(0u8, |acc, l| acc ^ leaf_hash(l)[0]));
    (side_by_side, one_at_a_time)
}

/// Verifies `log` as it grows in 16 steps: each step resumes from the
/// state the previous one saved (serialized to JSON and read back), so it
/// reads only the new bytes. Only verifying and saving are timed.
fn verify_incremental(verifier: &Verifier, log: &Path, dir: &Path) {
    let bytes = std::fs::read(log).expect("readable");
    let growing = dir.join("growing.jsonl");
    let mut file = File::create(&growing).expect("writable");
    let mut state: Option<String> = None;
    let mut written = 0;
    let mut timed = 0.0;
    let mut state_bytes = 0;
    for step in 1..=16 {
        let target = bytes.len() * step / 16;
        let end = if step == 16 {
            bytes.len()
        } else {
            bytes[..target]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        };
        file.write_all(&bytes[written..end]).expect("writable");
        file.flush().expect("writable");
        written = end;
        let started = Instant::now();
        let mut pass = match &state {
            None => verifier.start(),
            Some(text) => verifier.resume(VerifierState::from_json(text).expect("saved state")),
        };
        pass.feed_files(&[&growing], &mut |_| {}).expect("readable");
        let saved = pass.state().to_json();
        timed += started.elapsed().as_secs_f64();
        state_bytes = saved.len();
        state = Some(saved);
    }
    let report = verifier
        .resume(VerifierState::from_json(state.as_deref().expect("saved")).expect("state"))
        .finish();
    assert_eq!(report.status(), Status::Intact, "{:?}", report.findings);
    println!(
        "bench=verify_incremental mb_per_s={:.0} steps=16 state_bytes={state_bytes}",
        report.bytes as f64 / timed / 1e6
    );
}

/// A log of `events` event lines after one opening seal: one far-ahead
/// seq, then seqs that bisect the gap again and again (the input that made
/// an earlier verifier quadratic). Its verification time is compared with
/// the genuine log's (`genuine_seconds` for as many events).
fn verify_crafted(key: &SigningKey, verifier: &Verifier, events: u64, genuine_seconds: f64) {
    let log = crafted::crafted_gap_log(key, events);
    let written = events;
    let started = Instant::now();
    let report = verifier.verify_bytes(&log);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.status(), Status::Tampered);
    println!(
        "bench=verify_crafted lines={written} mb_per_s={:.0} time_vs_genuine={:.2}",
        report.bytes as f64 / seconds / 1e6,
        seconds / genuine_seconds
    );
}
