//! Configuration from a file: every runtime option as a serde-deserializable
//! [`Config`] (for example the `[audit]` section of a host's TOML file),
//! validated with errors that name the field and the fix.

use core::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::SigningKey;
use crate::capture::recorder::FullPolicy;
use crate::format::encode::EncodeJson;
use crate::format::redact::Redaction;
use crate::payload::Payload;
use crate::pipeline::builder::RuntimeBuilder;
use crate::sink::{FileSink, FsyncPolicy, SinkPolicy, StdoutSink, TracingSink};
use crate::stats::LatencySource;

/// A configuration problem: which field, what is wrong, how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The field, as written in the configuration.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit configuration, field `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigIssue {}

fn issue(field: &str, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// What a full ring does, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FullPolicyConfig {
    /// [`FullPolicy::Drop`].
    Drop,
    /// [`FullPolicy::Block`].
    Block,
    /// [`FullPolicy::BlockFor`] this many microseconds.
    BlockForUs(u64),
}

/// The fsync policy, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FsyncConfig {
    /// [`FsyncPolicy::Never`].
    Never,
    /// [`FsyncPolicy::EveryBatch`].
    EveryBatch,
    /// [`FsyncPolicy::Interval`] of this many milliseconds.
    IntervalMs(u64),
}

/// A sink's failure policy, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkPolicyConfig {
    /// [`SinkPolicy::Required`].
    #[default]
    Required,
    /// [`SinkPolicy::BestEffort`].
    BestEffort,
}

impl From<SinkPolicyConfig> for SinkPolicy {
    fn from(p: SinkPolicyConfig) -> Self {
        match p {
            SinkPolicyConfig::Required => SinkPolicy::Required,
            SinkPolicyConfig::BestEffort => SinkPolicy::BestEffort,
        }
    }
}

/// The JSON-lines file sink.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The log file.
    pub path: PathBuf,
    /// When to fsync (default: every 1000 ms).
    #[serde(default)]
    pub fsync: Option<FsyncConfig>,
    /// Rotate at this many bytes.
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// Rotate at this age, in seconds.
    #[serde(default)]
    pub rotate_age_s: Option<u64>,
    /// What a write failure does (default `required`).
    #[serde(default)]
    pub policy: SinkPolicyConfig,
}

/// One redaction rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRule {
    /// The top-level payload field.
    pub field: String,
    /// What replaces it.
    pub with: Redaction,
}

/// Every runtime option. Absent options keep the builder's defaults (see
/// [`RuntimeBuilder`]); unknown keys are errors.
///
/// # Examples
///
/// ```
/// use auditring::config::Config;
///
/// let config: Config = toml::from_str(r#"
///     key_file = "/etc/gateway/audit-key.pem"
///     max_batch = 512
///     max_delay_ms = 20
///     full_policy = { block_for_us = 200 }
///
///     [file]
///     path = "/var/log/gateway/audit.jsonl"
///     fsync = "every_batch"
///     rotate_bytes = 268435456
///
///     [[redact]]
///     field = "session_id"
///     with = "mask"
/// "#)?;
/// config.validate()?;
///
/// let bad: Config = toml::from_str("key_file = \"k.pem\"\nmax_batch = 0\n[file]\npath = \"a.jsonl\"")?;
/// assert_eq!(bad.validate().unwrap_err().field, "max_batch");
/// assert!(toml::from_str::<Config>("key_file = \"k.pem\"\nmax_bach = 5").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The signing key file (PEM or DER); create one with
    /// `auditring keygen --out FILE`.
    pub key_file: PathBuf,
    /// Events per seal.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Oldest event's age that closes a batch, ms.
    #[serde(default)]
    pub max_delay_ms: Option<u64>,
    /// Ring slots per recorder.
    #[serde(default)]
    pub lane_capacity: Option<usize>,
    /// Recorders alive at once.
    #[serde(default)]
    pub max_producers: Option<usize>,
    /// The most memory the capture ring may take, bytes (default 1 GiB).
    #[serde(default)]
    pub max_ring_bytes: Option<usize>,
    /// What `record` does on a full lane.
    #[serde(default)]
    pub full_policy: Option<FullPolicyConfig>,
    /// Whether a helper thread hashes the batch's lines while the signer
    /// encodes the next ones.
    #[serde(default)]
    pub parallel_hashing: Option<bool>,
    /// Seconds between stats reports through `tracing`; 0 turns them off.
    #[serde(default)]
    pub report_interval_s: Option<u64>,
    /// Seconds without a seal after which an idle run writes a `heartbeat`
    /// seal (default 30); 0 turns heartbeats off.
    #[serde(default)]
    pub heartbeat_interval_s: Option<u64>,
    /// Core to pin the signer to.
    #[serde(default)]
    pub signer_core: Option<usize>,
    /// Bound on draining at shutdown, ms.
    #[serde(default)]
    pub shutdown_timeout_ms: Option<u64>,
    /// The JSON-lines file sink.
    #[serde(default)]
    pub file: Option<FileConfig>,
    /// Also write to standard output (best effort).
    #[serde(default)]
    pub stdout: bool,
    /// Also emit `tracing` events (best effort).
    #[serde(default)]
    pub tracing: bool,
    /// Redaction rules.
    #[serde(default)]
    pub redact: Vec<RedactRule>,
    /// File holding the HMAC redaction key (raw bytes, 16 or more).
    #[serde(default)]
    pub redaction_key_file: Option<PathBuf>,
}

