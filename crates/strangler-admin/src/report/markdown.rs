//! The Markdown rendering, for a change request or a wiki page.

use std::fmt::Write;

use super::Report;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders reports as Markdown.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::from("# Cutover readiness\n\n");
    for r in reports {
        let _ = writeln!(out, "## {}\n", r.capability);
        let _ = writeln!(
            out,
            "Class `{}`, mode `{}`{}. Evidence since {}; generated {}.\n",
            r.class,
            r.mode,
            if r.killed {
                ", **killed** (served by legacy)"
            } else {
                ""
            },
            r.since
                .map_or("the first stored count".into(), |t| t.to_rfc3339()),
            r.generated_at.to_rfc3339()
        );
        out.push_str("| figure | value |\n|---|---|\n");
        for f in &r.figures {
            let _ = writeln!(out, "| {} | {} |", f.label, f.display);
        }
        let _ = writeln!(
            out,
            "| Mismatch budget | {} |\n",
            super::format_figure(super::FigureKind::Rate, Some(r.rates.mismatch_budget))
        );
        if !r.gate.passed {
            let _ = writeln!(out, "Gate fails: {}\n", cell(&r.gate.failures()));
        }
        let fresh = &r.freshness;
        let _ = writeln!(
            out,
            "Freshness: last comparison {}.\n",
            fresh
                .last_comparison_at
                .map_or("never".into(), |t| t.to_rfc3339())
        );
        if !r.top_paths.is_empty() {
            out.push_str(
                "### Top differing paths\n\n| path | mismatches | fingerprints |\n|---|---|---|\n",
            );
            for p in &r.top_paths {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    cell(&p.path),
                    p.count,
                    p.fingerprints
                );
            }
            out.push('\n');
        }
        if !r.fingerprints.is_empty() {
            out.push_str("### Fingerprints\n\n| fingerprint | status | kind | path | classes | count |\n|---|---|---|---|---|---|\n");
            for f in &r.fingerprints {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | `{}` | {} | {} |",
                    f.fingerprint,
                    f.status.as_str(),
                    f.kind,
                    cell(&f.path),
                    cell(&f.value_class),
                    f.count
                );
            }
            out.push('\n');
        }
        if !r.rules.is_empty() {
            out.push_str(
                "### Active rules\n\n| rule | comparisons | forgave | hid |\n|---|---|---|---|\n",
            );
            for h in &r.rules {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&h.rule),
                    h.comparisons,
                    h.forgiven,
                    h.hidden_leaves
                );
            }
            out.push('\n');
        }
        for e in &r.exemplars {
            let _ = writeln!(
                out,
                "### Exemplar `{}`: `{}`\n\n```diff\n{}```\n",
                e.fingerprints("`, `"),
                cell(&e.request),
                e.unified
            );
        }
    }
    out
}
