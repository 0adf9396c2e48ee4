//! Hot-path latency of recording one full audit event.
//!
//! Every contender does the same work per call, inside the timed window:
//! build the same full audit event (`common/event.rs`), take a capture stamp
//! with a raw `quanta` counter read, and enqueue the event for one consumer
//! thread.
//!
//! - `auditring`: `Recorder::record` (the closure fills the recorder's
//!   staged event, which is then copied into the ring slot); the recorder
//!   reads the capture stamp itself (the same raw `quanta` read).
//! - `auditring_copy`: the copy form: the event is filled into a payload on
//!   the producer's stack, then `Recorder::record_copy` copies it into the
//!   slot (only the bytes in use).
//! - `auditring_runtime`: the same recorder, drained by a full `Runtime`
//!   (signer, writer and hasher threads) with two redacted fields (HMAC and
//!   mask) and the HDR histograms on: the hot path must not notice them.
//! - `rtrb`: an `AuditPayload` filled on the stack and pushed by value, with
//!   the stamp, as `(u64, AuditPayload)` into a single-producer ring (run
//!   with one producer only).
//! - `crossbeam_arrayqueue`, `crossbeam_channel`: the same by-value
//!   `(u64, AuditPayload)` through `ArrayQueue::push` and `try_send` on a
//!   bounded channel.
//! - `seed_string_channel`: the seed's payload shape, one owned `String` per
//!   string field (allocated per event) and signed integers, through a
//!   bounded channel.
//!
//! Capacity: `auditring` gets 1024 slots per producer lane and `rtrb` 1024
//! slots; the shared multi-producer queues get 1024 slots per producer
//! (2048 with two producers), so every producer has the same room.
//!
//! Method:
//!
//! - Each call is timed on its own with two raw counter reads fenced with
//!   `lfence` on x86_64, so the out-of-order core cannot move work of the
//!   call outside the window or unrelated work into it. Latencies are raw
//!   measurements into an HDR histogram (3 significant digits) per producer,
//!   merged per contender. The cost of an empty window (`timer_floor`) is
//!   printed first and is not subtracted. The counter may advance in coarse
//!   steps (10 ns on AMD Zen), which then quantizes every value.
//! - Paced runs: each producer starts a call only once `PACE_NS` have
//!   passed since the start of its previous call, so the consumer keeps up
//!   and the numbers show per-call latency without backpressure. Should the
//!   consumer's thread still fall behind (descheduled), the producer also
//!   waits, before starting the timer, until fewer than `MAX_IN_FLIGHT`
//!   events are undrained, so no paced call meets a full queue.
//! - Each run is split into `ROUNDS` rounds; a round runs every case once,
//!   each on a fresh queue, starting from a different case each round, so
//!   slow drifts of the machine (frequency, host scheduling, which physical
//!   cores the threads land on) weigh on all contenders alike. The first
//!   10% of each producer's calls in a round, and at least two laps of its
//!   queue room, warm caches, branch predictors and the queue's pages and
//!   are not recorded.
//! - Threads: producer `p` is pinned to the `p`-th available core. With one
//!   producer the consumer is pinned to the next core. With two producers on
//!   a two-core machine the consumer has no core of its own and runs
//!   unpinned, so it shares a core with a producer: its time slices can
//!   delay draining, and a producer preempted in the middle of a call shows
//!   up in the tail.
//! - The consumer busy-drains and folds the stamp and one numeric field of
//!   every event into a checksum passed through `black_box`, so the events
//!   must really be read.
//! - Saturated runs (`*_saturated`, one producer): no pacing, and the
//!   consumer spins `SATURATION_CONSUMER_NS` per event, so the queue fills
//!   and the non-blocking enqueue fails. `dropped` counts failed enqueues
//!   (for `auditring`: `capture.stats().dropped` under `FullPolicy::Drop`,
//!   checked against the errors returned and against
//!   `accepted + dropped == attempted`).
//! - `events` is the number of timed calls after warm-up, over all rounds
//!   and producers; `dropped` counts failed enqueues over all calls, warm-up
//!   included. Failed calls are timed like the others.
//!
//! Environment: `AUDITRING_BENCH_QUICK=1` runs 200,000 events per producer
//! instead of 2,000,000; `AUDITRING_BENCH_RUNS=n` repeats the whole set.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;

use auditring::{AuditPayload, Capture, FullPolicy, Payload, RecordError, Recorder};
use crossbeam::queue::ArrayQueue;
use hdrhistogram::Histogram;
use quanta::Clock;

