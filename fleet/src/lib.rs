//! Fleet shipping for [`auditring`]: every gateway's sealed log
//! on NATS JetStream, every chain verified centrally.
//!
//! A gateway's local signed log is the spool. A [`Shipper`] (its own
//! thread, niced below the signer, with a catch-up rate cap) reads only
//! complete, sealed, locally durable batches from the
//! [`FileSink`](auditring::sink::FileSink)'s files, follows rotation, and
//! publishes each batch, its exact bytes, as one JetStream message (split
//! into parts above the server's maximum payload) on
//! `audit.<partition>.<gateway>` with `Nats-Msg-Id = <stream>:<seal>[:<part>]`.
//! It keeps a cursor that survives restarts, asks the server for the last
//! stored message on start, and retries forever: the network never sits on
//! the audit path, so an outage never makes the gateway drop an event.
//!
//! A [`Collector`] pulls every gateway's messages through a durable
//! consumer, drops duplicates, restores order, verifies each gateway's
//! chain incrementally, writes a per-gateway archive that `auditring
//! verify` checks offline, saves a checkpoint per gateway before it
//! acknowledges, and reports per gateway: verified head, lag, missing
//! seals, silence and tampering.
//!
//! The async runtime (tokio, for `async-nats`) is private to this crate:
//! each shipper and collector runs its own on its own thread, and the
//! core library stays free of any.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use auditring_nats::{Collector, CollectorConfig, Shipper, ShipperConfig};
//!
//! // On each gateway, beside the runtime that writes /var/log/audit.jsonl:
//! let shipper = Shipper::spawn(ShipperConfig::new(
//!     "nats://127.0.0.1:4222",
//!     "/var/log/audit.jsonl",
//!     "gw-1",
//! ))?;
//!
//! // Centrally:
//! let key = auditring::PublicKey::from_file("gw-1-public.pem")?;
//! let mut collector = Collector::open(
//!     CollectorConfig::new("nats://127.0.0.1:4222", "/srv/audit-archive").trust("gw-1", key),
//! )?;
//! collector.poll(Duration::from_secs(1))?;
//! println!("{}", collector.report().to_json());
//! shipper.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod collector;
mod shipper;
mod spool;

use std::time::Duration;

pub use collector::{Collector, CollectorConfig, CollectorError, FleetReport, GatewayReport};
pub use shipper::{ShipError, ShipMetrics, Shipper, ShipperConfig};
pub use spool::{Batch, FileId, Position, Spool};

/// Header: the gateway's name.
pub const HEADER_GATEWAY: &str = "Auditring-Gateway";
/// Header: the seal's stream (UUID).
pub const HEADER_STREAM: &str = "Auditring-Stream";
/// Header: the seal's index.
pub const HEADER_SEAL: &str = "Auditring-Seal";
/// Header: this message's part (0-based).
pub const HEADER_PART: &str = "Auditring-Part";
/// Header: the batch's number of parts.
pub const HEADER_PARTS: &str = "Auditring-Parts";
/// Header: the batch's seq range, `<first>-<last>` (`<next>-` when empty).
pub const HEADER_SEQ: &str = "Auditring-Seq";

/// The subject of a gateway's batches: `audit.<partition>.<gateway>`.
///
/// # Examples
///
/// ```
/// assert_eq!(auditring_nats::subject("p0", "gw-1"), "audit.p0.gw-1");
/// ```
pub fn subject(partition: &str, gateway: &str) -> String {
    format!("audit.{partition}.{gateway}")
}

/// The subject of a gateway's liveness messages (core NATS, not stored).
///
/// # Examples
///
/// ```
/// assert_eq!(auditring_nats::heartbeat_subject("gw-1"), "auditring.heartbeat.gw-1");
/// ```
pub fn heartbeat_subject(gateway: &str) -> String {
    format!("auditring.heartbeat.{gateway}")
}

