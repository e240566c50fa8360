//! The self-contained HTML rendering: one file, inline CSS, no script and nothing fetched, so it
//! can be attached to a change request and opened anywhere.
//!
//! Every headline figure is an element with `data-figure` (its key) and `data-value` (the raw
//! number), the same markup the dashboard uses, so tools and tests can read both alike.

use std::fmt::Write;

use super::{DiffRow, Figure, Report};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet shared by the report and the dashboard.
pub const STYLE: &str = include_str!("../../assets/style.css");

fn figure(f: &Figure) -> String {
    format!(
        "<div class=\"fig fig-{kind}{bad}\"><div class=\"label\">{label}</div>\
         <div class=\"value\" data-figure=\"{key}\" data-value=\"{value}\">{display}</div></div>",
        kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        bad = if f.key == "gate" && f.display == "fail" {
            " bad"
        } else {
            ""
        },
        label = esc(f.label),
        key = f.key,
        value = f.value.map_or(String::new(), |v| v.to_string()),
        display = esc(&f.display),
    )
}

/// Side-by-side rows as a table.
pub fn diff_table(rows: &[DiffRow]) -> String {
    let mut out = String::from(
        "<table class=\"diff\"><thead><tr><th>legacy</th><th>candidate</th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            r.tag,
            esc(&r.legacy),
            esc(&r.candidate)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn when(ms: i64) -> String {
    super::at_ms(ms).map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Renders reports as one self-contained HTML document.
pub fn render(reports: &[Report]) -> String {
    let title = match reports {
        [one] => format!("Cutover readiness: {}", one.capability),
        _ => "Cutover readiness".to_owned(),
    };
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(&title),
        esc(&title)
    );
    for r in reports {
        let _ = write!(
            out,
            "<section class=\"capability\" data-capability=\"{cap}\"><h2>{cap}</h2>\
             <p class=\"meta\">class <b>{class}</b>, mode <b data-field=\"mode\">{mode}</b>{killed}; \
             evidence since {since}; generated {gen}</p><div class=\"figures\">",
            cap = esc(&r.capability),
            class = esc(&r.class),
            mode = esc(&r.mode),
            killed = if r.killed { ", <b class=\"bad\">killed</b> (served by legacy)" } else { "" },
            since = r.since.map_or("the first stored count".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            gen = r.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        for f in &r.figures {
            out.push_str(&figure(f));
        }
        out.push_str("</div>");
        let _ = write!(
            out,
            "<p>Mismatch budget {}; p99 delta limit {:.0} ms.{}</p>",
            super::format_figure(super::FigureKind::Rate, Some(r.rates.mismatch_budget)),
            r.latency.max_p99_delta_ms,
            if r.gate.passed {
                String::new()
            } else {
                format!(" Gate fails: {}.", esc(&r.gate.failures()))
            }
        );
        let fresh = &r.freshness;
        let _ = write!(
            out,
            "<p>Freshness: last comparison {}{}.</p>",
            fresh.last_comparison_at.map_or("never".into(), |t| t
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()),
            fresh
                .age_s
                .map_or(String::new(), |a| format!(" ({a:.0} s before this report)"))
        );
        if !r.traffic.skipped_by_reason.is_empty() {
            out.push_str("<h3>Skipped by reason</h3><table><tr><th>reason</th><th>count</th></tr>");
            for (k, v) in &r.traffic.skipped_by_reason {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"num\">{v}</td></tr>",
                    esc(k)
                );
            }
            out.push_str("</table>");
        }
        if !r.hourly.is_empty() {
            out.push_str("<h3>Traffic per hour</h3><table><tr><th>hour (UTC)</th><th>compared</th><th>mismatches</th></tr>");
            for h in &r.hourly {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    h.hour.format("%Y-%m-%d %H:00"),
                    h.compared,
                    h.mismatches
                );
            }
            out.push_str("</table>");
        }
        if !r.top_paths.is_empty() {
            out.push_str("<h3>Top differing paths</h3><table><tr><th>path</th><th>mismatches</th><th>fingerprints</th></tr>");
            for p in &r.top_paths {
                let _ = write!(
                    out,
                    "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&p.path),
                    p.count,
                    p.fingerprints
                );
            }
            out.push_str("</table>");
        }
        if !r.fingerprints.is_empty() {
            out.push_str(
                "<h3>Fingerprints</h3><table><tr><th>fingerprint</th><th>status</th><th>kind</th>\
                 <th>path</th><th>classes</th><th>count</th><th>first seen</th><th>last seen</th></tr>",
            );
            for f in &r.fingerprints {
                let _ = write!(
                    out,
                    "<tr data-fingerprint=\"{fp}\"><td><code>{fp}</code></td><td>{}</td><td>{}</td>\
                     <td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                    f.status.as_str(),
                    esc(&f.kind),
                    esc(&f.path),
                    esc(&f.value_class),
                    f.count,
                    when(f.first_seen_ms),
                    when(f.last_seen_ms),
                    fp = esc(&f.fingerprint),
                );
            }
            out.push_str("</table>");
        }
        if !r.rules.is_empty() {
            out.push_str("<h3>Active rules and what they hide</h3><table><tr><th>rule</th><th>comparisons</th><th>differences forgiven</th><th>values hidden</th></tr>");
            for h in &r.rules {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    esc(&h.rule),
                    h.comparisons,
                    h.forgiven,
                    h.hidden_leaves
                );
            }
            out.push_str("</table>");
        }
        for e in &r.exemplars {
            let _ = write!(
                out,
                "<h3>Exemplar of <code>{}</code></h3><p><code>{}</code>: legacy {}, candidate {}{}</p><ul>",
                esc(&e.fingerprints(", ")),
                esc(&e.request),
                e.statuses.0,
                e.statuses.1,
                if e.raw {
                    " (raw values kept by opt-in)"
                } else {
                    ""
                }
            );
            for d in &e.differences {
                let _ = write!(out, "<li><code>{}</code></li>", esc(d));
            }
            out.push_str("</ul>");
            out.push_str(&diff_table(&e.rows));
        }
        out.push_str("</section>");
    }
    out.push_str("</body></html>\n");
    out
}