/// Queue slots per producer, for every contender.
const CAPACITY_PER_PRODUCER: usize = 1024;
/// Minimum time between the starts of two calls of one paced producer.
const PACE_NS: u64 = 1_500;
/// In paced runs, a producer waits (untimed) while this many events are in
/// flight: half of one producer's queue room, so no paced call finds the
/// queue full even when the consumer's thread is descheduled for a while.
const MAX_IN_FLIGHT: u64 = CAPACITY_PER_PRODUCER as u64 / 2;
/// Consumer work per event in the saturated runs.
const SATURATION_CONSUMER_NS: u64 = 500;
/// Events per producer, default and with `AUDITRING_BENCH_QUICK=1`.
const EVENTS_FULL: u64 = 2_000_000;
const EVENTS_QUICK: u64 = 200_000;
/// Each run is split into this many rounds, interleaved across contenders.
const ROUNDS: u64 = 20;
/// Highest latency the histograms track exactly (60 s); larger values
/// saturate.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

#[path = "common/event.rs"]
mod event;

use event::{SeedPayload, fill, seed_payload};

/// Keeps the CPU from moving instructions across a counter read.
#[inline(always)]
fn serialize() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `lfence` is part of SSE2, which every x86_64 CPU has.
    unsafe {
        core::arch::x86_64::_mm_lfence();
    }
}

/// Counter read opening a timed window: earlier instructions complete
/// before it, later ones start after it.
#[inline(always)]
fn timer_start(clock: &Clock) -> u64 {
    serialize();
    let t = clock.raw();
    serialize();
    t
}

/// Counter read closing a timed window.
#[inline(always)]
fn timer_end(clock: &Clock) -> u64 {
    serialize();
    let t = clock.raw();
    serialize();
    t
}

/// Busy-waits until `ns` nanoseconds have passed since the raw stamp `since`.
#[inline(always)]
fn spin_until(clock: &Clock, since: u64, ns: u64) {
    while clock.delta_as_nanos(since, clock.raw()) < ns {
        std::hint::spin_loop();
    }
}

/// Untimed calls at the start of a producer's run: 10%, and at least two
/// laps of its queue room, so every slot page has been written before the
/// timing starts.
fn warmup_calls(events: u64) -> u64 {
    (events / 10).max(2 * CAPACITY_PER_PRODUCER as u64)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

fn pin(core: Option<usize>, role: &str) {
    if let Some(core) = core
        && let Err(err) = auditring::capture::affinity::pin_current_thread(core)
    {
        eprintln!("hot_path: {role} not pinned: {err}");
    }
}

/// What the consumer does with each event: folds it into a checksum that
/// the optimiser must compute, and in saturated runs spins to be slow.
struct Sink {
    clock: Clock,
    sum: u64,
    work_ns: u64,
}

impl Sink {
    #[inline(always)]
    fn touch(&mut self, stamp: u64, value: u64) {
        self.sum = black_box(self.sum.wrapping_add(stamp).wrapping_add(value));
        if self.work_ns > 0 {
            spin_until(&self.clock, self.clock.raw(), self.work_ns);
        }
    }
}

/// How one run is driven.
#[derive(Clone, Copy)]
struct Plan<'a> {
    events: u64,
    pace_ns: u64,
    /// Before a call, wait until fewer than this many events are in flight
    /// (sent, not yet drained); 0 = never wait.
    max_in_flight: u64,
    consumer_work_ns: u64,
    cores: &'a [usize],
}

/// What one run measured.
struct Measured {
    histogram: Histogram<u64>,
    failed: u64,
    received: u64,
}

/// Counts a producer as finished when its thread ends, by a panic too, so
/// the consumer never waits for it forever. Release: the producer's last
/// enqueue happens-before the consumer's final drain.
struct FinishedOnDrop<'a>(&'a AtomicUsize);

