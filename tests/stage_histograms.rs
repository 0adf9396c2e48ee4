//! The runtime's stage histograms as `.hgrm` files: written periodically
//! and at shutdown, one per stage, in HdrHistogram's percentile
//! distribution format, with the percentiles the runtime reports itself.

use std::time::{Duration, Instant};

use auditring::sink::MemorySink;
use auditring::stats::{Stage, hgrm};
use auditring::{AuditPayload, BuildError, FullPolicy, Runtime, SigningKey};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read(dir: &std::path::Path, stage: Stage) -> hgrm::Distribution {
    let text = std::fs::read_to_string(hgrm::stage_file(dir, stage)).unwrap();
    hgrm::Distribution::parse(&text).unwrap()
}

#[test]
fn files_at_shutdown_match_the_in_process_percentiles() {
    let dir = scratch("hgrm-shutdown");
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .max_batch(64)
        .full_policy(FullPolicy::Block)
        // Only at shutdown.
        .stage_histograms(&dir, Duration::ZERO)
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    for i in 0..5_000u64 {
        r.record(|e| {
            e.set_action("read");
            e.enforcement_latency_us = i % 100;
        })
        .unwrap();
    }
    drop(r);
    runtime.flush(Duration::from_secs(30)).unwrap();
    assert!(
        !hgrm::stage_file(&dir, Stage::Sealed).exists(),
        "nothing written before shutdown with a zero interval"
    );
    let snapshot = runtime.stats_snapshot();
    runtime.shutdown().unwrap();
    // The close seal adds nothing to the per-event stages.
    for (stage, scale) in [(Stage::Sealed, 1.0), (Stage::QueueWait, 1000.0)] {
        let mine = snapshot
            .stages
            .iter()
            .find(|s| s.stage == stage)
            .unwrap()
            .latency;
        let file = read(&dir, stage);
        assert_eq!(file.count, 5_000, "{stage:?}");
        let back = |v: f64| (v * scale).round() as u64;
        assert_eq!(back(file.value_at_percentile(0.5)), mine.p50, "{stage:?}");
        assert_eq!(back(file.value_at_percentile(1.0)), mine.max, "{stage:?}");
        let p99 = back(file.value_at_percentile(0.99));
        assert!(
            mine.p99 <= p99 && p99 <= mine.max,
            "{stage:?}: {p99} {mine:?}"
        );
    }
    for stage in Stage::ALL {
        assert!(read(&dir, stage).count > 0, "{stage:?}");
    }
    let counters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(hgrm::COUNTERS_FILE)).unwrap())
            .unwrap();
    assert_eq!(counters["accepted"], 5_000);
    assert_eq!(counters["sealed"], 5_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_are_written_periodically_while_running() {
    let dir = scratch("hgrm-periodic");
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .stage_histograms(&dir, Duration::from_millis(20))
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    r.record(|e| {
        e.set_action("read");
    })
    .unwrap();
    runtime.flush(Duration::from_secs(30)).unwrap();
    // Written by the runtime's own thread while it runs: wait (bounded)
    // for a round that saw the sealed event.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let file = std::fs::read_to_string(hgrm::stage_file(&dir, Stage::Sealed))
            .ok()
            .and_then(|t| hgrm::Distribution::parse(&t).ok());
        if file.is_some_and(|d| d.count == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "no periodic write");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(r);
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_directory_is_refused_at_build() {
    let file = scratch("hgrm-not-a-dir");
    std::fs::write(&file, b"a file").unwrap();
    let err = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .stage_histograms(file.join("sub"), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::StageHistograms { .. }), "{err}");
    assert!(err.to_string().contains("stage_histograms"), "{err}");
    std::fs::remove_file(&file).unwrap();
}
