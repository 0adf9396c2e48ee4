//! `auditring ship` and `auditring collect` as the real binary against a
//! real nats-server: shipping a closed log and collecting it, stopping on
//! SIGTERM and SIGINT, a gateway signed by another key, a gateway that never
//! ships, and a shipper with no server to reach. A missing `nats-server`
//! fails these tests.

mod common;
#[path = "../../fleet/tests/common/server.rs"]
mod server;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use server::{DEADLINE, Server};

/// A running `auditring`: its standard output and error gathered as they
/// come, killed (SIGKILL) if a failing test leaves it running.
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn gather(mut from: impl Read + Send + 'static, into: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditring"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let (out, err) = (Arc::default(), Arc::default());
    let readers = vec![
        gather(child.stdout.take().unwrap(), &out),
        gather(child.stderr.take().unwrap(), &err),
    ];
    Proc {
        child,
        out,
        err,
        readers,
    }
}

impl Proc {
    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill takes no pointers; the pid is our own child's, not
        // yet waited for, so it names that process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits until `ready(stdout, stderr)` while the process runs.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ready(&self.stdout(), &self.stderr()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before {what}:\n{}{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting: {what}\n{}{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end: its status, standard output and error.
    fn finish(&mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not end:\n{}{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.stdout(), self.stderr())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A closed log of `events` events, `max_batch` a seal, written by
/// `auditring demo`.
fn demo_log(key: &Path, log: &Path, events: u64, max_batch: u64) {
    let (events, max_batch) = (events.to_string(), max_batch.to_string());
    let out = common::run(&[
        "demo",
        "--key",
        s(key),
        "--out",
        s(log),
        "--events",
        &events,
        "--max-batch",
        &max_batch,
        "--fsync",
        "never",
    ]);
    assert!(out.status.success(), "{:?}", common::text(&out));
}

/// `ship --until-closed`, to its end: its final report line.
fn ship_closed(url: &str, log: &Path, gateway: &str, more: &[&str]) -> Fields {
    let mut args = vec![
        "ship",
        "--url",
        url,
        "--gateway",
        gateway,
        "--report-s",
        "0",
        "--until-closed",
    ];
    args.extend_from_slice(more);
    args.push(s(log));
    let (status, _, err) = spawn(&args).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    final_line(&err)
}

/// The `key=value` fields of a report line.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in the report line"))
    }

    fn number(&self, key: &str) -> u64 {
        self.get(key).parse().unwrap()
    }
}

/// The last `ship` report line of standard error.
fn final_line(stderr: &str) -> Fields {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("ship "))
        .unwrap_or_else(|| panic!("no report line:\n{stderr}"));
    Fields(
        line.split_whitespace()
            .skip(1)
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// The JSON reports on standard output (`collect --json`), in order.
fn reports(stdout: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

fn gateway<'a>(report: &'a Value, partition: &str, name: &str) -> Option<&'a Value> {
    report["gateways"]
        .as_array()?
        .iter()
        .find(|g| g["partition"] == partition && g["gateway"] == name)
}

/// Runs `collect --until-idle-s 2 --json` again and again (each run goes on
/// where the last one stopped) until `done` holds for its report: that
/// run's exit status and report.
fn collect_until(
    url: &str,
    archive: &Path,
    more: &[&str],
    done: impl Fn(&Value) -> bool,
) -> (Option<i32>, Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut args = vec![
            "collect",
            "--url",
            url,
            "--archive",
            s(archive),
            "--until-idle-s",
            "2",
            "--report-s",
            "0",
            "--json",
        ];
        args.extend_from_slice(more);
        let (status, out, err) = spawn(&args).finish();
        let report = reports(&out)
            .pop()
            .unwrap_or_else(|| panic!("no report ({status}):\n{out}{err}"));
        if done(&report) {
            return (status.code(), report);
        }
        assert!(
            Instant::now() < deadline,
            "the collector never got there; last report:\n{report:#}\n{err}"
        );
    }
}

/// The sealed batches of a log.
fn local_batches(log: &Path) -> u64 {
    let mut spool = auditring_nats::Spool::new(log).with_sync(false);
    let mut n = 0;
    while spool.next_batch().unwrap().is_some() {
        n += 1;
    }
    n
}

