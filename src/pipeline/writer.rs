//! The writer thread: hands sealed batches to the sinks, so that writing
//! (a kernel copy per byte for a file) overlaps with sealing the next
//! batch instead of stalling it.
//!
//! Batches travel in owned buffers that come back for reuse: in steady
//! state nothing is allocated. At most [`QUEUED`] sealed batches wait for
//! the sinks; beyond that the signer waits, the ring fills, and the ring's
//! full policy applies.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use std::time::Duration;

use crate::capture::clock::CaptureClock;
use crate::format::seal::Seal;
use crate::pipeline::hasher::Lines;
use crate::pipeline::shared::{Pipeline, lock};
use crate::sink::{Batch, Sink, SinkFailure, SinkOperation, SinkPolicy};
use crate::stats::{Histograms, Stage};

/// Sealed batches that may wait for the sinks.
const QUEUED: usize = 2;

/// First and last pause between retries of a required sink.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A sink with its failure policy and state.
pub(crate) struct SinkEntry {
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) policy: SinkPolicy,
    /// Failed attempts since the last success.
    failing: u64,
}

impl SinkEntry {
    pub(crate) fn new(sink: Box<dyn Sink>, policy: SinkPolicy) -> Self {
        Self {
            sink,
            policy,
            failing: 0,
        }
    }
}

/// How often the pipeline's threads publish their histograms to readers.
pub(crate) const PUBLISH_EVERY_NS: u64 = 20_000_000;

/// A sealed batch: its lines (events then seal), where the seal line
/// starts, the seal, and the capture stamps of its events. Or, with
/// `flush` set and no seal, a flush request: every batch queued before it
/// is written; flush the sinks and report the ticket done.
#[derive(Default)]
pub(crate) struct Sealed {
    pub(crate) lines: Lines,
    pub(crate) seal_offset: usize,
    pub(crate) seal: Option<Seal>,
    /// The seal's checkpoint, as the signer computed it.
    pub(crate) checkpoint: Option<crate::format::checkpoint::Checkpoint>,
    pub(crate) stamps: Vec<u64>,
    pub(crate) flush: Option<u64>,
}

/// The signer's handle on the writer thread.
pub(crate) struct Writer {
    batches: Option<SyncSender<Sealed>>,
    recycled: Receiver<Sealed>,
    thread: Option<JoinHandle<()>>,
    unsigned_errors: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread (`auditring-writer`).
    pub(crate) fn spawn(
        mut sinks: Vec<SinkEntry>,
        clock: CaptureClock,
        shared: Arc<Pipeline>,
    ) -> std::io::Result<Self> {
        let (batches, incoming) = sync_channel::<Sealed>(QUEUED);
        let (give_back, recycled) = sync_channel::<Sealed>(QUEUED + 2);
        let unsigned_errors = Arc::new(AtomicU64::new(0));
        let errors = Arc::clone(&unsigned_errors);
        let thread = std::thread::Builder::new()
            .name("auditring-writer".into())
            .spawn(move || {
                let mut stats = Histograms::buffered();
                let mut published = clock.stamp();
                let mut next = incoming.recv().ok();
                while let Some(mut sealed) = next.take() {
                    if let Some(seal) = sealed.seal.as_ref() {
                        let batch = Batch::new(&sealed.lines.buf, sealed.seal_offset, seal);
                        let started = clock.stamp();
                        let failed = write_all(&mut sinks, &batch, &shared);
                        if failed > 0 {
                            errors.fetch_add(failed, Ordering::Relaxed);
                        }
                        let now = clock.stamp();
                        stats.record(Stage::SinkWrite, clock.nanos_between(started, now) / 1_000);
                        for &stamp in &sealed.stamps {
                            stats.record(Stage::Sealed, clock.nanos_between(stamp, now) / 1_000);
                        }
                        // Published before the counters whenever no batch
                        // waits: once a reader sees these events counted
                        // as sealed, their latencies are in its snapshot.
                        next = incoming.try_recv().ok();
                        if next.is_none() || clock.nanos_between(published, now) >= PUBLISH_EVERY_NS
                        {
                            shared.publish(&mut stats);
                            published = now;
                        }
                        shared
                            .sealed_events
                            .fetch_add(seal.count, Ordering::Relaxed);
                        shared.seals.fetch_add(1, Ordering::Relaxed);
                        *lock(&shared.written_head) = sealed.checkpoint;
                    }
                    if let Some(ticket) = sealed.flush.take() {
                        shared.publish(&mut stats);
                        let failed = flush_all(&mut sinks, &shared, "flush");
                        if failed.any > 0 {
                            errors.fetch_add(failed.any, Ordering::Relaxed);
                        }
                        shared.flush.complete(ticket, failed.required);
                    }
                    // A flush marker has no buffers worth reusing.
                    if sealed.seal.take().is_some() {
                        sealed.checkpoint = None;
                        sealed.lines.buf.clear();
                        sealed.lines.ranges.clear();
                        sealed.stamps.clear();
                        // A full return queue just means the signer has spares.
                        let _ = give_back.try_send(sealed);
                    }
                    if next.is_none() {
                        next = incoming.recv().ok();
                    }
                }
                flush_all(&mut sinks, &shared, "shutdown");
                shared.publish(&mut stats);
            })?;
        Ok(Self {
            batches: Some(batches),
            recycled,
            thread: Some(thread),
            unsigned_errors,
        })
    }

