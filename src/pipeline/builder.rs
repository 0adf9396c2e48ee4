//! Configuring and starting a runtime: the builder, its defaults, and why a
//! build can fail.

use core::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use crate::capture::recorder::FullPolicy;
use crate::capture::{CaptureBuilder, ConfigError};
use crate::format::encode::EncodeJson;
use crate::format::keys::SigningKey;
use crate::format::redact::{Redaction, Redactor};
use crate::format::seal::ChainHead;
use crate::payload::{AuditPayload, Payload};
use crate::pipeline::flush::FlushHandle;
use crate::pipeline::report::runtime_stats;
use crate::pipeline::runtime::{Runtime, RuntimeGuard};
use crate::pipeline::shared::{Pipeline, StopOnDrop};
use crate::pipeline::signer::{Signer, SignerConfig};
use crate::pipeline::stage_files::StageFiles;
use crate::pipeline::writer::SinkEntry;
use crate::sink::{RotationSignal, Sink, SinkPolicy};
use crate::stats::LatencySource;

/// The default [`RuntimeBuilder::heartbeat_interval`]: an idle run writes
/// a `heartbeat` seal every 30 seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

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
    /// A redaction rule names a field the payload does not have, or one it
    /// declares never redacted: the rule would hide nothing.
    RedactField {
        /// The field the rule names.
        field: String,
        /// The fields rules may name.
        redactable: &'static [&'static str],
    },
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
            BuildError::RedactField {
                field,
                redactable: [],
            } => write!(
                f,
                "redaction rule for `{field}`: the payload declares no redactable field (`EncodeJson::REDACTABLE`), so the rule would hide nothing"
            ),
            BuildError::RedactField { field, redactable } => write!(
                f,
                "redaction rule for `{field}`: the payload has no redactable field of that name, so the rule would hide nothing; fields that can be redacted: {}",
                redactable.join(", ")
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
/// | [`heartbeat_interval`](RuntimeBuilder::heartbeat_interval) | 30 s | an idle run writes a `heartbeat` seal (no events) after this long without a seal |
/// | [`signer_core`](RuntimeBuilder::signer_core) | not pinned | core the signer thread is pinned to |
/// | [`redact`](RuntimeBuilder::redact) | none | fields removed, masked or replaced by an HMAC while encoding; checked against the payload's redactable fields |
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
pub struct RuntimeBuilder<T: Payload + EncodeJson + LatencySource = AuditPayload> {
    capture: CaptureBuilder<T>,
    key: Option<SigningKey>,
    sinks: Vec<SinkEntry>,
    max_batch: usize,
    max_delay: Duration,
    chain: Option<ChainHead>,
    shutdown_timeout: Duration,
    parallel_hashing: bool,
    report_interval: Option<Duration>,
    heartbeat_interval: Option<Duration>,
    signer_core: Option<usize>,
    redactions: Vec<(String, Redaction)>,
    /// Wiped from memory when the builder is dropped.
    redaction_key: zeroize::Zeroizing<Vec<u8>>,
    stage_histograms: Option<(std::path::PathBuf, Duration)>,
}

impl<T: Payload + EncodeJson + LatencySource> Runtime<T> {
    /// A builder with the defaults listed on [`RuntimeBuilder`].
    pub fn builder() -> RuntimeBuilder<T> {
        RuntimeBuilder::default()
    }
}

impl<T: Payload + EncodeJson + LatencySource> Default for RuntimeBuilder<T> {
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
            heartbeat_interval: Some(DEFAULT_HEARTBEAT_INTERVAL),
            signer_core: None,
            redactions: Vec::new(),
            redaction_key: zeroize::Zeroizing::new(Vec::new()),
            stage_histograms: None,
        }
    }
}

impl<T: Payload + EncodeJson + LatencySource> fmt::Debug for RuntimeBuilder<T> {
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
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("signer_core", &self.signer_core)
            .field("redactions", &self.redactions)
            .field("stage_histograms", &self.stage_histograms)
            .finish_non_exhaustive()
    }
}

impl<T: Payload + EncodeJson + LatencySource> RuntimeBuilder<T> {
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

    /// What [`Recorder::record`](crate::Recorder::record) does when its lane is full.
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

    /// How long a run may stay without a seal before the signer writes a
    /// `heartbeat` seal: an empty, signed seal whose timestamp proves the
    /// gateway was alive and its chain current at that time, so a central
    /// collector can tell an idle gateway from a stalled one. `None` turns
    /// heartbeats off. A zero interval is taken as the smallest one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use auditring::sink::MemorySink;
    /// use auditring::{AuditPayload, Runtime, SigningKey};
    ///
    /// let log = MemorySink::new();
    /// let runtime = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(log.clone())
    ///     .heartbeat_interval(Some(Duration::from_millis(20)))
    ///     .build()?;
    /// std::thread::sleep(Duration::from_millis(200));
    /// runtime.shutdown()?;
    /// let text = String::from_utf8(log.bytes()).unwrap();
    /// assert!(text.contains(r#""reason":"heartbeat""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heartbeat_interval(mut self, every: Option<Duration>) -> Self {
        self.heartbeat_interval = every;
        self
    }

    /// Pins the signer thread to this core (see
    /// [`available_cores`](crate::capture::affinity::available_cores)); checked by
    /// [`build`](RuntimeBuilder::build).
    pub fn signer_core(mut self, core: usize) -> Self {
        self.signer_core = Some(core);
        self
    }

    /// Redacts a top-level payload field while it is encoded: the value
    /// never reaches a sink, and the seal covers what was written.
    /// [`build`](RuntimeBuilder::build) refuses a rule naming a field the
    /// payload cannot redact ([`BuildError::RedactField`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::sink::MemorySink;
    /// use auditring::{AuditPayload, BuildError, Redaction, Runtime, SigningKey};
    ///
    /// let err = Runtime::<AuditPayload>::builder()
    ///     .signing_key(SigningKey::generate())
    ///     .sink(MemorySink::new())
    ///     .redact("sesion_id", Redaction::Mask) // misspelt
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, BuildError::RedactField { .. }));
    /// ```
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
        if let Some((field, _)) = self
            .redactions
            .iter()
            .find(|(field, _)| !T::REDACTABLE.contains(&field.as_str()))
        {
            return Err(BuildError::RedactField {
                field: field.clone(),
                redactable: T::REDACTABLE,
            });
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
                heartbeat_interval: self.heartbeat_interval,
                redactor: Redactor::new(self.redactions, {
                    // Moved out; the emptied `Zeroizing` wipes nothing more.
                    let mut key = self.redaction_key;
                    std::mem::take(&mut *key)
                }),
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
