//! The fleet against servers that authenticate their clients and encrypt
//! their connections: a user and password, a token, and TLS with a private
//! CA and client certificates. The right credentials ship and collect; the
//! wrong ones are refused and named, and nothing is shipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use auditring::SigningKey;
use auditring::verify::{Status, Verifier};
use auditring_nats::{
    Collector, CollectorConfig, GatewayId, NatsConnection, Shipper, ShipperConfig,
};
use common::*;

/// A secret's file, readable by its owner only.
fn secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A closed gateway log of 3,000 events.
fn closed_log(dir: &Path, key: &SigningKey) -> PathBuf {
    let log = dir.join("audit.jsonl");
    let rt = runtime(key, &log, None);
    assert_eq!(record(&rt, 3_000, 0), 0);
    rt.shutdown().unwrap();
    log
}

fn ship(url: &str, log: &Path, connection: NatsConnection) -> Shipper {
    Shipper::spawn(
        ShipperConfig::new(url, log, "gw-secure")
            .partition("sec")
            .heartbeat_interval(Duration::from_millis(200))
            .connection(connection),
    )
    .unwrap()
}

fn collector(
    url: &str,
    dir: &Path,
    key: &SigningKey,
    connection: NatsConnection,
) -> Result<Collector, String> {
    let mut config = CollectorConfig::new(url, dir.join("archive"))
        .durable("c-secure")
        .connection(connection)
        .trust(GatewayId::new("sec", "gw-secure"), key.public_key());
    config.filter = "audit.sec.>".into();
    Collector::open(config).map_err(|e| e.to_string())
}

/// Ships the whole log with `good`, collects it with `good`, and checks the
/// archive is the log and verifies.
fn ships_and_collects(url: &str, dir: &Path, log: &Path, key: &SigningKey, good: &NatsConnection) {
    let shipper = ship(url, log, good.clone());
    let last = local_batches(log).pop().expect("a batch");
    eventually("every batch acknowledged", || {
        let m = shipper.metrics();
        m.acked_stream == last.stream() && m.acked_seal == Some(last.seal.index)
    });
    shipper.stop().unwrap();
    let mut c = collector(url, dir, key, good.clone()).unwrap();
    let batches = local_batches(log).len() as u64;
    eventually("the collector has every batch", || {
        c.poll(Duration::from_millis(200)).unwrap();
        c.report()
            .gateway("sec", "gw-secure")
            .is_some_and(|g| g.batches >= batches)
    });
    c.sync().unwrap();
    let archived = std::fs::read(dir.join("archive/sec/gw-secure/audit.jsonl")).unwrap();
    assert!(
        archived == local_bytes(log),
        "the archive differs from the log"
    );
    let report = Verifier::new([key.public_key()]).verify_bytes(&archived);
    assert_eq!(report.status(), Status::Intact, "{report:?}");
}

/// A shipper with `bad` credentials: it keeps retrying, ships nothing,
/// names why, and still stops.
fn refused_shipper(url: &str, log: &Path, bad: NatsConnection, why: &str) {
    let shipper = ship(url, log, bad);
    eventually("the shipper names why it cannot connect", || {
        shipper
            .metrics()
            .last_error
            .is_some_and(|e| e.to_lowercase().contains(why))
    });
    assert_eq!(shipper.acked_batches(), 0);
    let m = shipper.stop().unwrap();
    assert_eq!(m.acked_batches, 0);
    eprintln!("refused as expected: {}", m.last_error.unwrap_or_default());
}

