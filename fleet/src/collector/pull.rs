//! Pulling from the server: the durable consumer's continuous, byte-capped
//! pull, the gateways' liveness messages, and each message's gateway.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;

use super::config::{CollectorConfig, CollectorError};
use crate::{GatewayId, HEADER_GATEWAY, HEADER_PART, HEADER_PARTS, HEADER_SEAL, HEADER_STREAM};

/// One message of a gateway: stream, seal, part, parts, payload.
pub(super) type Item = (String, u64, u32, u32, Bytes);

/// The consumer, its pull and the liveness subscription.
pub(super) struct Puller {
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    /// The continuous pull: it fetches the next messages on the runtime's
    /// worker thread while the caller verifies the last ones. Dropped
    /// inside the runtime.
    pulling: Option<jetstream::consumer::pull::Stream>,
    /// Dropped inside the runtime (its drop spawns an unsubscribe).
    beats: Option<async_nats::Subscriber>,
    max_messages: usize,
    max_bytes: usize,
}

impl Puller {
    /// Connects, creates the stream and the durable consumer if missing,
    /// subscribes to the liveness messages of the gateways the filter
    /// pulls, and opens the watermark stream when watermarks are on.
    /// Returns the JetStream context as well (for the acks and the
    /// watermarks).
    pub(super) fn connect(
        rt: &tokio::runtime::Runtime,
        config: &CollectorConfig,
    ) -> Result<(Puller, jetstream::Context), CollectorError> {
        rt.block_on(async {
            let client = config
                .connection
                .options()
                .map_err(CollectorError::Config)?
                .connect(config.url.as_str())
                .await
                .map_err(|e| {
                    CollectorError::Nats(format!("cannot connect to {}: {e}", config.url))
                })?;
            let js = jetstream::new(client.clone());
            let stream = crate::ensure_stream(&js, &config.stream)
                .await
                .map_err(CollectorError::Nats)?;
            let consumer = stream
                .get_or_create_consumer(
                    &config.durable,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(config.durable.clone()),
                        filter_subject: config.filter.clone(),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 100_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| CollectorError::Nats(format!("cannot create the consumer: {e}")))?;
            let beats = client
                .subscribe(heartbeat_filter(&config.filter))
                .await
                .map_err(|e| CollectorError::Nats(e.to_string()))?;
            if config.watermarks {
                crate::watermark_stream(&js, config.stream.replicas)
                    .await
                    .map_err(CollectorError::Nats)?;
            }
            let puller = Puller {
                consumer,
                pulling: None,
                beats: Some(beats),
                max_messages: config.max_pull_messages,
                max_bytes: config.max_pull_bytes,
            };
            Ok((puller, js))
        })
    }

    /// The next messages: whatever came within `max_wait`, up to the caps,
    /// and the error that ended the pull, if any (after a pause when
    /// nothing came). `Err` when the pull could not even start (after a
    /// pause).
    pub(super) fn pull(
        &mut self,
        rt: &tokio::runtime::Runtime,
        max_wait: Duration,
    ) -> Result<(Vec<jetstream::Message>, Option<String>), String> {
        if self.pulling.is_none() {
            let started = rt.block_on(
                self.consumer
                    .stream()
                    .max_messages_per_batch(self.max_messages)
                    .max_bytes_per_batch(self.max_bytes)
                    .expires(Duration::from_secs(5))
                    .heartbeat(Duration::from_secs(2))
                    .messages(),
            );
            match started {
                Ok(s) => self.pulling = Some(s),
                Err(e) => {
                    std::thread::sleep(Duration::from_millis(100).min(max_wait));
                    return Err(e.to_string());
                }
            }
        }
        let (cap_messages, cap_bytes) = (self.max_messages, self.max_bytes);
        let pulling = self.pulling.as_mut().expect("started");
        let pulled = rt.block_on(async {
            use futures_util::FutureExt;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let first = tokio::time::timeout(max_wait, pulling.next()).await;
            let mut next = match first {
                Ok(item) => item,
                Err(_) => return (out, None, false),
            };
            loop {
                match next {
                    Some(Ok(m)) => {
                        bytes += m.payload.len();
                        out.push(m);
                    }
                    Some(Err(e)) => return (out, Some(e.to_string()), false),
                    None => return (out, Some("the pull ended".into()), true),
                }
                if out.len() >= cap_messages || bytes >= cap_bytes {
                    return (out, None, false);
                }
                match pulling.next().now_or_never() {
                    Some(item) => next = item,
                    None => return (out, None, false),
                }
            }
        });
        let (messages, error, ended) = pulled;
        if ended {
            let _inside = rt.enter();
            self.pulling = None;
        }
        if error.is_some() && messages.is_empty() {
            std::thread::sleep(Duration::from_millis(100).min(max_wait));
        }
        Ok((messages, error))
    }

