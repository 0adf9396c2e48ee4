//! A real nats-server for the fleet tests: started on a free loopback
//! port with JetStream and its store in a temporary directory, killed and
//! restarted by its pid. A missing `nats-server` fails the test.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditring::sink::FileSink;
use auditring::{AuditPayload, Runtime, SigningKey};

/// Generous: the machine is small and shared.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub struct Server {
    pub port: u16,
    pub monitor: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> String {
    let bin = std::env::var("AUDITRING_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the fleet tests need a real `nats-server` (2.9 or later, with JetStream) on PATH or in AUDITRING_NATS_SERVER: `apt-get install -y nats-server`"
    );
    bin
}

impl Server {
    pub fn start(name: &str) -> Server {
        Self::start_with(name, &[])
    }

    /// `config` lines go to a configuration file (e.g. `max_payload: 65536`).
    pub fn start_with(name: &str, config: &[&str]) -> Server {
        let dir =
            std::env::temp_dir().join(format!("auditring-nats-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut extra = Vec::new();
        if !config.is_empty() {
            let conf = dir.join("server.conf");
            std::fs::write(&conf, config.join("\n")).unwrap();
            extra.push("-c".into());
            extra.push(conf.display().to_string());
        }
        let mut server = Server {
            port: free_port(),
            monitor: free_port(),
            dir,
            extra,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let store = self.dir.join("store");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let child = Command::new(binary())
            .args(&self.extra)
            .args(["-js", "-sd"])
            .arg(&store)
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-m")
            .arg(self.monitor.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        self.wait_healthy();
    }

    /// Polls the health endpoint until JetStream is ready.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.monitor)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not become healthy: see {}",
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, by pid.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory for a test's gateway logs and archive.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn runtime(key: &SigningKey, log: &Path, rotate: Option<u64>) -> Runtime<AuditPayload> {
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

/// Messages the stream holds on `subject`.
pub fn stored_messages(url: &str, subject: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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

/// A child process killed (SIGKILL) when dropped, so a failing test leaves
/// none behind.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
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
