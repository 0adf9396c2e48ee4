//! A shipper's settings, its errors and its metrics.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::StreamSettings;

/// Configures a [`Shipper`](crate::Shipper).
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `partition` | `p0` | the subject's partition: `audit.<partition>.<gateway>` |
/// | `cursor` | `<log>.ship-cursor` | where the cursor is saved |
/// | `window` | 1 | batches in flight; after an error every one is sent again, in order |
/// | `ack_timeout` | 2 s | a batch not acknowledged by then is sent again |
/// | `backoff` | 50 ms doubling to 1 s | between retries, forever |
/// | `catch_up_bytes_per_s` | 128 MiB/s | cap on shipping a backlog; `None` for no cap |
/// | `nice` | 10 | the thread's nice value: below the signer |
/// | `core` | none | a core to pin the thread to (away from the signer) |
/// | `heartbeat_interval` | 5 s | liveness message, watermark and disk checks |
/// | `retention` | off | delete rotated files below the collector's verified watermark |
/// | `disk_alert_free_bytes` | 1 GiB | alert when the spool's file system has less free |
/// | `stop_timeout` | 10 s | how long [`Shipper::stop`](crate::Shipper::stop) keeps shipping what is there |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let config = auditring_nats::ShipperConfig::new("nats://127.0.0.1:4222", "audit.jsonl", "gw-1")
///     .partition("eu")
///     .window(1)
///     .catch_up_bytes_per_s(Some(64 << 20));
/// assert_eq!(config.subject(), "audit.eu.gw-1");
/// assert_eq!(config.id().to_string(), "eu/gw-1");
/// ```
#[derive(Clone, Debug)]
pub struct ShipperConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Credentials and TLS.
    pub connection: crate::NatsConnection,
    /// The log's active file.
    pub log: PathBuf,
    /// The gateway's name.
    pub gateway: String,
    /// The subject's partition.
    pub partition: String,
    /// The cursor file.
    pub cursor: PathBuf,
    /// Batches in flight.
    pub window: usize,
    /// Ack timeout.
    pub ack_timeout: Duration,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Catch-up cap, bytes per second.
    pub catch_up_bytes_per_s: Option<u64>,
    /// Nice value of the shipper's thread.
    pub nice: i32,
    /// Core to pin the thread to.
    pub core: Option<usize>,
    /// Liveness interval.
    pub heartbeat_interval: Duration,
    /// Delete rotated files below the verified watermark.
    pub retention: bool,
    /// Disk alert threshold.
    pub disk_alert_free_bytes: u64,
    /// The stream created if missing.
    pub stream: StreamSettings,
    /// Whether the shipper creates the stream if it is missing.
    pub create_stream: bool,
    /// Bound on shipping at stop.
    pub stop_timeout: Duration,
}

impl ShipperConfig {
    /// A shipper of the log at `log` for `gateway`, to the server at `url`.
    pub fn new(url: impl Into<String>, log: impl AsRef<Path>, gateway: impl Into<String>) -> Self {
        let log = log.as_ref().to_owned();
        let mut cursor = log.as_os_str().to_owned();
        cursor.push(".ship-cursor");
        Self {
            url: url.into(),
            connection: crate::NatsConnection::default(),
            log,
            gateway: gateway.into(),
            partition: crate::DEFAULT_PARTITION.into(),
            cursor: PathBuf::from(cursor),
            window: 1,
            ack_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            catch_up_bytes_per_s: Some(128 << 20),
            nice: 10,
            core: None,
            heartbeat_interval: Duration::from_secs(5),
            retention: false,
            disk_alert_free_bytes: 1 << 30,
            stream: StreamSettings::default(),
            create_stream: true,
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the credentials and TLS of the connection.
    pub fn connection(mut self, connection: crate::NatsConnection) -> Self {
        self.connection = connection;
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, p: impl Into<String>) -> Self {
        self.partition = p.into();
        self
    }

    /// Sets the cursor file.
    pub fn cursor(mut self, path: impl AsRef<Path>) -> Self {
        self.cursor = path.as_ref().to_owned();
        self
    }

    /// Sets the window (at least 1).
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// Sets the catch-up cap.
    pub fn catch_up_bytes_per_s(mut self, cap: Option<u64>) -> Self {
        self.catch_up_bytes_per_s = cap;
        self
    }

    /// Sets the liveness interval.
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.heartbeat_interval = every;
        self
    }

    /// Turns retention on or off.
    pub fn retention(mut self, on: bool) -> Self {
        self.retention = on;
        self
    }

    /// The subject the batches go to.
    pub fn subject(&self) -> String {
        crate::subject(&self.partition, &self.gateway)
    }

    /// The gateway's identity in the fleet: its partition and its name.
    pub fn id(&self) -> crate::GatewayId {
        crate::GatewayId::new(&self.partition, &self.gateway)
    }
}

/// Why a shipper could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShipError {
    /// The configuration is impossible; the message says what to change.
    Config(String),
    /// The spool or the cursor could not be read or written.
    Io(io::Error),
    /// A batch can never be stored (larger than the stream allows).
    Rejected(String),
    /// The shipper's thread panicked.
    Panicked,
}

impl std::fmt::Display for ShipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShipError::Config(m) => write!(f, "shipper configuration: {m}"),
            ShipError::Io(e) => write!(f, "shipper I/O: {e}"),
            ShipError::Rejected(m) => write!(f, "a batch cannot be stored: {m}"),
            ShipError::Panicked => f.write_str("the shipper thread panicked"),
        }
    }
}

impl std::error::Error for ShipError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShipError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ShipError {
    fn from(e: io::Error) -> Self {
        ShipError::Io(e)
    }
}

/// A snapshot of a shipper's metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShipMetrics {
    /// Stream of the last acknowledged seal.
    pub acked_stream: String,
    /// Index of the last acknowledged seal.
    pub acked_seal: Option<u64>,
    /// Batches acknowledged (stored or duplicate).
    pub acked_batches: u64,
    /// Events in them.
    pub acked_events: u64,
    /// Bytes in them.
    pub acked_bytes: u64,
    /// Messages sent again after an error or timeout.
    pub retries: u64,
    /// Messages the server acknowledged as duplicates.
    pub duplicates: u64,
    /// Batches skipped at start because the server already held them.
    pub skipped: u64,
    /// Times the server was found behind the cursor (an alarm).
    pub server_behind: u64,
    /// Bytes of the log not acknowledged yet.
    pub lag_bytes: u64,
    /// Age of the newest acknowledged seal while more is waiting, seconds.
    pub lag_seconds: f64,
    /// Bytes of the whole spool.
    pub spool_bytes: u64,
    /// The spool's file system has less free space than the threshold.
    pub disk_alert: bool,
    /// Rotated files deleted below the verified watermark.
    pub deleted_files: u64,
    /// Publish-to-ack latency p50, microseconds.
    pub ack_p50_us: u64,
    /// Publish-to-ack latency p99, microseconds.
    pub ack_p99_us: u64,
    /// Seal-to-ack lag p99, milliseconds.
    pub lag_p99_ms: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}
