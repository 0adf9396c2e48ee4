//! The audit event every benchmark records: realistic field values drawn
//! from fixed pools by index, so contents and lengths vary without any
//! formatting or allocation on the fixed-size paths.

#![allow(dead_code)]

use auditring::{AuditPayload, Decision};

// Value pools for the event fields. Events draw from them by index, so the
// payload contents and string lengths vary from call to call without any
// formatting or allocation in the fixed-size contenders.

const SESSION_IDS: [&str; 8] = [
    "6513270e-269e-4d37-b2a7-4de452e6b438",
    "d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
    "9531985d-5d9d-49f8-9818-e811892f902b",
    "36f675cc-81e7-4ef5-a8e2-5d940ed90475",
    "6b0d549b-6f03-475a-9600-a35a099950d8",
    "8d116ece-1738-47d9-bd9c-172411e20b8f",
    "90c192cf-d3ac-44af-8f21-ddb66cad4a26",
    "a170b338-3926-4059-b28c-105d1fb17c23",
];

const TOKEN_IDS: [&str; 8] = [
    "tok_1c17149d439536b3216fdaeeb975",
    "tok_729fae923d5a4fd12aabfe228f21",
    "tok_9e9cb0eb53f16947ccf25ec84d8d",
    "tok_bc74254770f58904dba41ecccc3f",
    "tok_c1626e53a13043b026c48bbf33fe",
    "tok_ff9243a8f506b40928b5b7a767c7",
    "tok_6fb008f86bebb2737f6a6f0fb23c",
    "tok_6f5da2cec255404e4fb440034d66",
];

const AGENT_IDS: [&str; 8] = [
    "agent-research-00017",
    "agent-billing-000342",
    "agent-support-000058",
    "agent-codegen-001204",
    "agent-triage-0000931",
    "agent-planner-000077",
    "agent-search-0002210",
    "agent-ops-0000000415",
];

const ACTIONS: [&str; 4] = ["http.get", "http.post", "llm.inference", "db.query"];

const RESOURCES: [&str; 8] = [
    "https://api.example.com/v1/customers/48213/orders?limit=50",
    "https://billing.internal.example.net/v2/invoices/2024-0192",
    "https://api.example.com/v1/search?q=quarterly+revenue+report",
    "https://llm.gateway.example.org/v1/chat/completions/model-x",
    "postgres://analytics.db.example.net:5432/warehouse/sales_q3",
    "https://storage.example.com/buckets/audit-archive/obj/91ad",
    "https://api.partner.example.io/v3/shipments/track/ZX9913AB",
    "https://hooks.example.com/services/T024BE7LD/B01/notify-ops",
];

const DENY_REASONS: [&str; 4] = [
    "egress to billing.internal not in allowlist",
    "token scope lacks write:orders capability",
    "rate limit exceeded for agent in window 60s",
    "resource matches deny rule pii-export-01",
];

const CONTEXT_HASHES: [&str; 8] = [
    "sha256:6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "sha256:4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
    "sha256:dbc1b4c900ffe48d575b5da5c638040125f65db0fe3e24494b76ea986457d986",
    "sha256:084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5",
    "sha256:e52d9c508c502347344d8c07ad91cbd6068afc75ff6292f062a09ca381c89e71",
    "sha256:e77b9a9ae9e30b0dbdb6f510a264ef9de781501d7b6b92ae89eb059c5ab743db",
    "sha256:67586e98fad27da0b9968bc039a1ef34c939b9b8e523a8bef89d478608c5ecf6",
    "sha256:ca358758f6d27e6cf45272937977a748fd88391db679ceda7dc7bf1f005ee879",
];

const BUNDLE_VERSIONS: [&str; 2] = ["policy-v12", "policy-v13"];

const SANDBOX_IDS: [&str; 4] = [
    "sbx-run-000000041872",
    "sbx-run-000000041873",
    "sbx-run-000000041899",
    "sbx-run-000000042010",
];

