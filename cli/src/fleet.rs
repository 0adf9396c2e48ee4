//! `auditring ship` (a sidecar shipping a gateway's log to NATS JetStream)
//! and `auditring collect` (the central collector and its report).
//!
//! Both run as daemons: SIGTERM or SIGINT makes them stop cleanly (a
//! second one ends the process at once, with status 128 + the signal).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditring::PublicKey;
use auditring_nats::{
    Collector, CollectorConfig, GatewayId, NatsConnection, Shipper, ShipperConfig,
};
use clap::Args;

/// How `ship` and `collect` authenticate to NATS and whom they trust.
/// Secrets are read from files, never from the command line.
#[derive(Args)]
pub(crate) struct NatsOptions {
    /// A NATS .creds file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// A file holding a NATS NKey user seed (SU...).
    #[arg(long, value_name = "FILE")]
    nats_nkey: Option<PathBuf>,
    /// A NATS user name (with --nats-password-file).
    #[arg(long, value_name = "NAME", requires = "nats_password_file")]
    nats_user: Option<String>,
    /// A file holding the NATS user's password.
    #[arg(long, value_name = "FILE", requires = "nats_user")]
    nats_password_file: Option<PathBuf>,
    /// A file holding a NATS token.
    #[arg(long, value_name = "FILE")]
    nats_token_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign the server's certificate; TLS
    /// becomes required.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse a connection the server does not encrypt.
    #[arg(long)]
    require_tls: bool,
}

impl NatsOptions {
    fn connection(&self) -> NatsConnection {
        let mut c = NatsConnection::default().require_tls(self.require_tls);
        if let Some(p) = &self.nats_creds {
            c = c.creds_file(p);
        }
        if let Some(p) = &self.nats_nkey {
            c = c.nkey_seed_file(p);
        }
        if let (Some(user), Some(p)) = (&self.nats_user, &self.nats_password_file) {
            c = c.user(user, p);
        }
        if let Some(p) = &self.nats_token_file {
            c = c.token_file(p);
        }
        if let Some(p) = &self.tls_ca {
            c = c.tls_ca_file(p);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c = c.tls_client_cert(cert, key);
        }
        c
    }
}

/// Options of `auditring ship`.
#[derive(Args)]
pub(crate) struct ShipOptions {
    /// The NATS server(s), e.g. nats://127.0.0.1:4222 (tls://... for TLS).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    #[command(flatten)]
    nats: NatsOptions,
    /// This gateway's name (letters, digits, '-', '_'), unique within its
    /// partition.
    #[arg(long)]
    gateway: String,
    /// The gateway's partition (the subject is audit.<partition>.<gateway>).
    #[arg(long, default_value = auditring_nats::DEFAULT_PARTITION)]
    partition: String,
    /// The cursor file (default: LOG.ship-cursor).
    #[arg(long)]
    cursor: Option<PathBuf>,
    /// Batches in flight (1: each batch acknowledged before the next).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Cap on shipping a backlog, MiB per second; 0 for none.
    #[arg(long, default_value_t = 128)]
    catch_up_mib_s: u64,
    /// Seconds between liveness messages (and watermark and disk checks).
    #[arg(long, default_value_t = 5)]
    heartbeat_s: u64,
    /// Delete rotated files below the collector's verified watermark.
    #[arg(long)]
    retention: bool,
    /// Replicas of the stream if the shipper creates it (3 in production).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Core to pin the shipper to (away from the signer's).
    #[arg(long)]
    core: Option<usize>,
    /// Seconds between metric lines on standard error; 0 for none.
    #[arg(long, default_value_t = 10)]
    report_s: u64,
    /// Exit once the log is closed (ends with a close seal) and every
    /// batch of it is acknowledged.
    #[arg(long)]
    until_closed: bool,
    /// Seconds to go on shipping what the log holds once asked to stop
    /// (SIGTERM, SIGINT); what is left is shipped on the next start.
    #[arg(long, default_value_t = 10)]
    stop_timeout_s: u64,
    /// The log's active file.
    log: PathBuf,
}

