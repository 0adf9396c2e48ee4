//! The runtime: a capture ring plus the signer thread that turns captured
//! events into a signed log.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::capture::recorder::{FullPolicy, Recorder};
use crate::capture::{Capture, CaptureBuilder, ConfigError, RecorderError};
use crate::format::keys::SigningKey;
use crate::format::redact::{Redaction, Redactor};
use crate::format::seal::ChainHead;
use crate::payload::{AuditPayload, Payload};
use crate::pipeline::flush::{FlushError, FlushHandle, FlushReport, StopOnDrop};
use crate::pipeline::shared::{Pipeline, lock};
use crate::pipeline::signer::{Signer, SignerConfig, SignerOutcome};
use crate::pipeline::stage_files::StageFiles;
use crate::pipeline::writer::SinkEntry;
use crate::sink::{RotationSignal, Sink, SinkFailure, SinkPolicy};
use crate::stats::{PayloadLatency, Percentiles, Stage};
use serde::Serialize;
use uuid::Uuid;

/// Why a runtime could not be built. Each variant says what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The capture ring's settings are invalid.
    Config(ConfigError),
    /// No signing key was given.
    MissingKey,
    /// No sink was given.
    NoSink,
    /// `max_batch` was 0.
    ZeroBatch,
    /// `max_delay` was 0.
    ZeroDelay,
    /// The signer thread could not be started.
    Spawn(std::io::Error),
    /// A [`Redaction::Hmac`] rule without a redaction key of 16 bytes or
    /// more.
    RedactionKey,
    /// The signer core does not exist (or is not available to the process).
    Pin(crate::capture::affinity::PinError),
    /// The directory of the stage histogram files could not be created
    /// (or their thread started).
    StageHistograms {
        /// The directory given to `stage_histograms`.
        dir: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A sink could not read where its existing log ends.
    Resume {
        /// The sink's name.
        sink: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => write!(f, "{e}"),
            BuildError::MissingKey => f.write_str(
                "no signing key: call `.signing_key(SigningKey::from_file(PATH)?)` (create one with `auditring keygen --out PATH`)",
            ),
            BuildError::NoSink => f.write_str(
                "no sink: add one with `.sink(FileSink::open(PATH)?)` (or `MemorySink::new()` in tests)",
            ),
            BuildError::ZeroBatch => f.write_str("max_batch is 0: use 1 to sign every event, or more to batch"),
            BuildError::ZeroDelay => {
                f.write_str("max_delay is 0: give the signer at least a microsecond to gather a batch")
            }
            BuildError::Spawn(e) => write!(f, "cannot start the signer thread: {e}"),
            BuildError::Pin(e) => write!(f, "signer_core: {e}"),
            BuildError::RedactionKey => f.write_str(
                "an HMAC redaction needs a secret key of at least 16 bytes: call `.redaction_key(...)` with one kept apart from the log",
            ),
            BuildError::Resume { sink, source } => {
                write!(f, "sink '{sink}' cannot continue its existing log: {source}")
            }
            BuildError::StageHistograms { dir, source } => write!(
                f,
                "stage_histograms: cannot write into {}: {source} (choose a writable directory)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Pin(e) => Some(e),
            BuildError::Spawn(e)
            | BuildError::Resume { source: e, .. }
            | BuildError::StageHistograms { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

/// Configures and starts a [`Runtime`].
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`signing_key`](RuntimeBuilder::signing_key) | required | ECDSA P-256 key that signs every seal |
/// | [`sink`](RuntimeBuilder::sink) / [`sink_with`](RuntimeBuilder::sink_with) | at least one; policy `Required` | where sealed batches are written, and what a failure does |
/// | [`max_batch`](RuntimeBuilder::max_batch) | 1024 | events per seal at most; 1 signs every event |
/// | [`max_delay`](RuntimeBuilder::max_delay) | 10 ms | oldest event's age that closes a batch |
/// | [`lane_capacity`](RuntimeBuilder::lane_capacity) | 1024 | ring slots per recorder (power of two) |
/// | [`max_producers`](RuntimeBuilder::max_producers) | 8 | recorders alive at once |
/// | [`max_ring_bytes`](RuntimeBuilder::max_ring_bytes) | 1 GiB | refuse a ring (`max_producers × lane_capacity` slots) that would take more memory |
/// | [`full_policy`](RuntimeBuilder::full_policy) | [`FullPolicy::Drop`] | what `record` does on a full lane |
/// | [`continue_chain`](RuntimeBuilder::continue_chain) | what the sinks found, else a new log | the log this run continues |
/// | [`parallel_hashing`](RuntimeBuilder::parallel_hashing) | on with 2+ CPUs | a helper thread hashes each batch's lines, 64 at a time, while the signer encodes the next ones |
/// | [`shutdown_timeout`](RuntimeBuilder::shutdown_timeout) | 10 s | bound on draining at shutdown |
/// | [`report_interval`](RuntimeBuilder::report_interval) | 60 s | periodic stats report through `tracing` |
/// | [`signer_core`](RuntimeBuilder::signer_core) | not pinned | core the signer thread is pinned to |
/// | [`redact`](RuntimeBuilder::redact) | none | fields removed, masked or replaced by an HMAC before encoding |
/// | [`redaction_key`](RuntimeBuilder::redaction_key) | none | secret of HMAC redaction (16 bytes or more) |
/// | [`stage_histograms`](RuntimeBuilder::stage_histograms) | off | stage histograms written as `.hgrm` files to a directory, periodically and at shutdown |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use auditring::{AuditPayload, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// let runtime = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(MemorySink::new())
///     .max_batch(256)
///     .max_delay(Duration::from_millis(5))
///     .build()?;
/// let report = runtime.shutdown()?;
/// assert_eq!(report.seals, 2); // open and close
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct RuntimeBuilder<T: Payload = AuditPayload> {
    capture: CaptureBuilder<T>,
    key: Option<SigningKey>,
    sinks: Vec<SinkEntry>,
    max_batch: usize,
    max_delay: Duration,
    chain: Option<ChainHead>,
    shutdown_timeout: Duration,
    parallel_hashing: bool,
    report_interval: Option<Duration>,
    signer_core: Option<usize>,
    redactions: Vec<(String, Redaction)>,
    /// Wiped from memory when the builder is dropped.
    redaction_key: zeroize::Zeroizing<Vec<u8>>,
    stage_histograms: Option<(std::path::PathBuf, Duration)>,
}

impl<T: Payload> Default for RuntimeBuilder<T> {
    fn default() -> Self {
        Self {
            capture: CaptureBuilder::default(),
            key: None,
            sinks: Vec::new(),
            max_batch: 1024,
            max_delay: Duration::from_millis(10),
            chain: None,
            shutdown_timeout: Duration::from_secs(10),
            parallel_hashing: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            report_interval: Some(Duration::from_secs(60)),
            signer_core: None,
            redactions: Vec::new(),
            redaction_key: zeroize::Zeroizing::new(Vec::new()),
            stage_histograms: None,
        }
    }
}

impl<T: Payload> fmt::Debug for RuntimeBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("key", &self.key)
            .field("sinks", &self.sinks.len())
            .field("max_batch", &self.max_batch)
            .field("max_delay", &self.max_delay)
            .field("chain", &self.chain)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("parallel_hashing", &self.parallel_hashing)
            .field("report_interval", &self.report_interval)
            .field("signer_core", &self.signer_core)
            .field("redactions", &self.redactions)
            .field("stage_histograms", &self.stage_histograms)
            .finish_non_exhaustive()
    }
}

impl<T: Payload> RuntimeBuilder<T> {
    /// The key that signs every seal.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Adds a sink with [`SinkPolicy::Required`]: while it cannot write,
    /// new events are refused. Every sealed batch goes to every sink, in
    /// the order they were added.
    pub fn sink(self, sink: impl Sink + 'static) -> Self {
        self.sink_with(sink, SinkPolicy::Required)
    }

    /// Adds a sink with the given failure policy.
    pub fn sink_with(mut self, sink: impl Sink + 'static, policy: SinkPolicy) -> Self {
        self.sinks.push(SinkEntry::new(Box::new(sink), policy));
        self
    }

    /// Events per seal at most. `1` signs every event on its own (about
    /// 90 µs each: at most ~11k events/s); larger batches amortise the
    /// signature.
    pub fn max_batch(mut self, events: usize) -> Self {
        self.max_batch = events;
        self
    }

    /// Age of a batch's oldest event that closes the batch even if it is
    /// not full: the bound on capture-to-seal latency at low load.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Ring slots per recorder (rounded up to a power of two).
    pub fn lane_capacity(mut self, slots: usize) -> Self {
        self.capture = self.capture.lane_capacity(slots);
        self
    }

    /// Recorders alive at once.
    pub fn max_producers(mut self, lanes: usize) -> Self {
        self.capture = self.capture.max_producers(lanes);
        self
    }

    /// The most memory the capture ring may take (default 1 GiB,
    /// [`DEFAULT_MAX_RING_BYTES`](crate::capture::DEFAULT_MAX_RING_BYTES)). The ring
    /// takes `max_producers × lane_capacity` slots of a capture stamp and
    /// a payload each (about 1.3 KiB for [`AuditPayload`]), allocated and
    /// written at [`build`](RuntimeBuilder::build); a configuration above
    /// the limit is refused with [`ConfigError::RingTooLarge`] before
    /// anything is allocated or any sink is touched. See
    /// [`CaptureBuilder::memory_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::sink::MemorySink;
    /// use auditring::{AuditPayload, BuildError, ConfigError, Runtime, SigningKey};
    ///
    /// let err = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(MemorySink::new())
    ///     .lane_capacity(1 << 24)
    ///     .max_producers(8)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, BuildError::Config(ConfigError::RingTooLarge { .. })));
    /// ```
    pub fn max_ring_bytes(mut self, bytes: usize) -> Self {
        self.capture = self.capture.max_ring_bytes(bytes);
        self
    }

    /// What [`Recorder::record`] does when its lane is full.
    pub fn full_policy(mut self, policy: FullPolicy) -> Self {
        self.capture = self.capture.full_policy(policy);
        self
    }

    /// Continues an existing log: the first seal links to `head.prev` and
    /// the first event gets `head.next_seq`. Without this, the runtime
    /// continues the log its sinks found (see
    /// [`Sink::resume`](crate::sink::Sink::resume)), or starts a new one.
    pub fn continue_chain(mut self, head: ChainHead) -> Self {
        self.chain = Some(head);
        self
    }

    /// Whether a helper thread (`auditring-hasher`) hashes the batch's
    /// lines, 64 at a time, while the signer encodes the next ones (the
    /// signer hashes a run itself when the helper is behind). Hashing is
    /// most of the pipeline's work, so this nearly doubles its throughput;
    /// the helper sleeps when there is nothing to hash. Turn it off to keep
    /// the audit pipeline on one core.
    pub fn parallel_hashing(mut self, enabled: bool) -> Self {
        self.parallel_hashing = enabled;
        self
    }

    /// How often the signer reports counters and latency percentiles through
    /// `tracing` (target `auditring::stats`, level INFO); `None` turns the
    /// report off.
    pub fn report_interval(mut self, every: Option<Duration>) -> Self {
        self.report_interval = every;
        self
    }

    /// Pins the signer thread to this core (see
    /// [`available_cores`](crate::capture::affinity::available_cores)); checked by
    /// [`build`](RuntimeBuilder::build).
    pub fn signer_core(mut self, core: usize) -> Self {
        self.signer_core = Some(core);
        self
    }

    /// Redacts a top-level payload field before it is encoded: the value
    /// never reaches a sink, and the seal covers what was written.
    pub fn redact(mut self, field: impl Into<String>, with: Redaction) -> Self {
        self.redactions.push((field.into(), with));
        self
    }

    /// The secret key of [`Redaction::Hmac`] (at least 16 bytes; keep it
    /// apart from the log).
    pub fn redaction_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.redaction_key = zeroize::Zeroizing::new(key.into());
        self
    }

    /// Writes every pipeline stage's histogram into `dir`, one file per
    /// stage in HdrHistogram's percentile-distribution format (readable by
    /// HdrHistogram's plotter and by `auditring stats --plot` and
    /// `auditring report`), every `every` and once more at shutdown; a
    /// zero `every` writes only at shutdown. Values are in microseconds
    /// (three decimals). The runtime's counters go beside them, in
    /// [`COUNTERS_FILE`](crate::stats::hgrm::COUNTERS_FILE). A thread of
    /// its own (`auditring-stats`) writes them, never `record`: it copies
    /// the published histograms (see
    /// [`stats_snapshot`](Runtime::stats_snapshot)); the last write
    /// follows the signer's and writer's last publication at shutdown.
    /// Default: off. The directory is created by
    /// [`build`](RuntimeBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::stats::{Stage, hgrm};
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let dir = std::env::temp_dir().join(format!("auditring-hgrm-doc-{}", std::process::id()));
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(MemorySink::new())
    ///     .stage_histograms(&dir, Duration::from_secs(10))
    ///     .build()?;
    /// let mut r = runtime.recorder()?;
    /// r.record(|e| { e.set_action("read"); })?;
    /// drop(r);
    /// runtime.shutdown()?;
    /// let text = std::fs::read_to_string(hgrm::stage_file(&dir, Stage::Sealed))?;
    /// assert_eq!(hgrm::Distribution::parse(&text)?.count, 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stage_histograms(mut self, dir: impl Into<std::path::PathBuf>, every: Duration) -> Self {
        self.stage_histograms = Some((dir.into(), every));
        self
    }

    /// How long [`RuntimeGuard::shutdown`] waits for the signer to drain.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Allocates the ring, writes the opening seal and starts the signer
    /// thread (named `auditring-signer`). Returns the guard that owns the
    /// pipeline's shutdown; it dereferences to the [`Runtime`] handle, and
    /// [`RuntimeGuard::runtime`] gives a handle to share.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting to change. Every setting is
    /// checked before the ring is allocated or a sink is read.
    pub fn build(self) -> Result<RuntimeGuard<T>, BuildError> {
        self.capture.validate()?;
        let key = self.key.ok_or(BuildError::MissingKey)?;
        if self.sinks.is_empty() {
            return Err(BuildError::NoSink);
        }
        if self.max_batch == 0 {
            return Err(BuildError::ZeroBatch);
        }
        if self.max_delay.is_zero() {
            return Err(BuildError::ZeroDelay);
        }
        if self.redactions.iter().any(|(_, r)| *r == Redaction::Hmac)
            && self.redaction_key.len() < 16
        {
            return Err(BuildError::RedactionKey);
        }
        if let Some(core) = self.signer_core {
            let available = crate::capture::affinity::available_cores();
            if !available.contains(&core) {
                return Err(BuildError::Pin(
                    crate::capture::affinity::PinError::NoSuchCore { core, available },
                ));
            }
        }
        let mut sinks = self.sinks;
        let rotation = RotationSignal::default();
        let mut found = None;
        let public = key.public_key();
        for entry in &mut sinks {
            entry.sink.attach(&rotation);
            let tail = entry
                .sink
                .resume(&public)
                .map_err(|source| BuildError::Resume {
                    sink: entry.sink.name().to_owned(),
                    source,
                })?;
            if found.is_none() {
                found = tail;
            }
        }
        if let Some(tail) = &found
            && tail.key_id != key.key_id()
        {
            tracing::warn!(
                target: "auditring",
                previous_key = %tail.key_id,
                key = %key.key_id(),
                "the existing log was signed with another key; verify it with both public keys"
            );
        }
        let chain = self
            .chain
            .or(found.map(|t| t.chain))
            .unwrap_or_else(ChainHead::genesis);
        let (capture, consumer) = self.capture.build()?;
        let pipeline = Arc::new(Pipeline::new(Arc::clone(capture.intake())));
        let stage_files = match self.stage_histograms {
            Some((dir, every)) => {
                let (capture, shared) = (capture.clone(), Arc::clone(&pipeline));
                Some(
                    StageFiles::spawn(
                        dir.clone(),
                        every,
                        Arc::clone(&pipeline),
                        Box::new(move || runtime_stats(&capture, &shared)),
                    )
                    .map_err(|source| BuildError::StageHistograms { dir, source })?,
                )
            }
            None => None,
        };
        let signer = Signer::new(
            consumer,
            SignerConfig {
                key,
                max_batch: self.max_batch,
                max_delay: self.max_delay,
                chain,
                parallel_hashing: self.parallel_hashing,
                report_interval: self.report_interval,
                redactor: Redactor::new(self.redactions, self.redaction_key),
            },
            sinks,
            Arc::clone(&pipeline),
            rotation,
        )
        .map_err(BuildError::Spawn)?;
        let (done, outcome) = mpsc::sync_channel(1);
        let core = self.signer_core;
        let stopped = StopOnDrop(Arc::clone(&pipeline));
        let thread = std::thread::Builder::new()
            .name("auditring-signer".into())
            .spawn(move || {
                // However this thread ends, waiting flushes are released.
                let _stopped = stopped;
                if let Some(core) = core
                    && let Err(e) = crate::capture::affinity::pin_current_thread(core)
                {
                    tracing::error!(target: "auditring", error = %e, "cannot pin the audit signer");
                }
                let result = signer.run();
                let _ = done.send(result);
            })
            .map_err(BuildError::Spawn)?;
        let runtime = Runtime {
            capture,
            flush: FlushHandle {
                pipeline,
                signer: thread.thread().clone(),
            },
        };
        Ok(RuntimeGuard {
            runtime,
            signer: Some(thread),
            outcome,
            shutdown_timeout: self.shutdown_timeout,
            stage_files,
        })
    }
}

