//! `#[derive(Payload)]` keeps its promise: a derived custom payload goes
//! through the whole pipeline and verifies; its encoder writes exactly what
//! serde_json writes, on hostile strings and at every truncation boundary;
//! redaction while encoding gives the bytes that re-parsing the encoded
//! object and redacting its top-level members gives.

use auditring::format::encode::Redactor;
use auditring::sink::MemorySink;
use auditring::stats::{LatencySample, LatencySource};
use auditring::verify::{Status, Verifier};
use auditring::{
    AuditPayload, BuildError, Decision, EncodeJson, FullPolicy, InlineStr, JsonValue, Payload,
    Redaction, Runtime, SigningKey, Truncated,
};
use proptest::prelude::*;
use serde_json::value::RawValue;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonValue, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    #[default]
    Success,
    InvalidArgs,
    CapDenied,
    #[payload(rename = "not found")]
    #[serde(rename = "not found")]
    ToolNotFound,
}

/// A tool-call event with small capacities, so that cuts are easy to hit,
/// and every kind of field the derive handles.
#[derive(Default, Debug, PartialEq, Payload)]
#[payload(serialize)]
struct ToolCall {
    /// The tool called.
    tool: InlineStr<7>,
    outcome: Outcome,
    decision: Decision,
    args: InlineStr<5>,
    #[payload(rename = "we\"ird\\key\u{1}\n")]
    odd: InlineStr<3>,
    latency_us: u64,
    delta: i32,
    retried: bool,
    #[payload(skip)]
    scratch: u64,
    #[payload(no_redact)]
    schema: u16,
    truncated: Truncated<ToolCall>,
}

impl LatencySource for ToolCall {
    fn latency_sample(&self) -> Option<LatencySample<'_>> {
        Some(LatencySample {
            action: self.tool(),
            decision: self.decision.as_str(),
            enforcement_us: self.latency_us,
            dispatch_us: None,
        })
    }
}