/// The values of event `i`: every contender records exactly these.
pub struct EventFields {
    pub session_id: &'static str,
    pub token_id: &'static str,
    pub agent_id: &'static str,
    pub action: &'static str,
    pub resource: &'static str,
    pub decision: Decision,
    pub deny_reason: &'static str,
    pub enforcement_latency_us: u64,
    pub context_hash: &'static str,
    pub bundle_version: &'static str,
    pub dispatch_status: u16,
    pub dispatch_latency_us: u64,
    pub response_size: u64,
    pub sandbox_id: &'static str,
}

#[inline(always)]
fn pick<const N: usize>(pool: &[&'static str; N], k: u64) -> &'static str {
    pool[(k % N as u64) as usize]
}

/// Event `i`: a session emits a few events in a row; every 10th event is a
/// deny with a reason and no dispatch.
#[inline(always)]
pub fn event_fields(i: u64) -> EventFields {
    let session = i / 4;
    let deny = i.is_multiple_of(10);
    EventFields {
        session_id: pick(&SESSION_IDS, session),
        token_id: pick(&TOKEN_IDS, session),
        agent_id: pick(&AGENT_IDS, session / 3),
        action: pick(&ACTIONS, i),
        resource: pick(&RESOURCES, i / 2),
        decision: if deny {
            Decision::Deny
        } else {
            Decision::Allow
        },
        deny_reason: if deny {
            pick(&DENY_REASONS, i / 10)
        } else {
            ""
        },
        enforcement_latency_us: 3 + i % 29,
        context_hash: pick(&CONTEXT_HASHES, i),
        bundle_version: pick(&BUNDLE_VERSIONS, i / 1000),
        dispatch_status: if deny {
            0
        } else if i.is_multiple_of(17) {
            404
        } else {
            200
        },
        dispatch_latency_us: if deny { 0 } else { 150 + i % 850 },
        response_size: if deny { 0 } else { 256 + (i * 37) % 16_384 },
        sandbox_id: pick(&SANDBOX_IDS, session / 16),
    }
}

/// Writes event `i` into an `AuditPayload`; shared by every contender that
/// carries the fixed-size payload.
#[inline(always)]
pub fn fill(e: &mut AuditPayload, i: u64) {
    let f = event_fields(i);
    e.set_session_id(f.session_id)
        .set_token_id(f.token_id)
        .set_agent_id(f.agent_id)
        .set_action(f.action)
        .set_resource(f.resource)
        .set_deny_reason(f.deny_reason)
        .set_context_hash(f.context_hash)
        .set_bundle_version(f.bundle_version)
        .set_sandbox_id(f.sandbox_id);
    e.decision = f.decision;
    e.enforcement_latency_us = f.enforcement_latency_us;
    e.dispatch_status = f.dispatch_status;
    e.dispatch_latency_us = f.dispatch_latency_us;
    e.response_size = f.response_size;
}

/// The seed designs' payload: one owned `String` per string field.
pub struct SeedPayload {
    pub session_id: String,
    pub token_id: String,
    pub agent_id: String,
    pub action: String,
    pub resource: String,
    pub decision: i32,
    pub deny_reason: String,
    pub enforcement_latency_us: i64,
    pub context_hash: String,
    pub bundle_version: String,
    pub dispatch_status: i32,
    pub dispatch_latency_us: i64,
    pub response_size: i64,
    pub sandbox_id: String,
}

/// Event `i` as the seed designs build it: every string copied to the heap.
pub fn seed_payload(i: u64) -> SeedPayload {
    let f = event_fields(i);
    SeedPayload {
        session_id: f.session_id.to_string(),
        token_id: f.token_id.to_string(),
        agent_id: f.agent_id.to_string(),
        action: f.action.to_string(),
        resource: f.resource.to_string(),
        decision: match f.decision {
            Decision::Allow => 1,
            Decision::Deny => 2,
            Decision::Abort => 3,
        },
        deny_reason: f.deny_reason.to_string(),
        enforcement_latency_us: f.enforcement_latency_us as i64,
        context_hash: f.context_hash.to_string(),
        bundle_version: f.bundle_version.to_string(),
        dispatch_status: i32::from(f.dispatch_status),
        dispatch_latency_us: f.dispatch_latency_us as i64,
        response_size: f.response_size as i64,
        sandbox_id: f.sandbox_id.to_string(),
    }
}
