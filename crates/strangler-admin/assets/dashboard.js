// strangler admin dashboard: capabilities, fingerprints with side-by-side diffs, triage and
// cutover actions behind a confirmation. Everything comes from /api/v1 with a bearer token kept
// in sessionStorage (or given once as #token=... in the address). Text is always set with
// textContent, never parsed as HTML.
"use strict";

const main = document.getElementById("main");
let token = sessionStorage.getItem("strangler-token") || "";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/api/v1" + path, opts);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) {
    showLogin(data.error || "sign in");
    throw new Error(data.error || "unauthorized");
  }
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  document.getElementById("login-error").textContent = message || "";
  main.replaceChildren();
}

function confirmAction(text) {
  return new Promise((resolve) => {
    const box = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    box.hidden = false;
    const done = (v) => { box.hidden = true; yes.onclick = no.onclick = null; resolve(v); };
    const yes = document.getElementById("confirm-yes");
    const no = document.getElementById("confirm-no");
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
  });
}

function when(ms) {
  if (ms === null || ms === undefined) return "-";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

function pct(v) { return (v * 100).toFixed(2) + "%"; }

function flash(text, bad) {
  const p = el("p", { class: bad ? "err" : "", id: "flash", text });
  const old = document.getElementById("flash");
  if (old) old.replaceWith(p); else main.prepend(p);
}

async function act(question, method, path, body, after) {
  if (!(await confirmAction(question))) return;
  try {
    const out = await api(method, path, body);
    await after();
    flash("Done." + (out.proposed_rule ? " Proposed rule:\n" + out.proposed_rule : ""));
    if (out.proposed_rule) main.prepend(el("pre", { class: "proposed" }, out.proposed_rule));
  } catch (e) {
    flash(e.message, true);
  }
}

async function capabilitiesView() {
  const caps = await api("GET", "/capabilities");
  const rows = caps.map((c) =>
    el("tr", { class: "clickable", "data-capability": c.capability, onclick: () => { location.hash = "#/cap/" + encodeURIComponent(c.capability); } },
      el("td", {}, el("b", {}, c.capability)),
      el("td", {}, c.class),
      el("td", { "data-field": "mode" }, c.mode + (c.killed || c.all_killed ? " (killed)" : "")),
      el("td", { class: "num" }, c.compared),
      el("td", { class: "num" }, pct(c.mismatch_rate)),
      el("td", { class: "num" }, pct(c.mismatch_upper95)),
      el("td", {}, el("span", { class: "pill " + (c.gate_passed ? "pass" : "fail") }, c.gate_passed ? "pass" : "fail")),
      el("td", { class: "num" }, c.open_fingerprints),
      el("td", { class: "num" }, c.lag_ms === null ? "-" : c.lag_ms + " ms" + (c.lagging ? " (lagging)" : "")),
      el("td", {}, c.updated_by ? when(Date.parse(c.updated_at)) + " by " + c.updated_by : "never")));
  main.replaceChildren(
    el("h2", {}, "Capabilities"),
    el("table", { id: "capabilities" },
      el("tr", {}, ...["capability", "class", "mode", "compared", "mismatch rate", "upper 95%", "gate", "open fingerprints", "lag", "last change"].map((h) => el("th", {}, h))),
      ...rows),
    el("p", {}, el("button", { class: "danger", onclick: () => act("Turn the GLOBAL kill switch ON? Every capability will be served by legacy.", "POST", "/kill", { killed: true, reason: "dashboard: global kill" }, route) }, "Global kill switch on"), " ",
      el("button", { onclick: () => act("Turn the global kill switch off?", "POST", "/kill", { killed: false, reason: "dashboard: global unkill" }, route) }, "Global kill switch off")));
}

function figures(report) {
  return el("div", { class: "figures" }, ...report.figures.map((f) =>
    el("div", { class: "fig fig-" + f.kind + (f.key === "gate" && f.display === "fail" ? " bad" : "") },
      el("div", { class: "label" }, f.label),
      el("div", { class: "value", "data-figure": f.key, "data-value": f.value === null ? "" : String(f.value) }, f.display))));
}

async function capabilityView(cap) {
  const enc = encodeURIComponent(cap);
  const [report, fps] = await Promise.all([api("GET", "/capabilities/" + enc + "/report"), api("GET", "/capabilities/" + enc + "/fingerprints")]);
  const modeSel = el("select", { id: "mode-select" }, ...["legacy", "shadow", "canary:1", "canary:5", "canary:25", "canary:50", "new", "retired"].map((m) => el("option", { value: m }, m)));
  const reason = el("input", { id: "mode-reason", placeholder: "reason (recorded)", size: 30 });
  const force = el("input", { id: "mode-force", type: "checkbox" });
  const fpRows = fps.map((f) =>
    el("tr", { class: "clickable", "data-fingerprint": f.fingerprint, onclick: () => { location.hash = "#/cap/" + enc + "/fp/" + f.fingerprint; } },
      el("td", {}, el("code", {}, f.fingerprint)), el("td", {}, f.status), el("td", {}, f.kind),
      el("td", {}, el("code", {}, f.path)), el("td", {}, f.value_class), el("td", { class: "num" }, f.count),
      el("td", {}, spark(f.trend)), el("td", {}, when(f.last_seen_ms))));
  main.replaceChildren(...[
    el("p", {}, el("a", { href: "#/" }, "← capabilities"), " · ", el("a", { href: "/api/v1/capabilities/" + enc + "/report.html", id: "html-link", onclick: downloadReport(enc) }, "download HTML report")),
    el("h2", {}, cap + " ", el("span", { class: "pill", "data-field": "mode" }, report.mode + (report.killed ? " (killed)" : ""))),
    figures(report),
    report.gate.passed ? null : el("p", { class: "err" }, "Gate fails: " + report.gate.checks.filter((c) => !c.passed).map((c) => c.name).join(", ")),
    el("p", {}, "Freshness: last comparison " + (report.freshness.last_comparison_at || "never") + (report.freshness.lag_ms === null ? "" : ", lag " + report.freshness.lag_ms + " ms")),
    el("h3", {}, "Cutover"),
    el("p", {}, "Move to ", modeSel, " ", reason, " ", el("label", {}, force, " force"), " ",
      el("button", { class: "primary", id: "mode-apply", onclick: () => act("Move " + cap + " to " + modeSel.value + "?", "POST", "/capabilities/" + enc + "/mode", { mode: modeSel.value, reason: reason.value, force: force.checked }, route) }, "Apply"), " ",
      el("button", { class: "danger", onclick: () => act("Kill " + cap + "? It will be served by legacy.", "POST", "/capabilities/" + enc + "/kill", { killed: !report.killed, reason: reason.value || "dashboard kill switch" }, route) }, report.killed ? "Unkill" : "Kill")),
    el("h3", {}, "Fingerprints"),
    fps.length ? el("table", { id: "fingerprints" }, el("tr", {}, ...["fingerprint", "status", "kind", "path", "classes", "count", "24 h", "last seen"].map((h) => el("th", {}, h))), ...fpRows) : el("p", {}, "No mismatches stored."),
    el("h3", {}, "Active rules"),
    report.rules.length ? el("table", {}, el("tr", {}, el("th", {}, "rule"), el("th", {}, "comparisons"), el("th", {}, "forgiven"), el("th", {}, "hidden")),
      ...report.rules.map((r) => el("tr", {}, el("td", {}, r.rule), el("td", { class: "num" }, r.comparisons), el("td", { class: "num" }, r.forgiven), el("td", { class: "num" }, r.hidden_leaves)))) : el("p", {}, "No rule forgave anything yet."),
  ].filter((x) => x !== null));
}

function downloadReport(enc) {
  return async (ev) => {
    ev.preventDefault();
    const resp = await fetch("/api/v1/capabilities/" + enc + "/report.html", { headers: { Authorization: "Bearer " + token } });
    const blob = await resp.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: decodeURIComponent(enc) + "-report.html" });
    a.click();
  };
}

