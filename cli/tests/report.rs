//! `stats` over several runs and `.hgrm` files, and `report`'s HTML page:
//! one series per input, a table of differences, the verdict, one row per
//! (action, decision), and nothing of the log's text unescaped.

mod common;

use std::path::Path;
use std::time::Duration;

use auditring::sink::FileSink;
use auditring::stats::{Stage, hgrm};
use auditring::{AuditPayload, Decision, Runtime, SigningKey};
use common::{keys, run, tempdir, text};

/// A log of `events` decisions over two actions (allow and deny each),
/// enforcement latencies scaled by `scale`, with the runtime's stage
/// histograms beside it.
fn gateway_log(key: &Path, dir: &Path, events: u64, scale: u64) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("audit.jsonl");
    let rt = Runtime::<AuditPayload>::builder()
        .signing_key(SigningKey::from_file(key).unwrap())
        .sink(FileSink::open(&log).unwrap())
        .max_batch(64)
        .full_policy(auditring::FullPolicy::Block)
        .stage_histograms(dir, Duration::ZERO)
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for i in 0..events {
        rec.record(|e| {
            e.set_action(if i % 2 == 0 {
                "http.get"
            } else {
                "llm.inference"
            });
            e.decision = if i % 5 == 0 {
                Decision::Deny
            } else {
                Decision::Allow
            };
            e.enforcement_latency_us = (10 + i % 50) * scale;
            if i % 5 != 0 {
                e.dispatch_status = 200;
                e.dispatch_latency_us = 100 + i % 1000;
            }
        })
        .unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();
    log
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `<svg>` panels of a document and the curves in each.
fn curves_per_panel(svg: &str) -> Vec<usize> {
    svg.split("<svg ")
        .skip(1)
        .map(|panel| panel.matches(r#"<polyline class="series""#).count())
        .filter(|&n| n > 0)
        .collect()
}

#[test]
fn stats_overlays_runs_with_one_series_per_input_and_a_table_of_differences() {
    let dir = tempdir("overlay");
    let (private, public) = keys(&dir);
    let before = gateway_log(&private, &dir.join("before"), 400, 1);
    let after = gateway_log(&private, &dir.join("after"), 400, 3);
    let svg = dir.join("compare.svg");
    let out = run(&[
        "stats",
        "--key",
        s(&public),
        "--plot",
        s(&svg),
        s(&before),
        s(&after),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("comparison (change from the first input)"),
        "{stdout}"
    );
    // Enforcement tripled: +200 % at the median.
    assert!(stdout.contains("+200.0%"), "{stdout}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    let panels = curves_per_panel(&plot);
    // 4 pairs of enforcement, 2 of dispatch; two inputs each.
    assert_eq!(panels, vec![2; 6], "{plot}");
    // Labelled by file (the directory they share left out).
    assert!(plot.contains(">before/audit.jsonl (n="), "{plot}");
    assert!(plot.contains(">after/audit.jsonl (n="), "{plot}");

    // The runtime's .hgrm files: compared per stage, labelled by file.
    let sign = |d: &str| dir.join(d).join("sign.hgrm");
    let out = run(&[
        "stats",
        "--plot",
        s(&svg),
        s(&sign("before")),
        s(&sign("after")),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        curves_per_panel(&std::fs::read_to_string(&svg).unwrap()),
        [2]
    );
    assert!(stdout.contains("stage: sign"), "{stdout}");

    // A log with its own stage files: one run, a panel per quantity.
    let mut args = vec!["stats", "--key", s(&public), "--plot", s(&svg), s(&before)];
    let stages: Vec<_> = Stage::ALL
        .iter()
        .map(|&st| hgrm::stage_file(&dir.join("before"), st))
        .collect();
    args.extend(stages.iter().map(|p| s(p)));
    let out = run(&args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("comparison"), "{stdout}");
    assert!(stdout.contains("capture_to_sealed.hgrm"), "{stdout}");
    assert_eq!(
        curves_per_panel(&std::fs::read_to_string(&svg).unwrap()),
        [4, 2, 5],
        "enforcement by pair, dispatch by pair, the five stages"
    );

    // A file that is neither a log nor a distribution is an error.
    let bad = dir.join("bad.hgrm");
    std::fs::write(&bad, "Value Percentile\n 1.0 2.0 x\n").unwrap();
    let out = run(&["stats", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("bad.hgrm: line 2"),
        "{:?}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_has_the_verdict_counts_one_row_per_pair_and_the_plots() {
    let dir = tempdir("report");
    let (private, public) = keys(&dir);
    let log = gateway_log(&private, &dir.join("gw"), 500, 1);
    let html = dir.join("report.html");
    let out = run(&["report", "--key", s(&public), s(&log), "--out", s(&html)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(r#"<div class="verdict intact" id="verdict"><h2>INTACT</h2>"#));
    assert_eq!(
        page.matches(r#"<tr class="pair">"#).count(),
        4,
        "one row per pair"
    );
    assert!(page.contains("<td class=\"text\">events the seals account for</td><td>500</td>"));
    assert!(
        page.contains("<td class=\"text\">refused</td><td>0</td>"),
        "the runtime's counters"
    );
    // The stage files beside the log were found and plotted.
    assert!(page.contains("capture_to_sealed.hgrm"));
    assert!(page.contains("pipeline stages"));
    assert_eq!(page.matches("<svg ").count(), 3);
    // Self-contained: nothing fetched.
    for fetch in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!page.contains(fetch), "{fetch}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A payload whose text fields an audited agent controls, written as raw
/// JSON so that it can also carry escapes a Rust string cannot hold.
#[derive(Clone, Default)]
struct Raw {
    json: String,
}

impl auditring::Payload for Raw {
    fn clear(&mut self) {
        self.json.clear();
    }
}

/// Declares no redactable field: the runtime refuses any redaction rule.
impl auditring::EncodeJson for Raw {
    fn write_json(&self, out: &mut Vec<u8>, _: &auditring::format::encode::Redactor) {
        out.extend_from_slice(self.json.as_bytes());
    }
}

impl auditring::stats::LatencySource for Raw {}

const HOSTILE: [&str; 6] = [
    "<script>alert(1)</script>",
    "\"onload=\"alert(2)",
    "</svg><img src=x onerror=alert(3)>",
    "'><iframe src=//evil>",
    "\u{1b}[2J\u{7}\u{202e}bidi\r\nline",
    "&lt;pre-escaped&gt; & </table>",
];

#[test]
fn report_escapes_every_payload_string_and_shows_tampering_prominently() {
    let dir = tempdir("report-hostile");
    let (private, public) = keys(&dir);
    let log = dir.join("audit.jsonl");
    let rt = Runtime::<Raw>::builder()
        .signing_key(SigningKey::from_file(&private).unwrap())
        .sink(FileSink::open(&log).unwrap())
        .max_batch(4)
        .build()
        .unwrap();
    let mut rec = rt.recorder().unwrap();
    for (i, action) in HOSTILE.iter().enumerate() {
        let decision = HOSTILE[(i + 1) % HOSTILE.len()];
        let json = serde_json::json!({
            "action": action,
            "decision": decision,
            "enforcement_latency_us": 10 + i,
            "dispatch_status": 200,
            "dispatch_latency_us": 100 + i,
        })
        .to_string();
        rec.record(|e| e.json = json.clone()).unwrap();
    }
    // Escapes in the JSON itself: a NUL, an escape, and a lone surrogate
    // (not UTF-8 at all: the event cannot be read, and is counted so).
    for json in [
        r#"{"action":"\u0000\u001b]0;t\u0007<b>","decision":"allow","enforcement_latency_us":7}"#,
        r#"{"action":"\ud800<script>","decision":"allow","enforcement_latency_us":7}"#,
    ] {
        rec.record(|e| e.json = json.to_owned()).unwrap();
    }
    drop(rec);
    rt.shutdown().unwrap();

    let check = |page: &str| {
        // Every tag is one the page itself writes, with no event handler.
        const OWN: [&str; 34] = [
            "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
            "div", "table", "tr", "th", "td", "details", "summary", "strong", "code", "svg",
            "rect", "line", "text", "polyline", "/html", "/head", "/title", "/style", "/body",
            "/h1", "/h2", "/h3", "/p",
        ];
        const CLOSING: [&str; 14] = [
            "/div",
            "/table",
            "/tr",
            "/th",
            "/td",
            "/details",
            "/summary",
            "/strong",
            "/code",
            "/svg",
            "/text",
            "/polyline",
            "/title",
            "/rect",
        ];
        for tag in page.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap();
            let name = tag.split_whitespace().next().unwrap_or("");
            assert!(
                OWN.contains(&name) || CLOSING.contains(&name),
                "a tag the page does not write: <{tag}>"
            );
            let lower = tag.to_ascii_lowercase();
            assert!(!lower.contains(" on"), "an event handler: <{tag}>");
        }
        // Exactly the page's own elements: every <svg> closed once.
        assert_eq!(
            page.matches("<svg ").count(),
            page.matches("</svg>").count()
        );
        for (i, b) in page.bytes().enumerate() {
            assert!(
                b == b'\n' || b >= 0x20 && b != 0x7f,
                "control byte {b:#x} at {i}"
            );
        }
        assert!(!page.contains('\u{202e}'));
        for hostile in HOSTILE {
            assert!(!page.contains(hostile), "{hostile:?} unescaped");
        }
    };
    let html = dir.join("report.html");
    let out = run(&["report", "--key", s(&public), s(&log), "--out", s(&html)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    check(&page);
    // Shown, escaped, not dropped.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&quot;onload=&quot;alert(2)"));
    assert!(page.contains("\\x00\\x1b]0;t\\x07&lt;b&gt;"));
    assert!(page.contains("1 event line(s) could not be read"));
    assert_eq!(
        page.matches(r#"<tr class="pair">"#).count(),
        HOSTILE.len() + 1
    );

    // The same log, tampered: the verdict first and loud, no statistics.
    let bytes = std::fs::read(&log).unwrap();
    let text_log = String::from_utf8_lossy(&bytes).replacen(
        "\"enforcement_latency_us\":10",
        "\"enforcement_latency_us\":11",
        1,
    );
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, text_log).unwrap();
    let out = run(&[
        "report",
        "--key",
        s(&public),
        s(&tampered),
        "--out",
        s(&html),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    check(&page);
    let verdict = page
        .find(r#"<div class="verdict tampered" id="verdict"><h2>TAMPERED</h2>"#)
        .expect("the tampering verdict");
    assert!(
        verdict < page.find("Findings").unwrap(),
        "the verdict comes first"
    );
    assert!(page.contains(
        "<tr class=\"tamper\"><td class=\"text\">TAMPER</td><td class=\"text\">modified"
    ));
    assert!(
        !page.contains("<tr class=\"pair\">"),
        "no statistics of a tampered log"
    );
    assert!(!page.contains("<svg"), "no plots of a tampered log");
    assert!(!page.contains("alert"), "nothing of its content");
    std::fs::remove_dir_all(&dir).unwrap();
}
