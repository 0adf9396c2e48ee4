//! The shipper: a low-priority thread that publishes every sealed batch of
//! the local log to JetStream, one message per batch, exactly as written.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

mod config;

pub use config::{ShipError, ShipMetrics, ShipperConfig};

use crate::spool::{Batch, FileId, Position, Spool};
use crate::{
    GatewayId, HEADER_GATEWAY, HEADER_PART, HEADER_PARTS, HEADER_SEAL, HEADER_SEQ, HEADER_STREAM,
};

/// Room left in a message for headers and protocol overhead.
const HEADROOM: usize = 4096;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    metrics: parking_lot::Mutex<ShipMetrics>,
    ack_us: parking_lot::Mutex<Option<Histogram<u64>>>,
    lag_ms: parking_lot::Mutex<Option<Histogram<u64>>>,
    acked_batches: AtomicU64,
}

/// A running shipper: its own thread, stopped by [`stop`](Shipper::stop)
/// or on drop.
///
/// # Examples
///
/// See the [crate documentation](crate).
#[must_use = "a shipper stops when dropped"]
pub struct Shipper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), ShipError>>>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper").finish_non_exhaustive()
    }
}

impl Shipper {
    /// Starts shipping on a thread of its own (`auditring-ship`).
    ///
    /// # Errors
    ///
    /// [`ShipError::Config`] for an impossible configuration;
    /// [`ShipError::Io`] if the thread cannot start. The server need not
    /// be up: the shipper connects and retries in the background.
    pub fn spawn(config: ShipperConfig) -> Result<Shipper, ShipError> {
        config.id().check().map_err(ShipError::Config)?;
        let shared = Arc::new(Shared::default());
        *shared.ack_us.lock() = Histogram::new(3).ok();
        *shared.lag_ms.lock() = Histogram::new(3).ok();
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("auditring-ship".into())
            .spawn(move || run(config, &inner))?;
        Ok(Shipper {
            shared,
            thread: Some(thread),
        })
    }

    /// The metrics now.
    pub fn metrics(&self) -> ShipMetrics {
        snapshot(&self.shared)
    }

