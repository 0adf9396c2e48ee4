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
//! A gateway is identified by its partition and its name together
//! ([`GatewayId`]): two gateways of the same name in two partitions are two
//! chains, with two archives and two watermarks.
//!
//! The async runtime (tokio, for `async-nats`) is private to this crate:
//! each shipper and collector runs its own on its own thread, and the
//! core library stays free of any.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use auditring_nats::{Collector, CollectorConfig, GatewayId, Shipper, ShipperConfig};
//!
//! // On each gateway, beside the runtime that writes /var/log/audit.jsonl:
//! let shipper = Shipper::spawn(
//!     ShipperConfig::new("nats://127.0.0.1:4222", "/var/log/audit.jsonl", "gw-1").partition("eu"),
//! )?;
//!
//! // Centrally:
//! let key = auditring::PublicKey::from_file("gw-1-public.pem")?;
//! let mut collector = Collector::open(
//!     CollectorConfig::new("nats://127.0.0.1:4222", "/srv/audit-archive")
//!         .trust(GatewayId::new("eu", "gw-1"), key),
//! )?;
//! collector.poll(Duration::from_secs(1))?;
//! println!("{}", collector.report().to_json());
//! shipper.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod collector;
mod connection;
mod shipper;
mod spool;

use std::time::Duration;

pub use collector::{Collector, CollectorConfig, CollectorError, FleetReport, GatewayReport};
pub use connection::NatsConnection;
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

/// The partition of a gateway that names none: the shipper's default, and
/// what a plain `NAME` (without `PARTITION/`) means in a [`GatewayId`].
pub const DEFAULT_PARTITION: &str = "p0";

/// A gateway's identity in the fleet: its partition and its name.
///
/// Everything the fleet keeps per gateway is keyed by both: the subject
/// (`audit.<partition>.<name>`), the liveness and watermark subjects, the
/// collector's state, its archive (`<archive>/<partition>/<name>/`) and its
/// report. Two gateways of the same name in two partitions are two
/// gateways.
///
/// Written `PARTITION/NAME`; parsed from `PARTITION/NAME`, or from a plain
/// `NAME` meaning [`DEFAULT_PARTITION`]. Both parts use only letters,
/// digits, `-` and `_` (they are parts of NATS subjects and directory
/// names).
///
/// # Examples
///
/// ```
/// use auditring_nats::GatewayId;
/// let id: GatewayId = "eu/gw-1".parse()?;
/// assert_eq!(id, GatewayId::new("eu", "gw-1"));
/// assert_eq!(id.to_string(), "eu/gw-1");
/// assert_eq!("gw-1".parse::<GatewayId>()?, GatewayId::new("p0", "gw-1"));
/// assert!("eu/gw.1".parse::<GatewayId>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayId {
    /// The partition.
    pub partition: String,
    /// The gateway's name within its partition.
    pub name: String,
}

impl GatewayId {
    /// The gateway `name` of `partition` (checked when it is used: by
    /// [`Collector::open`], or [`check`](Self::check)).
    pub fn new(partition: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            partition: partition.into(),
            name: name.into(),
        }
    }

    /// Whether both parts are usable in a subject.
    ///
    /// # Errors
    ///
    /// A message naming the part that is not.
    pub fn check(&self) -> Result<(), String> {
        check_token("partition", &self.partition)?;
        check_token("gateway", &self.name)
    }

    /// The subject of this gateway's batches.
    pub fn subject(&self) -> String {
        subject(&self.partition, &self.name)
    }
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.partition, self.name)
    }
}

impl std::str::FromStr for GatewayId {
    type Err = String;

    /// `PARTITION/NAME`, or `NAME` in [`DEFAULT_PARTITION`].
    fn from_str(s: &str) -> Result<Self, String> {
        let id = match s.split_once('/') {
            Some((partition, name)) => GatewayId::new(partition, name),
            None => GatewayId::new(DEFAULT_PARTITION, s),
        };
        id.check().map_err(|e| {
            format!("{e} (a gateway is PARTITION/NAME, or NAME in partition {DEFAULT_PARTITION})")
        })?;
        Ok(id)
    }
}

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

/// The gateway a subject `<prefix>.<partition>.<gateway>` names, if it is
/// one.
pub(crate) fn subject_gateway(subject: &str, prefix: &str) -> Option<GatewayId> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (partition, name) = rest.split_once('.')?;
    let id = GatewayId::new(partition, name);
    id.check().is_ok().then_some(id)
}

/// The subject of a gateway's liveness messages (core NATS, not stored):
/// `auditring.heartbeat.<partition>.<gateway>`.
///
/// # Examples
///
/// ```
/// assert_eq!(
///     auditring_nats::heartbeat_subject("p0", "gw-1"),
///     "auditring.heartbeat.p0.gw-1"
/// );
/// ```
pub fn heartbeat_subject(partition: &str, gateway: &str) -> String {
    format!("auditring.heartbeat.{partition}.{gateway}")
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
/// watermark (its checkpoint line) on
/// `auditring.watermark.<partition>.<gateway>`, the last one per gateway
/// kept; each shipper reads its own for retention.
pub const WATERMARK_STREAM: &str = "AUDIT_WATERMARKS";

/// The subjects of the watermark stream.
const WATERMARK_SUBJECTS: &str = "auditring.watermark.>";

/// The subject of a gateway's watermark:
/// `auditring.watermark.<partition>.<gateway>`.
///
/// # Examples
///
/// ```
/// assert_eq!(
///     auditring_nats::watermark_subject("p0", "gw-1"),
///     "auditring.watermark.p0.gw-1"
/// );
/// ```
pub fn watermark_subject(partition: &str, gateway: &str) -> String {
    format!("auditring.watermark.{partition}.{gateway}")
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
    let subjects = vec![WATERMARK_SUBJECTS.to_owned()];
    let stream = js
        .get_or_create_stream(Config {
            name: WATERMARK_STREAM.into(),
            subjects: subjects.clone(),
            storage: StorageType::File,
            num_replicas: replicas.max(1),
            max_messages_per_subject: 1,
            ..Config::default()
        })
        .await
        .map_err(|e| format!("cannot create or open stream {WATERMARK_STREAM}: {e}"))?;
    if stream.cached_info().config.subjects == subjects {
        return Ok(stream);
    }
    // A stream made when watermark subjects named the gateway alone
    // (`auditring.watermark.*`) takes no partition's watermark.
    let mut config = stream.cached_info().config.clone();
    config.subjects = subjects;
    js.update_stream(config)
        .await
        .map_err(|e| format!("cannot update the subjects of stream {WATERMARK_STREAM}: {e}"))?;
    js.get_stream(WATERMARK_STREAM)
        .await
        .map_err(|e| format!("cannot open stream {WATERMARK_STREAM}: {e}"))
}
