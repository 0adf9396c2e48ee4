//! The collector: pulls every gateway's batches, verifies each chain
//! incrementally, archives them as ordinary log files and reports.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use auditring::Checkpoint;
use auditring::format::merkle::Hash;
use auditring::format::seal::Seal;
use auditring::verify::{FindingKind, Severity, Verifier, VerifierState};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

mod config;

pub use config::{CollectorConfig, CollectorError, FleetReport, GatewayReport};

use crate::{GatewayId, HEADER_GATEWAY, HEADER_PART, HEADER_PARTS, HEADER_SEAL, HEADER_STREAM};

/// Batches held back waiting for an earlier one, at most.
const REORDER_LIMIT: usize = 64;
/// How long a batch is held back waiting for an earlier one.
const REORDER_WAIT: Duration = Duration::from_secs(2);
/// Streams remembered per gateway to drop late duplicates of.
const FINISHED_STREAMS: usize = 64;

/// What a gateway's collector state saves beside its archive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Saved {
    verifier: Option<VerifierState>,
    archive_len: u64,
    head: Option<Head>,
    finished: VecDeque<String>,
    batches: u64,
    events: u64,
    duplicates: u64,
    truncations: Vec<String>,
    last_seal_unix_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    stream: String,
    seal: u64,
    hash: Hash,
}

struct Gateway {
    id: GatewayId,
    dir: PathBuf,
    verifier: Verifier,
    saved: Saved,
    archive: File,
    write: Vec<u8>,
    parts: Option<(String, u64, Vec<Bytes>)>,
    held: BTreeMap<(String, u64), (Bytes, Instant)>,
    last_batch: Option<Instant>,
    heartbeat: Option<(Instant, serde_json::Value)>,
    dirty: bool,
}

impl Gateway {
    fn open(id: &GatewayId, archive: &Path, verifier: Verifier) -> io::Result<Self> {
        let dir = archive.join(&id.partition).join(&id.name);
        std::fs::create_dir_all(&dir)?;
        let saved: Saved = match std::fs::read_to_string(dir.join("collector-state.json")) {
            Ok(t) => serde_json::from_str(&t).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(e),
        };
        let archive = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(dir.join("audit.jsonl"))?;
        // Bytes written after the last saved state were never acknowledged:
        // their messages come again.
        if archive.metadata()?.len() > saved.archive_len {
            archive.set_len(saved.archive_len)?;
        }
        Ok(Self {
            id: id.clone(),
            dir,
            verifier,
            saved,
            archive,
            write: Vec::new(),
            parts: None,
            held: BTreeMap::new(),
            last_batch: None,
            heartbeat: None,
            dirty: false,
        })
    }

    /// One message: a whole batch or a part of one.
    fn message(&mut self, stream: String, seal: u64, part: u32, parts: u32, payload: Bytes) {
        if self.is_duplicate(&stream, seal) {
            self.saved.duplicates += 1;
            return;
        }
        if parts <= 1 {
            self.batch(stream, seal, payload);
            return;
        }
        let same = matches!(&self.parts, Some((s, k, _)) if *s == stream && *k == seal);
        if !same {
            self.parts = Some((stream.clone(), seal, Vec::new()));
        }
        let (_, _, got) = self.parts.as_mut().expect("set");
        if part as usize == got.len() {
            got.push(payload);
        } else if (part as usize) < got.len() {
            self.saved.duplicates += 1;
            return;
        } else {
            // A part is missing: wait for the batch to come again whole.
            self.parts = None;
            return;
        }
        if got.len() == parts as usize {
            let (_, _, got) = self.parts.take().expect("set");
            let mut whole = Vec::with_capacity(got.iter().map(Bytes::len).sum());
            for p in got {
                whole.extend_from_slice(&p);
            }
            self.batch(stream, seal, Bytes::from(whole));
        }
    }

    fn is_duplicate(&self, stream: &str, seal: u64) -> bool {
        match &self.saved.head {
            Some(h) if h.stream == stream => seal <= h.seal,
            _ => self.saved.finished.iter().any(|s| s == stream),
        }
    }

    /// A whole batch, in order or held back until its predecessor comes.
    fn batch(&mut self, stream: String, seal: u64, bytes: Bytes) {
        let ahead = matches!(&self.saved.head, Some(h) if h.stream == stream && seal > h.seal + 1);
        if ahead {
            self.held.insert((stream, seal), (bytes, Instant::now()));
            if self.held.len() > REORDER_LIMIT {
                self.release_held(true);
            }
            return;
        }
        self.verify(&stream, seal, &bytes);
        self.release_held(false);
    }