impl Drop for FinishedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Runs `producers` (one thread each, each making `plan.events` calls of
/// its closure, `true` meaning accepted) against one consumer thread that
/// calls `drain` until every producer has finished and nothing is left.
fn run<P, D>(clock: &Clock, plan: Plan<'_>, producers: Vec<P>, mut drain: D) -> Measured
where
    P: FnMut(u64) -> bool + Send,
    D: FnMut(&mut Sink) -> usize + Send,
{
    let count = producers.len();
    let warmup = warmup_calls(plan.events);
    let barrier = Barrier::new(count + 1);
    let finished = AtomicUsize::new(0);
    let sent = AtomicU64::new(0);
    let drained = AtomicU64::new(0);
    thread::scope(|s| {
        let (barrier, finished) = (&barrier, &finished);
        let (sent, drained) = (&sent, &drained);
        let consumer = s.spawn(move || {
            pin(plan.cores.get(count).copied(), "consumer");
            let mut sink = Sink {
                clock: clock.clone(),
                sum: 0,
                work_ns: plan.consumer_work_ns,
            };
            let mut received = 0;
            barrier.wait();
            loop {
                let n = drain(&mut sink);
                received += n as u64;
                if n > 0 && plan.max_in_flight > 0 {
                    drained.store(received, Ordering::Relaxed);
                }
                if n == 0 {
                    if finished.load(Ordering::Acquire) == count {
                        // Every enqueue happened before this load: drain the rest.
                        loop {
                            let n = drain(&mut sink);
                            if n == 0 {
                                break;
                            }
                            received += n as u64;
                        }
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            black_box(sink.sum);
            received
        });
        let handles: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(p, mut op)| {
                s.spawn(move || {
                    let _finished = FinishedOnDrop(finished);
                    pin(plan.cores.get(p).copied(), "producer");
                    let clock = clock.clone();
                    let mut histogram = new_histogram();
                    let mut failed = 0;
                    barrier.wait();
                    let mut previous = clock.raw();
                    for i in 0..plan.events {
                        if plan.pace_ns > 0 {
                            spin_until(&clock, previous, plan.pace_ns);
                        }
                        if plan.max_in_flight > 0 {
                            while sent.load(Ordering::Relaxed)
                                >= plan.max_in_flight + drained.load(Ordering::Relaxed)
                            {
                                std::hint::spin_loop();
                            }
                        }
                        let start = timer_start(&clock);
                        let accepted = op(i);
                        let end = timer_end(&clock);
                        previous = start;
                        failed += u64::from(!accepted);
                        if plan.max_in_flight > 0 && accepted {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        if i >= warmup {
                            histogram.saturating_record(clock.delta_as_nanos(start, end));
                        }
                    }
                    (histogram, failed)
                })
            })
            .collect();
        let mut histogram = new_histogram();
        let mut failed = 0;
        for handle in handles {
            let (h, f) = handle.join().expect("producer thread panicked");
            histogram.add(&h).expect("same histogram bounds");
            failed += f;
        }
        let received = consumer.join().expect("consumer thread panicked");
        Measured {
            histogram,
            failed,
            received,
        }
    })
}

/// One producer's call: record event `i` (with `copy`, fill a payload on
/// the stack and `record_copy` it); `true` if accepted.
fn recorder_op(mut recorder: Recorder<AuditPayload>, copy: bool) -> impl FnMut(u64) -> bool + Send {
    let mut staged = AuditPayload::default();
    move |i| {
        let result = if copy {
            staged.clear();
            fill(&mut staged, i);
            recorder.record_copy(&staged)
        } else {
            recorder.record(|e| fill(e, i))
        };
        match result {
            Ok(()) => true,
            Err(RecordError::Full) => false,
            Err(err) => panic!("record failed: {err}"),
        }
    }
}

/// Event `i` filled by value, with a capture stamp: what the by-value
/// contenders enqueue.
#[inline(always)]
fn stamped(clock: &Clock, i: u64) -> (u64, AuditPayload) {
    let stamp = clock.raw();
    let mut e = AuditPayload::default();
    fill(&mut e, i);
    (stamp, e)
}

fn bench_auditring(clock: &Clock, plan: Plan<'_>, producers: usize) -> (Histogram<u64>, u64) {
    bench_auditring_with(clock, plan, producers, false)
}

/// `copy`: fill a payload on the stack, then `record_copy` it (the copy
/// form); otherwise `record` with a filling closure.
fn bench_auditring_with(
    clock: &Clock,
    plan: Plan<'_>,
    producers: usize,
    copy: bool,
) -> (Histogram<u64>, u64) {
    let (capture, mut consumer) = Capture::<AuditPayload>::builder()
        .lane_capacity(CAPACITY_PER_PRODUCER)
        .max_producers(producers)
        .full_policy(FullPolicy::Drop)
        .build()
        .expect("valid capture configuration");
    let ops: Vec<_> = (0..producers)
        .map(|_| recorder_op(capture.recorder().expect("a free lane"), copy))
        .collect();
    let consumer_ref = &mut consumer;
    let m = run(clock, plan, ops, move |sink| {
        consumer_ref.drain(usize::MAX, |ev| {
            sink.touch(ev.unix_nanos(), ev.payload().enforcement_latency_us);
        })
    });
    consumer.close();
    let stats = capture.stats();
    let attempted = plan.events * producers as u64;
    assert_eq!(
        stats.accepted + stats.dropped,
        attempted,
        "accepted + dropped == attempted"
    );
    assert_eq!(
        stats.dropped, m.failed,
        "every drop was reported to its caller"
    );
    assert_eq!(
        stats.accepted, m.received,
        "every accepted event was drained"
    );
    (m.histogram, stats.dropped)
}

/// Counts the events the runtime wrote: the "drained" signal of the
/// runtime contender.
struct CountingSink(std::sync::Arc<AtomicU64>);

impl auditring::sink::Sink for CountingSink {
    fn write_batch(&mut self, batch: &auditring::sink::Batch<'_>) -> std::io::Result<()> {
        self.0.fetch_add(batch.events(), Ordering::Release);
        black_box(batch.bytes().len());
        Ok(())
    }
}

/// The same recorder, fed to a full runtime: the signer thread drains,
/// redacts two fields (HMAC and mask), keeps the HDR histograms, encodes,
/// hashes and signs. The producer's side must cost what it costs without
/// all that.
fn bench_auditring_runtime(
    clock: &Clock,
    plan: Plan<'_>,
    producers: usize,
) -> (Histogram<u64>, u64) {
    let written = std::sync::Arc::new(AtomicU64::new(0));
    let runtime = auditring::Runtime::<AuditPayload>::builder()
        .signing_key(auditring::SigningKey::generate())
        .sink(CountingSink(std::sync::Arc::clone(&written)))
        .lane_capacity(CAPACITY_PER_PRODUCER)
        .max_producers(producers)
        .full_policy(FullPolicy::Drop)
        .max_batch(128)
        .max_delay(std::time::Duration::from_micros(200))
        .redact("session_id", auditring::Redaction::Hmac)
        .redact("agent_id", auditring::Redaction::Mask)
        .redaction_key(b"benchmark redaction key".to_vec())
        .report_interval(None)
        .build()
        .expect("valid runtime configuration");
    let ops: Vec<_> = (0..producers)
        .map(|_| recorder_op(runtime.recorder().expect("a free lane"), false))
        .collect();
    let counter = std::sync::Arc::clone(&written);
    let mut seen = 0;
    let m = run(clock, plan, ops, move |sink| {
        let now = counter.load(Ordering::Acquire);
        let n = now - seen;
        seen = now;
        if n > 0 {
            sink.touch(now, n);
        }
        n as usize
    });
    let report = runtime.shutdown().expect("clean shutdown");
    let attempted = plan.events * producers as u64;
    assert_eq!(
        report.accepted + report.dropped,
        attempted,
        "accepted + dropped == attempted"
    );
    assert_eq!(
        report.dropped, m.failed,
        "every drop was reported to its caller"
    );
    assert_eq!(
        report.sealed, report.accepted,
        "every accepted event was sealed"
    );
    (m.histogram, report.dropped)
}

fn bench_rtrb(clock: &Clock, plan: Plan<'_>) -> (Histogram<u64>, u64) {
    let (mut tx, mut rx) = rtrb::RingBuffer::<(u64, AuditPayload)>::new(CAPACITY_PER_PRODUCER);
    let stamp_clock = clock.clone();
    let op = move |i| tx.push(stamped(&stamp_clock, i)).is_ok();
    let m = run(clock, plan, vec![op], move |sink| {
        let mut n = 0;
        while let Ok((stamp, e)) = rx.pop() {
            sink.touch(stamp, e.enforcement_latency_us);
            n += 1;
        }
        n
    });
    checked(m, plan.events)
}

fn bench_arrayqueue(clock: &Clock, plan: Plan<'_>, producers: usize) -> (Histogram<u64>, u64) {
    let queue = ArrayQueue::<(u64, AuditPayload)>::new(CAPACITY_PER_PRODUCER * producers);
    let queue = &queue;
    let ops: Vec<_> = (0..producers)
        .map(|_| {
            let clock = clock.clone();
            move |i| queue.push(stamped(&clock, i)).is_ok()
        })
        .collect();
    let m = run(clock, plan, ops, move |sink| {
        let mut n = 0;
        while let Some((stamp, e)) = queue.pop() {
            sink.touch(stamp, e.enforcement_latency_us);
            n += 1;
        }
        n
    });
    checked(m, plan.events * producers as u64)
}

fn bench_channel(clock: &Clock, plan: Plan<'_>, producers: usize) -> (Histogram<u64>, u64) {
    let (tx, rx) =
        crossbeam::channel::bounded::<(u64, AuditPayload)>(CAPACITY_PER_PRODUCER * producers);
    let ops: Vec<_> = (0..producers)
        .map(|_| {
            let (clock, tx) = (clock.clone(), tx.clone());
            move |i| tx.try_send(stamped(&clock, i)).is_ok()
        })
        .collect();
    drop(tx);
    let m = run(clock, plan, ops, move |sink| {
        let mut n = 0;
        while let Ok((stamp, e)) = rx.try_recv() {
            sink.touch(stamp, e.enforcement_latency_us);
            n += 1;
        }
        n
    });
    checked(m, plan.events * producers as u64)
}

fn bench_seed(clock: &Clock, plan: Plan<'_>, producers: usize) -> (Histogram<u64>, u64) {
    // The seed's payload: an owned `String` per string field, with the
    // capture stamp; building and freeing the strings costs what it costs
    // in the seed designs.
    let (tx, rx) =
        crossbeam::channel::bounded::<(u64, SeedPayload)>(CAPACITY_PER_PRODUCER * producers);
    let ops: Vec<_> = (0..producers)
        .map(|_| {
            let (clock, tx) = (clock.clone(), tx.clone());
            move |i| tx.try_send((clock.raw(), seed_payload(i))).is_ok()
        })
        .collect();
    drop(tx);
    let m = run(clock, plan, ops, move |sink| {
        let mut n = 0;
        while let Ok((stamp, e)) = rx.try_recv() {
            sink.touch(stamp, e.enforcement_latency_us as u64);
            n += 1;
        }
        n
    });
    checked(m, plan.events * producers as u64)
}

/// Checks that every event was either received or reported as failed.
fn checked(m: Measured, attempted: u64) -> (Histogram<u64>, u64) {
    assert_eq!(
        m.received + m.failed,
        attempted,
        "received + dropped == attempted"
    );
    (m.histogram, m.failed)
}

/// The cost of an empty timed window, on the first producer core.
fn timer_floor(clock: &Clock, plan: Plan<'_>) -> Histogram<u64> {
    thread::scope(|s| {
        s.spawn(|| {
            pin(plan.cores.first().copied(), "timer");
            let warmup = warmup_calls(plan.events);
            let mut histogram = new_histogram();
            for i in 0..plan.events {
                let start = timer_start(clock);
                let end = timer_end(clock);
                if i >= warmup {
                    histogram.saturating_record(clock.delta_as_nanos(start, end));
                }
            }
            histogram
        })
        .join()
        .expect("timer thread panicked")
    })
}

fn print_line(name: &str, producers: usize, h: &Histogram<u64>, dropped: u64) {
    println!(
        "bench=hot_path contender={name} producers={producers} events={} p50_ns={} p99_ns={} p999_ns={} max_ns={} dropped={dropped}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    );
}

fn env_flag(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty() && v != "0")
}

/// One line of output: a contender at a producer count, paced or saturated.
struct Case {
    contender: Contender,
    producers: usize,
    saturated: bool,
    histogram: Histogram<u64>,
    dropped: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    Auditring,
    AuditringCopy,
    AuditringRuntime,
    Rtrb,
    ArrayQueue,
    Channel,
    SeedStringChannel,
}

impl Contender {
    const ALL: [Contender; 7] = [
        Contender::Auditring,
        Contender::AuditringCopy,
        Contender::AuditringRuntime,
        Contender::Rtrb,
        Contender::ArrayQueue,
        Contender::Channel,
        Contender::SeedStringChannel,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::Auditring => "auditring",
            Contender::AuditringCopy => "auditring_copy",
            Contender::AuditringRuntime => "auditring_runtime",
            Contender::Rtrb => "rtrb",
            Contender::ArrayQueue => "crossbeam_arrayqueue",
            Contender::Channel => "crossbeam_channel",
            Contender::SeedStringChannel => "seed_string_channel",
        }
    }

    fn bench(self, clock: &Clock, plan: Plan<'_>, producers: usize) -> (Histogram<u64>, u64) {
        match self {
            Contender::Auditring => bench_auditring(clock, plan, producers),
            Contender::AuditringCopy => bench_auditring_with(clock, plan, producers, true),
            Contender::AuditringRuntime => bench_auditring_runtime(clock, plan, producers),
            Contender::Rtrb => bench_rtrb(clock, plan),
            Contender::ArrayQueue => bench_arrayqueue(clock, plan, producers),
            Contender::Channel => bench_channel(clock, plan, producers),
            Contender::SeedStringChannel => bench_seed(clock, plan, producers),
        }
    }
}

impl Case {
    fn new(contender: Contender, producers: usize, saturated: bool) -> Self {
        Self {
            contender,
            producers,
            saturated,
            histogram: new_histogram(),
            dropped: 0,
        }
    }

    fn name(&self) -> String {
        if self.saturated {
            format!("{}_saturated", self.contender.name())
        } else {
            self.contender.name().to_string()
        }
    }

    fn p50(&self) -> u64 {
        self.histogram.value_at_quantile(0.5)
    }
}

fn main() {
    let events = if env_flag("AUDITRING_BENCH_QUICK").is_some() {
        EVENTS_QUICK
    } else {
        EVENTS_FULL
    };
    let runs: usize = env_flag("AUDITRING_BENCH_RUNS")
        .map(|v| {
            v.parse()
                .expect("AUDITRING_BENCH_RUNS must be a positive integer")
        })
        .unwrap_or(1);
    let cores = auditring::capture::affinity::available_cores();
    let clock = Clock::new();
    eprintln!(
        "hot_path: {events} events per producer in {ROUNDS} rounds, pace {PACE_NS} ns, \
         cores {cores:?}; producer p on core p, consumer on the next free core or unpinned"
    );

    let paced = Plan {
        events: events / ROUNDS,
        pace_ns: PACE_NS,
        max_in_flight: MAX_IN_FLIGHT,
        consumer_work_ns: 0,
        cores: &cores,
    };
    let saturated = Plan {
        pace_ns: 0,
        max_in_flight: 0,
        consumer_work_ns: SATURATION_CONSUMER_NS,
        ..paced
    };

    for _ in 0..runs {
        let floor = timer_floor(&clock, Plan { events, ..paced });
        print_line("timer_floor", 1, &floor, 0);

        // rtrb is single-producer only.
        let mut cases: Vec<Case> = [1, 2]
            .into_iter()
            .flat_map(|producers| {
                Contender::ALL
                    .into_iter()
                    .filter(move |&c| producers == 1 || c != Contender::Rtrb)
                    .map(move |c| Case::new(c, producers, false))
            })
            .chain(
                Contender::ALL
                    .into_iter()
                    .filter(|&c| c != Contender::AuditringRuntime && c != Contender::AuditringCopy)
                    .map(|c| Case::new(c, 1, true)),
            )
            .collect();

        // Round-robin, with the starting case rotating every round, so slow
        // drifts of the machine (frequency, host scheduling, placement of
        // the two cores) are spread evenly over the contenders.
        for round in 0..ROUNDS as usize {
            for k in 0..cases.len() {
                let index = (round + k) % cases.len();
                let case = &mut cases[index];
                let plan = if case.saturated { saturated } else { paced };
                let (histogram, dropped) = case.contender.bench(&clock, plan, case.producers);
                case.histogram
                    .add(&histogram)
                    .expect("same histogram bounds");
                case.dropped += dropped;
            }
        }

        for case in &cases {
            print_line(&case.name(), case.producers, &case.histogram, case.dropped);
        }

        let p50 = |contender: Contender| {
            cases
                .iter()
                .find(|c| c.contender == contender && c.producers == 1 && !c.saturated)
                .map_or(0, Case::p50)
        };
        let ratio = |a: Contender, b: Contender| p50(a) as f64 / p50(b).max(1) as f64;
        println!(
            "ratio auditring/rtrb p50={:.2}",
            ratio(Contender::Auditring, Contender::Rtrb)
        );
        println!(
            "ratio auditring_runtime/auditring p50={:.2}",
            ratio(Contender::AuditringRuntime, Contender::Auditring)
        );
        println!(
            "ratio crossbeam_arrayqueue/auditring p50={:.2}",
            ratio(Contender::ArrayQueue, Contender::Auditring)
        );
        println!(
            "ratio seed_string_channel/auditring p50={:.2}",
            ratio(Contender::SeedStringChannel, Contender::Auditring)
        );
    }
}