/// The `Nats-Msg-Id` of a batch or one of its parts.
///
/// # Examples
///
/// ```
/// assert_eq!(auditring_nats::message_id("s", 4, 0, 1), "s:4");
/// assert_eq!(auditring_nats::message_id("s", 4, 1, 3), "s:4:1");
/// ```
pub fn message_id(stream: &str, seal: u64, part: u32, parts: u32) -> String {
    if parts > 1 {
        format!("{stream}:{seal}:{part}")
    } else {
        format!("{stream}:{seal}")
    }
}

/// A gateway or partition name is used inside a subject: letters, digits,
/// `-` and `_` only.
pub(crate) fn check_token(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{what} {name:?} must be non-empty and use only letters, digits, '-' and '_' (it is part of a NATS subject)"
        ));
    }
    Ok(())
}

/// The JetStream stream that holds the batches, as the tools create it.
///
/// | setting | default | why |
/// |---|---|---|
/// | `name` | `AUDIT` | |
/// | `subjects` | `audit.>` | every partition and gateway |
/// | storage | file | survives a server restart |
/// | `replicas` | 1 (use 3 in production) | R3 survives the loss of a server |
/// | discard | new | a full stream refuses new batches (the shipper retries) instead of dropping old ones |
/// | deny delete, deny purge | on | nobody removes a stored batch through the API |
/// | `duplicate_window` | 10 min | `Nats-Msg-Id` dedupe across retries and restarts |
/// | `max_message_size` | 8 MiB | above the largest part the shipper sends |
/// | `max_bytes` | unlimited | with discard new, a limit makes the stream refuse rather than lose |
///
/// # Examples
///
/// ```
/// let settings = auditring_nats::StreamSettings::default().replicas(3);
/// assert_eq!(settings.name, "AUDIT");
/// ```
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Replicas (3 in production).
    pub replicas: usize,
    /// Dedupe window.
    pub duplicate_window: Duration,
    /// Largest message the stream accepts.
    pub max_message_size: i32,
    /// Byte limit of the stream; -1 for none.
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "AUDIT".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(600),
            max_message_size: 8 << 20,
            max_bytes: -1,
        }
    }
}

impl StreamSettings {
    /// Sets the number of replicas.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    /// The stream's JetStream configuration.
    pub fn config(&self) -> async_nats::jetstream::stream::Config {
        use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
        Config {
            name: self.name.clone(),
            subjects: vec!["audit.>".into()],
            storage: StorageType::File,
            num_replicas: self.replicas,
            discard: DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            duplicate_window: self.duplicate_window,
            max_message_size: self.max_message_size,
            max_bytes: self.max_bytes,
            ..Config::default()
        }
    }
}

/// The stream where the collector publishes each gateway's verified
/// watermark (its checkpoint line) on `auditring.watermark.<gateway>`,
/// the last one per gateway kept; the shippers read it for retention.
pub const WATERMARK_STREAM: &str = "AUDIT_WATERMARKS";

/// The subject of a gateway's watermark.
pub(crate) fn watermark_subject(gateway: &str) -> String {
    format!("auditring.watermark.{gateway}")
}

/// Creates the stream (if missing); returns it.
pub(crate) async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    settings: &StreamSettings,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    js.get_or_create_stream(settings.config())
        .await
        .map_err(|e| format!("cannot create or open stream {}: {e}", settings.name))
}

/// Opens or creates the watermark stream.
pub(crate) async fn watermark_stream(
    js: &async_nats::jetstream::Context,
    replicas: usize,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    use async_nats::jetstream::stream::{Config, StorageType};
    js.get_or_create_stream(Config {
        name: WATERMARK_STREAM.into(),
        subjects: vec!["auditring.watermark.*".into()],
        storage: StorageType::File,
        num_replicas: replicas.max(1),
        max_messages_per_subject: 1,
        ..Config::default()
    })
    .await
    .map_err(|e| format!("cannot create or open stream {WATERMARK_STREAM}: {e}"))
}
