//! The demo's summary and its self-contained HTML report.

use serde::Serialize;
use strangler_core::Mode;
use strangler_proxy::gate::GateReport;
use strangler_store::cutover::AuditEntry;

use super::ledger::Snapshot;

/// What the story showed, phase by phase.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The capability moved.
    pub capability: String,
    /// Shadow comparisons while the projection was right.
    pub baseline: Snapshot,
    /// Shadow comparisons while the bug was live.
    pub drift: Snapshot,
    /// Shadow comparisons after the fix and the replay.
    pub fixed: Snapshot,
    /// Comparisons during the canary.
    pub canary: Snapshot,
    /// Mode at the end.
    pub final_mode: Mode,
    /// The promotion gate after the fix.
    pub gate_after_fix: GateReport,
    /// Events the replay applied again.
    pub replayed_events: u64,
    /// The cutover audit trail.
    pub history: Vec<AuditEntry>,
    /// Reads the new path served once the capability was in `new`.
    pub served_new_in_new_mode: u64,
    /// Reads in `new` mode.
    pub reads_in_new_mode: u64,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn phase_row(name: &str, s: &Snapshot) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.2}%</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(name),
        s.compared,
        s.matches,
        if s.mismatches > 0 { "bad" } else { "good" },
        s.mismatches,
        s.mismatch_rate() * 100.0,
        s.stale,
        s.errors,
        s.skipped
    )
}

/// A self-contained HTML page (no external assets) an analyst can attach to a change request.
pub fn html(s: &Summary) -> String {
    let mut paths = String::new();
    for p in &s.drift.paths {
        paths.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(&p.path),
            esc(&p.kind),
            p.count,
            esc(&p.example.0),
            esc(&p.example.1),
            esc(&p.example.2)
        ));
    }
    let mut checks = String::new();
    for c in &s.gate_after_fix.checks {
        checks.push_str(&format!(
            "<li class=\"{}\">{}</li>",
            if c.passed { "good" } else { "bad" },
            esc(&serde_json::to_string(c).unwrap_or_default())
        ));
    }
    let mut audit = String::new();
    for a in &s.history {
        audit.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.at.format("%H:%M:%S%.3f"),
            esc(a.from_mode.as_deref().unwrap_or("-")),
            esc(&a.to_mode),
            esc(&a.actor),
            if a.forced { "yes" } else { "no" },
            esc(&a.reason)
        ));
    }
    let data = serde_json::to_string(s)
        .unwrap_or_default()
        .replace("</", "<\\/");
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strangler report: {cap}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }}
.bad {{ color: #b00020; font-weight: 600; }} .good {{ color: #1b7f3b; }}
code {{ font-size: 12px; }}
</style></head><body>
<h1>Cutover readiness: <code>{cap}</code></h1>
<p>Final mode: <strong>{mode}</strong>. The projection bug was replayed away ({replayed} events applied again);
the promotion gate after the fix <strong class="{gate_class}">{gate}</strong>.</p>
<h2>Verdicts by phase</h2>
<table id="phases"><tr><th>phase</th><th>compared</th><th>match</th><th>mismatch</th><th>rate</th><th>stale</th><th>error</th><th>skipped</th></tr>
{p1}{p2}{p3}{p4}</table>
<h2>Drift found while the bug was live</h2>
<table id="drift"><tr><th>path</th><th>kind</th><th>answers</th><th>request</th><th>legacy</th><th>new</th></tr>{paths}</table>
<h2>Gate after the fix</h2><ul>{checks}</ul>
<h2>Audit trail</h2>
<table id="audit"><tr><th>at</th><th>from</th><th>to</th><th>actor</th><th>forced</th><th>reason</th></tr>{audit}</table>
<script type="application/json" id="report-data">{data}</script>
</body></html>
"#,
        cap = esc(&s.capability),
        mode = s.final_mode,
        replayed = s.replayed_events,
        gate_class = if s.gate_after_fix.passed {
            "good"
        } else {
            "bad"
        },
        gate = if s.gate_after_fix.passed {
            "passed"
        } else {
            "failed"
        },
        p1 = phase_row("baseline (projection right)", &s.baseline),
        p2 = phase_row("bug live (total = subtotal)", &s.drift),
        p3 = phase_row("after fix and replay", &s.fixed),
        p4 = phase_row("canary 25%", &s.canary),
    )
}