#[test]
fn a_user_and_password_from_a_file_and_a_wrong_one_refused() {
    let server = Server::start_with(
        "auth-user",
        &[r#"authorization { user: "auditor", password: "s3cret pw" }"#],
    );
    let dir = scratch("auth-user");
    let key = SigningKey::generate();
    let log = closed_log(&dir, &key);
    // A password file as an editor leaves it: with a final newline.
    let good = NatsConnection::default().user("auditor", secret(&dir, "pw", "s3cret pw\n"));
    let wrong = NatsConnection::default().user("auditor", secret(&dir, "bad", "guess\n"));

    let e = collector(&server.url(), &dir, &key, NatsConnection::default()).unwrap_err();
    assert!(e.contains("authorization violation"), "{e}");
    let e = collector(&server.url(), &dir, &key, wrong.clone()).unwrap_err();
    assert!(e.contains("authorization violation"), "{e}");
    refused_shipper(&server.url(), &log, wrong, "authorization violation");
    refused_shipper(
        &server.url(),
        &log,
        NatsConnection::default(),
        "authorization violation",
    );
    ships_and_collects(&server.url(), &dir, &log, &key, &good);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_from_a_file() {
    let server = Server::start_with(
        "auth-token",
        &[r#"authorization { token: "t0k3n-4-audit" }"#],
    );
    let dir = scratch("auth-token");
    let key = SigningKey::generate();
    let log = closed_log(&dir, &key);
    let good = NatsConnection::default().token_file(secret(&dir, "token", "t0k3n-4-audit\n"));
    let wrong = NatsConnection::default().token_file(secret(&dir, "bad", "t0k3n\n"));
    let e = collector(&server.url(), &dir, &key, wrong.clone()).unwrap_err();
    assert!(e.contains("authorization violation"), "{e}");
    refused_shipper(&server.url(), &log, wrong, "authorization violation");
    ships_and_collects(&server.url(), &dir, &log, &key, &good);
    let _ = std::fs::remove_dir_all(&dir);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the TLS test makes its certificates with the `openssl` command: apt-get install -y openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA, a server certificate for 127.0.0.1 and a client
/// certificate, all P-256, valid for a day.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=auditring test CA",
        "-days",
        "1",
    ]);
    openssl(dir, &ca);
    for (name, usage) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&ext), usage).unwrap();
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj"]);
        let subject = format!("/CN=auditring test {name}");
        req.push(&subject);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[test]
fn tls_with_a_private_ca_and_client_certificates() {
    let dir = scratch("tls");
    certificates(&dir);
    let p = |name: &str| dir.join(name).display().to_string();
    let tls = format!(
        r#"tls {{ cert_file: "{}", key_file: "{}", ca_file: "{}", verify: true, timeout: 5 }}"#,
        p("server.pem"),
        p("server.key"),
        p("ca.pem")
    );
    let server = Server::start_with("tls", &[&tls]);
    let url = server.url().replace("nats://", "tls://");
    let key = SigningKey::generate();
    let log = closed_log(&dir, &key);
    let good = NatsConnection::default()
        .tls_ca_file(dir.join("ca.pem"))
        .tls_client_cert(dir.join("client.pem"), dir.join("client.key"));

    // The server's certificate is signed by a CA the client was not told
    // to trust: refused.
    let untrusted =
        NatsConnection::default().tls_client_cert(dir.join("client.pem"), dir.join("client.key"));
    let e = collector(&url, &dir, &key, untrusted.clone()).unwrap_err();
    assert!(
        e.to_lowercase().contains("tls") || e.contains("certificate"),
        "{e}"
    );
    refused_shipper(&url, &log, untrusted, "the nats connection");
    // No client certificate: the server (verify: true) refuses.
    let anonymous = NatsConnection::default().tls_ca_file(dir.join("ca.pem"));
    assert!(collector(&url, &dir, &key, anonymous.clone()).is_err());
    refused_shipper(&url, &log, anonymous, "the nats connection");
    // A client that requires TLS does not talk in the clear to a server
    // without it (the handshake fails on the server's plain text).
    let plain = Server::start("tls-plain");
    let required = NatsConnection::default().require_tls(true);
    assert!(collector(&plain.url(), &dir, &key, required.clone()).is_err());
    refused_shipper(&plain.url(), &log, required, "the nats connection");
    assert_eq!(stored_messages(&plain.url(), "audit.sec.gw-secure"), 0);

    ships_and_collects(&url, &dir, &log, &key, &good);
    let _ = std::fs::remove_dir_all(&dir);
}
