//! The signer thread: drains the ring in batches, numbers and encodes
//! events, hashes them into a Merkle tree, signs one seal per batch and
//! hands the batch to the sinks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

use hdrhistogram::Histogram;

use crate::capture::{CapturedEvent, Consumer};
use crate::format::encode::EncodeJson;
use crate::format::event::{self, IdGenerator};
use crate::format::keys::SigningKey;
use crate::format::merkle::Hash;
use crate::format::redact::Redactor;
use crate::format::seal::{ChainHead, Orphans, Seal, SealReason};
use crate::payload::Payload;
use crate::pipeline::hasher::{BatchHasher, CHUNK, Lines};
use crate::pipeline::shared::{Pipeline, lock};
use crate::pipeline::writer::{PUBLISH_EVERY_NS, Sealed, SinkEntry, Writer};
use crate::sink::RotationSignal;
use crate::stats::LatencySource;
use crate::stats::{Histograms, Stage};

/// What the signer did over its whole run.
#[derive(Clone, Debug)]
pub(crate) struct SignerOutcome {
    pub(crate) stream: Uuid,
    pub(crate) sealed_events: u64,
    pub(crate) seals: u64,
    pub(crate) sink_errors: u64,
    pub(crate) dropped: u64,
    pub(crate) last_seal_hash: Hash,
    pub(crate) next_seq: u64,
    /// The checkpoint of the close seal.
    pub(crate) checkpoint: crate::format::checkpoint::Checkpoint,
    /// Capture to sealed-and-written latency per event, microseconds.
    pub(crate) seal_latency_us: Histogram<u64>,
}

/// Signer settings.
pub(crate) struct SignerConfig {
    pub(crate) key: SigningKey,
    pub(crate) max_batch: usize,
    pub(crate) max_delay: Duration,
    pub(crate) chain: ChainHead,
    pub(crate) parallel_hashing: bool,
    pub(crate) report_interval: Option<Duration>,
    /// An idle run writes a `heartbeat` seal when no seal was written for
    /// this long.
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) redactor: Redactor,
}

/// The batch being built.
struct BatchState {
    stream: Uuid,
    ids: IdGenerator,
    next_seq: u64,
    seq_start: u64,
    count: u64,
    /// Raw capture stamp of the batch's oldest event.
    oldest_stamp: u64,
    /// Event lines of the batch, then (while sealing) its seal line.
    lines: Lines,
    /// Raw capture stamps of the batch's events, for latency accounting.
    stamps: Vec<u64>,
    /// Time spent draining and encoding this batch, ns.
    encode_ns: u64,
    redactor: Redactor,
}

impl BatchState {
    fn add<T: Payload + EncodeJson + LatencySource>(
        &mut self,
        event: CapturedEvent<'_, T>,
        stats: &mut Histograms,
        queue_wait_ns: u64,
    ) {
        stats.record(Stage::QueueWait, queue_wait_ns);
        if let Some(sample) = event.payload().latency_sample() {
            stats.record_payload(sample);
        }
        if self.count == 0 {
            self.seq_start = self.next_seq;
            self.oldest_stamp = event.raw_stamp();
        }
        let seq = self.next_seq;
        let id = self.ids.next(event.unix_nanos());
        let range = event::write_event_line(
            &mut self.lines.buf,
            &self.redactor,
            seq,
            &id,
            event.unix_nanos(),
            event.payload(),
        );
        self.lines.ranges.push(range);
        self.stamps.push(event.raw_stamp());
        self.next_seq += 1;
        self.count += 1;
    }
}