/// `auditring ship`: runs until SIGTERM or SIGINT, which stop the shipper
/// (it ships for at most `--stop-timeout-s` more, then saves its cursor)
/// and print the final report line; or with `--until-closed` until the
/// closed log is shipped. A kill loses nothing either (the cursor is saved
/// every 100 ms and the server drops what is sent twice).
pub(crate) fn ship(o: &ShipOptions) -> Result<u8, String> {
    let stop = stop_on_signals()?;
    let mut config = ShipperConfig::new(&o.url, &o.log, &o.gateway)
        .connection(o.nats.connection())
        .partition(&o.partition)
        .window(o.window)
        .catch_up_bytes_per_s((o.catch_up_mib_s > 0).then_some(o.catch_up_mib_s << 20))
        .heartbeat_interval(Duration::from_secs(o.heartbeat_s.max(1)))
        .retention(o.retention);
    if let Some(c) = &o.cursor {
        config = config.cursor(c);
    }
    config.stream = config.stream.replicas(o.replicas);
    config.core = o.core;
    config.stop_timeout = Duration::from_secs(o.stop_timeout_s);
    let id = config.id();
    let shipper = Shipper::spawn(config).map_err(|e| e.to_string())?;
    let mut last_report = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if shipper.is_finished() || stop.load(Ordering::Relaxed) {
            break;
        }
        if o.report_s > 0 && last_report.elapsed() >= Duration::from_secs(o.report_s) {
            last_report = Instant::now();
            report_line(&id, &shipper.metrics());
        }
        if o.until_closed && closed_and_shipped(&o.log, &shipper) {
            break;
        }
    }
    let m = shipper.stop().map_err(|e| e.to_string())?;
    report_line(&id, &m);
    Ok(if m.server_behind > 0 { 1 } else { 0 })
}

fn report_line(gateway: &GatewayId, m: &auditring_nats::ShipMetrics) {
    // The error first: the metrics line stays the last line of a report.
    if let Some(e) = &m.last_error {
        eprintln!(
            "ship-error gateway={gateway}: {}",
            crate::terminal_safe::escape(e)
        );
    }
    eprintln!(
        "ship gateway={gateway} acked={}:{} batches={} events={} retries={} duplicates={} skipped={} lag_bytes={} lag_s={:.1} ack_p50_us={} ack_p99_us={} server_behind={} disk_alert={}",
        m.acked_stream,
        m.acked_seal.map_or("-".into(), |s| s.to_string()),
        m.acked_batches,
        m.acked_events,
        m.retries,
        m.duplicates,
        m.skipped,
        m.lag_bytes,
        m.lag_seconds,
        m.ack_p50_us,
        m.ack_p99_us,
        m.server_behind,
        m.disk_alert,
    );
}

/// The log ends with a close seal and the shipper acknowledged it.
fn closed_and_shipped(log: &Path, shipper: &Shipper) -> bool {
    let mut spool = auditring_nats::Spool::new(log).with_sync(false);
    let mut last = None;
    while let Ok(Some(b)) = spool.next_batch() {
        last = Some(b);
    }
    let Some(last) = last else { return false };
    let m = shipper.metrics();
    last.seal.reason == auditring::format::seal::SealReason::Close
        && m.acked_stream == last.stream()
        && m.acked_seal == Some(last.seal.index)
}