function spark(trend) {
  const max = Math.max(1, ...trend);
  const bars = "▁▂▃▄▅▆▇█";
  return el("span", { class: "spark", title: trend.join(" ") }, trend.map((n) => (n === 0 ? " " : bars[Math.min(7, Math.floor((n / max) * 7))])).join(""));
}

function diffTable(rows) {
  return el("table", { class: "diff" }, el("thead", {}, el("tr", {}, el("th", {}, "legacy"), el("th", {}, "candidate"))),
    el("tbody", {}, ...rows.map((r) => el("tr", { class: r.tag }, el("td", {}, el("pre", {}, r.legacy)), el("td", {}, el("pre", {}, r.candidate))))));
}

async function fingerprintView(cap, fp) {
  const enc = encodeURIComponent(cap);
  const data = await api("GET", "/capabilities/" + enc + "/fingerprints/" + fp);
  const f = data.fingerprint;
  const until = el("input", { type: "date", id: "expect-until" });
  const note = el("input", { id: "triage-note", placeholder: "note", size: 30 });
  const base = "/capabilities/" + enc + "/fingerprints/" + fp;
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/cap/" + enc }, "← " + cap)),
    el("h2", {}, "Fingerprint ", el("code", {}, f.fingerprint), " ", el("span", { class: "pill", id: "fp-status" }, f.status)),
    el("p", {}, f.kind + " at ", el("code", {}, f.path), " (" + f.value_class + "), seen " + f.count + " times, first " + when(f.first_seen_ms) + ", last " + when(f.last_seen_ms),
      f.status_by ? " · " + f.status + " by " + f.status_by + (f.status_note ? ": " + f.status_note : "") : ""),
    el("p", {}, note, " ",
      el("button", { onclick: () => act("Acknowledge " + fp + "?", "POST", base + "/acknowledge", { note: note.value }, route) }, "Acknowledge"), " ",
      "expected until ", until, " ",
      el("button", { onclick: () => act("Mark " + fp + " expected until " + until.value + "?", "POST", base + "/expect", { until: until.value, note: note.value }, route) }, "Mark expected"), " ",
      el("button", { onclick: () => act("Re-send the stored request to both sides and mark " + fp + " fixed if the difference is gone?", "POST", base + "/fixed", { note: note.value }, route) }, "Verify fixed")),
    ...data.exemplars.flatMap((e) => [
      el("h3", {}, el("code", {}, e.request), " legacy " + e.statuses[0] + " / candidate " + e.statuses[1] + " · " + when(e.seen_ms)),
      el("ul", {}, ...e.differences.map((d) => el("li", {}, el("code", {}, d)))),
      diffTable(e.rows),
    ]));
}

