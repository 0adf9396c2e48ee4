//! Tamper-evident audit logging for ultra-low-latency gateways.
//!
//! A gateway (policy enforcement point, AI-agent tool gateway, trading or
//! API gateway) records one audit event per decision with a [`Recorder`].
//! Recording fills the event in a producer-private buffer, copies it into a
//! preallocated slot of a lock-free ring, stamps the capture time and
//! publishes the slot: 70-80 nanoseconds for a full event on a 2-core VM,
//! no heap allocation, no lock, no system call. A dedicated signer thread
//! drains the ring in batches, numbers each event (gap-free
//! `seq`, UUID v7 id), encodes it as one JSON line, hashes the batch into an
//! RFC 6962 Merkle tree and signs one ECDSA P-256 seal per batch, chained to
//! the previous seal; synchronous [sinks](sink) write the sealed batches;
//! the [verifier](verify) names any deletion, insertion, reordering,
//! modification or truncation. The log format is specified in
//! `docs/FORMAT.md`.
//!
//! - Each producer owns a single-producer lane, so producers never contend
//!   on a shared cache line; the signer merges lanes by capture time.
//! - Over-long strings are cut at a UTF-8 boundary and the event lists the
//!   cut fields ([`AuditPayload::truncated`]): never an allocation, never a
//!   panic, never silent.
//! - When a lane is full the [`FullPolicy`] decides: drop and count, block,
//!   or block for a bounded time. Accepted events are never overwritten,
//!   `accepted + dropped == attempted` is exact, and the drop count is
//!   signed into the next seal.
//! - No async runtime: plain threads, embeddable anywhere.
//!
//! # Examples
//!
//! ```
//! use auditring::sink::MemorySink;
//! use auditring::verify::{Status, Verifier};
//! use auditring::{AuditPayload, Decision, Runtime, SigningKey};
//!
//! let key = SigningKey::generate(); // or SigningKey::from_file("audit-key.pem")?
//! let log = MemorySink::new();      // or FileSink::open("audit.jsonl")?
//! let runtime = Runtime::<AuditPayload>::builder()
//!     .signing_key(key.clone())
//!     .sink(log.clone())
//!     .build()?;
//!
//! // On a gateway worker thread: one recorder per thread.
//! let mut recorder = runtime.recorder()?;
//! let worker = std::thread::spawn(move || {
//!     for i in 0..100u64 {
//!         recorder.record(|e| {
//!             e.set_session_id("sess-1")
//!                 .set_action("http.get")
//!                 .set_resource("https://api.example.com/orders");
//!             e.decision = if i % 10 == 0 { Decision::Deny } else { Decision::Allow };
//!             e.enforcement_latency_us = 3;
//!         })?;
//!     }
//!     Ok::<(), auditring::RecordError>(())
//! });
//! worker.join().unwrap()?;
//!
//! let report = runtime.shutdown()?;
//! assert_eq!(report.sealed, 100);
//!
//! let verified = Verifier::new([key.public_key()]).verify_bytes(&log.bytes());
//! assert_eq!(verified.status(), Status::Intact);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The capture ring on its own
//!
//! [`Capture`] gives the ring without the signer: [`Recorder`]s on one
//! side, a [`Consumer`] that drains batches in capture order on the other.
//!
//! ```
//! use auditring::{AuditPayload, Capture, FullPolicy};
//!
//! let (capture, mut consumer) = Capture::<AuditPayload>::builder()
//!     .full_policy(FullPolicy::Block)
//!     .build()?;
//! let mut recorder = capture.recorder()?;
//! recorder.record(|e| { e.set_action("tool.call"); })?;
//! assert_eq!(consumer.drain(64, |ev| assert_eq!(ev.payload().action(), "tool.call")), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Custom payloads
//!
//! The ring is generic over any [`Payload`]: a `Default + Send` type with a
//! cheap `clear`. Build fixed-size payloads from [`InlineStr`] so that
//! recording stays allocation-free; `examples/gate_check.rs` shows a
//! gate-check payload with a bounded obligations list.

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod affinity;
mod capture;
mod checkpoint;
mod clock;
pub mod config;
mod counters;
mod event;
mod flush;
mod hasher;
mod intake;
mod json;
mod keys;
pub mod line;
mod logfile;
pub mod merkle;
mod payload;
mod recorder;
mod redact;
mod ring;
mod runtime;
mod seal;
mod signer;
pub mod sink;
pub mod stats;
mod sync;
pub mod verify;
mod writer;

pub use affinity::{PinError, available_cores, pin_current_thread};
pub use capture::{
    Capture, CaptureBuilder, CaptureStats, CapturedEvent, ConfigError, Consumer,
    DEFAULT_MAX_RING_BYTES, MAX_LANE_CAPACITY, MAX_PRODUCERS, RecorderError,
};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use event::event_line;
pub use flush::{FlushError, FlushHandle, FlushReport};
pub use keys::{KeyError, KeyId, PublicKey, SigningKey, is_low_s};
pub use payload::{AuditPayload, Decision, InlineStr, Payload, Truncated, capacity};
pub use recorder::{FullPolicy, RecordError, Recorder};
pub use redact::Redaction;
pub use runtime::{
    BuildError, DEFAULT_HEARTBEAT_INTERVAL, Runtime, RuntimeBuilder, RuntimeStats, ShutdownError,
    ShutdownReport, StageLatency, StatsSnapshot,
};
pub use seal::{
    ChainHead, FORMAT_VERSION, GENESIS, Orphans, PREIMAGE_LEN, PREIMAGE_TAG, Seal, SealLineError,
    SealReason,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