fn runtime_stats<T: Payload>(capture: &Capture<T>, pipeline: &Pipeline) -> RuntimeStats {
    let ring = capture.stats();
    RuntimeStats {
        accepted: ring.accepted,
        dropped: ring.dropped,
        refused: ring.refused,
        sealed: pipeline.sealed_events.load(Ordering::Relaxed),
        seals: pipeline.seals.load(Ordering::Relaxed),
        sink_errors: pipeline.sink_errors.load(Ordering::Acquire),
        checkpoint: *lock(&pipeline.written_head),
    }
}

/// Counters of a running runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Events accepted by the ring.
    pub accepted: u64,
    /// Events dropped by the ring (full lanes).
    pub dropped: u64,
    /// Events refused while a required sink could not write.
    pub refused: u64,
    /// Events sealed and handed to the sinks.
    pub sealed: u64,
    /// Seals written (including the opening seal).
    pub seals: u64,
    /// Sink write failures.
    pub sink_errors: u64,
    /// The checkpoint of the last seal written to the sinks: keep it
    /// elsewhere to detect a later truncation of the log.
    pub checkpoint: Option<crate::format::checkpoint::Checkpoint>,
}

/// One pipeline stage's latency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageLatency {
    /// The stage.
    pub stage: Stage,
    /// Unit of the values (`ns` or `us`).
    pub unit: &'static str,
    /// Its percentiles.
    pub latency: Percentiles,
}

