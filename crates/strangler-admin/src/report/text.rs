//! The terminal rendering: aligned tables, one capability after another.

use std::fmt::Write;

use super::Report;

fn when(ms: i64) -> String {
    super::at_ms(ms).map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Renders reports as plain text for a terminal.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "CAPABILITY {}  class {}  mode {}{}",
            r.capability,
            r.class,
            r.mode,
            if r.killed {
                "  (KILLED: served by legacy)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "evidence since {}  generated {}",
            r.since.map_or("the first stored count".into(), |t| t
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()),
            r.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        out.push('\n');
        for f in &r.figures {
            let _ = writeln!(out, "  {:<28} {:>12}", f.label, f.display);
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>12}",
            "Mismatch budget",
            super::format_figure(super::FigureKind::Rate, Some(r.rates.mismatch_budget))
        );
        if !r.gate.passed {
            let _ = writeln!(out, "  gate fails: {}", r.gate.failures());
        }
        if !r.traffic.skipped_by_reason.is_empty() {
            let reasons: Vec<String> = r
                .traffic
                .skipped_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(out, "  skipped by reason: {}", reasons.join(", "));
        }
        let fresh = &r.freshness;
        let _ = writeln!(
            out,
            "  freshness: last comparison {}{}",
            fresh.last_comparison_at.map_or("never".into(), |t| t
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()),
            fresh
                .age_s
                .map_or(String::new(), |a| format!(" ({a:.0} s ago)"))
        );
        if !r.top_paths.is_empty() {
            let _ = writeln!(
                out,
                "\n  {:<40} {:>10} {:>6}",
                "TOP DIFFERING PATH", "MISMATCHES", "FPS"
            );
            for p in &r.top_paths {
                let _ = writeln!(
                    out,
                    "  {:<40} {:>10} {:>6}",
                    p.path, p.count, p.fingerprints
                );
            }
        }
        if !r.fingerprints.is_empty() {
            let _ = writeln!(
                out,
                "\n  {:<16} {:<12} {:<13} {:<28} {:>7}  LAST SEEN",
                "FINGERPRINT", "STATUS", "KIND", "PATH", "COUNT"
            );
            for f in r.fingerprints.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  {:<16} {:<12} {:<13} {:<28} {:>7}  {}",
                    f.fingerprint,
                    f.status.as_str(),
                    f.kind,
                    f.path,
                    f.count,
                    when(f.last_seen_ms)
                );
            }
        }
        if !r.rules.is_empty() {
            let _ = writeln!(
                out,
                "\n  {:<32} {:>11} {:>9} {:>8}",
                "RULE", "COMPARISONS", "FORGAVE", "HID"
            );
            for h in &r.rules {
                let _ = writeln!(
                    out,
                    "  {:<32} {:>11} {:>9} {:>8}",
                    h.rule, h.comparisons, h.forgiven, h.hidden_leaves
                );
            }
        }
        for e in &r.exemplars {
            let _ = writeln!(
                out,
                "\n  exemplar of {}: {} ({} vs {})",
                e.fingerprints(", "),
                e.request,
                e.statuses.0,
                e.statuses.1
            );
            for line in e.unified.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        out.push('\n');
    }
    out
}
