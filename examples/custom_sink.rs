//! A sink of your own: ship sealed batches to another system (a SIEM, a
//! collector) without ever slowing the audit pipeline.
//!
//! `ShippingSink` hands each sealed batch to a shipper thread through a
//! bounded queue. When the shipper falls behind, the queue is full and the
//! sink reports the batch as failed: added with `SinkPolicy::BestEffort`,
//! the failure is counted, logged through `tracing`, and signed into the
//! next seal, while the required local file keeps the complete log.
//!
//! Run with `cargo run --example custom_sink`.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use auditring::sink::{Batch, FileSink, Sink, SinkPolicy};
use auditring::verify::{FindingKind, Verifier};
use auditring::{AuditPayload, Decision, FullPolicy, Runtime, SigningKey};

/// Hands sealed batches to a shipper thread.
struct ShippingSink {
    queue: SyncSender<Vec<u8>>,
}

impl ShippingSink {
    /// A sink with room for `batches` batches in flight, and the receiving
    /// end for the shipper.
    fn new(batches: usize) -> (Self, Receiver<Vec<u8>>) {
        let (queue, shipper) = sync_channel(batches);
        (Self { queue }, shipper)
    }
}

impl Sink for ShippingSink {
    fn write_batch(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        // The batch's bytes are exactly what was sealed: ship them as they
        // are (re-encoding them would break the Merkle root).
        match self.queue.try_send(batch.bytes().to_vec()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "shipper queue full: the collector is slower than the gateway",
            )),
            Err(TrySendError::Disconnected(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the shipper has stopped",
            )),
        }
    }

    fn name(&self) -> &str {
        "shipper"
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("auditring-custom-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.jsonl");
    let key = SigningKey::generate();

    let (shipping, shipper) = ShippingSink::new(2);
    // A deliberately slow collector: 10 ms per batch.
    let collector = std::thread::spawn(move || {
        let (mut batches, mut lines) = (0u64, 0u64);
        for batch in shipper {
            std::thread::sleep(Duration::from_millis(10));
            batches += 1;
            lines += batch.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        (batches, lines)
    });

    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key.clone())
        .sink(FileSink::open(&path)?) // required: the complete, signed record
        .sink_with(shipping, SinkPolicy::BestEffort) // availability first
        .max_batch(64)
        .full_policy(FullPolicy::Block)
        .build()?;
    let mut recorder = runtime.recorder()?;
    for i in 0..20_000u64 {
        recorder.record(|e| {
            e.set_agent_id("agent-7")
                .set_action("tool.call")
                .set_resource("search");
            e.decision = if i % 7 == 0 {
                Decision::Deny
            } else {
                Decision::Allow
            };
        })?;
    }
    drop(recorder);
    let report = runtime.shutdown()?;
    let (batches, lines) = collector.join().expect("collector");

    println!(
        "recorded {} events; the file has all of them; the collector got {batches} batches ({lines} lines); {} batches could not be shipped",
        report.sealed, report.sink_errors
    );
    let verified = Verifier::new([key.public_key()]).verify_files(&[&path], |_| {})?;
    let signed: u64 = verified
        .of_kind(FindingKind::SinkErrors)
        .filter_map(|f| f.count)
        .sum();
    println!(
        "log {}: {:?}, {} events; the seals record {signed} shipping failures",
        path.display(),
        verified.status(),
        verified.events
    );
    assert_eq!(verified.events, report.sealed);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