/// A snapshot of a runtime's counters and histograms.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Counters.
    pub counters: RuntimeStats,
    /// Every pipeline stage, in order.
    pub stages: Vec<StageLatency>,
    /// Gateway latencies per (action, decision), sorted.
    pub payload: Vec<PayloadLatency>,
}

/// What a clean shutdown did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The stream (run) id.
    pub stream: Uuid,
    /// Events accepted by the ring.
    pub accepted: u64,
    /// Events sealed and handed to the sinks (equals `accepted`).
    pub sealed: u64,
    /// Events dropped by the ring under its full policy (signed as loss).
    pub dropped: u64,
    /// Events refused while a required sink could not write.
    pub refused: u64,
    /// Seals written, including the opening and closing seals.
    pub seals: u64,
    /// Sink write or flush failures.
    pub sink_errors: u64,
    /// Where a later run continues this log.
    pub chain_head: ChainHead,
    /// The checkpoint of the close seal: keep it elsewhere (another host,
    /// a ticket, a collector) and pass it to `auditring verify --expect`
    /// to detect a later deletion of this run or of anything before it.
    pub checkpoint: crate::format::checkpoint::Checkpoint,
    /// Capture-to-sealed-and-written latency of every event, microseconds.
    pub seal_latency_us: Histogram<u64>,
    /// The last sink failure of the run (a best-effort sink's failures do
    /// not fail a shutdown), if any.
    pub last_sink_error: Option<SinkFailure>,
}

