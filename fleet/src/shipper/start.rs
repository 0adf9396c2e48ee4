//! Starting: connecting, the stream, and where to go on from, decided by
//! the server's last stored batch of this gateway and the saved cursor.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

use super::config::ShipError;
use super::cursor::load_cursor;
use super::ship::{Ship, now_nanos};
use crate::spool::{Position, Spool, last_line_seal};
use crate::{HEADER_PART, HEADER_PARTS, HEADER_SEAL, HEADER_STREAM};

impl Ship {
    /// Connects (retrying), opens the stream (retrying), asks the server
    /// for this gateway's last stored batch (retrying) and positions the
    /// spool. `None` when stopped before the server answered.
    pub(super) async fn start(
        &mut self,
    ) -> Result<Option<(async_nats::Client, async_nats::jetstream::Context)>, ShipError> {
        let (min, max) = (self.config.backoff_min, self.config.backoff_max);
        let client = loop {
            // The connection reports its own troubles (a refused
            // authorisation, a failed TLS handshake) while it retries.
            let shared = std::sync::Arc::clone(&self.shared);
            let id = self.id.clone();
            let options = self
                .config
                .connection
                .options()
                .map_err(ShipError::Config)?
                .event_callback(move |event| {
                    let shared = std::sync::Arc::clone(&shared);
                    let id = id.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                *shared.connection_trouble.lock() = None;
                            }
                            async_nats::Event::ServerError(_)
                            | async_nats::Event::ClientError(_) => {
                                tracing::warn!(target: "auditring_nats", gateway = %id, "NATS connection: {event}");
                                *shared.connection_trouble.lock() = Some(event.to_string());
                            }
                            _ => {}
                        }
                    }
                })
                .retry_on_initial_connect()
                .reconnect_delay_callback(move |n| {
                    min.saturating_mul(1u32 << n.min(16) as u32).min(max)
                });
            match options.connect(self.config.url.as_str()).await {
                Ok(c) => break c,
                Err(e) => {
                    self.error(format!("cannot connect to {}: {e}", self.config.url));
                    if self.stopping() {
                        return Ok(None);
                    }
                    tokio::time::sleep(max).await;
                }
            }
        };
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(self.config.ack_timeout);

        // The stream, and what it already holds of this gateway.
        let (jetstream, settings) = (&js, &self.config.stream);
        let create = self.config.create_stream;
        let Some(stream) = self
            .retry(move || async move {
                if create {
                    crate::ensure_stream(jetstream, settings).await
                } else {
                    jetstream
                        .get_stream(&settings.name)
                        .await
                        .map_err(|e| e.to_string())
                }
            })
            .await
        else {
            return Ok(None);
        };
        let (stream, subject) = (&stream, &self.subject);
        let Some(last) = self
            .retry(move || async move {
                match stream.get_last_raw_message_by_subject(subject).await {
                    Ok(m) => Ok(Some(stored_position(&m.headers))),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(e) => Err(format!("cannot ask the server for the last message: {e}")),
                }
            })
            .await
        else {
            return Ok(None);
        };
        self.position(last.flatten())?;
        Ok(Some((client, js)))
    }

    /// Positions the spool from the cursor and the server's last stored
    /// batch.
    fn position(&mut self, server: Option<(String, u64, bool)>) -> Result<(), ShipError> {
        let cursor = load_cursor(&self.config.cursor, &self.id);
        match (&server, &cursor) {
            (Some((stream, seal, true)), Some(c)) if c.stream == *stream && c.seal == *seal => {
                if let Some(seal) = seal_ends_at(&self.spool, c)
                    && self.spool.seek(c.file, c.offset).is_ok()
                {
                    self.start_at(c.clone(), seal.unix_nanos);
                    return Ok(());
                }
            }
            _ => {}
        }
        // Find both in the spool, in order.
        let mut probe = Spool::new(&self.config.log).with_sync(false);
        let mut ordinal = 0u64;
        let mut server_at: Option<(u64, Position, usize, u64)> = None;
        let mut cursor_at: Option<u64> = None;
        while let Some(b) = probe.next_batch()? {
            ordinal += 1;
            let stream = b.stream();
            if let Some((s, k, _)) = &server
                && *s == stream
                && *k == b.seal.index
            {
                server_at = Some((ordinal, b.end.clone(), b.bytes.len(), b.seal.unix_nanos));
            }
            if let Some(c) = &cursor
                && c.stream == stream
                && c.seal == b.seal.index
            {
                cursor_at = Some(ordinal);
            }
        }
        let alarm = |this: &Self, why: String| {
            tracing::error!(target: "auditring_nats", gateway = %this.id, "{why}");
            let mut m = this.shared.metrics.lock();
            m.server_behind += 1;
            m.last_error = Some(why);
        };
        match (server, server_at) {
            (Some((s, k, complete)), Some((at, end, len, nanos))) => {
                if let Some(c) = cursor_at
                    && c > at
                {
                    alarm(
                        self,
                        format!(
                            "the server is behind the cursor: it holds up to {s}:{k}, the cursor says more was stored; shipping again from there"
                        ),
                    );
                }
                self.shared.metrics.lock().skipped = if complete { at } else { at - 1 };
                let offset = if complete {
                    end.offset
                } else {
                    end.offset - len as u64
                };
                self.spool.seek(end.file, offset)?;
                if complete {
                    self.start_at(end, nanos);
                }
            }
            (Some((s, k, _)), None) => {
                // Retention deleted the files up to it: the cursor, if it
                // still points into the log, says where to go on.
                let cursor_valid = cursor_at.is_some()
                    && cursor
                        .as_ref()
                        .is_some_and(|c| self.spool.seek(c.file, c.offset).is_ok());
                if cursor_valid && let Some(c) = cursor {
                    self.error(format!("the server's last batch {s}:{k} is no longer in the local log; continuing from the cursor"));
                    self.start_at(c, now_nanos());
                } else {
                    alarm(
                        self,
                        format!(
                            "the server's last batch {s}:{k} is not in the local log, nor is the cursor's: the local log was cut or replaced after shipping; shipping it again from its start (the collector reports the truncation)"
                        ),
                    );
                    self.spool.rewind();
                }
            }
            (None, _) => {
                if cursor_at.is_some() {
                    alarm(self, "the server holds nothing of this gateway, but the cursor says batches were stored: shipping the whole spool again".into());
                }
                self.spool.rewind();
            }
        }
        Ok(())
    }

    /// Starts after a batch the server already holds.
    fn start_at(&mut self, position: Position, seal_unix_nanos: u64) {
        let mut m = self.shared.metrics.lock();
        m.acked_stream = position.stream.clone();
        m.acked_seal = Some(position.seal);
        drop(m);
        self.acked_seal_nanos = seal_unix_nanos;
        self.acked = Some(position);
    }
}

