//! Configuration from a host's TOML file: an `[audit]` section builds a
//! working runtime; unknown keys and impossible values are refused with the
//! field and the fix.

use auditring::config::Config;
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, SigningKey};

#[derive(serde::Deserialize)]
struct HostConfig {
    #[allow(dead_code)]
    listen: String,
    audit: Config,
}

#[test]
fn an_audit_section_builds_a_working_runtime() {
    let dir = std::env::temp_dir().join(format!("auditring-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = SigningKey::generate();
    std::fs::write(dir.join("key.pem"), key.to_pkcs8_pem().as_bytes()).unwrap();
    std::fs::write(
        dir.join("redaction.key"),
        b"a secret of more than sixteen bytes",
    )
    .unwrap();
    let text = format!(
        r#"
listen = "0.0.0.0:8443"

[audit]
key_file = "{dir}/key.pem"
max_batch = 8
max_delay_ms = 5
lane_capacity = 256
full_policy = "block"
report_interval_s = 0
redaction_key_file = "{dir}/redaction.key"

[audit.file]
path = "{dir}/audit.jsonl"
fsync = {{ interval_ms = 50 }}
rotate_bytes = 1000000
policy = "required"

[[audit.redact]]
field = "session_id"
with = "hmac"
"#,
        dir = dir.display()
    );
    let host: HostConfig = toml::from_str(&text).unwrap();
    let runtime = host
        .audit
        .runtime_builder::<AuditPayload>()
        .unwrap()
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    for _ in 0..20 {
        r.record(|e| {
            e.set_session_id("very-secret").set_action("x");
        })
        .unwrap();
    }
    drop(r);
    runtime.shutdown().unwrap();
    let log = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(!log.contains("very-secret"));
    let report = Verifier::new([key.public_key()])
        .verify_files(&[dir.join("audit.jsonl")], |_| {})
        .unwrap();
    assert_eq!(report.status(), Status::Intact);
    // Open and close seals, and at least the two full batches of 8 (a
    // 5 ms timer may cut more).
    assert_eq!((report.events, report.sealed_events), (20, 20));
    assert!(report.seals >= 4, "{} seals", report.seals);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_keys_are_refused() {
    let err = toml::from_str::<Config>("key_file = \"k.pem\"\nmax_batches = 4\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_batches`"),
        "{err}"
    );
    let err = toml::from_str::<Config>(
        "key_file = \"k.pem\"\n[file]\npath = \"a\"\nfsync = \"sometimes\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
}

#[test]
fn impossible_values_name_the_field_and_the_fix() {
    let cases = [
        ("max_batch = 0\n[file]\npath = \"a\"", "max_batch", "use 1"),
        (
            "max_delay_ms = 0\n[file]\npath = \"a\"",
            "max_delay_ms",
            "at least 1 ms",
        ),
        (
            "lane_capacity = 0\n[file]\npath = \"a\"",
            "lane_capacity",
            "out of range",
        ),
        (
            "max_producers = 100000\n[file]\npath = \"a\"",
            "max_producers",
            "out of range",
        ),
        (
            "signer_core = 4096\n[file]\npath = \"a\"",
            "signer_core",
            "not available",
        ),
        ("", "file", "no sink is configured"),
        (
            "[file]\npath = \"a\"\nrotate_bytes = 0",
            "file.rotate_bytes",
            "never rotate",
        ),
        (
            "[file]\npath = \"a\"\nfsync = { interval_ms = 0 }",
            "file.fsync",
            "every_batch",
        ),
        (
            "[file]\npath = \"a\"\n[[redact]]\nfield = \"s\"\nwith = \"hmac\"",
            "redaction_key_file",
            "16 or more",
        ),
    ];
    for (body, field, fix) in cases {
        let config: Config = toml::from_str(&format!("key_file = \"k.pem\"\n{body}")).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field, "{body}");
        assert!(err.message.contains(fix), "{body}: {err}");
        assert!(err.to_string().contains(field));
    }
    // Files that cannot be read are reported against their field.
    let config: Config =
        toml::from_str("key_file = \"/nonexistent/key.pem\"\n[file]\npath = \"a\"").unwrap();
    let err = config.runtime_builder::<AuditPayload>().unwrap_err();
    assert_eq!(err.field, "key_file");
    assert!(err.message.contains("/nonexistent/key.pem"));
}