async function auditView() {
  const rows = await api("GET", "/audit");
  main.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← capabilities")), el("h2", {}, "Audit trail"),
    el("table", { id: "audit" }, el("tr", {}, ...["when", "actor", "role", "action", "target", "outcome"].map((h) => el("th", {}, h))),
      ...rows.map((r) => el("tr", {}, el("td", {}, when(r.at_ms)), el("td", {}, r.actor), el("td", {}, r.role), el("td", {}, r.action), el("td", {}, r.target), el("td", {}, r.outcome)))));
}

async function route() {
  if (!token) return showLogin("");
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  try {
    const me = await api("GET", "/whoami");
    document.getElementById("who").textContent = me.name + " (" + me.role + ")";
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (parts[0] === "cap" && parts[2] === "fp") await fingerprintView(parts[1], parts[3]);
    else if (parts[0] === "cap") await capabilityView(parts[1]);
    else if (parts[0] === "audit") await auditView();
    else await capabilitiesView();
    document.body.setAttribute("data-loaded", location.hash || "#/");
  } catch (e) {
    if (token) flash(e.message, true);
  }
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("strangler-token", token);
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem("strangler-token");
  showLogin("");
});
window.addEventListener("hashchange", () => { document.body.removeAttribute("data-loaded"); route(); });

// The front page follows the proxies: modes, rates and lag refresh every 5 s.
setInterval(() => {
  const front = location.hash === "" || location.hash === "#/";
  if (token && front && document.getElementById("confirm").hidden) capabilitiesView().catch(() => {});
}, 5000);

const given = location.hash.match(/^#token=([^&]+)/);
if (given) {
  token = decodeURIComponent(given[1]);
  sessionStorage.setItem("strangler-token", token);
  history.replaceState(null, "", location.pathname + "#/");
}
route();
