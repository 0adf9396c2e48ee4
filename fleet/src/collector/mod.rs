//! The collector: pulls every gateway's batches, verifies each chain
//! incrementally, archives them as ordinary log files and reports.
//!
//! `pull` takes the messages from the server, `gateway` verifies each
//! gateway's chain, `persist` makes the archive durable and acknowledges,
//! and `report` says where each gateway stands.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use auditring::verify::Verifier;

mod config;
mod gateway;
mod persist;
mod pull;
mod report;

pub use config::{CollectorConfig, CollectorError};
pub use report::{FleetReport, GatewayReport};

use crate::GatewayId;
use gateway::Gateway;
use persist::{Job, Persister};
use pull::Puller;

/// The collector: pulls, verifies, archives, reports. All its work happens
/// in [`poll`](Collector::poll), on the caller's thread, with a private
/// async runtime.
///
/// # Examples
///
/// See the [crate documentation](crate).
pub struct Collector {
    config: CollectorConfig,
    rt: tokio::runtime::Runtime,
    puller: Puller,
    persister: Persister,
    gateways: HashMap<GatewayId, Gateway>,
    started: Instant,
    last_error: Option<String>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Finish the last persist job (its acks included) first.
        self.persister.finish();
        self.puller.close(&self.rt);
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("archive", &self.config.archive)
            .field("gateways", &self.gateways.len())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Connects, creates the stream and the durable consumer if missing,
    /// and loads every gateway's saved state from the archive.
    ///
    /// # Errors
    ///
    /// [`CollectorError::Config`] for an impossible configuration or an
    /// archive laid out by gateway name alone;
    /// [`CollectorError::Nats`] if the server cannot be reached or refuses;
    /// [`CollectorError::Io`] if the archive cannot be read.
    pub fn open(config: CollectorConfig) -> Result<Collector, CollectorError> {
        if config.keys.is_empty() && config.gateways.values().all(Option::is_none) {
            return Err(CollectorError::Config(
                "no key is trusted: give each gateway's public key (or keys shared by all)".into(),
            ));
        }
        for id in config.gateways.keys() {
            id.check().map_err(CollectorError::Config)?;
        }
        config.connection.check().map_err(CollectorError::Config)?;
        pull::check_filter(&config.filter).map_err(CollectorError::Config)?;
        std::fs::create_dir_all(&config.archive)?;
        let archived = persist::archived_gateways(&config.archive)?;
        // One worker thread: pulls proceed while `poll`'s caller verifies.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("auditring-collect-io")
            .enable_all()
            .build()?;
        let (puller, js) = Puller::connect(&rt, &config)?;
        let persister = Persister::spawn(rt.handle().clone(), js, config.watermarks)?;
        let mut collector = Collector {
            config,
            rt,
            puller,
            persister,
            gateways: HashMap::new(),
            started: Instant::now(),
            last_error: None,
        };
        let expected: Vec<GatewayId> = collector.config.gateways.keys().cloned().collect();
        for id in expected.iter().chain(&archived) {
            collector.gateway(id)?;
        }
        Ok(collector)
    }

    fn gateway(&mut self, id: &GatewayId) -> io::Result<&mut Gateway> {
        if !self.gateways.contains_key(id) {
            let keys = match self.config.gateways.get(id) {
                Some(Some(key)) => vec![key.clone()],
                _ => self.config.keys.clone(),
            };
            let g = Gateway::open(id, &self.config.archive, Verifier::new(keys))?;
            self.gateways.insert(id.clone(), g);
        }
        Ok(self.gateways.get_mut(id).expect("inserted"))
    }

    /// Pulls one byte-capped batch of messages (waiting at most
    /// `max_wait` for some), verifies and archives them, saves every
    /// touched gateway's archive and checkpoint, then acknowledges them.
    /// Returns the number of messages taken.
    ///
    /// A server that cannot be reached is not an error: the pull takes
    /// nothing and the next one tries again.
    ///
    /// # Errors
    ///
    /// [`CollectorError::Io`] if an archive cannot be written: nothing
    /// pulled is acknowledged, so it comes again.
    pub fn poll(&mut self, max_wait: Duration) -> Result<usize, CollectorError> {
        let messages = match self.puller.pull(&self.rt, max_wait) {
            Ok((messages, error)) => {
                if let Some(e) = error {
                    self.last_error = Some(e);
                }
                messages
            }
            Err(e) => {
                self.last_error = Some(e);
                return Ok(0);
            }
        };
        for (id, value) in self.puller.heartbeats() {
            if let Ok(g) = self.gateway(&id) {
                g.heartbeat = Some((Instant::now(), value));
            }
        }
        let n = messages.len();
        let mut groups = pull::by_gateway(&messages);
        for id in groups.keys() {
            self.gateway(id)?;
        }
        // Gateways are independent chains: verified in parallel when there
        // are cores to spare. On two cores the pull, the persister and the
        // server already take the second one, and measured serial is ~10%
        // faster there.
        let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 2);
        std::thread::scope(|scope| {
            for (id, g) in self.gateways.iter_mut() {
                let items = groups.remove(id).unwrap_or_default();
                if items.is_empty() {
                    g.release_held(false);
                    continue;
                }
                let work = move || {
                    for (stream, seal, part, parts, payload) in items {
                        g.message(stream, seal, part, parts, payload);
                    }
                    g.release_held(false);
                };
                if parallel {
                    scope.spawn(work);
                } else {
                    work();
                }
            }
        });
        if let Some(e) = self.persister.failure() {
            return Err(CollectorError::Io(e));
        }
        let mut job = Job::new(messages);
        for g in self.gateways.values_mut() {
            let dirty = g.dirty;
            if let Some(j) = g.take_job()? {
                job.gateways.push(j);
            }
            if dirty
                && g.saved.truncations.is_empty()
                && g.saved
                    .verifier
                    .as_ref()
                    .is_some_and(|s| s.report().tamper == 0)
                && let Some(c) = g.checkpoint()
            {
                job.watermarks.push((g.id.clone(), c));
            }
        }
        if !job.messages.is_empty() || !job.gateways.is_empty() {
            self.persister.send(job)?;
        }
        Ok(n)
    }

    /// Waits until everything polled so far is archived, checkpointed and
    /// acknowledged (`poll` hands that work to a thread of its own).
    ///
    /// # Errors
    ///
    /// [`CollectorError::Io`] if an archive or a state could not be
    /// written.
    pub fn sync(&mut self) -> Result<(), CollectorError> {
        self.persister.sync()
    }

    /// The report: every gateway seen or expected.
    pub fn report(&self) -> FleetReport {
        let mut gateways: Vec<GatewayReport> = self
            .gateways
            .values()
            .map(|g| {
                g.report(
                    self.config.gateways.contains_key(&g.id),
                    self.config.silent_after,
                    self.started,
                )
            })
            .collect();
        gateways.sort_by(|a, b| (&a.partition, &a.gateway).cmp(&(&b.partition, &b.gateway)));
        FleetReport { gateways }
    }

    /// The last pull error, if any (the server was unreachable).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}
