//! Publishing: the batches read from the spool sent in order, a window of
//! them in flight, each acknowledged before the cursor moves past it; any
//! error sends every message in flight again, in order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use super::config::ShipError;
use super::cursor::save_cursor;
use super::ship::{Ship, backoff, now_nanos};
use crate::spool::{Batch, Position};
use crate::{HEADER_GATEWAY, HEADER_PART, HEADER_PARTS, HEADER_SEAL, HEADER_SEQ, HEADER_STREAM};

/// Room left in a message for headers and protocol overhead.
const HEADROOM: usize = 4096;

/// One message in flight.
struct Pending {
    subject: String,
    id: String,
    headers: HeaderMap,
    payload: Bytes,
    /// Set on a batch's last part.
    end: Option<Position>,
    events: u64,
    bytes: u64,
    seal_unix_nanos: u64,
    sent: Instant,
    fut: Option<PublishAckFuture>,
}

impl Ship {
    /// Ships until stopped (and the spool is shipped, or the stop timeout
    /// has passed), with housekeeping every heartbeat interval.
    ///
    /// # Errors
    ///
    /// [`ShipError::Rejected`] for a batch the server can never store;
    /// [`ShipError::Io`] if the spool cannot be read.
    pub(super) async fn publish(
        &mut self,
        client: &async_nats::Client,
        js: &async_nats::jetstream::Context,
        bucket: Option<&async_nats::jetstream::stream::Stream>,
    ) -> Result<(), ShipError> {
        let mut inflight: VecDeque<Pending> = VecDeque::new();
        let mut failures = 0u32;
        let mut last_beat = Instant::now() - self.config.heartbeat_interval;
        let mut stop_deadline: Option<Instant> = None;
        // Listing the log's files costs system calls: the lag metric is
        // refreshed at most every 100 ms.
        let mut last_lag = Instant::now();
        loop {
            if last_beat.elapsed() >= self.config.heartbeat_interval {
                last_beat = Instant::now();
                self.housekeeping(client, bucket).await;
            }
            if self.stopping() {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| Instant::now() + self.config.stop_timeout);
                if Instant::now() >= deadline {
                    break;
                }
            }
            // Fill the window.
            let mut exhausted = false;
            while inflight.len() < self.config.window {
                match self.spool.next_batch()? {
                    Some(batch) => {
                        self.throttle(batch.bytes.len()).await;
                        let max_payload = client.server_info().max_payload;
                        for mut p in self.messages(batch, max_payload) {
                            p.fut = self.send(js, &p).await;
                            inflight.push_back(p);
                        }
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            let Some(front) = inflight.front_mut() else {
                if self.stopping() && exhausted {
                    break;
                }
                if last_lag.elapsed() >= Duration::from_millis(100) {
                    last_lag = Instant::now();
                    self.publish_lag(true);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            };
            let outcome = match front.fut.take() {
                Some(fut) => match tokio::time::timeout(self.config.ack_timeout, fut).await {
                    Ok(Ok(ack)) => Ok(ack.duplicate),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no acknowledgement within the ack timeout".into()),
                },
                None => Err("the message could not be sent".into()),
            };
            match outcome {
                Ok(duplicate) => {
                    failures = 0;
                    let p = inflight.pop_front().expect("front");
                    self.acked(p, duplicate);
                }
                Err(e) => {
                    if e.contains("maximum payload") || e.contains("message size exceeds") {
                        return Err(ShipError::Rejected(e));
                    }
                    self.error(format!("batch {} not stored: {e}; retrying", front.id));
                    tokio::time::sleep(backoff(failures, &self.config)).await;
                    failures = failures.saturating_add(1);
                    if self.stopping() && stop_deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    // Send every message in flight again, in order.
                    let n = inflight.len() as u64;
                    self.shared.metrics.lock().retries += n;
                    for p in inflight.iter_mut() {
                        p.sent = Instant::now();
                        p.fut = self.send(js, p).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// The messages of a batch: one, or parts below the maximum payload.
    fn messages(&mut self, batch: Batch, max_payload: usize) -> Vec<Pending> {
        let stream = batch.stream();
        self.last_read_seal = Some((stream.clone(), batch.seal.index));
        let limit = if max_payload > HEADROOM * 2 {
            max_payload - HEADROOM
        } else {
            1 << 20
        };
        let total = batch.bytes.len() as u64;
        let payload = Bytes::from(batch.bytes);
        let parts = payload.len().div_ceil(limit).max(1);
        let seq = if batch.seal.count == 0 {
            format!("{}-", batch.seal.seq_start)
        } else {
            format!(
                "{}-{}",
                batch.seal.seq_start,
                batch.seal.seq_start + batch.seal.count - 1
            )
        };
        (0..parts)
            .map(|i| {
                let part = payload.slice(i * limit..((i + 1) * limit).min(payload.len()));
                let mut headers = HeaderMap::new();
                headers.insert(HEADER_GATEWAY, self.config.gateway.as_str());
                headers.insert(HEADER_STREAM, stream.as_str());
                headers.insert(HEADER_SEAL, batch.seal.index.to_string().as_str());
                headers.insert(HEADER_PART, i.to_string().as_str());
                headers.insert(HEADER_PARTS, parts.to_string().as_str());
                headers.insert(HEADER_SEQ, seq.as_str());
                let last = i + 1 == parts;
                Pending {
                    subject: self.subject.clone(),
                    id: crate::message_id(&stream, batch.seal.index, i as u32, parts as u32),
                    headers,
                    payload: part,
                    end: last.then(|| batch.end.clone()),
                    events: if last { batch.seal.count } else { 0 },
                    bytes: if last { total } else { 0 },
                    seal_unix_nanos: batch.seal.unix_nanos,
                    sent: Instant::now(),
                    fut: None,
                }
            })
            .collect()
    }

    async fn send(
        &self,
        js: &async_nats::jetstream::Context,
        p: &Pending,
    ) -> Option<PublishAckFuture> {
        let publish = PublishMessage::build()
            .headers(p.headers.clone())
            .message_id(p.id.as_str())
            .payload(p.payload.clone());
        match js.send_publish(p.subject.clone(), publish).await {
            Ok(f) => Some(f),
            Err(e) => {
                self.error(format!("cannot send {}: {e}", p.id));
                None
            }
        }
    }

    fn acked(&mut self, p: Pending, duplicate: bool) {
        let ack_us = p.sent.elapsed().as_micros() as u64;
        if let Some(h) = self.shared.ack_us.lock().as_mut() {
            let _ = h.record(ack_us.max(1));
        }
        let mut m = self.shared.metrics.lock();
        if duplicate {
            m.duplicates += 1;
        }
        let Some(end) = p.end else { return };
        let lag_ms = now_nanos().saturating_sub(p.seal_unix_nanos) / 1_000_000;
        if let Some(h) = self.shared.lag_ms.lock().as_mut() {
            let _ = h.record(lag_ms.max(1));
        }
        m.acked_batches += 1;
        m.acked_events += p.events;
        m.acked_bytes += p.bytes;
        m.acked_stream = end.stream.clone();
        m.acked_seal = Some(end.seal);
        drop(m);
        self.shared.acked_batches.fetch_add(1, Ordering::Relaxed);
        self.acked_seal_nanos = p.seal_unix_nanos;
        self.acked = Some(end);
        if self.cursor_saved.elapsed() >= Duration::from_millis(100) {
            self.cursor_saved = Instant::now();
            if let Some(pos) = &self.acked
                && let Err(e) = save_cursor(&self.config.cursor, &self.id, pos)
            {
                self.error(format!("cannot save the cursor: {e}"));
            }
        }
    }

    /// The catch-up cap: a token bucket of one second.
    async fn throttle(&mut self, bytes: usize) {
        let Some(rate) = self.config.catch_up_bytes_per_s else {
            return;
        };
        let rate = rate.max(1) as f64;
        let now = Instant::now();
        self.bucket =
            (self.bucket + now.duration_since(self.bucket_at).as_secs_f64() * rate).min(rate);
        self.bucket_at = now;
        self.bucket -= bytes as f64;
        if self.bucket < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.bucket / rate)).await;
        }
    }

    pub(super) fn publish_lag(&self, caught_up: bool) {
        let Ok((behind, total)) = self.spool.backlog() else {
            return;
        };
        let mut m = self.shared.metrics.lock();
        m.lag_bytes = behind;
        m.spool_bytes = total;
        m.lag_seconds = if (caught_up && behind == 0) || self.acked_seal_nanos == 0 {
            0.0
        } else {
            now_nanos().saturating_sub(self.acked_seal_nanos) as f64 / 1e9
        };
    }
}
