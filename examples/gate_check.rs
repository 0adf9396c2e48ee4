//! A custom payload: the gate-check record of a verb-dispatch gate.
//!
//! Each gate consultation records who asked (actor), where (namespace),
//! what (verb), the decision, the deny reason, the obligations the policy
//! attached (always serialized as a list, `[]` when none), the gate
//! implementation and the session. The payload is fixed-size: obligations
//! live in a bounded inline list, so recording never allocates.
//!
//! Run with `cargo run --example gate_check`.

use auditring::{Capture, FullPolicy, InlineStr, Payload};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// At most this many obligations are kept per event; more are counted as
/// truncated.
const MAX_OBLIGATIONS: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum GateDecision {
    #[default]
    Allow,
    Deny,
}

/// A bounded list of short strings, stored inline.
#[derive(Clone, Default)]
struct Obligations {
    items: [InlineStr<48>; MAX_OBLIGATIONS],
    len: u8,
    truncated: bool,
}

impl Obligations {
    fn push(&mut self, obligation: &str) {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                self.truncated |= slot.set(obligation);
                self.len += 1;
            }
            None => self.truncated = true,
        }
    }

    fn as_slice(&self) -> &[InlineStr<48>] {
        &self.items[..usize::from(self.len)]
    }
}

impl Serialize for Obligations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.as_slice().len()))?;
        for item in self.as_slice() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// One gate consultation.
#[derive(Clone, Default)]
struct GateCheck {
    actor: InlineStr<64>,
    namespace: InlineStr<64>,
    verb: InlineStr<64>,
    decision: GateDecision,
    deny_reason: InlineStr<128>,
    obligations: Obligations,
    gate_impl: InlineStr<32>,
    session_id: InlineStr<64>,
    truncated: bool,
}

impl Payload for GateCheck {
    fn clear(&mut self) {
        self.actor.clear();
        self.namespace.clear();
        self.verb.clear();
        self.decision = GateDecision::Allow;
        self.deny_reason.clear();
        self.obligations.len = 0;
        self.obligations.truncated = false;
        self.gate_impl.clear();
        self.session_id.clear();
        self.truncated = false;
    }
}

impl GateCheck {
    /// Fills the record from the gate's inputs and output, remembering any
    /// cut.
    fn fill(&mut self, actor: &str, namespace: &str, verb: &str, outcome: Result<&[&str], &str>) {
        let mut cut = self.actor.set(actor);
        cut |= self.namespace.set(namespace);
        cut |= self.verb.set(verb);
        match outcome {
            Ok(obligations) => {
                self.decision = GateDecision::Allow;
                for o in obligations {
                    self.obligations.push(o);
                }
            }
            Err(reason) => {
                self.decision = GateDecision::Deny;
                cut |= self.deny_reason.set(reason);
            }
        }
        cut |= self.gate_impl.set("rbac-v2");
        cut |= self.session_id.set("sess-0192f3a4");
        self.truncated = cut || self.obligations.truncated;
    }
}

/// The JSON projection: `obligations` always present, `deny_reason` only on
/// deny, `truncated` always present.
impl Serialize for GateCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("GateCheck", 9)?;
        s.serialize_field("actor", &self.actor)?;
        s.serialize_field("namespace", &self.namespace)?;
        s.serialize_field("verb", &self.verb)?;
        s.serialize_field("decision", &self.decision)?;
        if self.decision == GateDecision::Deny {
            s.serialize_field("deny_reason", &self.deny_reason)?;
        } else {
            s.skip_field("deny_reason")?;
        }
        s.serialize_field("obligations", &self.obligations)?;
        s.serialize_field("gate_impl", &self.gate_impl)?;
        s.serialize_field("session_id", &self.session_id)?;
        s.serialize_field("truncated", &self.truncated)?;
        s.end()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (capture, mut consumer) = Capture::<GateCheck>::builder()
        .lane_capacity(256)
        .max_producers(2)
        .full_policy(FullPolicy::Block)
        .build()?;

    let mut recorder = capture.recorder()?;
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
                "invoice.read",
                Ok(&["a", "b", "c", "d", "e"]),
            )
        })
    });
    gate.join().expect("gate thread")?;

    let mut lines = Vec::new();
    consumer.drain(usize::MAX, |event| {
        let json = serde_json::to_string(event.payload()).expect("serializable");
        println!("{} {json}", event.unix_nanos());
        lines.push(json);
    });
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains(r#""obligations":[]"#));
    assert!(lines[2].contains(r#""deny_reason":"role 'reader' lacks verb""#));
    assert!(lines[3].contains(r#""truncated":true"#));
    Ok(())
}
