//! A real nats-server for tests: started on a free loopback port with
//! JetStream and its store in a temporary directory, killed and restarted
//! by its pid. A missing `nats-server` fails the test. Shared by the fleet
//! tests and the command's (`#[path]`): it uses the standard library only.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine is small and shared.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub struct Server {
    pub port: u16,
    pub monitor: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

/// A loopback port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The nats-server binary; fails the test when there is none.
pub fn binary() -> String {
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
