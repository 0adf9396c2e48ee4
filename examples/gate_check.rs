//! A custom payload: the gate-check record of a verb-dispatch gate, derived
//! with `#[derive(Payload)]`, signed by a runtime and verified.
//!
//! Each gate consultation records who asked (actor), where (namespace),
//! what (verb), the decision, the deny reason (empty on allow), the
//! obligations the policy attached (always written as a list, `[]` when
//! none), the gate implementation and the session. The payload is
//! fixed-size: obligations live in a bounded inline list, so recording
//! never allocates. The actor is replaced by a keyed HMAC tag while the
//! line is encoded, so it never reaches the log.
//!
//! Run with `cargo run --example gate_check`.

use auditring::sink::MemorySink;
use auditring::stats::LatencySource;
use auditring::verify::{Status, Verifier};
use auditring::{
    FullPolicy, InlineStr, JsonValue, Payload, Redaction, Runtime, SigningKey, Truncated,
};

/// At most this many obligations are kept per event; more are counted as
/// truncated.
const MAX_OBLIGATIONS: usize = 4;

/// Written as `"allow"` or `"deny"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonValue)]
enum GateDecision {
    #[default]
    Allow,
    Deny,
}

/// A bounded list of short strings, stored inline: a field type of its
/// own, written by its own `JsonValue` implementation.
#[derive(Default)]
struct Obligations {
    items: [InlineStr<48>; MAX_OBLIGATIONS],
    len: u8,
    /// An obligation was cut or left out.
    cut: bool,
}

impl Obligations {
    fn push(&mut self, obligation: &str) {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                self.cut |= slot.set(obligation);
                self.len += 1;
            }
            None => self.cut = true,
        }
    }

    fn as_slice(&self) -> &[InlineStr<48>] {
        &self.items[..usize::from(self.len)]
    }
}

/// `clone_from` copies only the items in use: the derived payload's
/// `clone_from`, which the recorder runs, calls it.
impl Clone for Obligations {
    fn clone(&self) -> Self {
        let mut copy = Self::default();
        copy.clone_from(self);
        copy
    }

    fn clone_from(&mut self, source: &Self) {
        for (to, from) in self.items.iter_mut().zip(source.as_slice()) {
            to.copy_from(from);
        }
        self.len = source.len;
        self.cut = source.cut;
    }
}

impl JsonValue for Obligations {
    fn write_json_value(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, item) in self.as_slice().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json_value(out);
        }
        out.push(b']');
    }
}

/// One gate consultation: its fields are listed once, here.
#[derive(Default, Debug, Payload)]
struct GateCheck {
    actor: InlineStr<64>,
    namespace: InlineStr<64>,
    verb: InlineStr<64>,
    decision: GateDecision,
    deny_reason: InlineStr<128>,
    obligations: Obligations,
    /// Never redacted: which gate decided is not sensitive.
    #[payload(rename = "gate", no_redact)]
    gate_impl: InlineStr<32>,
    session_id: InlineStr<64>,
    /// An obligation was cut or left out.
    obligations_truncated: bool,
    truncated: Truncated<GateCheck>,
}

impl std::fmt::Debug for Obligations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A gate check reports no latencies.
impl LatencySource for GateCheck {}

impl GateCheck {
    /// Fills the record from the gate's inputs and output.
    fn fill(&mut self, actor: &str, namespace: &str, verb: &str, outcome: Result<&[&str], &str>) {
        self.set_actor(actor)
            .set_namespace(namespace)
            .set_verb(verb)
            .set_gate_impl("rbac-v2")
            .set_session_id("sess-0192f3a4");
        match outcome {
            Ok(obligations) => {
                self.decision = GateDecision::Allow;
                for o in obligations {
                    self.obligations.push(o);
                }
            }
            Err(reason) => {
                self.decision = GateDecision::Deny;
                self.set_deny_reason(reason);
            }
        }
        self.obligations_truncated = self.obligations.cut;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let runtime = Runtime::<GateCheck>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .lane_capacity(256)
        .max_producers(2)
        .full_policy(FullPolicy::Block)
        .redact("actor", Redaction::Hmac)
        .redaction_key(b"a secret kept apart from the log".to_vec())
        .build()?;

    let mut recorder = runtime.recorder()?;
    let gate = std::thread::spawn(move || -> Result<(), auditring::RecordError> {
        recorder.record(|e| e.fill("user:alice", "billing", "invoice.read", Ok(&[])))?;
        recorder.record(|e| {
            e.fill(
                "user:alice",
                "billing",
                "invoice.export",
                Ok(&["redact:card_number", "log:export"]),
            )
        })?;
        recorder.record(|e| {
            e.fill(
                "agent:crawler",
                "admin",
                "user.delete",
                Err("role 'reader' lacks verb"),
            )
        })?;
        recorder.record(|e| {
            e.fill(
                "user:bob",
                "billing",
                &"invoice.read.".repeat(10),
                Ok(&["a", "b", "c", "d", "e"]),
            )
        })
    });
    gate.join().expect("gate thread")?;
    runtime.shutdown()?;

    let bytes = log.bytes();
    let text = std::str::from_utf8(&bytes)?;
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(r#"{"seq":"#))
        .collect();
    for line in &events {
        println!("{line}");
    }
    assert_eq!(events.len(), 4);
    assert!(events[0].contains(r#""decision":"allow","deny_reason":"","obligations":[]"#));
    assert!(events[1].contains(r#""obligations":["redact:card_number","log:export"]"#));
    assert!(events[2].contains(r#""deny_reason":"role 'reader' lacks verb""#));
    assert!(events[3].contains(r#""obligations_truncated":true,"truncated":["verb"]"#));
    assert!(events[0].contains(r#""actor":"hmac-sha256:"#) && !text.contains("user:alice"));
    assert!(events[0].contains(r#""gate":"rbac-v2""#));

    let verified = Verifier::new([key.public_key()]).verify_bytes(&bytes);
    assert_eq!(verified.status(), Status::Intact);
    println!("{} events, log intact", events.len());
    Ok(())
}
