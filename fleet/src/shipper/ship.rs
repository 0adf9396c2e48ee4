//! The shipper's worker: its state, and its course from start to stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::{ShipError, ShipperConfig};
use super::cursor::save_cursor;
use super::shared::Shared;
use crate::GatewayId;
use crate::spool::{Position, Spool};

/// The worker's state, on the shipper's thread.
pub(super) struct Ship {
    pub(super) config: ShipperConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) id: GatewayId,
    pub(super) subject: String,
    pub(super) spool: Spool,
    /// Where the spool stands after the last acknowledged batch.
    pub(super) acked: Option<Position>,
    pub(super) acked_seal_nanos: u64,
    pub(super) last_read_seal: Option<(String, u64)>,
    pub(super) cursor_saved: Instant,
    /// The catch-up cap's token bucket.
    pub(super) bucket: f64,
    pub(super) bucket_at: Instant,
}

impl Ship {
    pub(super) fn new(config: ShipperConfig, shared: Arc<Shared>) -> Self {
        Self {
            id: config.id(),
            subject: config.subject(),
            spool: Spool::new(&config.log),
            config,
            shared,
            acked: None,
            acked_seal_nanos: 0,
            last_read_seal: None,
            cursor_saved: Instant::now(),
            bucket: 0.0,
            bucket_at: Instant::now(),
        }
    }

    pub(super) fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Runs `work` unless a stop is asked first (checked every 50 ms):
    /// `None` when stopped. A stop then does not wait for a request to a
    /// server that does not answer.
    pub(super) async fn unless_stopped<F: std::future::Future>(
        &self,
        work: F,
    ) -> Option<F::Output> {
        let asked = async {
            while !self.stopping() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            done = work => Some(done),
            () = asked => None,
        }
    }

    /// Runs `op` until it succeeds, reporting each failure and pausing
    /// with the backoff between attempts: `None` when stopped first.
    pub(super) async fn retry<T, F, Fut>(&self, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut attempt = 0;
        loop {
            match self.unless_stopped(op()).await? {
                Ok(done) => return Some(done),
                Err(e) => {
                    self.error(e);
                    if self.stopping() {
                        return None;
                    }
                    self.unless_stopped(tokio::time::sleep(backoff(attempt, &self.config)))
                        .await?;
                    attempt += 1;
                }
            }
        }
    }

    pub(super) fn error(&self, what: String) {
        let what = match self.shared.connection_trouble.lock().as_deref() {
            Some(trouble) => format!("{what} (the NATS connection: {trouble})"),
            None => what,
        };
        tracing::warn!(target: "auditring_nats", gateway = %self.id, "{what}");
        self.shared.metrics.lock().last_error = Some(what);
    }

    /// Connects and positions the spool against the server, ships until
    /// stopped, then saves the cursor.
    pub(super) async fn run(mut self) -> Result<(), ShipError> {
        let Some((client, js)) = self.start().await? else {
            // Stopped before the server answered.
            return Ok(());
        };
        let bucket = if self.config.retention {
            self.watermarks(&js).await
        } else {
            None
        };
        self.publish(&client, &js, bucket.as_ref()).await?;
        if let Some(pos) = &self.acked {
            save_cursor(&self.config.cursor, &self.id, pos)?;
        }
        let _ = client.flush().await;
        Ok(())
    }
}

/// The pause before retry `n` (0-based): the first delay doubling up to
/// the longest.
pub(super) fn backoff(n: u32, cfg: &ShipperConfig) -> Duration {
    cfg.backoff_min
        .saturating_mul(1u32 << n.min(16))
        .min(cfg.backoff_max)
}

pub(super) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