    /// Feeds held batches that now follow the head; with `force`, the
    /// oldest held ones whatever their place (the verifier names the gap).
    fn release_held(&mut self, force: bool) {
        loop {
            let next = self
                .saved
                .head
                .as_ref()
                .map(|h| (h.stream.clone(), h.seal + 1));
            let key = match next.and_then(|k| self.held.contains_key(&k).then_some(k)) {
                Some(k) => k,
                None if force
                    || self
                        .held
                        .values()
                        .next()
                        .is_some_and(|(_, at)| at.elapsed() >= REORDER_WAIT) =>
                {
                    match self.held.keys().next() {
                        Some(k) => k.clone(),
                        None => return,
                    }
                }
                None => return,
            };
            let (bytes, _) = self.held.remove(&key).expect("present");
            self.verify(&key.0, key.1, &bytes);
            if !force && self.held.is_empty() {
                return;
            }
        }
    }

    fn verify(&mut self, stream: &str, seal_index: u64, bytes: &[u8]) {
        let seal = last_line(bytes).and_then(|l| Seal::parse_line(l).ok().map(|(s, _)| s));
        if let (Some(seal), Some(head)) = (&seal, &self.saved.head)
            && seal.reason.starts_stream()
            && seal.prev != head.hash
        {
            let why = format!(
                "a new run (stream {stream}) does not continue seal {}:{} that was verified here: the gateway's log no longer holds it (its trailing run or files were deleted)",
                head.stream, head.seal
            );
            tracing::error!(target: "auditring_nats", gateway = %self.id, "{why}");
            self.saved.truncations.push(why);
        }
        let name = format!("{} {stream}:{seal_index}", self.id);
        let mut pass = match self.saved.verifier.take() {
            Some(state) => self.verifier.resume(state),
            None => self.verifier.start(),
        };
        // Reading from memory cannot fail.
        let _ = pass.feed(&name, bytes, &mut |_| {});
        self.saved.verifier = Some(pass.state());
        self.write.extend_from_slice(bytes);
        self.saved.batches += 1;
        if let Some(seal) = &seal {
            self.saved.events += seal.count;
            self.saved.last_seal_unix_ns = seal.unix_nanos;
            if let Some(head) = &self.saved.head
                && head.stream != stream
            {
                self.saved.finished.push_back(head.stream.clone());
                if self.saved.finished.len() > FINISHED_STREAMS {
                    self.saved.finished.pop_front();
                }
            }
            self.saved.head = Some(Head {
                stream: stream.into(),
                seal: seal_index,
                hash: Checkpoint::of_seal(seal).hash,
            });
        }
        self.last_batch = Some(Instant::now());
        self.dirty = true;
    }

    /// What must be made durable before this poll's messages are
    /// acknowledged: the archive bytes and the state after them.
    fn take_job(&mut self) -> io::Result<Option<GatewayJob>> {
        if !self.dirty {
            return Ok(None);
        }
        let offset = self.saved.archive_len;
        let bytes = std::mem::take(&mut self.write);
        self.saved.archive_len += bytes.len() as u64;
        let state = serde_json::to_string(&self.saved).map_err(io::Error::other)?;
        self.dirty = false;
        Ok(Some(GatewayJob {
            archive: self.archive.try_clone()?,
            offset,
            bytes,
            state,
            checkpoint: self.checkpoint().map(|c| c.to_json() + "\n"),
            dir: self.dir.clone(),
        }))
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        self.saved
            .verifier
            .as_ref()
            .and_then(VerifierState::checkpoint)
    }

