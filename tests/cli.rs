//! The `auditring` command: keygen, pubkey and verify, with their exit
//! statuses and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use auditring::sink::FileSink;
use auditring::{AuditPayload, Runtime, SigningKey};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_auditring"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_log(key_path: &Path, log: &Path, events: u64) {
    let key = SigningKey::from_file(key_path).unwrap();
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(key)
        .sink(FileSink::open(log).unwrap())
        .max_batch(16)
        .max_delay(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action("db.query");
            e.response_size = i;
        })
        .unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();
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
