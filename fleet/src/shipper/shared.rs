//! What the shipper's thread shares with its handle: the stop flag and the
//! metrics.

use std::sync::atomic::{AtomicBool, AtomicU64};

use hdrhistogram::Histogram;

use super::config::ShipMetrics;

#[derive(Default)]
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) metrics: parking_lot::Mutex<ShipMetrics>,
    pub(super) ack_us: parking_lot::Mutex<Option<Histogram<u64>>>,
    pub(super) lag_ms: parking_lot::Mutex<Option<Histogram<u64>>>,
    pub(super) acked_batches: AtomicU64,
    /// What the connection last reported going wrong (a refused
    /// authorisation, a failed TLS handshake); cleared when it connects.
    pub(super) connection_trouble: parking_lot::Mutex<Option<String>>,
}

/// The metrics, with the latency percentiles filled in.
pub(super) fn snapshot(shared: &Shared) -> ShipMetrics {
    let mut m = shared.metrics.lock().clone();
    if let Some(h) = shared.ack_us.lock().as_ref() {
        m.ack_p50_us = h.value_at_quantile(0.5);
        m.ack_p99_us = h.value_at_quantile(0.99);
    }
    if let Some(h) = shared.lag_ms.lock().as_ref() {
        m.lag_p99_ms = h.value_at_quantile(0.99);
    }
    m
}