    fn report(&self, expected: bool, silent_after: Duration, started: Instant) -> GatewayReport {
        let report = self.saved.verifier.as_ref().map(VerifierState::report);
        let mut tampering: Vec<String> = report
            .iter()
            .flat_map(|r| r.findings.iter())
            .filter(|f| f.severity == Severity::Tamper)
            .map(|f| format!("{}: {}", f.kind, f.detail))
            .collect();
        for t in &self.saved.truncations {
            tampering.push(format!("{}: {t}", FindingKind::Truncated));
        }
        let missing_seals = report
            .iter()
            .flat_map(|r| r.of_kind(FindingKind::MissingSeals))
            .map(|f| f.count.unwrap_or(1))
            .sum();
        let since_batch = self.last_batch.map_or(started.elapsed(), |t| t.elapsed());
        let silent = since_batch >= silent_after;
        let alive = self
            .heartbeat
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() < silent_after);
        let status = if !tampering.is_empty() {
            "tampered"
        } else if silent && self.saved.batches == 0 && !alive {
            "never_seen"
        } else if silent && alive {
            "stalled"
        } else if silent {
            "silent"
        } else {
            "ok"
        };
        let now = now_nanos();
        GatewayReport {
            partition: self.id.partition.clone(),
            gateway: self.id.name.clone(),
            expected,
            status: status.into(),
            verified_head: self.checkpoint().map(|c| c.to_json()),
            batches: self.saved.batches,
            events: self.saved.events,
            duplicates: self.saved.duplicates,
            lag_seconds: (self.saved.last_seal_unix_ns > 0)
                .then(|| now.saturating_sub(self.saved.last_seal_unix_ns) as f64 / 1e9),
            last_batch_seconds_ago: self.last_batch.map(|t| t.elapsed().as_secs_f64()),
            silent,
            missing_seals,
            truncated: !self.saved.truncations.is_empty(),
            tampering,
            heartbeat: self.heartbeat.as_ref().map(|(_, v)| v.clone()),
            archive: self.dir.join("audit.jsonl"),
        }
    }
}

/// One gateway's share of a persist job.
struct GatewayJob {
    archive: File,
    offset: u64,
    bytes: Vec<u8>,
    state: String,
    checkpoint: Option<String>,
    dir: PathBuf,
}

impl GatewayJob {
    /// Archive bytes synced, then the state (which says how long the
    /// archive is) synced: only then may the messages be acknowledged.
    fn run(self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.archive.write_all_at(&self.bytes, self.offset)?;
        self.archive.sync_data()?;
        write_atomic(
            &self.dir.join("collector-state.json"),
            self.state.as_bytes(),
        )?;
        if let Some(c) = self.checkpoint {
            // Also in the (synced) state; this copy is for `verify --expect`.
            let path = self.dir.join("checkpoint.json");
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            std::fs::write(&tmp, c)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }
}

/// A poll's persist job: the gateways' writes, then the acks and the
/// watermarks. The persister thread runs one while `poll` verifies the
/// next messages.
struct Job {
    gateways: Vec<GatewayJob>,
    messages: Vec<jetstream::Message>,
    watermarks: Vec<(GatewayId, Checkpoint)>,
    /// Told when the job is done.
    done: Option<std::sync::mpsc::Sender<()>>,
}

/// Runs persist jobs in order; the first error stops it.
fn persister(
    jobs: std::sync::mpsc::Receiver<Job>,
    handle: tokio::runtime::Handle,
    js: jetstream::Context,
    watermarks: bool,
    failed: std::sync::Arc<parking_lot::Mutex<Option<io::Error>>>,
) {
    for job in jobs {
        let result = std::thread::scope(|scope| {
            let runs: Vec<_> = job
                .gateways
                .into_iter()
                .map(|g| scope.spawn(move || g.run()))
                .collect();
            runs.into_iter().try_for_each(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a persist thread panicked")))
            })
        });
        if let Err(e) = result {
            // Nothing of this job is acknowledged: it comes again.
            *failed.lock() = Some(e);
            return;
        }
        handle.block_on(async {
            for m in &job.messages {
                if let Err(e) = m.ack().await {
                    tracing::warn!(target: "auditring_nats", error = %e, "an ack was not sent; the message comes again and is dropped as a duplicate");
                }
            }
            if watermarks {
                for (id, c) in job.watermarks {
                    let subject = crate::watermark_subject(&id.partition, &id.name);
                    if let Ok(ack) = js.publish(subject, Bytes::from(c.to_json())).await {
                        let _ = ack.await;
                    }
                }
            }
        });
        if let Some(done) = job.done {
            let _ = done.send(());
        }
    }
}

/// The liveness subjects of the gateways `filter` pulls: its partition's
/// (or its gateway's) when it names one.
fn heartbeat_filter(filter: &str) -> String {
    match filter.strip_prefix("audit.") {
        Some(rest) => format!("auditring.heartbeat.{rest}"),
        None => "auditring.heartbeat.>".into(),
    }
}