/// The signer: owns the consumer side of the ring, the key and the sinks.
pub(crate) struct Signer<T: Payload + EncodeJson + LatencySource> {
    consumer: Consumer<T>,
    key: SigningKey,
    writer: Writer,
    hasher: BatchHasher,
    max_batch: usize,
    max_delay_ns: u64,
    batch: BatchState,
    next_index: u64,
    prev: Hash,
    open_reason: SealReason,
    /// Committed to by the opening seal when it is `recovered`.
    orphans: Orphans,
    /// The smallest file size limit of the sinks, if any.
    size_limit: Option<u64>,
    /// Bytes written to the current file since its start (as the sink
    /// reported it at start, then counted here).
    file_bytes: u64,
    dropped_at_last_seal: u64,
    pipeline: Arc<Pipeline>,
    rotation: RotationSignal,
    /// This thread's histograms, published to `pipeline.stats` now and
    /// then: recording them never waits for a reader.
    stats: Histograms,
    /// When `stats` was last published (a capture clock stamp).
    published: u64,
    report_every_ns: Option<u64>,
    heartbeat_every_ns: Option<u64>,
    /// Raw clock stamp of the last seal written.
    last_seal_stamp: u64,
    /// The last flush ticket served.
    flush_served: u64,
    /// Each lane's published count when the current flush was asked for.
    flush_marks: Vec<u64>,
}