impl Config {
    /// Checks every value without touching the file system.
    ///
    /// # Errors
    ///
    /// The first [`ConfigIssue`] found.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        if self.key_file.as_os_str().is_empty() {
            return Err(issue(
                "key_file",
                "is required: the path of the signing key (create one with `auditring keygen --out FILE`)",
            ));
        }
        if self.max_batch == Some(0) {
            return Err(issue(
                "max_batch",
                "is 0: use 1 to sign every event, or more (default 1024) to batch",
            ));
        }
        if self.max_delay_ms == Some(0) {
            return Err(issue(
                "max_delay_ms",
                "is 0: give the signer at least 1 ms to gather a batch (default 10)",
            ));
        }
        if let Some(n) = self.lane_capacity
            && (n == 0 || n > crate::capture::MAX_LANE_CAPACITY)
        {
            return Err(issue(
                "lane_capacity",
                format!(
                    "{n} is out of range: use 1 to {} (default 1024)",
                    crate::capture::MAX_LANE_CAPACITY
                ),
            ));
        }
        if let Some(n) = self.max_producers
            && (n == 0 || n > crate::capture::MAX_PRODUCERS)
        {
            return Err(issue(
                "max_producers",
                format!(
                    "{n} is out of range: use 1 to {} (default 8)",
                    crate::capture::MAX_PRODUCERS
                ),
            ));
        }
        if self.max_ring_bytes == Some(0) {
            return Err(issue(
                "max_ring_bytes",
                "is 0: leave it out for the 1 GiB default, or give the bytes the capture ring may take",
            ));
        }
        if let Some(core) = self.signer_core {
            let available = crate::capture::affinity::available_cores();
            if !available.contains(&core) {
                return Err(issue(
                    "signer_core",
                    format!("core {core} is not available: use one of {available:?}"),
                ));
            }
        }
        if self.file.is_none() && !self.stdout && !self.tracing {
            return Err(issue(
                "file",
                "no sink is configured: add a [file] section with a path (or set stdout or tracing)",
            ));
        }
        if let Some(file) = &self.file {
            if file.path.as_os_str().is_empty() {
                return Err(issue("file.path", "is empty: give the log file's path"));
            }
            if file.rotate_bytes == Some(0) {
                return Err(issue(
                    "file.rotate_bytes",
                    "is 0: leave it out to never rotate by size",
                ));
            }
            if file.rotate_age_s == Some(0) {
                return Err(issue(
                    "file.rotate_age_s",
                    "is 0: leave it out to never rotate by age",
                ));
            }
            if file.fsync == Some(FsyncConfig::IntervalMs(0)) {
                return Err(issue(
                    "file.fsync",
                    "interval_ms is 0: use \"every_batch\" to sync after each batch",
                ));
            }
        }
        for (i, rule) in self.redact.iter().enumerate() {
            if rule.field.is_empty() {
                return Err(issue(
                    &format!("redact[{i}].field"),
                    "is empty: name a top-level payload field",
                ));
            }
        }
        if self.redact.iter().any(|r| r.with == Redaction::Hmac)
            && self.redaction_key_file.is_none()
        {
            return Err(issue(
                "redaction_key_file",
                "is required by an hmac redaction: point it at a file of 16 or more secret bytes kept apart from the log",
            ));
        }
        Ok(())
    }

    /// A runtime builder with this configuration: reads the key files and
    /// opens the sinks.
    ///
    /// # Errors
    ///
    /// A [`ConfigIssue`] for an invalid value, an unreadable key or an
    /// unopenable log file.
    pub fn runtime_builder<T: Payload + EncodeJson + LatencySource>(
        &self,
    ) -> Result<RuntimeBuilder<T>, ConfigIssue> {
        self.validate()?;
        let key =
            SigningKey::from_file(&self.key_file).map_err(|e| issue("key_file", e.to_string()))?;
        let mut b = RuntimeBuilder::<T>::default().signing_key(key);
        if let Some(n) = self.max_batch {
            b = b.max_batch(n);
        }
        if let Some(ms) = self.max_delay_ms {
            b = b.max_delay(Duration::from_millis(ms));
        }
        if let Some(n) = self.lane_capacity {
            b = b.lane_capacity(n);
        }
        if let Some(n) = self.max_producers {
            b = b.max_producers(n);
        }
        if let Some(bytes) = self.max_ring_bytes {
            b = b.max_ring_bytes(bytes);
        }
        if let Some(p) = self.full_policy {
            b = b.full_policy(match p {
                FullPolicyConfig::Drop => FullPolicy::Drop,
                FullPolicyConfig::Block => FullPolicy::Block,
                FullPolicyConfig::BlockForUs(us) => FullPolicy::BlockFor(Duration::from_micros(us)),
            });
        }
        if let Some(on) = self.parallel_hashing {
            b = b.parallel_hashing(on);
        }
        if let Some(s) = self.report_interval_s {
            b = b.report_interval((s > 0).then(|| Duration::from_secs(s)));
        }
        if let Some(s) = self.heartbeat_interval_s {
            b = b.heartbeat_interval((s > 0).then(|| Duration::from_secs(s)));
        }
        if let Some(core) = self.signer_core {
            b = b.signer_core(core);
        }
        if let Some(ms) = self.shutdown_timeout_ms {
            b = b.shutdown_timeout(Duration::from_millis(ms));
        }
        if let Some(file) = &self.file {
            let mut f = FileSink::builder(&file.path);
            if let Some(fsync) = file.fsync {
                f = f.fsync(match fsync {
                    FsyncConfig::Never => FsyncPolicy::Never,
                    FsyncConfig::EveryBatch => FsyncPolicy::EveryBatch,
                    FsyncConfig::IntervalMs(ms) => FsyncPolicy::Interval(Duration::from_millis(ms)),
                });
            }
            if let Some(bytes) = file.rotate_bytes {
                f = f.rotate_bytes(bytes);
            }
            if let Some(s) = file.rotate_age_s {
                f = f.rotate_age(Duration::from_secs(s));
            }
            let sink = f.open().map_err(|e| issue("file.path", e.to_string()))?;
            b = b.sink_with(sink, file.policy.into());
        }
        if self.stdout {
            b = b.sink_with(StdoutSink::new(), SinkPolicy::BestEffort);
        }
        if self.tracing {
            b = b.sink_with(TracingSink::new(), SinkPolicy::BestEffort);
        }
        for rule in &self.redact {
            b = b.redact(rule.field.clone(), rule.with);
        }
        if let Some(path) = &self.redaction_key_file {
            let key = std::fs::read(path).map_err(|e| {
                issue(
                    "redaction_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if key.len() < 16 {
                return Err(issue(
                    "redaction_key_file",
                    format!(
                        "{} holds {} bytes: use 16 or more secret bytes",
                        path.display(),
                        key.len()
                    ),
                ));
            }
            b = b.redaction_key(key);
        }
        Ok(b)
    }
}
