//! The README's main command: the gateway example runs, exits 0, prints its
//! latency tables, and its log verifies; the gate-check example (a derived
//! custom payload) runs to an intact log.

use std::path::PathBuf;
use std::process::Command;

use auditring::PublicKey;
use auditring::verify::{Status, Verifier};

/// `cargo test` builds the examples next to the test binaries, as
/// `examples/<name>-<hash>`: the newest such executable.
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let examples = dir.join("examples");
    let prefix = format!("{name}-");
    std::fs::read_dir(&examples)
        .expect("the examples directory")
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.starts_with(&prefix) && !file.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| examples.join(name))
}

#[test]
fn gateway_example_runs_and_its_log_verifies() {
    let bin = example("gateway");
    assert!(bin.exists(), "{} is built by `cargo test`", bin.display());
    let dir = std::env::temp_dir().join(format!("auditring-gateway-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(&bin)
        .env("GATEWAY_WORKERS", "2")
        .env("GATEWAY_EVENTS", "20000")
        .env("GATEWAY_RATE", "20000")
        .env("GATEWAY_DIR", &dir)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "record() (hot path)",
        "capture_to_sealed",
        "queue_wait",
        "accepted=",
        "log: ",
        "verify: ",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Check the log independently of the example's own verification.
    let public = PublicKey::from_file(dir.join("audit-public.pem")).unwrap();
    let report = Verifier::new([public])
        .verify_files(&[dir.join("audit.jsonl")], |_| {})
        .unwrap();
    assert_ne!(report.status(), Status::Tampered, "{:#?}", report.findings);
    assert_eq!(report.events + report.dropped, 40_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gate_check_example_runs_its_derived_payload_to_an_intact_log() {
    let bin = example("gate_check");
    assert!(bin.exists(), "{} is built by `cargo test`", bin.display());
    let out = Command::new(&bin).output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 events, log intact"), "{stdout}");
    assert!(stdout.contains(r#""obligations":[]"#), "{stdout}");
}