/// The gateways with a saved state in the archive,
/// `<archive>/<partition>/<gateway>/collector-state.json`.
///
/// An archive laid out by gateway name alone (`<archive>/<gateway>/`) is
/// refused: which partition its gateways belong to is not recorded.
fn archived_gateways(archive: &Path) -> Result<Vec<GatewayId>, CollectorError> {
    let mut out = Vec::new();
    for partition in std::fs::read_dir(archive)? {
        let partition = partition?;
        if !partition.file_type()?.is_dir() {
            continue;
        }
        if partition.path().join("collector-state.json").exists() {
            return Err(CollectorError::Config(format!(
                "{} holds a gateway's archive directly: archives are <archive>/<partition>/<gateway>/ (move it under its partition's directory, {} unless its shipper named one)",
                partition.path().display(),
                crate::DEFAULT_PARTITION
            )));
        }
        let Some(p) = partition.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        for gateway in std::fs::read_dir(partition.path())? {
            let gateway = gateway?;
            if gateway.path().join("collector-state.json").exists()
                && let Some(name) = gateway.file_name().to_str()
            {
                let id = GatewayId::new(&p, name);
                if id.check().is_ok() {
                    out.push(id);
                }
            }
        }
    }
    Ok(out)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Some(&body[start..])
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

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
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    /// The continuous pull: it fetches the next messages on the runtime's
    /// worker thread while the caller verifies the last ones. Dropped
    /// inside the runtime.
    pulling: Option<jetstream::consumer::pull::Stream>,
    /// Dropped inside the runtime (its drop spawns an unsubscribe).
    beats: Option<async_nats::Subscriber>,
    /// Persist jobs, run in order by the persister thread (a queue of one:
    /// the next poll verifies while the last one is made durable).
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    persister: Option<std::thread::JoinHandle<()>>,
    failed: std::sync::Arc<parking_lot::Mutex<Option<io::Error>>>,
    gateways: HashMap<GatewayId, Gateway>,
    started: Instant,
    last_error: Option<String>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Finish the last persist job (its acks included) first.
        drop(self.jobs.take());
        if let Some(p) = self.persister.take() {
            let _ = p.join();
        }
        let _inside = self.rt.enter();
        drop(self.beats.take());
        drop(self.pulling.take());
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
        std::fs::create_dir_all(&config.archive)?;
        let archived = archived_gateways(&config.archive)?;
        // One worker thread: pulls proceed while `poll`'s caller verifies.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("auditring-collect-io")
            .enable_all()
            .build()?;
        let (consumer, beats, js) = rt.block_on(async {
            let client = async_nats::connect(config.url.as_str())
                .await
                .map_err(|e| {
                    CollectorError::Nats(format!("cannot connect to {}: {e}", config.url))
                })?;
            let js = jetstream::new(client.clone());
            let stream = crate::ensure_stream(&js, &config.stream)
                .await
                .map_err(CollectorError::Nats)?;
            let consumer = stream
                .get_or_create_consumer(
                    &config.durable,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(config.durable.clone()),
                        filter_subject: config.filter.clone(),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 100_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| CollectorError::Nats(format!("cannot create the consumer: {e}")))?;
            let beats = client
                .subscribe(heartbeat_filter(&config.filter))
                .await
                .map_err(|e| CollectorError::Nats(e.to_string()))?;
            if config.watermarks {
                crate::watermark_stream(&js, config.stream.replicas)
                    .await
                    .map_err(CollectorError::Nats)?;
            }
            Ok::<_, CollectorError>((consumer, beats, js))
        })?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let failed = std::sync::Arc::new(parking_lot::Mutex::new(None));
        let persister = {
            let (handle, failed) = (rt.handle().clone(), std::sync::Arc::clone(&failed));
            let watermarks = config.watermarks;
            std::thread::Builder::new()
                .name("auditring-collect-sync".into())
                .spawn(move || persister(rx, handle, js, watermarks, failed))?
        };
        let mut collector = Collector {
            pulling: None,
            jobs: Some(tx),
            persister: Some(persister),
            failed,
            config,
            rt,
            consumer,
            beats: Some(beats),
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
        if self.pulling.is_none() {
            let started = self.rt.block_on(
                self.consumer
                    .stream()
                    .max_messages_per_batch(self.config.max_pull_messages)
                    .max_bytes_per_batch(self.config.max_pull_bytes)
                    .expires(Duration::from_secs(5))
                    .heartbeat(Duration::from_secs(2))
                    .messages(),
            );
            match started {
                Ok(s) => self.pulling = Some(s),
                Err(e) => {
                    self.last_error = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(100).min(max_wait));
                    return Ok(0);
                }
            }
        }
        let (cap_messages, cap_bytes) = (self.config.max_pull_messages, self.config.max_pull_bytes);
        let pulling = self.pulling.as_mut().expect("started");
        let pulled = self.rt.block_on(async {
            use futures_util::FutureExt;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let first = tokio::time::timeout(max_wait, pulling.next()).await;
            let mut next = match first {
                Ok(item) => item,
                Err(_) => return (out, None, false),
            };
            loop {
                match next {
                    Some(Ok(m)) => {
                        bytes += m.payload.len();
                        out.push(m);
                    }
                    Some(Err(e)) => return (out, Some(e.to_string()), false),
                    None => return (out, Some("the pull ended".into()), true),
                }
                if out.len() >= cap_messages || bytes >= cap_bytes {
                    return (out, None, false);
                }
                match pulling.next().now_or_never() {
                    Some(item) => next = item,
                    None => return (out, None, false),
                }
            }
        });
        let (messages, error, ended) = pulled;
        if ended {
            let _inside = self.rt.enter();
            self.pulling = None;
        }
        if let Some(e) = error {
            if messages.is_empty() {
                std::thread::sleep(Duration::from_millis(100).min(max_wait));
            }
            self.last_error = Some(e);
        }
        self.take_heartbeats();
        let n = messages.len();
        // Each gateway's messages, in the order they came.
        type Item = (String, u64, u32, u32, Bytes);
        let mut groups: HashMap<GatewayId, Vec<Item>> = HashMap::new();
        for m in &messages {
            let get = |k: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(k))
                    .map(|v| v.as_str().to_owned())
            };
            let (Some(stream), Some(seal)) = (
                get(HEADER_STREAM),
                get(HEADER_SEAL).and_then(|v| v.parse::<u64>().ok()),
            ) else {
                tracing::warn!(target: "auditring_nats", subject = %m.subject, "a message without auditring headers: archived nowhere");
                continue;
            };
            // The subject says which gateway (partition and name); the
            // header, when there is one, must agree.
            let Some(id) = crate::subject_gateway(&m.subject, "audit")
                .filter(|id| get(HEADER_GATEWAY).is_none_or(|g| g == id.name))
            else {
                tracing::warn!(target: "auditring_nats", subject = %m.subject, "a message whose subject is not audit.<partition>.<gateway> or whose gateway header does not match it");
                continue;
            };
            let part = get(HEADER_PART).and_then(|v| v.parse().ok()).unwrap_or(0);
            let parts = get(HEADER_PARTS).and_then(|v| v.parse().ok()).unwrap_or(1);
            groups
                .entry(id)
                .or_default()
                .push((stream, seal, part, parts, m.payload.clone()));
        }
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
        if let Some(e) = self.failed.lock().take() {
            return Err(CollectorError::Io(e));
        }
        let mut job = Job {
            gateways: Vec::new(),
            messages,
            watermarks: Vec::new(),
            done: None,
        };
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
            let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
            if !sent {
                let e = self.failed.lock().take();
                return Err(CollectorError::Io(
                    e.unwrap_or_else(|| io::Error::other("the persister stopped")),
                ));
            }
        }
        Ok(n)
    }

    fn take_heartbeats(&mut self) {
        use futures_util::FutureExt;
        let Some(beats) = self.beats.as_mut() else {
            return;
        };
        let mut got = Vec::new();
        while let Some(Some(msg)) = beats.next().now_or_never() {
            got.push(msg);
        }
        for msg in got {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&msg.payload) else {
                continue;
            };
            let Some(id) = crate::subject_gateway(&msg.subject, "auditring.heartbeat") else {
                continue;
            };
            if let Ok(g) = self.gateway(&id) {
                g.heartbeat = Some((Instant::now(), value));
            }
        }
    }

    /// Waits until everything polled so far is archived, checkpointed and
    /// acknowledged (`poll` hands that work to a thread of its own).
    ///
    /// # Errors
    ///
    /// [`CollectorError::Io`] if an archive or a state could not be
    /// written.
    pub fn sync(&mut self) -> Result<(), CollectorError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let job = Job {
            gateways: Vec::new(),
            messages: Vec::new(),
            watermarks: Vec::new(),
            done: Some(tx),
        };
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent || rx.recv().is_err() {
            let e = self.failed.lock().take();
            return Err(CollectorError::Io(
                e.unwrap_or_else(|| io::Error::other("the persister stopped")),
            ));
        }
        Ok(())
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
