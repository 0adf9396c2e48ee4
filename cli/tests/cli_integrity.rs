//! The command line on the integrity promises: checkpoints (`head`,
//! `verify --expect`, `--checkpoint-out`), incremental verification
//! (`--resume`, `--state-out`), rotated files found from the active path,
//! `stats` and `tail` that show nothing of a tampered log, and a closed
//! output that ends `verify` quietly.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{run, scene, text, write_run};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn head_and_expect_catch_a_deleted_trailing_run() {
    let (dir, private, public, log) = scene("anchor");
    write_run(&private, &log, 40, "db.query", None);
    let first_len = std::fs::metadata(&log).unwrap().len();
    write_run(&private, &log, 40, "db.query", None);

    let out = run(&["head", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let anchor = dir.join("anchor.json");
    std::fs::write(&anchor, &out.stdout).unwrap();
    let checkpoint = auditring::Checkpoint::from_json(&text(&out).0).unwrap();

    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--expect",
        s(&anchor),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // Delete the second run: the log alone still looks whole.
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..first_len as usize]).unwrap();
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--expect",
        s(&anchor),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("truncated"), "{stdout}");
    assert!(
        stdout.contains(&format!("seal #{}", checkpoint.seal)),
        "{stdout}"
    );

    // --checkpoint-out writes what `head` prints.
    std::fs::write(&log, &bytes).unwrap();
    let out_path = dir.join("reached.json");
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--checkpoint-out",
        s(&out_path),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        std::fs::read(&anchor).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_reads_only_what_was_appended_and_agrees_with_a_full_pass() {
    let (dir, private, public, log) = scene("resume");
    let state = dir.join("state.json");
    write_run(&private, &log, 100, "db.query", Some(8_000));
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--state-out",
        s(&state),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let full_bytes: u64 = auditring::verify::log_files(&log)
        .unwrap()
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();

    // More runs, with rotation: the state's file was renamed meanwhile.
    write_run(&private, &log, 100, "db.query", Some(8_000));
    let out = run(&[
        "verify",
        "--json",
        "--key",
        s(&public),
        "--resume",
        s(&state),
        "--state-out",
        s(&state),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let full = run(&["verify", "--json", "--key", s(&public), s(&log)]);
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(resumed["status"], full["status"]);
    assert_eq!(
        resumed["report"]["sealed_events"],
        full["report"]["sealed_events"]
    );
    assert_eq!(resumed["report"]["events"], 200);
    assert_eq!(full["report"]["bytes"], resumed["report"]["bytes"]);
    assert!(full_bytes > 0);

    // Nothing new: the same verdict from the state alone.
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--resume",
        s(&state),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotated_files_are_found_in_chain_order_and_a_missing_one_is_named() {
    let (dir, private, public, log) = scene("rotated");
    write_run(&private, &log, 300, "db.query", Some(20_000));
    let files = auditring::verify::log_files(&log).unwrap();
    assert!(files.len() >= 4, "{files:?}");
    assert_eq!(files.last().unwrap(), &log);
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // Renaming files does not change their order: the chain decides.
    let second = files[1].clone();
    let renamed = dir.join("audit.jsonl.999");
    std::fs::rename(&second, &renamed).unwrap();
    let reordered = auditring::verify::log_files(&log).unwrap();
    assert_eq!(reordered[1], renamed, "{reordered:?}");
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // A file missing in the middle: its seals are missing, where it was.
    std::fs::remove_file(&renamed).unwrap();
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("missing_seals"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stats_and_tail_show_nothing_of_a_tampered_log() {
    let (dir, private, public, log) = scene("show");
    write_run(&private, &log, 40, "db.query", None);
    // A forged event put before the first seal.
    let bytes = std::fs::read(&log).unwrap();
    let text_log = String::from_utf8(bytes.clone()).unwrap();
    let event = text_log
        .lines()
        .nth(1)
        .unwrap()
        .replace("db.query", "forged.action");
    std::fs::write(&log, format!("{event}\n{text_log}")).unwrap();

    for args in [
        vec!["stats", "--key", s(&public), s(&log)],
        vec!["tail", "--key", s(&public), s(&log)],
        vec!["head", "--key", s(&public), s(&log)],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {:?}", text(&out));
        let (stdout, stderr) = text(&out);
        assert!(!stdout.contains("forged.action"), "{args:?}: {stdout}");
        assert!(!stdout.contains("db.query"), "{args:?}: {stdout}");
        assert!(stderr.contains("TAMPERED"), "{args:?}: {stderr}");
    }

    // An unsealed tail is not shown as the log's content either: cut the
    // close seal off (a crash) and let the now unsealed events say so.
    let mut kept: Vec<String> = text_log.lines().map(str::to_owned).collect();
    let close = kept.pop().unwrap();
    assert!(close.contains(r#""reason":"close""#));
    let last_seal = kept
        .iter()
        .rposition(|l| l.contains(r#""kind":"seal""#))
        .unwrap();
    for line in &mut kept[last_seal + 1..] {
        *line = line.replace("db.query", "unsealed.action");
    }
    assert_eq!(kept.len() - last_seal - 1, 8);
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let out = run(&["stats", "--key", s(&public), s(&log)]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(!stdout.contains("unsealed.action"), "{stdout}");
    assert!(stdout.contains("32 events"), "{stdout}");
    let out = run(&["tail", "-n", "100", "--key", s(&public), s(&log)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(!stdout.contains("unsealed.action"), "{stdout}");
    assert!(stdout.contains("db.query"), "{stdout}");
    assert!(stderr.contains("8 line(s) after the last seal"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_output_ends_verify_without_a_panic() {
    let (dir, private, public, log) = scene("pipe");
    write_run(&private, &log, 200, "db.query", None);
    // Many findings: every event line duplicated.
    let text_log = std::fs::read_to_string(&log).unwrap();
    let doubled: String = text_log
        .lines()
        .flat_map(|l| [l, l])
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, doubled).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditring"))
        .args(["verify", "--key", s(&public), s(&log)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe, like `| head -c 1`.
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the verdict's exit code: {stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deleting_the_newest_files_is_incomplete_alone_and_truncated_against_the_anchor() {
    let (dir, private, public, log) = scene("newest");
    write_run(&private, &log, 300, "db.query", Some(20_000));
    let anchor = dir.join("anchor.json");
    let out = run(&["head", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    std::fs::write(&anchor, &out.stdout).unwrap();
    let files = auditring::verify::log_files(&log).unwrap();
    assert!(files.len() >= 4, "{files:?}");

    // The active file and the newest rotated file deleted: the log now ends
    // on a rotate seal, which the log alone reads as incomplete.
    std::fs::remove_file(&files[files.len() - 1]).unwrap();
    std::fs::remove_file(&files[files.len() - 2]).unwrap();
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    assert!(text(&out).0.contains("missing_close"), "{:?}", text(&out));
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--expect",
        s(&anchor),
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).0.contains("truncated"), "{:?}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_writer_process_is_refused_and_the_log_stays_intact() {
    use auditring::sink::FileSink;
    use auditring::{AuditPayload, Runtime, SigningKey};
    let (dir, private, public, log) = scene("second-process");
    let key = SigningKey::from_file(&private).unwrap();
    let first = Runtime::<AuditPayload>::builder()
        .signing_key(key)
        .sink(FileSink::open(&log).unwrap())
        .build()
        .unwrap();
    let mut rec = first.recorder().unwrap();
    for _ in 0..50 {
        rec.record(|e| {
            e.set_action("first");
        })
        .unwrap();
    }
    let out = run(&[
        "demo",
        "--events",
        "10",
        "--key",
        s(&private),
        "--out",
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("in use by another writer"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    drop(rec);
    first.shutdown().unwrap();
    let out = run(&["verify", "--key", s(&public), s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("50 events"), "{:?}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
