//! The `auditring` command: keygen, pubkey and verify, with their exit
//! statuses and error messages.

mod common;

use std::path::Path;

use auditring::sink::FileSink;
use auditring::{Runtime, SigningKey};
use common::{run, tempdir, text};

fn write_log(key_path: &Path, log: &Path, events: u64) {
    common::write_run(key_path, log, events, "db.query", None);
}

#[test]
fn keygen_pubkey_verify_round_trip() {
    let dir = tempdir("round-trip");
    let key = dir.join("signing.pem");
    let key_s = key.to_str().unwrap();
    let out = run(&["keygen", "--out", key_s]);
    assert!(out.status.success(), "{:?}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = run(&["keygen", "--out", key_s]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).1.contains("refusing to overwrite"));

    let out = run(&["pubkey", "--key", key_s]);
    assert!(out.status.success());
    let public = dir.join("public.pem");
    std::fs::write(&public, &out.stdout).unwrap();
    assert!(text(&out).0.starts_with("-----BEGIN PUBLIC KEY-----"));

    let log = dir.join("audit.jsonl");
    write_log(&key, &log, 50);
    let public_s = public.to_str().unwrap();
    let log_s = log.to_str().unwrap();
    let out = run(&["verify", "--key", public_s, log_s]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("INTACT: "), "{stdout}");

    let out = run(&["verify", "--json", "--key", public_s, log_s]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "intact");
    assert_eq!(v["report"]["events"], 50);

    // One changed byte: tampered, exit 1, the finding names the lines.
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(8).position(|w| w == b"db.query").unwrap();
    bytes[at] = b'D';
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = run(&["verify", "--key", public_s, tampered.to_str().unwrap()]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("TAMPER     modified"), "{stdout}");
    assert!(stdout.contains("TAMPERED: "), "{stdout}");

    // Truncated after a seal: incomplete, exit 3.
    let text_log = String::from_utf8(std::fs::read(&log).unwrap()).unwrap();
    let cut: String = text_log
        .lines()
        .take(18)
        .map(|l| format!("{l}\n"))
        .collect();
    let truncated = dir.join("truncated.jsonl");
    std::fs::write(&truncated, cut).unwrap();
    let out = run(&["verify", "--key", public_s, truncated.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    assert!(text(&out).0.contains("missing_close"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_and_key_errors_exit_2_with_the_fix() {
    let dir = tempdir("errors");
    let key = dir.join("k.pem");
    assert!(
        run(&["keygen", "--out", key.to_str().unwrap()])
            .status
            .success()
    );

    // A private key where a public one is expected.
    let out = run(&[
        "verify",
        "--key",
        key.to_str().unwrap(),
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("auditring pubkey"),
        "{:?}",
        text(&out)
    );

    // A missing log file.
    let public = dir.join("p.pem");
    std::fs::write(
        &public,
        run(&["pubkey", "--key", key.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let out = run(&[
        "verify",
        "--key",
        public.to_str().unwrap(),
        "/nonexistent/audit.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("/nonexistent/audit.jsonl"));

    // A public key where a private one is needed.
    let out = run(&["pubkey", "--key", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("private key"));

    // An unwritable key path.
    let out = run(&["keygen", "--out", "/nonexistent/dir/key.pem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("cannot create /nonexistent/dir/key.pem")
    );

    // Garbage log: tampered (malformed lines), never a panic.
    let garbage = dir.join("garbage.jsonl");
    std::fs::write(&garbage, b"\x00\x01\x02 not a log\n\xff\xfe\n").unwrap();
    let out = run(&[
        "verify",
        "--key",
        public.to_str().unwrap(),
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));

    // An empty log: incomplete.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let out = run(&[
        "verify",
        "--key",
        public.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));

    // No arguments: clap's usage error, status 2.
    assert_eq!(run(&["verify"]).status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stats_plot_and_tail() {
    let dir = tempdir("stats");
    let key = dir.join("k.pem");
    assert!(
        run(&["keygen", "--out", key.to_str().unwrap()])
            .status
            .success()
    );
    let public = dir.join("p.pem");
    std::fs::write(
        &public,
        run(&["pubkey", "--key", key.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let log = dir.join("audit.jsonl");
    write_log(&key, &log, 300);
    let (public_s, log_s) = (public.to_str().unwrap(), log.to_str().unwrap());

    let svg = dir.join("plot.svg");
    let out = run(&[
        "stats",
        "--key",
        public_s,
        "--plot",
        svg.to_str().unwrap(),
        "--distribution",
        log_s,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("db.query"), "{stdout}");
    assert!(stdout.contains("300 events with a latency"), "{stdout}");
    assert!(stdout.contains("log verified: intact"));
    assert!(
        stdout.contains("Value     Percentile TotalCount"),
        "distribution printed"
    );
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert!(plot.contains("polyline"));

    // A tampered log: no statistics, and the verify status.
    let bytes = std::fs::read_to_string(&log)
        .unwrap()
        .replacen("db.query", "db.qoery", 1);
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, bytes).unwrap();
    let out = run(&["stats", "--key", public_s, tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("TAMPERED"), "{:?}", text(&out));
    assert!(!text(&out).0.contains("db.q"), "{:?}", text(&out));

    // Not an auditring log.
    let other = dir.join("other.txt");
    std::fs::write(&other, "hello\nworld\n").unwrap();
    let out = run(&["stats", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not an auditring log"));

    let out = run(&["tail", "-n", "3", log_s]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.lines().last().unwrap().contains("seal #"),
        "{stdout}"
    );
    assert!(stdout.contains("db.query"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A payload whose every text field an audited agent controls.
#[derive(Default, auditring::Payload)]
struct Hostile {
    action: String,
    agent_id: String,
    resource: String,
    decision: String,
    deny_reason: String,
    enforcement_latency_us: u64,
}

impl auditring::stats::LatencySource for Hostile {}

/// Escape sequences an agent might put in its fields: erase line and
/// cursor moves (CSI), a window title (OSC ... BEL), a carriage return
/// that overwrites the line, colour, a C1 CSI, DEL, a right-to-left
/// override and an isolate, and a newline that forges a record.
const NASTY: [&str; 6] = [
    "\x1b[2K\x1b[1Gdb.query",
    "https://x/\x1b]0;owned\x07\rallow",
    "\x1b[31mdeny\x1b[0m",
    "nope\u{9b}2J\u{7f}\u{202e}exe.txt\u{2066}",
    "agent\x08\x08\x00\u{85}",
    "line\nfake record\ttab",
];

/// Bytes that must not reach a terminal from log content: every C0
/// control except the newlines the tool itself prints, DEL, C1 controls,
/// bidirectional overrides and isolates.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        assert!(
            b == b'\n' || (b >= 0x20 && b != 0x7f),
            "{what}: raw control byte {b:#04x} at {i}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = String::from_utf8_lossy(bytes);
    for c in text.chars() {
        assert!(
            !matches!(c, '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
            "{what}: raw {c:?} in {text:?}"
        );
    }
}

#[test]
fn tail_and_stats_never_pass_escape_sequences_to_the_terminal() {
    let dir = tempdir("escapes");
    let key_path = dir.join("k.pem");
    assert!(
        run(&["keygen", "--out", key_path.to_str().unwrap()])
            .status
            .success()
    );
    let public = dir.join("p.pem");
    std::fs::write(
        &public,
        run(&["pubkey", "--key", key_path.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let log = dir.join("audit.jsonl");
    let rt = Runtime::<Hostile>::builder()
        .signing_key(SigningKey::from_file(&key_path).unwrap())
        .sink(FileSink::open(&log).unwrap())
        .max_batch(4)
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for i in 0..NASTY.len() {
        rec.record(|e| {
            e.action = NASTY[i].to_owned();
            e.agent_id = NASTY[(i + 4) % NASTY.len()].to_owned();
            e.resource = NASTY[(i + 1) % NASTY.len()].to_owned();
            e.decision = NASTY[(i + 2) % NASTY.len()].to_owned();
            e.deny_reason = NASTY[(i + 3) % NASTY.len()].to_owned();
            e.enforcement_latency_us = 10 + i as u64;
        })
        .unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();
    // A line that is not a record at all, with raw escape bytes.
    let mut with_garbage = std::fs::read(&log).unwrap();
    with_garbage.extend_from_slice(b"\x1b]0;title\x07 \x1b[2J\xc2\x9b not json\r\n");
    let garbage_log = dir.join("garbage.jsonl");
    std::fs::write(&garbage_log, with_garbage).unwrap();
    let (log_s, public_s) = (log.to_str().unwrap(), public.to_str().unwrap());
    let svg = dir.join("plot.svg");

    let runs: [(&str, Vec<&str>); 5] = [
        ("tail", vec!["tail", "-n", "100", log_s]),
        (
            "tail with garbage",
            vec!["tail", "-n", "100", garbage_log.to_str().unwrap()],
        ),
        ("stats", vec!["stats", log_s]),
        (
            "stats --key --distribution --plot",
            vec![
                "stats",
                "--key",
                public_s,
                "--distribution",
                "--plot",
                svg.to_str().unwrap(),
                log_s,
            ],
        ),
        (
            "stats of a tampered log",
            vec!["stats", "--key", public_s, garbage_log.to_str().unwrap()],
        ),
    ];
    for (what, args) in runs {
        let out = run(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{what}: {:?}",
            text(&out)
        );
        assert_terminal_safe(&format!("{what} stdout"), &out.stdout);
        assert_terminal_safe(&format!("{what} stderr"), &out.stderr);
        let (stdout, _) = text(&out);
        if what.starts_with("tail") {
            // The content is shown, escaped, not dropped.
            assert!(stdout.contains(r"\x1b[2K\x1b[1Gdb.query"), "{stdout}");
            assert!(stdout.contains(r"\x1b]0;owned\x07\rallow"), "{stdout}");
            assert!(
                stdout.contains(r"\u{9b}2J\x7f\u{202e}exe.txt\u{2066}"),
                "{stdout}"
            );
            assert!(stdout.contains(r"line\nfake record\ttab"), "{stdout}");
            let records = std::fs::read(args[3])
                .unwrap()
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            assert_eq!(
                stdout.lines().count(),
                records,
                "one line per record: {stdout}"
            );
        } else if what == "stats of a tampered log" {
            // Nothing of a tampered log is shown as its content.
            assert_eq!(out.status.code(), Some(1));
            assert!(!stdout.contains("db.query"), "{stdout}");
        } else {
            assert!(stdout.contains(r"\x1b[2K"), "{stdout}");
        }
        if what == "tail with garbage" {
            assert!(
                stdout.contains(r"(not a record) \x1b]0;title\x07 \x1b[2J\u{9b} not json\r"),
                "{stdout}"
            );
        }
    }
    let plot = std::fs::read(&svg).unwrap();
    assert_terminal_safe("plot", &plot);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("key-mode");
    let key = dir.join("k.pem");
    let key_s = key.to_str().unwrap();
    assert!(run(&["keygen", "--out", key_s]).status.success());
    // 0600, as keygen writes it: no warning.
    let out = run(&["pubkey", "--key", key_s]);
    assert!(out.status.success());
    assert_eq!(text(&out).1, "", "no warning for a private key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["pubkey", "--key", key_s]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "a warning, not an error: {stderr}");
    assert!(stdout.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(stderr.starts_with("auditring: warning: "), "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {key_s}")), "{stderr}");
    // The flag that shows more does not hide it.
    let out = run(&["-v", "pubkey", "--key", key_s]);
    assert!(text(&out).1.contains("chmod 600"));
    std::fs::remove_dir_all(&dir).unwrap();
}
