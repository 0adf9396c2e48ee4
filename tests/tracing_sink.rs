//! `TracingSink` emits one structured `tracing` event per audit event and
//! per seal (target `auditring::audit`), and the runtime's periodic report
//! arrives on target `auditring::stats`. One test: it installs the
//! process-wide subscriber (the sink runs on the runtime's writer thread).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditring::sink::{MemorySink, SinkPolicy, TracingSink};
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Captured = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// Records the target and fields of every event.
struct Capture(Captured);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_owned(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn tracing_sink_and_periodic_report() {
    let captured: Captured = Arc::default();
    tracing::subscriber::set_global_default(Capture(Arc::clone(&captured))).unwrap();

    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
        .sink_with(TracingSink::new(), SinkPolicy::BestEffort)
        .max_batch(5)
        .full_policy(FullPolicy::Block)
        .report_interval(Some(Duration::from_millis(1)))
        .build()
        .unwrap();
    let mut r = runtime.recorder().unwrap();
    for i in 0..10u64 {
        r.record(|e| {
            e.set_action("db.query").set_resource(&format!("table-{i}"));
            e.decision = Decision::Deny;
        })
        .unwrap();
    }
    drop(r);
    // Long enough for at least one periodic report.
    std::thread::sleep(Duration::from_millis(20));
    let report = runtime.shutdown().unwrap();
    assert_eq!(report.sink_errors, 0);

    let events = captured.lock().unwrap();
    let field = |fields: &Vec<(String, String)>, name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let audit: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "auditring::audit")
        .collect();
    let records: Vec<_> = audit
        .iter()
        .filter(|(_, f)| field(f, "kind").as_deref() == Some("event"))
        .collect();
    assert_eq!(records.len(), 10, "one tracing event per audit event");
    for (i, (_, fields)) in records.iter().enumerate() {
        assert_eq!(field(fields, "seq"), Some(i.to_string()));
        let payload = field(fields, "payload").unwrap();
        assert!(
            payload.contains(&format!(r#""resource":"table-{i}""#)),
            "{payload}"
        );
        assert!(field(fields, "id").is_some() && field(fields, "ts").is_some());
    }
    let seals = audit
        .iter()
        .filter(|(_, f)| field(f, "kind").as_deref() == Some("seal"))
        .count();
    assert_eq!(seals as u64, report.seals, "one tracing event per seal");
    assert!(
        events
            .iter()
            .any(|(t, f)| t == "auditring::stats" && field(f, "accepted").is_some()),
        "the periodic report arrives"
    );
}
