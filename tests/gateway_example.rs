//! The README's main command: the gateway example runs, exits 0, prints its
//! latency tables, its log verifies, each action has latencies of its own,
//! and the stage histograms are written beside the log; the gate-check
//! example (a derived custom payload) runs to an intact log.

use std::path::PathBuf;
use std::process::Command;

use auditring::PublicKey;
use auditring::format::line::{Line, read};
use auditring::stats::{Stage, hgrm};
use auditring::verify::{Status, Verifier};
use hdrhistogram::Histogram;

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

    // Each action's latencies come from its own distribution: the p99 of
    // an LLM call is hundreds of milliseconds, that of an HTTP GET well
    // under one; denies are enforced faster than allows. Deterministic
    // under the seed (the decisions are drawn whether or not the ring
    // drops them), so these hold under any timing.
    let mut enforce = std::collections::BTreeMap::<(String, String), Histogram<u64>>::new();
    let mut dispatch = std::collections::BTreeMap::<String, Histogram<u64>>::new();
    let log = std::fs::read(dir.join("audit.jsonl")).unwrap();
    for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(Line::Event(event)) = read(line) else {
            continue;
        };
        let p: serde_json::Value = serde_json::from_str(event.payload).unwrap();
        let action = p["action"].as_str().unwrap().to_owned();
        let decision = p["decision"].as_str().unwrap().to_owned();
        let new = || Histogram::<u64>::new(3).unwrap();
        enforce
            .entry((action.clone(), decision))
            .or_insert_with(new)
            .record(p["enforcement_latency_us"].as_u64().unwrap())
            .unwrap();
        if p["dispatch_status"].as_u64().unwrap_or(0) != 0 {
            dispatch
                .entry(action)
                .or_insert_with(new)
                .record(p["dispatch_latency_us"].as_u64().unwrap())
                .unwrap();
        }
    }
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99);
    let llm = p99(&dispatch["llm.inference"]);
    let get = p99(&dispatch["http.get"]);
    assert!(llm >= 200_000 && get <= 1_000, "llm {llm} us, get {get} us");
    assert!(p99(&dispatch["tool.call"]) > 10 * get);
    for action in ["http.get", "http.post", "tool.call", "llm.inference"] {
        let median = |d: &str| enforce[&(action.to_owned(), d.to_owned())].value_at_quantile(0.5);
        assert!(median("deny") < median("allow"), "{action}");
    }
    let medians: std::collections::BTreeSet<u64> = enforce
        .iter()
        .filter(|((_, d), _)| d == "allow")
        .map(|(_, h)| h.value_at_quantile(0.5))
        .collect();
    assert_eq!(medians.len(), 4, "each action enforces at its own speed");

    // The runtime's stage histograms and the example's record() histogram,
    // beside the log, in the percentile-distribution format.
    for stage in Stage::ALL {
        let text = std::fs::read_to_string(hgrm::stage_file(&dir, stage)).unwrap();
        let d = hgrm::Distribution::parse(&text).unwrap();
        assert!(d.count > 0, "{stage:?}");
    }
    let sealed = std::fs::read_to_string(hgrm::stage_file(&dir, Stage::Sealed)).unwrap();
    assert_eq!(
        hgrm::Distribution::parse(&sealed).unwrap().count,
        report.events,
        "every sealed event's capture-to-sealed latency, written at shutdown"
    );
    let record = std::fs::read_to_string(dir.join("record.hgrm")).unwrap();
    assert_eq!(hgrm::Distribution::parse(&record).unwrap().count, 40_000);
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