fn events(report: &Value, partition: &str, name: &str) -> u64 {
    gateway(report, partition, name).map_or(0, |g| g["events"].as_u64().unwrap())
}

/// The archive verifies offline with the gateway's key, and is the log.
fn assert_archive_is_the_log(archive_file: &Path, log: &Path, public: &Path) {
    assert!(
        std::fs::read(archive_file).unwrap() == std::fs::read(log).unwrap(),
        "{} is not the gateway's log",
        archive_file.display()
    );
    let out = common::run(&["verify", "--key", s(public), s(archive_file)]);
    let (stdout, stderr) = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("INTACT: "), "{stdout}");
}

#[test]
fn a_closed_log_shipped_and_collected_is_reported_ok_and_its_archive_verifies() {
    let server = Server::start("cli-closed");
    let url = server.url();
    let (dir, private, public, log) = common::scene("fleet-closed");
    demo_log(&private, &log, 1_000, 100);
    let shipped = ship_closed(&url, &log, "gw-1", &["--partition", "eu"]);
    assert_eq!(shipped.get("gateway"), "eu/gw-1");
    assert_eq!(shipped.number("events"), 1_000);
    assert_eq!(shipped.number("server_behind"), 0);

    let archive = dir.join("archive");
    let pinned = format!("eu/gw-1={}", s(&public));
    let (code, report) = collect_until(&url, &archive, &["--gateway", &pinned], |r| {
        events(r, "eu", "gw-1") >= 1_000
    });
    assert_eq!(code, Some(0), "{report:#}");
    let g = gateway(&report, "eu", "gw-1").unwrap();
    assert_eq!(g["status"], "ok", "{g:#}");
    assert_eq!(g["events"], 1_000, "{g:#}");
    assert_eq!(g["expected"], true, "{g:#}");
    let file = archive.join("eu").join("gw-1").join("audit.jsonl");
    assert_eq!(g["archive"], s(&file), "{g:#}");
    assert_archive_is_the_log(&file, &log, &public);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_ship_mid_backlog_and_a_restart_ships_the_rest_exactly_once() {
    let server = Server::start("cli-sigterm");
    let url = server.url();
    let (dir, private, public, log) = common::scene("fleet-sigterm");
    let total = 20_000;
    demo_log(&private, &log, total, 500);
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        size > 8 << 20,
        "{size} bytes: too few for a backlog at 1 MiB/s"
    );
    // At 1 MiB/s the log takes several seconds to ship: it is signalled
    // as soon as its cursor shows a batch acknowledged.
    let cursor = dir.join("audit.jsonl.ship-cursor");
    let mut ship = spawn(&[
        "ship",
        "--url",
        &url,
        "--gateway",
        "gw-t",
        "--report-s",
        "0",
        "--catch-up-mib-s",
        "1",
        "--stop-timeout-s",
        "0",
        s(&log),
    ]);
    ship.wait_for("a saved cursor", |_, _| cursor.exists());
    ship.signal(libc::SIGTERM);
    let (status, _, err) = ship.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    let first = final_line(&err);
    assert_eq!(first.get("gateway"), "p0/gw-t");
    let shipped = first.number("events");
    assert!(
        shipped > 0 && shipped < total,
        "stopped mid-backlog: {shipped} of {total} events"
    );
    // The cursor is the last acknowledged batch.
    let saved: Value = serde_json::from_slice(&std::fs::read(&cursor).unwrap()).unwrap();
    assert_eq!(saved["partition"], "p0", "{saved}");
    assert_eq!(saved["gateway"], "gw-t", "{saved}");
    let (stream, seal) = first.get("acked").split_once(':').unwrap();
    assert_eq!(saved["position"]["stream"], stream, "{saved}");
    assert_eq!(
        saved["position"]["seal"],
        seal.parse::<u64>().unwrap(),
        "{saved}"
    );

    let rest = ship_closed(&url, &log, "gw-t", &[]).number("events");
    // At most the one batch in flight at the signal was stored without its
    // acknowledgement; the restart finds it stored and does not send it.
    assert!(shipped + rest <= total, "{shipped} + {rest} events shipped");
    assert!(
        total - (shipped + rest) <= 500,
        "{shipped} + {rest} events shipped"
    );

    let archive = dir.join("archive");
    let pinned = format!("gw-t={}", s(&public));
    let (code, report) = collect_until(&url, &archive, &["--gateway", &pinned], |r| {
        events(r, "p0", "gw-t") >= total
    });
    assert_eq!(code, Some(0), "{report:#}");
    let g = gateway(&report, "p0", "gw-t").unwrap();
    assert_eq!(g["status"], "ok", "{g:#}");
    assert_eq!(g["events"], total, "{g:#}");
    assert_eq!(g["batches"], local_batches(&log), "{g:#}");
    assert_eq!(g["duplicates"], 0, "{g:#}");
    assert_eq!(g["missing_seals"], 0, "{g:#}");
    assert_archive_is_the_log(
        &archive.join("p0").join("gw-t").join("audit.jsonl"),
        &log,
        &public,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn collect_exits_1_when_a_gateway_is_signed_by_another_key_than_its_own() {
    let server = Server::start("cli-key");
    let url = server.url();
    let (dir, private, _public, log) = common::scene("fleet-key");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, other_public) = common::keys(&other);
    demo_log(&private, &log, 300, 100);
    ship_closed(&url, &log, "gw-k", &[]);
    let pinned = format!("gw-k={}", s(&other_public));
    let (code, report) = collect_until(&url, &dir.join("archive"), &["--gateway", &pinned], |r| {
        gateway(r, "p0", "gw-k").is_some_and(|g| g["batches"].as_u64().unwrap() > 0)
    });
    let g = gateway(&report, "p0", "gw-k").unwrap();
    assert_eq!(code, Some(1), "{g:#}");
    assert_eq!(g["status"], "tampered", "{g:#}");
    let findings = g["tampering"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("unknown_key")),
        "{g:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_registered_gateway_that_never_ships_is_reported_never_seen() {
    let server = Server::start("cli-never");
    let url = server.url();
    let (dir, private, public, log) = common::scene("fleet-never");
    demo_log(&private, &log, 200, 100);
    ship_closed(&url, &log, "gw-live", &[]);
    let registry = dir.join("registry");
    std::fs::write(
        &registry,
        format!(
            "# the gateways of this site\np0/gw-live {0}\n\ngw-ghost {0}\n",
            s(&public)
        ),
    )
    .unwrap();
    let archive = dir.join("archive");
    let more = ["--registry", s(&registry), "--silent-after-s", "1"];
    let (code, report) = collect_until(&url, &archive, &more, |r| {
        events(r, "p0", "gw-live") >= 200
            && gateway(r, "p0", "gw-ghost").is_some_and(|g| g["status"] == "never_seen")
    });
    assert_eq!(code, Some(0), "{report:#}");
    let ghost = gateway(&report, "p0", "gw-ghost").unwrap();
    assert_eq!(ghost["expected"], true, "{ghost:#}");
    assert_eq!(ghost["batches"], 0, "{ghost:#}");
    let live = gateway(&report, "p0", "gw-live").unwrap();
    assert_eq!(live["events"], 200, "{live:#}");
    assert!(live["tampering"].as_array().unwrap().is_empty(), "{live:#}");

    // The text report names each gateway partition/name.
    let (status, out, err) = spawn(&[
        "collect",
        "--url",
        &url,
        "--archive",
        s(&archive),
        "--registry",
        s(&registry),
        "--silent-after-s",
        "1",
        "--until-idle-s",
        "2",
        "--report-s",
        "0",
    ])
    .finish();
    assert_eq!(status.code(), Some(0), "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("p0/gw-ghost ") && l.contains(" never_seen ")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("p0/gw-live ")), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn collect_stops_on_sigint_after_its_poll_with_its_final_report() {
    let server = Server::start("cli-sigint");
    let url = server.url();
    let (dir, private, public, log) = common::scene("fleet-sigint");
    demo_log(&private, &log, 500, 100);
    ship_closed(&url, &log, "gw-i", &[]);
    let pinned = format!("gw-i={}", s(&public));
    let archive = dir.join("archive");
    let mut collect = spawn(&[
        "collect",
        "--url",
        &url,
        "--archive",
        s(&archive),
        "--gateway",
        &pinned,
        "--report-s",
        "1",
        "--json",
    ]);
    collect.wait_for("a report with every event", |out, _| {
        reports(out)
            .last()
            .is_some_and(|r| events(r, "p0", "gw-i") >= 500)
    });
    let periodic = reports(&collect.stdout()).len();
    collect.signal(libc::SIGINT);
    let (status, out, err) = collect.finish();
    assert_eq!(status.code(), Some(0), "{out}{err}");
    let all = reports(&out);
    assert!(
        all.len() > periodic,
        "no final report after the signal:\n{out}"
    );
    let last = all.last().unwrap();
    let g = gateway(last, "p0", "gw-i").unwrap();
    assert_eq!(g["status"], "ok", "{g:#}");
    assert_eq!(g["events"], 500, "{g:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ship_keeps_retrying_where_no_server_listens_and_stops_on_sigterm() {
    // The binary must be there for the tests of this file to mean anything.
    server::binary();
    let (dir, private, _public, log) = common::scene("fleet-nowhere");
    demo_log(&private, &log, 100, 100);
    let url = format!("nats://127.0.0.1:{}", server::free_port());
    let mut ship = spawn(&[
        "ship",
        "--url",
        &url,
        "--gateway",
        "gw-n",
        "--report-s",
        "1",
        s(&log),
    ]);
    // Two failed attempts, each said on standard error, and still running.
    ship.wait_for("two failed attempts to reach the server", |_, err| {
        err.lines()
            .filter(|l| l.contains("warning: cannot"))
            .count()
            >= 2
    });
    ship.signal(libc::SIGTERM);
    let (status, _, err) = ship.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    let last = final_line(&err);
    assert_eq!(last.get("gateway"), "p0/gw-n");
    assert_eq!(last.number("batches"), 0);
    // The report says why: the connection's trouble, before the metrics.
    assert!(
        err.lines()
            .any(|l| l.starts_with("ship-error gateway=p0/gw-n: ") && l.contains("NATS connection")),
        "{err}"
    );
    assert!(
        !dir.join("audit.jsonl.ship-cursor").exists(),
        "nothing acknowledged, no cursor"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ship_and_collect_authenticate_with_secrets_read_from_files() {
    let server = Server::start_with(
        "cli-auth",
        &[r#"authorization { user: "auditor", password: "pw-from-file" }"#],
    );
    let url = server.url();
    let (dir, private, public, log) = common::scene("fleet-auth");
    demo_log(&private, &log, 500, 100);
    let password = dir.join("nats-password");
    std::fs::write(&password, "pw-from-file\n").unwrap();
    let auth = [
        "--nats-user",
        "auditor",
        "--nats-password-file",
        s(&password),
    ];

    // Without the password, `collect` fails at once and says why.
    let out = common::run(&[
        "collect",
        "--url",
        &url,
        "--archive",
        s(&dir.join("archive")),
        "--key",
        s(&public),
        "--until-idle-s",
        "1",
    ]);
    let (stdout, stderr) = common::text(&out);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("authorization violation"), "{stderr}");
    // A user without a password file is refused before connecting.
    let out = common::run(&[
        "ship",
        "--url",
        &url,
        "--gateway",
        "gw-a",
        "--nats-user",
        "auditor",
        s(&log),
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", common::text(&out));

    let shipped = ship_closed(&url, &log, "gw-a", &auth);
    assert_eq!(shipped.number("events"), 500);
    let archive = dir.join("archive");
    let mut more = vec!["--key", s(&public)];
    more.extend_from_slice(&auth);
    let (code, report) = collect_until(&url, &archive, &more, |r| events(r, "p0", "gw-a") >= 500);
    assert_eq!(code, Some(0), "{report:#}");
    assert_archive_is_the_log(&archive.join("p0/gw-a/audit.jsonl"), &log, &public);
    std::fs::remove_dir_all(&dir).unwrap();
}