    /// Batches acknowledged so far.
    pub fn acked_batches(&self) -> u64 {
        self.shared.acked_batches.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended (it only ends on stop or on a batch
    /// that can never be stored).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops: ships what the spool holds for at most the stop timeout,
    /// saves the cursor, and returns the final metrics.
    ///
    /// # Errors
    ///
    /// The error that ended the thread, if any.
    pub fn stop(mut self) -> Result<ShipMetrics, ShipError> {
        self.shared.stop.store(true, Ordering::Release);
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(ShipError::Panicked)),
            None => Ok(()),
        };
        result.map(|()| snapshot(&self.shared))
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn snapshot(shared: &Shared) -> ShipMetrics {
    let mut m = shared.metrics.lock().clone();
    if let Some(h) = shared.ack_us.lock().as_ref() {
        m.ack_p50_us = h.value_at_quantile(0.5);
        m.ack_p99_us = h.value_at_quantile(0.99);
    }
    if let Some(h) = shared.lag_ms.lock().as_ref() {
        m.lag_p99_ms = h.value_at_quantile(0.99);
    }
    m
}

/// The cursor saved between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cursor {
    #[serde(default)]
    partition: String,
    gateway: String,
    position: Position,
}

fn load_cursor(path: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Cursor>(&text) {
        Ok(c) => Some(c.position),
        Err(e) => {
            tracing::warn!(target: "auditring_nats", path = %path.display(), error = %e, "unreadable ship cursor; the server's last message decides");
            None
        }
    }
}

fn save_cursor(path: &Path, id: &GatewayId, position: &Position) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_string(&Cursor {
        partition: id.partition.clone(),
        gateway: id.name.clone(),
        position: position.clone(),
    })
    .map_err(io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Lowers this thread's priority.
fn lower_priority(nice: i32) {
    // SAFETY: gettid and setpriority take no pointers; on Linux
    // PRIO_PROCESS with a thread id changes that thread only.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        tracing::warn!(target: "auditring_nats", nice, error = %io::Error::last_os_error(), "cannot lower the shipper's priority");
    }
}

fn run(config: ShipperConfig, shared: &Shared) -> Result<(), ShipError> {
    lower_priority(config.nice);
    if let Some(core) = config.core
        && let Err(e) = auditring::capture::affinity::pin_current_thread(core)
    {
        tracing::warn!(target: "auditring_nats", core, error = %e, "cannot pin the shipper");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(Ship::new(config, shared).run());
    if let Err(e) = &result {
        shared.metrics.lock().last_error = Some(e.to_string());
    }
    result
}

/// One message in flight.
struct Pending {
    subject: String,
    id: String,
    headers: HeaderMap,
    payload: Bytes,
    /// Set on a batch's last part.
    end: Option<Position>,
    events: u64,
    bytes: u64,
    seal_unix_nanos: u64,
    sent: Instant,
    fut: Option<PublishAckFuture>,
}

struct Ship<'a> {
    config: ShipperConfig,
    shared: &'a Shared,
    id: GatewayId,
    subject: String,
    spool: Spool,
    acked: Option<Position>,
    acked_seal_nanos: u64,
    last_read_seal: Option<(String, u64)>,
    cursor_saved: Instant,
    bucket: f64,
    bucket_at: Instant,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl<'a> Ship<'a> {
    fn new(config: ShipperConfig, shared: &'a Shared) -> Self {
        Self {
            id: config.id(),
            subject: config.subject(),
            spool: Spool::new(&config.log),
            config,
            shared,
            acked: None,
            acked_seal_nanos: 0,
            last_read_seal: None,
            cursor_saved: Instant::now(),
            bucket: 0.0,
            bucket_at: Instant::now(),
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn error(&self, what: String) {
        tracing::warn!(target: "auditring_nats", gateway = %self.id, "{what}");
        self.shared.metrics.lock().last_error = Some(what);
    }

    async fn run(mut self) -> Result<(), ShipError> {
        let backoff = |n: u32, cfg: &ShipperConfig| {
            cfg.backoff_min
                .saturating_mul(1u32 << n.min(16))
                .min(cfg.backoff_max)
        };
        let (min, max) = (self.config.backoff_min, self.config.backoff_max);
        let client = loop {
            let options = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .reconnect_delay_callback(move |n| {
                    min.saturating_mul(1u32 << n.min(16) as u32).min(max)
                });
            match options.connect(self.config.url.as_str()).await {
                Ok(c) => break c,
                Err(e) => {
                    self.error(format!("cannot connect to {}: {e}", self.config.url));
                    if self.stopping() {
                        return Ok(());
                    }
                    tokio::time::sleep(max).await;
                }
            }
        };
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(self.config.ack_timeout);

        // The stream, and what it already holds of this gateway.
        let mut attempt = 0;
        let stream = loop {
            let got = if self.config.create_stream {
                crate::ensure_stream(&js, &self.config.stream).await
            } else {
                js.get_stream(&self.config.stream.name)
                    .await
                    .map_err(|e| e.to_string())
            };
            match got {
                Ok(s) => break s,
                Err(e) => {
                    self.error(e);
                    if self.stopping() {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff(attempt, &self.config)).await;
                    attempt += 1;
                }
            }
        };
        attempt = 0;
        let last = loop {
            match stream.get_last_raw_message_by_subject(&self.subject).await {
                Ok(m) => break Some(stored_position(&m.headers)),
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    break None;
                }
                Err(e) => {
                    self.error(format!("cannot ask the server for the last message: {e}"));
                    if self.stopping() {
                        return Ok(());
                    }
                    tokio::time::sleep(backoff(attempt, &self.config)).await;
                    attempt += 1;
                }
            }
        };
        self.position(last.flatten())?;

        let bucket = if self.config.retention {
            crate::watermark_stream(&js, self.config.stream.replicas)
                .await
                .map_err(|e| self.error(e))
                .ok()
        } else {
            None
        };

        let mut inflight: VecDeque<Pending> = VecDeque::new();
        let mut failures = 0u32;
        let mut last_beat = Instant::now() - self.config.heartbeat_interval;
        let mut stop_deadline: Option<Instant> = None;
        // Listing the log's files costs system calls: the lag metric is
        // refreshed at most every 100 ms.
        let mut last_lag = Instant::now();
        loop {
            if last_beat.elapsed() >= self.config.heartbeat_interval {
                last_beat = Instant::now();
                self.housekeeping(&client, bucket.as_ref()).await;
            }
            if self.stopping() {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| Instant::now() + self.config.stop_timeout);
                if Instant::now() >= deadline {
                    break;
                }
            }
            // Fill the window.
            let mut exhausted = false;
            while inflight.len() < self.config.window {
                match self.spool.next_batch()? {
                    Some(batch) => {
                        self.throttle(batch.bytes.len()).await;
                        let max_payload = client.server_info().max_payload;
                        for mut p in self.messages(batch, max_payload) {
                            p.fut = self.send(&js, &p).await;
                            inflight.push_back(p);
                        }
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            let Some(front) = inflight.front_mut() else {
                if self.stopping() && exhausted {
                    break;
                }
                if last_lag.elapsed() >= Duration::from_millis(100) {
                    last_lag = Instant::now();
                    self.publish_lag(true);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            };
            let outcome = match front.fut.take() {
                Some(fut) => match tokio::time::timeout(self.config.ack_timeout, fut).await {
                    Ok(Ok(ack)) => Ok(ack.duplicate),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no acknowledgement within the ack timeout".into()),
                },
                None => Err("the message could not be sent".into()),
            };
            match outcome {
                Ok(duplicate) => {
                    failures = 0;
                    let p = inflight.pop_front().expect("front");
                    self.acked(p, duplicate);
                }
                Err(e) => {
                    if e.contains("maximum payload") || e.contains("message size exceeds") {
                        return Err(ShipError::Rejected(e));
                    }
                    self.error(format!("batch {} not stored: {e}; retrying", front.id));
                    tokio::time::sleep(backoff(failures, &self.config)).await;
                    failures = failures.saturating_add(1);
                    if self.stopping() && stop_deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    // Send every message in flight again, in order.
                    let n = inflight.len() as u64;
                    self.shared.metrics.lock().retries += n;
                    for p in inflight.iter_mut() {
                        p.sent = Instant::now();
                        p.fut = self.send(&js, p).await;
                    }
                }
            }
        }
        if let Some(pos) = &self.acked {
            save_cursor(&self.config.cursor, &self.id, pos)?;
        }
        let _ = client.flush().await;
        Ok(())
    }

    /// Positions the spool from the cursor and the server's last stored
    /// batch.
    fn position(&mut self, server: Option<(String, u64, bool)>) -> Result<(), ShipError> {
        let cursor = load_cursor(&self.config.cursor);
        match (&server, &cursor) {
            (Some((stream, seal, true)), Some(c)) if c.stream == *stream && c.seal == *seal => {
                if let Some(seal) = seal_ends_at(&self.spool, c)
                    && self.spool.seek(c.file, c.offset).is_ok()
                {
                    self.start_at(c.clone(), seal.unix_nanos);
                    return Ok(());
                }
            }
            _ => {}
        }
        // Find both in the spool, in order.
        let mut probe = Spool::new(&self.config.log).with_sync(false);
        let mut ordinal = 0u64;
        let mut server_at: Option<(u64, Position, usize, u64)> = None;
        let mut cursor_at: Option<u64> = None;
        while let Some(b) = probe.next_batch()? {
            ordinal += 1;
            let stream = b.stream();
            if let Some((s, k, _)) = &server
                && *s == stream
                && *k == b.seal.index
            {
                server_at = Some((ordinal, b.end.clone(), b.bytes.len(), b.seal.unix_nanos));
            }
            if let Some(c) = &cursor
                && c.stream == stream
                && c.seal == b.seal.index
            {
                cursor_at = Some(ordinal);
            }
        }
        let alarm = |this: &Self, why: String| {
            tracing::error!(target: "auditring_nats", gateway = %this.id, "{why}");
            let mut m = this.shared.metrics.lock();
            m.server_behind += 1;
            m.last_error = Some(why);
        };
        match (server, server_at) {
            (Some((s, k, complete)), Some((at, end, len, nanos))) => {
                if let Some(c) = cursor_at
                    && c > at
                {
                    alarm(
                        self,
                        format!(
                            "the server is behind the cursor: it holds up to {s}:{k}, the cursor says more was stored; shipping again from there"
                        ),
                    );
                }
                self.shared.metrics.lock().skipped = if complete { at } else { at - 1 };
                let offset = if complete {
                    end.offset
                } else {
                    end.offset - len as u64
                };
                self.spool.seek(end.file, offset)?;
                if complete {
                    self.start_at(end, nanos);
                }
            }
            (Some((s, k, _)), None) => {
                // Retention deleted the files up to it: the cursor, if it
                // still points into the log, says where to go on.
                let cursor_valid = cursor_at.is_some()
                    && cursor
                        .as_ref()
                        .is_some_and(|c| self.spool.seek(c.file, c.offset).is_ok());
                if cursor_valid && let Some(c) = cursor {
                    self.error(format!("the server's last batch {s}:{k} is no longer in the local log; continuing from the cursor"));
                    self.start_at(c, now_nanos());
                } else {
                    alarm(
                        self,
                        format!(
                            "the server's last batch {s}:{k} is not in the local log, nor is the cursor's: the local log was cut or replaced after shipping; shipping it again from its start (the collector reports the truncation)"
                        ),
                    );
                    self.spool.rewind();
                }
            }
            (None, _) => {
                if cursor_at.is_some() {
                    alarm(self, "the server holds nothing of this gateway, but the cursor says batches were stored: shipping the whole spool again".into());
                }
                self.spool.rewind();
            }
        }
        Ok(())
    }

    /// Starts after a batch the server already holds.
    fn start_at(&mut self, position: Position, seal_unix_nanos: u64) {
        let mut m = self.shared.metrics.lock();
        m.acked_stream = position.stream.clone();
        m.acked_seal = Some(position.seal);
        drop(m);
        self.acked_seal_nanos = seal_unix_nanos;
        self.acked = Some(position);
    }

    /// The messages of a batch: one, or parts below the maximum payload.
    fn messages(&mut self, batch: Batch, max_payload: usize) -> Vec<Pending> {
        let stream = batch.stream();
        self.last_read_seal = Some((stream.clone(), batch.seal.index));
        let limit = if max_payload > HEADROOM * 2 {
            max_payload - HEADROOM
        } else {
            1 << 20
        };
        let total = batch.bytes.len() as u64;
        let payload = Bytes::from(batch.bytes);
        let parts = payload.len().div_ceil(limit).max(1);
        let seq = if batch.seal.count == 0 {
            format!("{}-", batch.seal.seq_start)
        } else {
            format!(
                "{}-{}",
                batch.seal.seq_start,
                batch.seal.seq_start + batch.seal.count - 1
            )
        };
        (0..parts)
            .map(|i| {
                let part = payload.slice(i * limit..((i + 1) * limit).min(payload.len()));
                let mut headers = HeaderMap::new();
                headers.insert(HEADER_GATEWAY, self.config.gateway.as_str());
                headers.insert(HEADER_STREAM, stream.as_str());
                headers.insert(HEADER_SEAL, batch.seal.index.to_string().as_str());
                headers.insert(HEADER_PART, i.to_string().as_str());
                headers.insert(HEADER_PARTS, parts.to_string().as_str());
                headers.insert(HEADER_SEQ, seq.as_str());
                let last = i + 1 == parts;
                Pending {
                    subject: self.subject.clone(),
                    id: crate::message_id(&stream, batch.seal.index, i as u32, parts as u32),
                    headers,
                    payload: part,
                    end: last.then(|| batch.end.clone()),
                    events: if last { batch.seal.count } else { 0 },
                    bytes: if last { total } else { 0 },
                    seal_unix_nanos: batch.seal.unix_nanos,
                    sent: Instant::now(),
                    fut: None,
                }
            })
            .collect()
    }

    async fn send(
        &self,
        js: &async_nats::jetstream::Context,
        p: &Pending,
    ) -> Option<PublishAckFuture> {
        let publish = PublishMessage::build()
            .headers(p.headers.clone())
            .message_id(p.id.as_str())
            .payload(p.payload.clone());
        match js.send_publish(p.subject.clone(), publish).await {
            Ok(f) => Some(f),
            Err(e) => {
                self.error(format!("cannot send {}: {e}", p.id));
                None
            }
        }
    }

    fn acked(&mut self, p: Pending, duplicate: bool) {
        let ack_us = p.sent.elapsed().as_micros() as u64;
        if let Some(h) = self.shared.ack_us.lock().as_mut() {
            let _ = h.record(ack_us.max(1));
        }
        let mut m = self.shared.metrics.lock();
        if duplicate {
            m.duplicates += 1;
        }
        let Some(end) = p.end else { return };
        let lag_ms = now_nanos().saturating_sub(p.seal_unix_nanos) / 1_000_000;
        if let Some(h) = self.shared.lag_ms.lock().as_mut() {
            let _ = h.record(lag_ms.max(1));
        }
        m.acked_batches += 1;
        m.acked_events += p.events;
        m.acked_bytes += p.bytes;
        m.acked_stream = end.stream.clone();
        m.acked_seal = Some(end.seal);
        drop(m);
        self.shared.acked_batches.fetch_add(1, Ordering::Relaxed);
        self.acked_seal_nanos = p.seal_unix_nanos;
        self.acked = Some(end);
        if self.cursor_saved.elapsed() >= Duration::from_millis(100) {
            self.cursor_saved = Instant::now();
            if let Some(pos) = &self.acked
                && let Err(e) = save_cursor(&self.config.cursor, &self.id, pos)
            {
                self.error(format!("cannot save the cursor: {e}"));
            }
        }
    }

    /// The catch-up cap: a token bucket of one second.
    async fn throttle(&mut self, bytes: usize) {
        let Some(rate) = self.config.catch_up_bytes_per_s else {
            return;
        };
        let rate = rate.max(1) as f64;
        let now = Instant::now();
        self.bucket =
            (self.bucket + now.duration_since(self.bucket_at).as_secs_f64() * rate).min(rate);
        self.bucket_at = now;
        self.bucket -= bytes as f64;
        if self.bucket < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.bucket / rate)).await;
        }
    }

    fn publish_lag(&self, caught_up: bool) {
        let Ok((behind, total)) = self.spool.backlog() else {
            return;
        };
        let mut m = self.shared.metrics.lock();
        m.lag_bytes = behind;
        m.spool_bytes = total;
        m.lag_seconds = if (caught_up && behind == 0) || self.acked_seal_nanos == 0 {
            0.0
        } else {
            now_nanos().saturating_sub(self.acked_seal_nanos) as f64 / 1e9
        };
    }

    /// Liveness message, watermark retention and the disk check.
    async fn housekeeping(
        &mut self,
        client: &async_nats::Client,
        bucket: Option<&async_nats::jetstream::stream::Stream>,
    ) {
        self.publish_lag(false);
        let free = free_bytes(&self.config.log);
        let alert = free.is_some_and(|f| f < self.config.disk_alert_free_bytes);
        {
            let mut m = self.shared.metrics.lock();
            if alert && !m.disk_alert {
                tracing::error!(target: "auditring_nats", gateway = %self.id, free = ?free, "the spool's disk is nearly full: when it fills, the Required file sink fails closed and the gateway refuses events");
            }
            m.disk_alert = alert;
        }
        if let Some(bucket) = bucket {
            let subject = crate::watermark_subject(&self.id.partition, &self.id.name);
            match bucket.get_last_raw_message_by_subject(&subject).await {
                Ok(msg) => match std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|t| auditring::Checkpoint::from_json(t).ok())
                {
                    Some(watermark) => self.retain(&watermark),
                    None => self.error("an unreadable watermark in the bucket".into()),
                },
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => self.error(format!("cannot read the watermark: {e}")),
            }
        }
        let m = snapshot(self.shared);
        let beat = serde_json::json!({
            "partition": self.id.partition,
            "gateway": self.id.name,
            "ts_unix_ns": now_nanos(),
            "last_local_seal": self.last_read_seal.as_ref().map(|(s, k)| format!("{s}:{k}")),
            "cursor": self.acked.as_ref().map(|p| format!("{}:{}", p.stream, p.seal)),
            "spool_bytes": m.spool_bytes,
            "lag_bytes": m.lag_bytes,
            "lag_seconds": m.lag_seconds,
            "retries": m.retries,
            "disk_alert": m.disk_alert,
        });
        let _ = client
            .publish(
                crate::heartbeat_subject(&self.id.partition, &self.id.name),
                Bytes::from(beat.to_string()),
            )
            .await;
    }

    /// Deletes rotated files whose every seal is at or below the verified
    /// watermark and behind the cursor; never the active file, never
    /// anything merely acknowledged.
    fn retain(&mut self, watermark: &auditring::Checkpoint) {
        let Ok(files) = self.spool.files() else {
            return;
        };
        let Some((current, _)) = self.spool.position() else {
            return;
        };
        let active = std::fs::metadata(&self.config.log).ok().map(|m| FileId {
            dev: std::os::unix::fs::MetadataExt::dev(&m),
            ino: std::os::unix::fs::MetadataExt::ino(&m),
        });
        for (path, id, _) in files {
            if id == current || Some(id) == active {
                break;
            }
            let Some(last) = last_seal(&path) else { break };
            // The watermark is this gateway's (partition and name), and it
            // counts only for a chain signed with the same key: another
            // log's under this identity (an earlier deployment, a replaced
            // key) never deletes this one's files.
            let same_chain = watermark.key_id == last.key_id;
            let covered = same_chain
                && (watermark.next_seq > last.seq_start.saturating_add(last.count)
                    || (watermark.stream == last.stream && watermark.seal >= last.index));
            if !covered {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(target: "auditring_nats", path = %path.display(), "deleted a spool file below the verified watermark");
                    self.shared.metrics.lock().deleted_files += 1;
                }
                Err(e) => {
                    self.error(format!("cannot delete {}: {e}", path.display()));
                    break;
                }
            }
        }
    }
}

/// The server's last stored message's (stream, seal, batch complete).
fn stored_position(headers: &HeaderMap) -> Option<(String, u64, bool)> {
    let get = |k: &str| headers.get(k).map(|v| v.as_str().to_owned());
    let stream = get(HEADER_STREAM)?;
    let seal = get(HEADER_SEAL)?.parse().ok()?;
    let part: u64 = get(HEADER_PART).and_then(|v| v.parse().ok()).unwrap_or(0);
    let parts: u64 = get(HEADER_PARTS).and_then(|v| v.parse().ok()).unwrap_or(1);
    Some((stream, seal, part + 1 >= parts))
}

/// Whether the cursor's file still holds the cursor's seal line right
/// before the cursor's offset.
fn seal_ends_at(spool: &Spool, c: &Position) -> Option<auditring::format::seal::Seal> {
    use std::os::unix::fs::FileExt;
    let files = spool.files().ok()?;
    let (path, _, len) = files.into_iter().find(|f| f.1 == c.file)?;
    if c.offset > len || c.offset == 0 {
        return None;
    }
    let from = c.offset.saturating_sub(1024);
    let mut buf = vec![0u8; (c.offset - from) as usize];
    let f = std::fs::File::open(path).ok()?;
    f.read_exact_at(&mut buf, from).ok()?;
    last_line_seal(&buf).filter(|s| s.index == c.seal && s.stream.to_string() == c.stream)
}

fn last_line_seal(bytes: &[u8]) -> Option<auditring::format::seal::Seal> {
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    auditring::format::seal::Seal::parse_line(&body[start..])
        .ok()
        .map(|(s, _)| s)
}

/// The last seal of a (rotated, complete) file.
fn last_seal(path: &Path) -> Option<auditring::format::seal::Seal> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(8192);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    last_line_seal(&tail)
}

/// Free bytes of the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, for which all zero bytes is a valid
    // value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid,
    // writable statvfs for the call's duration.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
