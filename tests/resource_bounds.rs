//! The capture ring's memory is bounded: a configuration whose ring would
//! be larger than `max_ring_bytes` (default 1 GiB) is refused before
//! anything is allocated, with the size, the limit and the fix; an
//! allocation the system refuses is an error, never an abort.

use std::time::{Duration, Instant};

use auditring::capture::DEFAULT_MAX_RING_BYTES;
use auditring::config::Config;
use auditring::sink::MemorySink;
use auditring::{AuditPayload, BuildError, Capture, ConfigError, Payload, Runtime, SigningKey};

fn builder() -> auditring::RuntimeBuilder<AuditPayload> {
    Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::generate())
        .sink(MemorySink::new())
}

#[test]
fn an_oversized_ring_is_refused_with_size_limit_and_fix() {
    // The configuration from the report: 8 lanes of 2^24 slots, ~175 GB.
    let started = Instant::now();
    let err = builder()
        .lane_capacity(1 << 24)
        .max_producers(8)
        .build()
        .unwrap_err();
    // Allocating and prefaulting even one lane of this ring takes many
    // seconds (and more memory than the machine has): a refusal this fast
    // allocated nothing.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let BuildError::Config(ConfigError::RingTooLarge {
        bytes,
        limit,
        lanes,
        lane_capacity,
    }) = &err
    else {
        panic!("expected RingTooLarge, got {err:?}");
    };
    assert_eq!((*limit, *lanes, *lane_capacity), (1 << 30, 8, 1 << 24));
    assert_eq!(*limit, DEFAULT_MAX_RING_BYTES);
    let slot = std::mem::size_of::<AuditPayload>() + 8;
    assert!(*bytes >= 8 * (1 << 24) * slot, "{bytes}");
    assert!(*bytes > 150_000_000_000, "~175 GB: {bytes}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("({bytes} bytes)")), "{msg}");
    assert!(msg.contains("8 lanes x 16777216 slots"), "{msg}");
    assert!(msg.contains("1.0 GiB (1073741824 bytes)"), "{msg}");
    assert!(
        msg.contains("lower `lane_capacity` or `max_producers`, or raise `max_ring_bytes`"),
        "{msg}"
    );
}

#[test]
fn the_limit_is_the_builders_memory_bytes() {
    let capture = Capture::<AuditPayload>::builder()
        .lane_capacity(1000) // rounded up to 1024
        .max_producers(3);
    let needed = capture.memory_bytes();
    assert!(needed > 3 * 1024 * std::mem::size_of::<AuditPayload>());
    assert!(matches!(
        capture.clone().max_ring_bytes(needed - 1).build(),
        Err(ConfigError::RingTooLarge { bytes, .. }) if bytes == needed
    ));
    assert!(capture.clone().max_ring_bytes(needed).build().is_ok());
    // The runtime builder passes the option on, and the default allows the
    // default ring.
    assert!(
        builder()
            .lane_capacity(1000)
            .max_producers(3)
            .max_ring_bytes(needed - 1)
            .build()
            .is_err()
    );
    builder()
        .lane_capacity(1000)
        .max_producers(3)
        .max_ring_bytes(needed)
        .build()
        .unwrap()
        .shutdown()
        .unwrap();
    builder().build().unwrap().shutdown().unwrap();
}

#[test]
fn a_lowered_limit_refuses_a_ring_the_default_allows() {
    // 2 lanes of 2^17 slots: ~340 MiB, above the limit only when lowered.
    let capture = Capture::<AuditPayload>::builder()
        .lane_capacity(1 << 17)
        .max_producers(2);
    assert!(capture.memory_bytes() < DEFAULT_MAX_RING_BYTES);
    assert!(capture.clone().max_ring_bytes(64 << 20).build().is_err());
}

/// A payload of 16 MiB: 2^24 slots of it are 256 TiB, more than a 64-bit
/// process can map.
#[derive(Clone)]
struct Enormous([u64; 2 << 20]);

// Never called in these tests: the ring is refused before any slot exists.
impl Default for Enormous {
    fn default() -> Self {
        Enormous([0; 2 << 20])
    }
}

impl serde::Serialize for Enormous {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl Payload for Enormous {
    fn clear(&mut self) {
        self.0[0] = 0;
    }
}

#[test]
fn memory_the_system_refuses_is_an_error_not_an_abort() {
    assert_eq!(std::mem::size_of::<Enormous>(), 16 << 20);
    let capture = Capture::<Enormous>::builder()
        .lane_capacity(1 << 24)
        .max_producers(1);
    // Refused by the limit, before allocating...
    assert!(matches!(
        capture.clone().build(),
        Err(ConfigError::RingTooLarge { .. })
    ));
    // ...and with no limit, the allocation fails (256 TiB is beyond the
    // address space, whatever the overcommit setting) and says so.
    let err = capture.max_ring_bytes(usize::MAX).build().unwrap_err();
    assert!(
        matches!(err, ConfigError::OutOfMemory { bytes } if bytes >= 1 << 48),
        "{err:?}"
    );
    assert!(err.to_string().contains("the system refused"), "{err}");
}

#[test]
fn the_configuration_file_has_the_option() {
    let config: Config =
        toml::from_str("key_file = \"k.pem\"\nmax_ring_bytes = 0\ntracing = true").unwrap();
    assert_eq!(config.validate().unwrap_err().field, "max_ring_bytes");

    let dir = std::env::temp_dir().join(format!("auditring-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(&key, SigningKey::generate().to_pkcs8_pem().as_bytes()).unwrap();
    let text = |bytes: usize| {
        format!(
            "key_file = \"{}\"\nmax_ring_bytes = {bytes}\ntracing = true\nlane_capacity = 1024\nmax_producers = 1",
            key.display()
        )
    };
    let config: Config = toml::from_str(&text(4096)).unwrap();
    assert_eq!(config.max_ring_bytes, Some(4096));
    let err = config
        .runtime_builder::<AuditPayload>()
        .unwrap()
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Config(ConfigError::RingTooLarge { limit: 4096, .. })
        ),
        "{err:?}"
    );
    let config: Config = toml::from_str(&text(64 << 20)).unwrap();
    let runtime = config
        .runtime_builder::<AuditPayload>()
        .unwrap()
        .build()
        .unwrap();
    runtime.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
