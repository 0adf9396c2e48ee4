//! Helpers shared by the command-line tests: running the binary, a
//! scratch directory, and logs written by the runtime.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use auditring::sink::FileSink;
use auditring::{AuditPayload, Runtime, SigningKey};

/// Runs the `auditring` binary.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditring"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Standard output and standard error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh scratch directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key pair on disk: (private key file, public key file).
pub fn keys(dir: &Path) -> (PathBuf, PathBuf) {
    let key = SigningKey::generate();
    let private = dir.join("signing.pem");
    let public = dir.join("public.pem");
    std::fs::write(&private, key.to_pkcs8_pem().as_bytes()).unwrap();
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    (private, public)
}

/// Appends one closed run of `events` events (batches of 16, `action`
/// set to `action`) to the log at `log`, rotating at `rotate_bytes`.
pub fn write_run(key: &Path, log: &Path, events: u64, action: &str, rotate_bytes: Option<u64>) {
    let key = SigningKey::from_file(key).unwrap();
    let mut sink = FileSink::builder(log);
    if let Some(bytes) = rotate_bytes {
        sink = sink.rotate_bytes(bytes);
    }
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(key)
        .sink(sink.open().unwrap())
        .max_batch(16)
        .max_delay(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action(action);
            e.response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();
}

/// A scratch directory with a key pair and the path of a log in it:
/// (directory, private key, public key, log).
pub fn scene(name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = tempdir(name);
    let (private, public) = keys(&dir);
    let log = dir.join("audit.jsonl");
    (dir, private, public, log)
}
