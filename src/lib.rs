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
//! // The guard owns shutdown; the runtime handle it gives is Clone + Sync.
//! let guard = Runtime::<AuditPayload>::builder()
//!     .signing_key(key.clone())
//!     .sink(log.clone())
//!     .build()?;
//!
//! // On a gateway worker thread: one recorder per thread.
//! let mut recorder = guard.runtime().recorder()?;
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
//! let report = guard.shutdown()?;
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
//! A payload plays three parts, each a trait of the layer that needs it:
//! the ring needs only [`Payload`](trait@Payload) (a `Default + Clone +
//! Send` type with a cheap `clear`); a [`Runtime`] also writes it into the
//! log ([`EncodeJson`], in [`format`](mod@format)) and asks it for the gateway's
//! latencies ([`LatencySource`](stats::LatencySource), in [`stats`]).
//!
//! `#[derive(Payload)]` writes the first two from one list of fields:
//! build the struct from [`InlineStr`]s (so that recording stays
//! allocation-free), integers, `bool`s and enums (`#[derive(JsonValue)]`),
//! and get setters that mark cuts in a [`Truncated`] field, a `clone_from`
//! that copies only the bytes in use, and an encoder that writes constant
//! fragments as precomputed bytes and applies the runtime's
//! [redaction](Redaction) rules while it writes.
//!
//! ```
//! use auditring::sink::MemorySink;
//! use auditring::stats::LatencySource;
//! use auditring::verify::{Status, Verifier};
//! use auditring::{InlineStr, JsonValue, Payload, Redaction, Runtime, SigningKey, Truncated};
//!
//! #[derive(Clone, Copy, Debug, Default, JsonValue)]
//! enum Outcome {
//!     #[default]
//!     Success,
//!     RateLimited,
//! }
//!
//! #[derive(Default, Debug, Payload)]
//! struct ToolCall {
//!     tool: InlineStr<32>,
//!     user: InlineStr<32>,
//!     outcome: Outcome,
//!     took_us: u64,
//!     truncated: Truncated<ToolCall>,
//! }
//!
//! impl LatencySource for ToolCall {} // no gateway latencies to report
//!
//! let key = SigningKey::generate();
//! let log = MemorySink::new();
//! let runtime = Runtime::<ToolCall>::builder()
//!     .signing_key(key.clone())
//!     .sink(log.clone())
//!     .redact("user", Redaction::Mask)
//!     .build()?;
//! let mut recorder = runtime.recorder()?;
//! recorder.record(|e| {
//!     e.set_tool("search").set_user("alice");
//!     e.outcome = Outcome::RateLimited;
//! })?;
//! drop(recorder);
//! runtime.shutdown()?;
//!
//! let text = String::from_utf8(log.bytes())?;
//! assert!(text.contains(
//!     r#""payload":{"tool":"search","user":"[redacted]","outcome":"rate_limited","took_us":0,"truncated":[]}"#
//! ));
//! assert_eq!(Verifier::new([key.public_key()]).verify_bytes(text.as_bytes()).status(), Status::Intact);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/gate_check.rs` shows a gate-check payload with a bounded
//! obligations list (a field type with its own [`JsonValue`]); a payload
//! the derive does not fit implements [`EncodeJson`] by hand with
//! [`JsonObject`](format::encode::JsonObject).

#![deny(
    unsafe_op_in_unsafe_fn,
    missing_docs,
    missing_debug_implementations,
    unnameable_types
)]
#![warn(clippy::undocumented_unsafe_blocks)]

// The derive macros name this crate `::auditring`, here as in users' code.
extern crate self as auditring;

pub mod capture;
#[cfg(feature = "config")]
pub mod config;
pub mod format;
mod payload;
mod pipeline;
pub mod sink;
pub mod stats;
pub mod verify;

/// Derives [`JsonValue`](trait@JsonValue) for an enum of unit variants,
/// each written as its snake_case name (or `#[payload(rename = "...")]`).
pub use auditring_derive::JsonValue;
/// Derives [`Payload`](trait@Payload), `Clone`, [`EncodeJson`] and
/// [`StringFields`] for a struct, with an accessor and a setter per inline
/// string field: see [`Payload`](trait@Payload#deriving).
pub use auditring_derive::Payload;
pub use capture::recorder::{FullPolicy, RecordError, Recorder};
pub use capture::{
    Capture, CaptureBuilder, CaptureStats, CapturedEvent, ConfigError, Consumer, RecorderError,
};
pub use format::checkpoint::{Checkpoint, CheckpointError};
pub use format::encode::{EncodeJson, JsonValue};
pub use format::keys::{KeyError, KeyId, PublicKey, SigningKey};
pub use format::redact::Redaction;
pub use payload::{AuditPayload, Decision, InlineStr, Payload, StringFields, Truncated, capacity};
pub use pipeline::builder::{BuildError, DEFAULT_HEARTBEAT_INTERVAL, RuntimeBuilder};
pub use pipeline::flush::{FlushError, FlushHandle, FlushReport};
pub use pipeline::report::{
    RuntimeStats, ShutdownError, ShutdownReport, StageLatency, StatsSnapshot,
};
pub use pipeline::runtime::{Runtime, RuntimeGuard};
/// Stream and event ids (re-exported so that users need no `uuid`
/// dependency of their own).
pub use uuid::Uuid;

/// What derived code names; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