fn encode(p: &ToolCall, redactor: &Redactor) -> String {
    let mut out = Vec::new();
    p.write_json(&mut out, redactor);
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn a_derived_payload_goes_through_the_pipeline_and_verifies() {
    let key = SigningKey::generate();
    let log = MemorySink::new();
    let runtime = Runtime::<ToolCall>::builder()
        .signing_key(key.clone())
        .sink(log.clone())
        .max_batch(3)
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut recorder = runtime.recorder().unwrap();
    for i in 0..10u64 {
        recorder
            .record(|e| {
                e.set_tool(if i % 2 == 0 { "search" } else { "fetch-url" })
                    .set_args("q=\"x\"\n");
                e.outcome = if i % 3 == 0 {
                    Outcome::ToolNotFound
                } else {
                    Outcome::Success
                };
                e.decision = Decision::Allow;
                e.latency_us = i;
                e.delta = -(i as i32);
                e.scratch = 99;
                e.schema = 2;
            })
            .unwrap();
    }
    drop(recorder);
    let report = runtime.shutdown().unwrap();
    assert_eq!(report.sealed, 10);

    let bytes = log.bytes();
    let verified = Verifier::new([key.public_key()]).verify_bytes(&bytes);
    assert_eq!(verified.status(), Status::Intact);
    let text = String::from_utf8(bytes).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with(r#"{"seq":"#))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 10);
    let first = &events[0]["payload"];
    assert_eq!(first["tool"], "search");
    assert_eq!(first["outcome"], "not found");
    assert_eq!(first["args"], "q=\"x\"");
    assert_eq!(first["truncated"], serde_json::json!(["args"]));
    assert!(
        first.get("scratch").is_none(),
        "a skipped field is not written"
    );
    let second = &events[1]["payload"];
    assert_eq!(second["tool"], "fetch-u");
    assert_eq!(second["truncated"], serde_json::json!(["tool", "args"]));
    assert_eq!(second["delta"], -1);
}

#[test]
fn the_runtime_reports_a_derived_payloads_latencies() {
    let runtime = Runtime::<ToolCall>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .full_policy(FullPolicy::Block)
        .build()
        .unwrap();
    let mut recorder = runtime.recorder().unwrap();
    recorder
        .record(|e| {
            e.set_tool("search");
            e.latency_us = 40;
        })
        .unwrap();
    drop(recorder);
    runtime.flush(std::time::Duration::from_secs(10)).unwrap();
    let snapshot = runtime.stats_snapshot();
    let row = snapshot
        .payload
        .iter()
        .find(|r| r.action == "search")
        .expect("a row for the derived payload's action");
    assert_eq!(row.enforcement_us.count, 1);
    runtime.shutdown().unwrap();
}

#[test]
fn redaction_rules_must_name_redactable_fields() {
    let build = |field: &str| {
        Runtime::<ToolCall>::builder()
            .signing_key(SigningKey::generate())
            .sink(MemorySink::new())
            .redact(field, Redaction::Mask)
            .build()
    };
    for field in ["tools", "schema", "scratch"] {
        let err = build(field).unwrap_err();
        assert!(
            matches!(&err, BuildError::RedactField { field: f, .. } if f == field),
            "{err}"
        );
        assert!(err.to_string().contains("tool, outcome"), "{err}");
    }
    build("we\"ird\\key\u{1}\n").unwrap().shutdown().unwrap();
}

#[test]
fn clear_and_clone_from_reset_and_copy_every_field() {
    let mut a = ToolCall::default();
    a.set_tool("search-everything").set_args("ab");
    a.outcome = Outcome::CapDenied;
    a.delta = -3;
    a.retried = true;
    a.scratch = 1;
    let mut b = ToolCall::default();
    b.set_args("longer-old-value");
    b.clone_from(&a);
    assert_eq!(a, b);
    assert_eq!(b.args(), "ab");
    assert_eq!(a.clone(), a);
    b.clear();
    assert_eq!(b, ToolCall::default());
    assert!(b.truncated.is_empty());
}

/// Fills every string field and checks the derived encoder against
/// serde_json, field values against what was set.
fn check_against_serde(tool: &str, args: &str, odd: &str) {
    let mut p = ToolCall::default();
    p.set_tool(tool).set_args(args).set_odd(odd);
    p.delta = i32::MIN;
    p.latency_us = u64::MAX;
    p.outcome = Outcome::InvalidArgs;
    let ours = encode(&p, Redactor::none());
    assert_eq!(ours, serde_json::to_string(&p).unwrap());
    let v: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let mut cut = Vec::new();
    for (key, value, cap) in [
        ("tool", tool, 7),
        ("args", args, 5),
        ("we\"ird\\key\u{1}\n", odd, 3),
    ] {
        let written = v[key].as_str().unwrap();
        assert!(written.len() <= cap && value.starts_with(written));
        // The longest prefix that fits on a character boundary.
        let mut end = value.len().min(cap);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        assert_eq!(written, &value[..end]);
        if end < value.len() {
            cut.push(key);
        }
    }
    assert_eq!(v["truncated"], serde_json::json!(cut));
}

#[test]
fn hostile_strings_encode_as_serde_json_does() {
    for s in [
        "",
        "\"",
        "\\",
        "\\u0041",
        "\\\"",
        "\u{0}\u{1}\u{1f}\u{7f}",
        "\n\r\t\u{8}\u{c}",
        "</script>",
        "\u{2028}\u{2029}",
        "\u{feff}x",
        "é日🦀",
    ] {
        check_against_serde(s, s, s);
    }
}

#[test]
fn truncation_at_every_utf8_boundary() {
    for c in ['é', '日', '🦀'] {
        for pad in 0..=8 {
            let s = format!("{}{c}{c}", "a".repeat(pad));
            check_against_serde(&s, &s, &s);
        }
    }
}

proptest! {
    #[test]
    fn any_strings_encode_as_serde_json_does(
        tool in "\\PC{0,12}|[\\x00-\\x7f]{0,12}",
        args in "\\PC{0,8}|[\\x00-\\x7f]{0,8}",
        odd in any::<String>(),
    ) {
        check_against_serde(&tool, &args, &odd);
    }
}

/// The top-level members of a JSON object, in order, with their raw text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// What redacting the encoded object after the fact gives: the reference
/// the encoder's in-place redaction must match byte for byte.
fn redact_after(json: &str, rules: &[(&str, Redaction)], key: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let members: Members = serde_json::from_str(json).unwrap();
    let mut out = String::from("{");
    for (name, value) in members.0 {
        let rule = rules
            .iter()
            .find(|(f, _)| *f == name && name != "schema")
            .map(|(_, r)| *r);
        if rule == Some(Redaction::Remove) {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(&name).unwrap());
        out.push(':');
        match rule {
            Some(Redaction::Mask) => out.push_str("\"[redacted]\""),
            Some(Redaction::Hmac) => {
                let raw = value.get();
                let text = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned());
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                mac.update(text.as_bytes());
                let tag: [u8; 32] = mac.finalize().into_bytes().into();
                out.push_str("\"hmac-sha256:");
                for b in tag {
                    out.push_str(&format!("{b:02x}"));
                }
                out.push('"');
            }
            _ => out.push_str(value.get()),
        }
    }
    out.push('}');
    out
}

#[test]
fn redaction_while_encoding_matches_redacting_after() {
    const KEY: &[u8] = b"0123456789abcdef-test";
    let mut p = ToolCall::default();
    p.set_tool("sea\"rch").set_args("\u{1}é").set_odd("x\\y");
    p.outcome = Outcome::ToolNotFound;
    p.delta = -12;
    p.latency_us = 7;
    p.retried = true;
    p.schema = 3;
    let plain = encode(&p, Redactor::none());
    let fields = [
        "tool",
        "outcome",
        "decision",
        "args",
        "we\"ird\\key\u{1}\n",
        "latency_us",
        "delta",
        "retried",
        "schema",
        "truncated",
    ];
    for with in [Redaction::Remove, Redaction::Mask, Redaction::Hmac] {
        // Each field alone, then all of them (including the unredactable
        // `schema`, which stays), then every other one.
        let mut sets: Vec<Vec<&str>> = fields.iter().map(|f| vec![*f]).collect();
        sets.push(fields.to_vec());
        sets.push(fields.iter().step_by(2).copied().collect());
        for set in sets {
            let rules: Vec<(&str, Redaction)> = set.iter().map(|f| (*f, with)).collect();
            let redactor = Redactor::new(
                rules.iter().map(|(f, r)| ((*f).to_owned(), *r)),
                KEY.to_vec(),
            );
            let ours = encode(&p, &redactor);
            assert_eq!(ours, redact_after(&plain, &rules, KEY), "{with} {set:?}");
            serde_json::from_str::<serde_json::Value>(&ours).expect("valid JSON");
        }
    }
}

#[test]
fn audit_payload_redaction_while_encoding_matches_redacting_after() {
    const KEY: &[u8] = b"0123456789abcdef-test";
    let mut e = AuditPayload::default();
    e.set_session_id("s\"1\n")
        .set_token_id("tok")
        .set_agent_id(&"é".repeat(40))
        .set_action("http.get")
        .set_resource("https://x/y?a=\u{1}")
        .set_deny_reason("no \\ way")
        .set_context_hash("sha256:00")
        .set_bundle_version("v3")
        .set_sandbox_id("");
    e.decision = Decision::Deny;
    e.enforcement_latency_us = 5;
    e.dispatch_status = 403;
    e.dispatch_latency_us = 7;
    e.response_size = 11;
    let plain = {
        let mut out = Vec::new();
        e.write_json(&mut out, Redactor::none());
        String::from_utf8(out).unwrap()
    };
    let fields = <AuditPayload as EncodeJson>::REDACTABLE;
    assert_eq!(
        fields.len(),
        15,
        "every field of AuditPayload is redactable"
    );
    for with in [Redaction::Remove, Redaction::Mask, Redaction::Hmac] {
        let mut sets: Vec<Vec<&str>> = fields.iter().map(|f| vec![*f]).collect();
        sets.push(fields.to_vec());
        for set in sets {
            let rules: Vec<(&str, Redaction)> = set.iter().map(|f| (*f, with)).collect();
            let redactor = Redactor::new(
                rules.iter().map(|(f, r)| ((*f).to_owned(), *r)),
                KEY.to_vec(),
            );
            let mut out = Vec::new();
            e.write_json(&mut out, &redactor);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                redact_after(&plain, &rules, KEY),
                "{with} {set:?}"
            );
        }
    }
}

/// A hand-written encoder that declares no redactable field.
#[derive(Clone, Default)]
struct Opaque(u8);

impl Payload for Opaque {
    fn clear(&mut self) {
        self.0 = 0;
    }
}

impl EncodeJson for Opaque {
    fn write_json(&self, out: &mut Vec<u8>, _: &Redactor) {
        out.extend_from_slice(br#"{"secret":"kept"}"#);
    }
}

impl LatencySource for Opaque {}

#[test]
fn a_payload_declaring_no_redactable_field_refuses_every_rule() {
    let err = Runtime::<Opaque>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .redact("secret", Redaction::Remove)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::RedactField { .. }), "{err}");
    assert!(
        err.to_string().contains("declares no redactable field"),
        "{err}"
    );
}