/// The server's last stored message's (stream, seal, batch complete).
fn stored_position(headers: &HeaderMap) -> Option<(String, u64, bool)> {
    let get = |k: &str| headers.get(k).map(|v| v.as_str().to_owned());
    let stream = get(HEADER_STREAM)?;
    let seal = get(HEADER_SEAL)?.parse().ok()?;
    let part: u64 = get(HEADER_PART).and_then(|v| v.parse().ok()).unwrap_or(0);
    let parts: u64 = get(HEADER_PARTS).and_then(|v| v.parse().ok()).unwrap_or(1);
    Some((stream, seal, part + 1 >= parts))
}

/// Whether the cursor's file still holds the cursor's seal line right
/// before the cursor's offset.
fn seal_ends_at(spool: &Spool, c: &Position) -> Option<auditring::format::seal::Seal> {
    use std::os::unix::fs::FileExt;
    let files = spool.files().ok()?;
    let (path, _, len) = files.into_iter().find(|f| f.1 == c.file)?;
    if c.offset > len || c.offset == 0 {
        return None;
    }
    let from = c.offset.saturating_sub(1024);
    let mut buf = vec![0u8; (c.offset - from) as usize];
    let f = std::fs::File::open(path).ok()?;
    f.read_exact_at(&mut buf, from).ok()?;
    last_line_seal(&buf).filter(|s| s.index == c.seal && s.stream.to_string() == c.stream)
}