/// Why a shutdown did not complete. Each variant carries the last sink
/// failure, which is usually the cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The signer did not finish draining within the timeout. A required
    /// sink that is still failing is no longer retried; accepted events not
    /// yet written may be lost.
    TimedOut {
        /// The shutdown timeout that passed.
        timeout: Duration,
        /// The last sink failure (for example `StorageFull`, "No space left
        /// on device"), if a sink failed.
        last_sink_error: Option<SinkFailure>,
    },
    /// The signer thread died.
    SignerDied {
        /// The last sink failure, if a sink failed.
        last_sink_error: Option<SinkFailure>,
    },
}

impl ShutdownError {
    /// The last sink failure before the shutdown failed, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::FileSink;
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// # #[cfg(target_os = "linux")] {
    /// // /dev/full fails every write with ENOSPC.
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(FileSink::open("/dev/full")?)
    ///     .shutdown_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let err = runtime.shutdown().unwrap_err();
    /// let failure = err.last_sink_error().expect("the sink failed");
    /// assert_eq!(failure.kind, std::io::ErrorKind::StorageFull);
    /// assert!(err.to_string().contains("No space left on device"));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_sink_error(&self) -> Option<&SinkFailure> {
        match self {
            ShutdownError::TimedOut {
                last_sink_error, ..
            }
            | ShutdownError::SignerDied { last_sink_error } => last_sink_error.as_ref(),
        }
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::TimedOut {
                timeout,
                last_sink_error: Some(e),
            } => write!(
                f,
                "the audit pipeline did not finish draining within {timeout:?}; last sink error: {e}: accepted events not yet written may be lost; fix the sink (or raise `shutdown_timeout` if it is only slow)"
            ),
            ShutdownError::TimedOut {
                timeout,
                last_sink_error: None,
            } => write!(
                f,
                "the audit pipeline did not finish draining within {timeout:?} (no sink reported an error: a slow sink?): accepted events not yet written may be lost; raise `shutdown_timeout` or speed up the sink"
            ),
            ShutdownError::SignerDied { last_sink_error } => {
                f.write_str(
                    "the audit signer thread died: events after its last seal were not written",
                )?;
                if let Some(e) = last_sink_error {
                    write!(f, " (last sink error: {e})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ShutdownError {}

/// A handle to a running audit pipeline: hands out recorders, reads its
/// counters and histograms, and flushes it.
///
/// Cheap to clone, `Send` and `Sync`: share it in an `Arc` or clone it
/// into every worker thread, and call [`recorder`](Runtime::recorder)
/// there. The pipeline's shutdown belongs to the [`RuntimeGuard`] that
/// [`RuntimeBuilder::build`] returns (it dereferences to this handle);
/// once the guard has shut the pipeline down, a handle's `recorder` fails
/// with [`RecorderError::Closed`] and its statistics stay readable.
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Decision, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// let log = MemorySink::new();
/// let guard = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(log.clone())
///     .build()?;
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let runtime = guard.runtime(); // a handle for the worker
///         std::thread::spawn(move || {
///             let mut recorder = runtime.recorder().unwrap();
///             recorder
///                 .record(|e| {
///                     e.set_action("tool.call");
///                     e.decision = Decision::Allow;
///                 })
///                 .unwrap();
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// let report = guard.shutdown()?;
/// assert_eq!((report.accepted, report.sealed), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime<T: Payload = AuditPayload> {
    capture: Capture<T>,
    /// Also holds the pipeline's shared state.
    flush: FlushHandle,
}

impl<T: Payload> Clone for Runtime<T> {
    fn clone(&self) -> Self {
        Self {
            capture: self.capture.clone(),
            flush: self.flush.clone(),
        }
    }
}

impl<T: Payload> Runtime<T> {
    /// A builder with the defaults listed on [`RuntimeBuilder`].
    pub fn builder() -> RuntimeBuilder<T> {
        RuntimeBuilder::default()
    }

    fn pipeline(&self) -> &Pipeline {
        &self.flush.pipeline
    }

    /// A recorder for the calling thread (see [`Capture::recorder`]).
    ///
    /// # Errors
    ///
    /// [`RecorderError::NoFreeLane`] when `max_producers` recorders are
    /// alive; [`RecorderError::Closed`] after shutdown.
    pub fn recorder(&self) -> Result<Recorder<T>, RecorderError> {
        self.capture.recorder()
    }

    /// The capture handle: cheap to clone and share with the code that
    /// creates worker threads.
    pub fn capture(&self) -> &Capture<T> {
        &self.capture
    }

    /// Counters so far.
    pub fn stats(&self) -> RuntimeStats {
        runtime_stats(&self.capture, self.pipeline())
    }

    /// Counters and latency percentiles: every pipeline stage and the
    /// gateway's own latencies per (action, decision). The pipeline's
    /// threads publish their histograms every 20 ms, at every flush and
    /// at shutdown, so a snapshot may miss the last few milliseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(MemorySink::new())
    ///     .build()?;
    /// let mut r = runtime.recorder()?;
    /// r.record(|e| { e.set_action("read"); e.enforcement_latency_us = 7; })?;
    /// runtime.flush(Duration::from_secs(5))?;
    /// let snapshot = runtime.stats_snapshot();
    /// assert_eq!(snapshot.counters.accepted, 1);
    /// assert_eq!(snapshot.payload[0].enforcement_us.max, 7);
    /// # drop(r);
    /// # runtime.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let counters = self.stats();
        let hists = lock(&self.pipeline().stats);
        StatsSnapshot {
            counters,
            stages: Stage::ALL
                .iter()
                .map(|&stage| StageLatency {
                    stage,
                    unit: stage.unit(),
                    latency: hists.stage(stage).percentiles(),
                })
                .collect(),
            payload: hists.payload_latencies(),
        }
    }

    /// A stage's histogram in the HdrHistogram percentile-distribution text
    /// format (values in the stage's unit).
    pub fn percentile_distribution(&self, stage: Stage) -> String {
        crate::stats::percentile_distribution(
            lock(&self.pipeline().stats).stage(stage).histogram(),
            1.0,
        )
    }

    /// The enforcement (or, with `dispatch`, dispatch) latency histogram of
    /// one (action, decision) pair in the percentile-distribution format,
    /// in µs; `None` if the pair was never seen.
    pub fn payload_percentile_distribution(
        &self,
        action: &str,
        decision: &str,
        dispatch: bool,
    ) -> Option<String> {
        let hists = lock(&self.pipeline().stats);
        hists
            .payload_hist(action, decision, dispatch)
            .map(|h| crate::stats::percentile_distribution(h.histogram(), 1.0))
    }

    /// The last sink failure so far (write, flush, or a panic), if any:
    /// the sink's name, the I/O error kind and its message. Failures are
    /// also counted in [`RuntimeStats::sink_errors`], reported through
    /// `tracing` and signed into the next seal.
    pub fn last_sink_error(&self) -> Option<SinkFailure> {
        self.pipeline().last_error()
    }

    /// Seals every event accepted so far and waits, at most `timeout`,
    /// until the sinks have written and flushed it (a file sink syncs);
    /// recording goes on meanwhile. Call it where the host may end
    /// without [`shutdown`](RuntimeGuard::shutdown): before
    /// `std::process::exit`, in a signal handler's thread, in a panic hook
    /// (see [`FlushHandle::flush_on_panic`]). See [`FlushHandle::flush`].
    ///
    /// # Errors
    ///
    /// [`FlushError::TimedOut`] with the last sink error,
    /// [`FlushError::Sink`] if a required sink could not flush,
    /// [`FlushError::Stopped`] if the signer thread is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::verify::{FindingKind, Verifier};
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let key = SigningKey::generate();
    /// let log = MemorySink::new();
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(key.clone())
    ///     .sink(log.clone())
    ///     .max_delay(Duration::from_secs(3600)) // no timer seal would come soon
    ///     .build()?;
    /// let mut recorder = runtime.recorder()?;
    /// for _ in 0..10 {
    ///     recorder.record(|e| { e.set_action("tool.call"); })?;
    /// }
    /// runtime.flush(Duration::from_secs(5))?;
    /// // Everything recorded is sealed and written; only the close seal is
    /// // missing, as it would be if the process exited now.
    /// let report = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
    /// assert_eq!((report.sealed_events, report.tamper), (10, 0));
    /// assert!(report.has(FindingKind::MissingClose));
    /// # drop(recorder);
    /// # runtime.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport, FlushError> {
        self.flush.flush(timeout)
    }

    /// A cloneable handle that only flushes this runtime, for a panic hook
    /// or a signal handler's thread.
    pub fn flush_handle(&self) -> FlushHandle {
        self.flush.clone()
    }
}

impl<T: Payload> fmt::Debug for Runtime<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Owns a running pipeline's shutdown: [`shutdown`](RuntimeGuard::shutdown)
/// drains every accepted event, writes the close seal and flushes the
/// sinks. Dropping the guard does the same (bounded by the shutdown
/// timeout) and logs a failure through `tracing`; call `shutdown` to get
/// the report. Keep it, in `main` or the gateway's top-level state, for as
/// long as events are recorded.
///
/// The guard dereferences to its [`Runtime`] handle, so
/// `guard.recorder()` and `guard.stats()` work on it directly;
/// [`runtime`](RuntimeGuard::runtime) gives a handle of its own to share.
///
/// # Exit without shutdown
///
/// A process that ends without `shutdown` or drop (`std::process::exit`,
/// which runs no destructors, a panic under `panic = "abort"`, a guard
/// kept in a `static`) loses every accepted event that was not yet sealed
/// and written: the open batch (up to `max_batch` events, up to
/// `max_delay` old), the events still in the ring, and up to two sealed
/// batches waiting for the sinks. Nothing in the log records their loss,
/// and the log has no close seal (the verifier reports it incomplete).
/// Call [`flush`](Runtime::flush) on such an exit path first, and install
/// [`FlushHandle::flush_on_panic`] for panics:
///
/// ```no_run
/// use std::time::Duration;
/// use auditring::{AuditPayload, Runtime};
///
/// fn exit_audited(runtime: &Runtime<AuditPayload>, code: i32) -> ! {
///     if let Err(e) = runtime.flush(Duration::from_secs(2)) {
///         eprintln!("the audit log was not flushed: {e}");
///     }
///     std::process::exit(code)
/// }
/// ```
///
/// # Examples
///
/// ```
/// use auditring::{AuditPayload, Decision, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// let log = MemorySink::new();
/// let guard = Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(log.clone())
///     .max_delay(std::time::Duration::from_secs(3600)) // no timer seal
///     .build()?;
/// let mut recorder = guard.recorder()?;
/// recorder.record(|e| {
///     e.set_action("tool.call");
///     e.decision = Decision::Allow;
/// })?;
/// let report = guard.shutdown()?;
/// assert_eq!((report.accepted, report.sealed), (1, 1));
/// assert_eq!(log.lines().len(), 3); // open seal, event, close seal
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping the guard at once would shut the pipeline down before any
/// event is recorded, so it is `#[must_use]`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use auditring::{AuditPayload, Runtime, SigningKey};
/// use auditring::sink::MemorySink;
///
/// Runtime::<AuditPayload>::builder()
///     .signing_key(SigningKey::generate())
///     .sink(MemorySink::new())
///     .build()
///     .unwrap();
/// ```
#[must_use = "dropping the guard shuts the audit pipeline down: keep it while events are recorded"]
pub struct RuntimeGuard<T: Payload = AuditPayload> {
    runtime: Runtime<T>,
    signer: Option<JoinHandle<()>>,
    outcome: mpsc::Receiver<SignerOutcome>,
    shutdown_timeout: Duration,
    /// Written once more, then stopped, after the signer has finished.
    stage_files: Option<StageFiles>,
}

impl<T: Payload> RuntimeGuard<T> {
    /// A handle of its own to the running pipeline, to share with worker
    /// threads.
    pub fn runtime(&self) -> Runtime<T> {
        self.runtime.clone()
    }

