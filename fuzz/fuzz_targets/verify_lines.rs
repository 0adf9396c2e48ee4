//! Arbitrary bytes through the verifier's line reader and seal parser:
//! never a panic, and a log that is not the valid one is never intact.
#![no_main]

use std::sync::OnceLock;

use auditring::sink::MemorySink;
use auditring::verify::{Status, Verifier};
use auditring::{AuditPayload, Runtime, SigningKey};
use auditring::format::seal::Seal;
use libfuzzer_sys::fuzz_target;

/// A small valid log and the verifier that trusts its key.
fn fixture() -> &'static (Vec<u8>, Verifier) {
    static FIXTURE: OnceLock<(Vec<u8>, Verifier)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::generate();
        let sink = MemorySink::new();
        let runtime = Runtime::<AuditPayload>::builder()
            .signing_key(key.clone())
            .sink(sink.clone())
            .max_batch(3)
            .build()
            .expect("runtime");
        let mut recorder = runtime.recorder().expect("recorder");
        for i in 0..7u64 {
            recorder
                .record(|e| {
                    e.set_action("fuzz");
                    e.response_size = i;
                })
                .expect("recorded");
        }
        drop(recorder);
        runtime.shutdown().expect("shutdown");
        (sink.bytes(), Verifier::new([key.public_key()]))
    })
}

fuzz_target!(|data: &[u8]| {
    let (valid, verifier) = fixture();
    // Raw input as a whole log and as a seal line.
    let _ = verifier.verify_bytes(data);
    let _ = Seal::parse_line(data);
    // The input spliced into the valid log: anything that changes the log
    // must be reported.
    if !data.is_empty() {
        let at = usize::from(data[0]) * valid.len() / 256;
        let mut log = valid[..at].to_vec();
        log.extend_from_slice(&data[1..]);
        log.extend_from_slice(&valid[at..]);
        if log != *valid {
            assert_ne!(verifier.verify_bytes(&log).status(), Status::Intact);
        }
    }
});
