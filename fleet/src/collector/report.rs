//! The collector's report: each gateway's state as a status line, and the
//! fleet's as a table or JSON.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auditring::verify::{FindingKind, Severity, VerifierState};
use serde::Serialize;

use super::gateway::Gateway;
use super::persist;
use crate::GatewayId;

/// One gateway in the report.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayReport {
    /// The gateway's partition.
    pub partition: String,
    /// The gateway's name (within its partition).
    pub gateway: String,
    /// Listed in the registry.
    pub expected: bool,
    /// `ok`, `tampered`, `silent`, `stalled` (alive, no batches), or
    /// `never_seen`.
    pub status: String,
    /// The last verified seal, as a checkpoint line.
    pub verified_head: Option<String>,
    /// Batches archived.
    pub batches: u64,
    /// Events archived.
    pub events: u64,
    /// Duplicate messages dropped.
    pub duplicates: u64,
    /// Seconds since the newest seal was made (its `ts`).
    pub lag_seconds: Option<f64>,
    /// Seconds since the last batch arrived.
    pub last_batch_seconds_ago: Option<f64>,
    /// No batch within the silence deadline.
    pub silent: bool,
    /// Seal indices found missing.
    pub missing_seals: u64,
    /// Tamper findings, `kind: detail`.
    pub tampering: Vec<String>,
    /// The gateway's local log lost a run the collector had verified.
    pub truncated: bool,
    /// The shipper's last liveness message.
    pub heartbeat: Option<serde_json::Value>,
    /// The archive: an ordinary log file.
    pub archive: PathBuf,
}

impl GatewayReport {
    /// The gateway's identity: its partition and its name.
    pub fn id(&self) -> GatewayId {
        GatewayId::new(&self.partition, &self.gateway)
    }
}

/// The fleet report.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    /// Per gateway, by partition and name.
    pub gateways: Vec<GatewayReport>,
}

impl FleetReport {
    /// As one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether any gateway is tampered.
    pub fn any_tampered(&self) -> bool {
        self.gateways.iter().any(|g| g.status == "tampered")
    }

    /// The gateway named `name` in `partition`.
    pub fn gateway(&self, partition: &str, name: &str) -> Option<&GatewayReport> {
        self.gateways
            .iter()
            .find(|g| g.partition == partition && g.gateway == name)
    }
}

impl std::fmt::Display for FleetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for g in &self.gateways {
            write!(
                f,
                "{:<24} {:<10} batches={} events={} dup={} missing_seals={} lag_s={}",
                g.id().to_string(),
                g.status,
                g.batches,
                g.events,
                g.duplicates,
                g.missing_seals,
                g.lag_seconds.map_or("-".into(), |l| format!("{l:.1}")),
            )?;
            if let Some(h) = &g.verified_head {
                write!(f, " head={h}")?;
            }
            writeln!(f)?;
            for t in &g.tampering {
                writeln!(f, "    TAMPER {t}")?;
            }
        }
        Ok(())
    }
}

impl Gateway {
    /// The gateway's line in the report.
    pub(super) fn report(
        &self,
        expected: bool,
        silent_after: Duration,
        started: Instant,
    ) -> GatewayReport {
        let report = self.saved.verifier.as_ref().map(VerifierState::report);
        let mut tampering: Vec<String> = report
            .iter()
            .flat_map(|r| r.findings.iter())
            .filter(|f| f.severity == Severity::Tamper)
            .map(|f| format!("{}: {}", f.kind, f.detail))
            .collect();
        for t in &self.saved.truncations {
            tampering.push(format!("{}: {t}", FindingKind::Truncated));
        }
        let missing_seals = report
            .iter()
            .flat_map(|r| r.of_kind(FindingKind::MissingSeals))
            .map(|f| f.count.unwrap_or(1))
            .sum();
        let since_batch = self.last_batch.map_or(started.elapsed(), |t| t.elapsed());
        let silent = since_batch >= silent_after;
        let alive = self
            .heartbeat
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() < silent_after);
        let status = if !tampering.is_empty() {
            "tampered"
        } else if silent && self.saved.batches == 0 && !alive {
            "never_seen"
        } else if silent && alive {
            "stalled"
        } else if silent {
            "silent"
        } else {
            "ok"
        };
        let now = now_nanos();
        GatewayReport {
            partition: self.id.partition.clone(),
            gateway: self.id.name.clone(),
            expected,
            status: status.into(),
            verified_head: self.checkpoint().map(|c| c.to_json()),
            batches: self.saved.batches,
            events: self.saved.events,
            duplicates: self.saved.duplicates,
            lag_seconds: (self.saved.last_seal_unix_ns > 0)
                .then(|| now.saturating_sub(self.saved.last_seal_unix_ns) as f64 / 1e9),
            last_batch_seconds_ago: self.last_batch.map(|t| t.elapsed().as_secs_f64()),
            silent,
            missing_seals,
            truncated: !self.saved.truncations.is_empty(),
            tampering,
            heartbeat: self.heartbeat.as_ref().map(|(_, v)| v.clone()),
            archive: self.dir.join(persist::ARCHIVE),
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
