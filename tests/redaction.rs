//! Redacted values never reach any sink; the log still verifies, and HMAC
//! tags still correlate equal values.

use std::sync::{Arc, Mutex};

use auditring::sink::{MemorySink, SinkPolicy, WriterSink};
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, BuildError, Decision, FullPolicy, Redaction, Runtime, SigningKey};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn redacted_values_never_reach_any_sink() {
    let key = SigningKey::generate();
    let memory = MemorySink::new();
    let other = Shared::default();
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(memory.clone())
        .sink_with(
            WriterSink::new("second", other.clone()),
            SinkPolicy::BestEffort,
        )
        .redact("session_id", Redaction::Hmac)
        .redact("agent_id", Redaction::Mask)
        .redact("deny_reason", Redaction::Remove)
        .redaction_key(b"0123456789abcdef-redaction".to_vec())
        .max_batch(4)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    for i in 0..10u64 {
        r.record(|e| {
            e.set_session_id(if i % 2 == 0 {
                "secret-session-even"
            } else {
                "secret-session-odd"
            })
            .set_agent_id("agent-secret-7")
            .set_action("http.get");
            e.decision = Decision::Deny;
            e.set_deny_reason("patient record 4711 is restricted");
        })
        .unwrap();
    }
    drop(r);
    runtime.shutdown().unwrap();

    let first = memory.bytes();
    let second = other.0.lock().unwrap().clone();
    assert_eq!(first, second, "every sink gets the same redacted bytes");
    let text = String::from_utf8(first.clone()).unwrap();
    for secret in [
        "secret-session",
        "agent-secret",
        "patient record",
        "deny_reason",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    assert!(text.contains(r#""agent_id":"[redacted]""#));
    let tags: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(r#"{"seq":"#))
        .map(|l| {
            let at = l.find("hmac-sha256:").expect("session id tag");
            &l[at..at + 12 + 64]
        })
        .collect();
    assert_eq!(tags.len(), 10);
    assert_eq!(tags[0], tags[2], "equal values, equal tags");
    assert_ne!(tags[0], tags[1], "different values, different tags");

    let verified = Verifier::new([key.public_key()]).verify_bytes(&first);
    assert_eq!(
        verified.status(),
        Status::Intact,
        "the seal covers what was written"
    );
}

#[test]
fn hmac_redaction_needs_a_key() {
    let err = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .redact("session_id", Redaction::Hmac)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::RedactionKey));
    assert!(err.to_string().contains("redaction_key"));
}