impl<T: Payload + EncodeJson + LatencySource> Signer<T> {
    pub(crate) fn new(
        consumer: Consumer<T>,
        config: SignerConfig,
        sinks: Vec<SinkEntry>,
        pipeline: Arc<Pipeline>,
        rotation: RotationSignal,
    ) -> std::io::Result<Self> {
        let lanes = consumer.stats().lanes;
        let mut ids = IdGenerator::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let stream = ids.next(now);
        let max_batch = config.max_batch.max(1);
        let writer = Writer::spawn(sinks, consumer.clock().clone(), Arc::clone(&pipeline))?;
        let published = consumer.clock().stamp();
        Ok(Self {
            consumer,
            key: config.key,
            writer,
            hasher: BatchHasher::new(config.parallel_hashing && max_batch > 1)?,
            max_batch,
            max_delay_ns: config.max_delay.as_nanos().min(u128::from(u64::MAX)) as u64,
            batch: BatchState {
                stream,
                ids,
                next_seq: config.chain.next_seq,
                seq_start: config.chain.next_seq,
                count: 0,
                oldest_stamp: 0,
                lines: Lines {
                    buf: Vec::with_capacity(max_batch.min(1 << 16) * 640),
                    ranges: Vec::with_capacity(max_batch.min(1 << 16)),
                },
                stamps: Vec::with_capacity(max_batch.min(1 << 16)),
                encode_ns: 0,
                redactor: config.redactor,
            },
            next_index: 0,
            prev: config.chain.prev,
            open_reason: if config.chain.previous_closed {
                SealReason::Open
            } else {
                SealReason::Recovered
            },
            orphans: config.chain.orphans,
            size_limit: rotation.size_limit().map(|(limit, _)| limit),
            file_bytes: rotation.size_limit().map_or(0, |(_, current)| current),
            dropped_at_last_seal: 0,
            pipeline,
            rotation,
            stats: Histograms::buffered(),
            published,
            report_every_ns: config
                .report_interval
                .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64),
            heartbeat_every_ns: config
                .heartbeat_interval
                .map(|d| d.as_nanos().clamp(1, u128::from(u64::MAX)) as u64),
            last_seal_stamp: 0,
            flush_served: 0,
            flush_marks: Vec::with_capacity(lanes),
        })
    }

    /// Runs until the pipeline's `stop` is set, then drains everything
    /// accepted, writes the close seal and flushes the sinks.
    pub(crate) fn run(mut self) -> SignerOutcome {
        self.seal(self.open_reason);
        let mut last_report = self.consumer.clock().stamp();
        let mut idle = 0u32;
        loop {
            // Acquire: pairs with the Release store in `Runtime::shutdown`.
            let stopping = self.pipeline.stop.load(Ordering::Acquire);
            if stopping {
                self.consumer.close();
            }
            let drained = self.drain_some();
            if self.batch.count as usize >= self.max_batch {
                self.seal_batch(SealReason::Size);
            } else if self.batch.count > 0
                && self.consumer.nanos_since(self.batch.oldest_stamp) >= self.max_delay_ns
            {
                self.seal_batch(SealReason::Timer);
            } else if let Some(every) = self.heartbeat_every_ns
                && self.batch.count == 0
                && !stopping
                && self.consumer.nanos_since(self.last_seal_stamp) >= every
            {
                // Idle: a signed proof of freshness, so a stalled chain
                // can be told from an idle one.
                self.seal(SealReason::Heartbeat);
            }
            let wanted = self.pipeline.flush.requested();
            if wanted > self.flush_served {
                self.flush_to(wanted);
            }
            if self.rotation.take() {
                // The batch ends the old file; an open seal of the same
                // stream starts the new one.
                self.seal(SealReason::Rotate);
                self.seal(SealReason::Open);
            }
            if let Some(every) = self.report_every_ns
                && self.consumer.nanos_since(last_report) >= every
            {
                last_report = self.consumer.clock().stamp();
                self.report();
            }
            if stopping && self.consumer.is_empty() {
                break;
            }
            if drained == 0 {
                idle = idle.saturating_add(1);
                self.wait(idle);
            } else {
                idle = 0;
            }
        }
        let close = self.seal(SealReason::Close);
        let dropped = self.consumer.stats().dropped;
        self.writer.finish();
        self.pipeline.publish(&mut self.stats);
        let pipeline = &self.pipeline;
        SignerOutcome {
            stream: self.batch.stream,
            sealed_events: pipeline.sealed_events.load(Ordering::Relaxed),
            seals: pipeline.seals.load(Ordering::Relaxed),
            sink_errors: pipeline.sink_errors.load(Ordering::Relaxed),
            dropped,
            last_seal_hash: self.prev,
            next_seq: self.batch.next_seq,
            checkpoint: close,
            seal_latency_us: lock(&pipeline.stats)
                .stage(Stage::Sealed)
                .histogram()
                .clone(),
        }
    }

    /// Drains up to the batch's free room into the batch; returns how many
    /// events were drained.
    fn drain_some(&mut self) -> usize {
        let room = self.max_batch - self.batch.count as usize;
        let batch = &mut self.batch;
        let clock = self.consumer.clock().clone();
        let started = clock.stamp();
        let stats = &mut self.stats;
        let hasher = &mut self.hasher;
        let drained = self.consumer.drain(room, |event| {
            let wait = clock.nanos_between(event.raw_stamp(), started);
            batch.add(event, stats, wait);
            if batch.lines.ranges.len().is_multiple_of(CHUNK) {
                hasher.lines_added(&batch.lines);
            }
        });
        if drained > 0 {
            batch.encode_ns += clock.nanos_between(started, clock.stamp());
        }
        drained
    }

    /// Serves flush tickets up to `ticket`: seals every event accepted
    /// before now (the open batch with a `timer` seal) and queues a flush
    /// marker behind the sealed batches for the writer.
    fn flush_to(&mut self, ticket: u64) {
        self.consumer.mark(&mut self.flush_marks);
        while !self.consumer.drained_up_to(&self.flush_marks) {
            self.drain_some();
            if self.batch.count as usize >= self.max_batch {
                self.seal(SealReason::Size);
            }
        }
        if self.batch.count > 0 {
            self.seal(SealReason::Timer);
        }
        self.pipeline.publish(&mut self.stats);
        self.writer.send(Sealed {
            flush: Some(ticket),
            ..Sealed::default()
        });
        self.flush_served = ticket;
    }

    /// The periodic report through `tracing` (target `auditring::stats`).
    fn report(&mut self) {
        self.pipeline.publish(&mut self.stats);
        let stats = lock(&self.pipeline.stats);
        let sealed = stats.stage(Stage::Sealed).percentiles();
        let wait = stats.stage(Stage::QueueWait).percentiles();
        let capture = self.consumer.stats();
        tracing::info!(
            target: "auditring::stats",
            accepted = capture.accepted,
            dropped = capture.dropped,
            refused = capture.refused,
            sealed = self.pipeline.sealed_events.load(Ordering::Relaxed),
            seals = self.pipeline.seals.load(Ordering::Relaxed),
            sink_errors = self.pipeline.sink_errors.load(Ordering::Relaxed),
            queue_wait_p99_ns = wait.p99,
            sealed_p50_us = sealed.p50,
            sealed_p99_us = sealed.p99,
            sealed_max_us = sealed.max,
            "audit pipeline"
        );
    }

    /// Waits for events without a system call for the first rounds, then
    /// naps; a nap never outlasts the open batch's deadline.
    fn wait(&self, idle: u32) {
        if idle < 64 {
            std::hint::spin_loop();
        } else if idle < 80 {
            std::thread::yield_now();
        } else {
            let mut nap = Duration::from_micros(u64::from(idle - 79).min(10) * 100);
            if self.batch.count > 0 {
                let age = self.consumer.nanos_since(self.batch.oldest_stamp);
                let left = Duration::from_nanos(self.max_delay_ns.saturating_sub(age));
                nap = nap.min(left);
            }
            std::thread::park_timeout(nap);
        }
    }

    /// Seals a full or timed-out batch; when a sink limits its file's size
    /// and this batch would take the file past it, the batch ends the file
    /// (a `rotate` seal) and an `open` seal starts the next, so a file
    /// exceeds its limit by at most one batch.
    fn seal_batch(&mut self, reason: SealReason) {
        /// Room for the seal line itself (about 700 bytes).
        const SEAL_LINE: u64 = 1024;
        let pending = self.batch.lines.buf.len() as u64 + SEAL_LINE;
        match self.size_limit {
            Some(limit) if self.file_bytes.saturating_add(pending) >= limit => {
                self.seal(SealReason::Rotate);
                self.seal(SealReason::Open);
            }
            _ => {
                self.seal(reason);
            }
        }
    }

    /// Seals the current batch (possibly empty), writes it to every sink
    /// and starts the next one. Returns the seal's checkpoint.
    fn seal(&mut self, reason: SealReason) -> crate::format::checkpoint::Checkpoint {
        let batch = &mut self.batch;
        if batch.count == 0 {
            batch.seq_start = batch.next_seq;
        }
        let clock = self.consumer.clock().clone();
        let hash_started = clock.stamp();
        let root = self.hasher.root(&batch.lines);
        let hashed = clock.stamp();
        let dropped_total = self.consumer.stats().dropped;
        let seal = Seal {
            stream: batch.stream,
            index: self.next_index,
            reason,
            seq_start: batch.seq_start,
            count: batch.count,
            root,
            prev: self.prev,
            dropped: dropped_total - self.dropped_at_last_seal,
            dropped_total,
            sink_errors: self.writer.take_unsigned_errors(),
            orphans: if reason == SealReason::Recovered {
                std::mem::take(&mut self.orphans)
            } else {
                Orphans::NONE
            },
            unix_nanos: self.consumer.unix_nanos_now(),
            key_id: self.key.key_id(),
        };
        let preimage = seal.preimage();
        let signature = self.key.sign(&preimage);
        let signed = clock.stamp();
        self.last_seal_stamp = signed;
        self.stats
            .record(Stage::Sign, clock.nanos_between(hashed, signed) / 1_000);
        let total = batch.encode_ns + clock.nanos_between(hash_started, hashed);
        if let Some(per_event) = total.checked_div(batch.count) {
            self.stats.record(Stage::EncodeHash, per_event);
        }
        // Published before the batch reaches the writer, whenever the ring
        // has nothing more for now: once a reader sees these events
        // counted as sealed, their statistics are in its snapshot too.
        if self.consumer.is_empty()
            || clock.nanos_between(self.published, signed) >= PUBLISH_EVERY_NS
        {
            self.pipeline.publish(&mut self.stats);
            self.published = signed;
        }
        batch.encode_ns = 0;
        let seal_offset = batch.lines.buf.len();
        seal.write_line(&signature, &mut batch.lines.buf);
        self.file_bytes = if reason == SealReason::Rotate {
            0
        } else {
            self.file_bytes + batch.lines.buf.len() as u64
        };
        let checkpoint = crate::format::checkpoint::Checkpoint::of_seal(&seal);
        self.prev = checkpoint.hash;
        self.next_index += 1;
        self.dropped_at_last_seal = dropped_total;

        let spare = self.writer.spare();
        let sealed = Sealed {
            lines: std::mem::replace(&mut batch.lines, spare.lines),
            seal_offset,
            seal: Some(seal),
            checkpoint: Some(checkpoint),
            stamps: std::mem::replace(&mut batch.stamps, spare.stamps),
            flush: None,
        };
        self.writer.send(sealed);
        batch.count = 0;
        checkpoint
    }
}
