//! A collector's settings and its errors.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{GatewayId, StreamSettings};
use auditring::PublicKey;

/// Configures a [`Collector`](crate::Collector).
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `filter` | `audit.>` | the subjects pulled (one partition: `audit.<p>.>`; one gateway: `audit.<p>.<g>`) |
/// | `durable` | `auditring-collector` | the durable consumer's name |
/// | `silent_after` | 60 s | a gateway without a batch for this long is silent |
/// | `max_pull_bytes` | 16 MiB | byte cap of one pull (batches are large; a server's client buffer is 64 MiB) |
/// | `max_pull_messages` | 256 | message cap of one pull |
/// | `watermarks` | on | publish each gateway's verified checkpoint for the shippers' retention |
///
/// # Examples
///
/// ```
/// use auditring_nats::{CollectorConfig, GatewayId};
/// let key = auditring::SigningKey::generate().public_key();
/// let config = CollectorConfig::new("nats://127.0.0.1:4222", "archive")
///     .trust(GatewayId::new("eu", "gw-1"), key)
///     .expect_gateway("us/gw-1".parse()?)
///     .expect_gateway("gw-2".parse()?); // partition p0
/// assert_eq!(config.gateways.len(), 3);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// Server URL(s).
    pub url: String,
    /// Credentials and TLS.
    pub connection: crate::NatsConnection,
    /// The archive directory: `<archive>/<partition>/<gateway>/` per
    /// gateway.
    pub archive: PathBuf,
    /// Subjects pulled.
    pub filter: String,
    /// Durable consumer name.
    pub durable: String,
    /// Keys trusted for any gateway without a key of its own.
    pub keys: Vec<PublicKey>,
    /// The registry of expected gateways, with their keys when known.
    pub gateways: BTreeMap<GatewayId, Option<PublicKey>>,
    /// Silence deadline.
    pub silent_after: Duration,
    /// Byte cap of one pull.
    pub max_pull_bytes: usize,
    /// Message cap of one pull.
    pub max_pull_messages: usize,
    /// Whether watermarks are published.
    pub watermarks: bool,
    /// The stream created if missing.
    pub stream: StreamSettings,
}

impl CollectorConfig {
    /// A collector of the server at `url` archiving under `archive`.
    pub fn new(url: impl Into<String>, archive: impl AsRef<Path>) -> Self {
        Self {
            url: url.into(),
            connection: crate::NatsConnection::default(),
            archive: archive.as_ref().to_owned(),
            filter: "audit.>".into(),
            durable: "auditring-collector".into(),
            keys: Vec::new(),
            gateways: BTreeMap::new(),
            silent_after: Duration::from_secs(60),
            max_pull_bytes: 16 << 20,
            max_pull_messages: 256,
            watermarks: true,
            stream: StreamSettings::default(),
        }
    }

    /// Expects `gateway`, whose seals `key` signs (and no other key).
    pub fn trust(mut self, gateway: GatewayId, key: PublicKey) -> Self {
        self.gateways.insert(gateway, Some(key));
        self
    }

    /// Trusts `key` for gateways without a key of their own.
    pub fn trust_any(mut self, key: PublicKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Expects `gateway` (its key among the shared ones).
    pub fn expect_gateway(mut self, gateway: GatewayId) -> Self {
        self.gateways.entry(gateway).or_insert(None);
        self
    }

    /// Sets the silence deadline.
    pub fn silent_after(mut self, d: Duration) -> Self {
        self.silent_after = d;
        self
    }

    /// Sets the credentials and TLS of the connection.
    pub fn connection(mut self, connection: crate::NatsConnection) -> Self {
        self.connection = connection;
        self
    }

    /// Sets the durable consumer's name.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = name.into();
        self
    }
}

/// Why the collector failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CollectorError {
    /// The configuration is impossible.
    Config(String),
    /// The server refused or could not be reached.
    Nats(String),
    /// The archive could not be read or written.
    Io(io::Error),
}

impl std::fmt::Display for CollectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectorError::Config(m) => write!(f, "collector configuration: {m}"),
            CollectorError::Nats(m) => write!(f, "collector: {m}"),
            CollectorError::Io(e) => write!(f, "collector archive: {e}"),
        }
    }
}

impl std::error::Error for CollectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CollectorError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CollectorError {
    fn from(e: io::Error) -> Self {
        CollectorError::Io(e)
    }
}