    /// Empty buffers for the next batch: recycled ones when available.
    pub(crate) fn spare(&self) -> Sealed {
        self.recycled.try_recv().unwrap_or_default()
    }

    /// Queues a sealed batch for the sinks; waits while [`QUEUED`] batches
    /// are already waiting.
    pub(crate) fn send(&self, sealed: Sealed) {
        if let Some(batches) = &self.batches {
            // The writer thread only stops when this sender is dropped, or
            // by a bug; then there is nobody to write to.
            let _ = batches.send(sealed);
        }
    }

    /// Sink failures not yet recorded in a seal; resets the count.
    pub(crate) fn take_unsigned_errors(&self) -> u64 {
        self.unsigned_errors.swap(0, Ordering::Relaxed)
    }

    /// Waits for every queued batch to be written and the sinks flushed.
    pub(crate) fn finish(mut self) {
        drop(self.batches.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.batches.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sinks whose flush failed.
struct FlushFailures {
    any: u64,
    required: u64,
}

/// Flushes every sink (a file sink syncs); counts and keeps failures.
fn flush_all(sinks: &mut [SinkEntry], shared: &Pipeline, when: &str) -> FlushFailures {
    let mut failed = FlushFailures {
        any: 0,
        required: 0,
    };
    for entry in sinks.iter_mut() {
        let failure = match catch_unwind(AssertUnwindSafe(|| entry.sink.flush())) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => SinkFailure::new(entry.sink.name(), SinkOperation::Flush, &e),
            Err(panic) => SinkFailure::panicked(entry.sink.name(), SinkOperation::Flush, &*panic),
        };
        tracing::error!(target: "auditring", sink = entry.sink.name(), policy = ?entry.policy, error = %failure.message, "audit sink flush failed at {when}");
        shared.failed(failure);
        failed.any += 1;
        if entry.policy == SinkPolicy::Required {
            failed.required += 1;
        }
    }
    failed
}

/// Writes one batch to every sink; returns how many attempts failed.
///
/// A best-effort sink gets one attempt. A required sink is retried with
/// backoff until it succeeds (or the runtime abandons it at shutdown);
/// while any required sink is failing, the intake refuses new events. A
/// panicking sink counts as failed and never takes the writer down.
fn write_all(sinks: &mut [SinkEntry], batch: &Batch<'_>, shared: &Pipeline) -> u64 {
    let mut failed = 0;
    for entry in sinks.iter_mut() {
        let mut pause = RETRY_FIRST;
        loop {
            let failure = match catch_unwind(AssertUnwindSafe(|| entry.sink.write_batch(batch))) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(SinkFailure::new(
                    entry.sink.name(),
                    SinkOperation::Write,
                    &e,
                )),
                Err(panic) => Some(SinkFailure::panicked(
                    entry.sink.name(),
                    SinkOperation::Write,
                    &*panic,
                )),
            };
            let Some(failure) = failure else {
                if entry.failing > 0 {
                    tracing::warn!(target: "auditring", sink = entry.sink.name(), failed_attempts = entry.failing, "audit sink recovered");
                    entry.failing = 0;
                }
                break;
            };
            failed += 1;
            if entry.failing == 0 {
                tracing::error!(target: "auditring", sink = entry.sink.name(), policy = ?entry.policy, seal = batch.seal().index, error = %failure.message, kind = ?failure.kind, "audit sink write failed");
            }
            shared.failed(failure);
            entry.failing += 1;
            if entry.policy == SinkPolicy::BestEffort {
                break;
            }
            shared.intake.set_refusing(true);
            if shared.abandon.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
    let required_failing = sinks
        .iter()
        .any(|e| e.policy == SinkPolicy::Required && e.failing > 0);
    shared.intake.set_refusing(required_failing);
    failed
}