    /// The liveness messages that came since the last call, by gateway.
    pub(super) fn heartbeats(&mut self) -> Vec<(GatewayId, serde_json::Value)> {
        use futures_util::FutureExt;
        let Some(beats) = self.beats.as_mut() else {
            return Vec::new();
        };
        let mut got = Vec::new();
        while let Some(Some(msg)) = beats.next().now_or_never() {
            got.push(msg);
        }
        got.into_iter()
            .filter_map(|msg| {
                let value = serde_json::from_slice::<serde_json::Value>(&msg.payload).ok()?;
                let id = crate::subject_gateway(&msg.subject, "auditring.heartbeat")?;
                Some((id, value))
            })
            .collect()
    }

    /// Drops the pull and the subscription inside the runtime.
    pub(super) fn close(&mut self, rt: &tokio::runtime::Runtime) {
        let _inside = rt.enter();
        drop(self.beats.take());
        drop(self.pulling.take());
    }
}

/// Each gateway's messages, in the order they came; messages that name no
/// gateway are left out (with a warning).
pub(super) fn by_gateway(messages: &[jetstream::Message]) -> HashMap<GatewayId, Vec<Item>> {
    let mut groups: HashMap<GatewayId, Vec<Item>> = HashMap::new();
    for m in messages {
        let get = |k: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_owned())
        };
        let (Some(stream), Some(seal)) = (
            get(HEADER_STREAM),
            get(HEADER_SEAL).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            tracing::warn!(target: "auditring_nats", subject = %m.subject, "a message without auditring headers: archived nowhere");
            continue;
        };
        // The subject says which gateway (partition and name); the
        // header, when there is one, must agree.
        let Some(id) = crate::subject_gateway(&m.subject, "audit")
            .filter(|id| get(HEADER_GATEWAY).is_none_or(|g| g == id.name))
        else {
            tracing::warn!(target: "auditring_nats", subject = %m.subject, "a message whose subject is not audit.<partition>.<gateway> or whose gateway header does not match it");
            continue;
        };
        let part = get(HEADER_PART).and_then(|v| v.parse().ok()).unwrap_or(0);
        let parts = get(HEADER_PARTS).and_then(|v| v.parse().ok()).unwrap_or(1);
        groups
            .entry(id)
            .or_default()
            .push((stream, seal, part, parts, m.payload.clone()));
    }
    groups
}

/// Whether `filter` names gateways' batch subjects: `audit.>` (every
/// partition), `audit.<partition>.>` or `audit.<partition>.<gateway>`.
pub(super) fn check_filter(filter: &str) -> Result<(), String> {
    let token = |what, t| crate::check_token(what, t).is_ok();
    let ok = match filter.split('.').collect::<Vec<_>>().as_slice() {
        ["audit", ">"] => true,
        ["audit", p, ">"] => token("partition", p),
        ["audit", p, g] => token("partition", p) && token("gateway", g),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "filter {filter:?} names no gateways' subjects: give audit.> (every partition), audit.<partition>.> or audit.<partition>.<gateway>"
        ))
    }
}

/// The liveness subjects of the gateways `filter` pulls: its partition's
/// (or its gateway's) when it names one.
fn heartbeat_filter(filter: &str) -> String {
    match filter.strip_prefix("audit.") {
        Some(rest) => format!("auditring.heartbeat.{rest}"),
        None => "auditring.heartbeat.>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_partitions_or_gateways() {
        for good in ["audit.>", "audit.eu.>", "audit.eu.gw-1", "audit.p0.gw_2"] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ">",
            "audit",
            "audit.*",
            "audit.eu",
            "audit.eu.*",
            "audit.*.>",
            "audit.eu.gw-1.x",
            "other.>",
            "audit.e u.>",
            "audit..>",
            "audit.eu.gw.1",
        ] {
            let e = check_filter(bad).unwrap_err();
            assert!(e.contains("audit.<partition>.>"), "{bad}: {e}");
        }
        assert_eq!(heartbeat_filter("audit.eu.>"), "auditring.heartbeat.eu.>");
    }
}