    /// Stops accepting events, drains every accepted event into sealed
    /// batches, writes the close seal, flushes the sinks and joins the
    /// signer thread, waiting at most the shutdown timeout.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::TimedOut`] if draining takes longer than the
    /// timeout; [`ShutdownError::SignerDied`] if the signer thread died.
    pub fn shutdown(mut self) -> Result<ShutdownReport, ShutdownError> {
        self.stop_signer()
    }

    fn stop_signer(&mut self) -> Result<ShutdownReport, ShutdownError> {
        let result = self.stop_signer_thread();
        if let Some(files) = self.stage_files.take() {
            files.finish();
        }
        result
    }

    fn stop_signer_thread(&mut self) -> Result<ShutdownReport, ShutdownError> {
        let pipeline = self.runtime.pipeline();
        let Some(handle) = self.signer.take() else {
            return Err(ShutdownError::SignerDied {
                last_sink_error: pipeline.last_error(),
            });
        };
        // Release: everything this thread did before the shutdown request
        // is visible to the signer once it sees the flag.
        pipeline.stop.store(true, Ordering::Release);
        handle.thread().unpark();
        match self.outcome.recv_timeout(self.shutdown_timeout) {
            Ok(outcome) => {
                let _ = handle.join();
                let capture = self.runtime.capture.stats();
                Ok(ShutdownReport {
                    stream: outcome.stream,
                    accepted: capture.accepted,
                    refused: capture.refused,
                    sealed: outcome.sealed_events,
                    dropped: outcome.dropped,
                    seals: outcome.seals,
                    sink_errors: outcome.sink_errors,
                    chain_head: ChainHead {
                        prev: outcome.last_seal_hash,
                        next_seq: outcome.next_seq,
                        previous_closed: true,
                        orphans: crate::format::seal::Orphans::NONE,
                    },
                    checkpoint: outcome.checkpoint,
                    seal_latency_us: outcome.seal_latency_us,
                    last_sink_error: pipeline.last_error(),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The failure that held the drain up, taken before the
                // writer is released below: it would go on to fail its
                // final flush too, and that failure would hide this one.
                let last_sink_error = pipeline.last_error();
                // Stop retrying failed required sinks: nobody waits for them.
                pipeline.abandon.store(true, Ordering::Release);
                Err(ShutdownError::TimedOut {
                    timeout: self.shutdown_timeout,
                    last_sink_error,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ShutdownError::SignerDied {
                last_sink_error: pipeline.last_error(),
            }),
        }
    }
}

impl<T: Payload> std::ops::Deref for RuntimeGuard<T> {
    type Target = Runtime<T>;

    fn deref(&self) -> &Runtime<T> {
        &self.runtime
    }
}

impl<T: Payload> Drop for RuntimeGuard<T> {
    fn drop(&mut self) {
        if self.signer.is_some()
            && let Err(e) = self.stop_signer()
        {
            tracing::error!(target: "auditring", error = %e, "audit runtime shutdown on drop failed");
        }
    }
}

impl<T: Payload> fmt::Debug for RuntimeGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeGuard")
            .field("runtime", &self.runtime)
            .field("running", &self.signer.is_some())
            .finish()
    }
}

/// The runtime handle can be shared between threads (cloned, `&Runtime`
/// or an `Arc`), so that every worker takes its own recorder; the guard can
/// move to the thread that will shut the pipeline down.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    const fn movable<T: Send>() {}
    shareable::<Runtime<AuditPayload>>();
    movable::<RuntimeGuard<AuditPayload>>();
    shareable::<crate::FlushHandle>();
};