/// Options of `auditring collect`.
#[derive(Args)]
pub(crate) struct CollectOptions {
    /// The NATS server(s).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    #[command(flatten)]
    nats: NatsOptions,
    /// The archive directory: one folder per gateway,
    /// ARCHIVE/PARTITION/GATEWAY/, each with audit.jsonl (an ordinary log
    /// file: `auditring verify` checks it), checkpoint.json and the
    /// collector's state.
    #[arg(long)]
    archive: PathBuf,
    /// A public key trusted for gateways without a key of their own.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// An expected gateway, PARTITION/NAME or PARTITION/NAME=PUBLIC_KEY_FILE
    /// (its only key); a NAME without PARTITION/ is in partition p0.
    #[arg(long = "gateway")]
    gateways: Vec<String>,
    /// A registry of expected gateways: one `PARTITION/NAME [PUBLIC_KEY_FILE]`
    /// a line (NAME alone: partition p0); `#` starts a comment line.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Subjects to pull: audit.> (all), one partition audit.<p>.>, or one
    /// gateway audit.<p>.<g>.
    #[arg(long, default_value = "audit.>")]
    filter: String,
    /// The durable consumer's name (one per collector).
    #[arg(long, default_value = "auditring-collector")]
    durable: String,
    /// A gateway with no batch for this many seconds is silent.
    #[arg(long, default_value_t = 60)]
    silent_after_s: u64,
    /// Seconds between reports; 0 reports only at the end.
    #[arg(long, default_value_t = 10)]
    report_s: u64,
    /// Stop after this many seconds without a message (0: run until killed).
    #[arg(long, default_value_t = 0)]
    until_idle_s: u64,
    /// Reports as JSON.
    #[arg(long)]
    json: bool,
}

/// `auditring collect`, until `--until-idle-s` or SIGTERM or SIGINT (the
/// poll under way is finished first), then the final report. Exit status:
/// 0, or 1 when a gateway is tampered.
pub(crate) fn collect(o: &CollectOptions) -> Result<u8, String> {
    let stop = stop_on_signals()?;
    let mut config = CollectorConfig::new(&o.url, &o.archive)
        .connection(o.nats.connection())
        .durable(&o.durable);
    config.filter = o.filter.clone();
    config.silent_after = Duration::from_secs(o.silent_after_s);
    for k in &o.keys {
        config = config.trust_any(key(k)?);
    }
    let mut entries: Vec<String> = o.gateways.clone();
    if let Some(r) = &o.registry {
        let text = std::fs::read_to_string(r).map_err(|e| format!("{}: {e}", r.display()))?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join("=")),
        );
    }
    for e in entries {
        let (id, path) = match e.split_once('=') {
            Some((id, path)) => (id, Some(path)),
            None => (e.as_str(), None),
        };
        let id: GatewayId = id.parse()?;
        config = match path {
            Some(path) => config.trust(id, key(Path::new(path))?),
            None => config.expect_gateway(id),
        };
    }
    let mut collector = Collector::open(config).map_err(|e| e.to_string())?;
    let mut last_report = Instant::now();
    let mut last_message = Instant::now();
    loop {
        let n = collector
            .poll(Duration::from_millis(500))
            .map_err(|e| e.to_string())?;
        if n > 0 {
            last_message = Instant::now();
        }
        if o.report_s > 0 && last_report.elapsed() >= Duration::from_secs(o.report_s) {
            last_report = Instant::now();
            print_report(&collector, o.json);
        }
        if o.until_idle_s > 0 && last_message.elapsed() >= Duration::from_secs(o.until_idle_s) {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    print_report(&collector, o.json);
    Ok(if collector.report().any_tampered() {
        1
    } else {
        0
    })
}

fn print_report(collector: &Collector, json: bool) {
    let report = collector.report();
    if json {
        println!("{}", report.to_json());
    } else {
        for line in report.to_string().lines() {
            println!("{}", crate::terminal_safe::escape(line));
        }
    }
}

/// A flag set by the first SIGTERM or SIGINT; a second one ends the
/// process at once, with status 128 + the signal.
fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // The shutdown goes first: it acts only once the flag is set.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    Ok(stop)
}

fn key(path: &Path) -> Result<PublicKey, String> {
    PublicKey::from_file(path).map_err(|e| format!("{}: {e}", path.display()))
}
