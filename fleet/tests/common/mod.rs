//! Helpers of the fleet tests: a real nats-server (`server.rs`), gateway
//! logs written by the runtime, and what the server and the spool hold.

#![allow(dead_code)]

mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use server::*;

use auditring::sink::FileSink;
use auditring::{AuditPayload, Runtime, RuntimeGuard, SigningKey};

/// A directory for a test's gateway logs and archive.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn runtime(key: &SigningKey, log: &Path, rotate: Option<u64>) -> RuntimeGuard<AuditPayload> {
    let mut sink = FileSink::builder(log);
    if let Some(bytes) = rotate {
        sink = sink.rotate_bytes(bytes);
    }
    Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(sink.open().unwrap())
        .lane_capacity(16384)
        .max_producers(2)
        .heartbeat_interval(Some(Duration::from_millis(500)))
        .build()
        .unwrap()
}

/// Records `n` events at about `rate` per second (0: as fast as possible);
/// returns how many were refused or dropped.
pub fn record(runtime: &Runtime<AuditPayload>, n: u64, rate: u64) -> u64 {
    let mut recorder = runtime.recorder().unwrap();
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..n {
        if rate > 0 && i % 100 == 0 {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let r = recorder.record(|e| {
            e.set_session_id("sess-1")
                .set_agent_id("agent-7")
                .set_action("http.get")
                .set_resource("https://api.example.com/v1/orders/12345");
            e.enforcement_latency_us = i % 100;
        });
        if r.is_err() {
            failed += 1;
        }
    }
    failed
}

/// Every local batch of the log, in order, with its bytes.
pub fn local_batches(log: &Path) -> Vec<auditring_nats::Batch> {
    let mut spool = auditring_nats::Spool::new(log).with_sync(false);
    let mut out = Vec::new();
    while let Some(b) = spool.next_batch().unwrap() {
        out.push(b);
    }
    out
}

/// The concatenated bytes of the local log's files, in chain order.
pub fn local_bytes(log: &Path) -> Vec<u8> {
    local_batches(log)
        .into_iter()
        .flat_map(|b| b.bytes)
        .collect()
}

/// Polls `f` until it is true, up to the deadline.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` to its end on a runtime of its own (the tests talk to the
/// server directly with `async-nats`).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Messages the stream holds on `subject`.
pub fn stored_messages(url: &str, subject: &str) -> u64 {
    block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        // No stream yet: nothing stored.
        let Ok(stream) = js.get_stream("AUDIT").await else {
            return 0;
        };
        let info = stream.info_with_subjects(subject).await.unwrap();
        use futures_util::TryStreamExt;
        let all: Vec<(String, usize)> = info.try_collect().await.unwrap();
        all.into_iter().map(|(_, n)| n as u64).sum()
    })
}

/// The server `.ci/run` started (its URL in `AUDITRING_NATS_URL`), or one
/// of the test's own when there is none. Tests that kill or reconfigure
/// the server always start their own.
pub struct AnyServer {
    url: String,
    _own: Option<Server>,
}

impl AnyServer {
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

pub fn shared_or_start(name: &str) -> AnyServer {
    match std::env::var("AUDITRING_NATS_URL") {
        Ok(url) if !url.is_empty() => {
            binary(); // fail early and clearly when the server is missing
            AnyServer { url, _own: None }
        }
        _ => {
            let own = Server::start(name);
            AnyServer {
                url: own.url(),
                _own: Some(own),
            }
        }
    }
}

/// A partition of this test process's own, so tests sharing a server never
/// see each other's (or an earlier run's) messages.
pub fn partition(name: &str) -> String {
    format!("{name}{}", std::process::id())
}
