//! Per-capability cutover: the Rust API the CLI and the admin HTTP API call to show, change and
//! audit serving modes, with promotion gates on the way towards the new path; and the check by
//! which a capability in `canary` or `new` mode falls back to `shadow` when its gate breaks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use strangler_core::config::CapabilityConfig;
use strangler_core::{Config, Mode, ReadModelClass};
use strangler_store::Store;
use strangler_store::cutover::{ALL, AuditEntry, CutoverState, ModeChange, VerdictTotals};

use crate::error::{Error, Result};
use crate::gate::{self, Evidence, GatePolicy, GateReport};
use crate::state::Proxy;

/// The actor recorded when a proxy demotes a canary by itself.
pub const PROXY_ACTOR: &str = "strangler-proxy";

/// One capability as `strangler cutover show` and the admin API present it.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityView {
    /// Name.
    pub capability: String,
    /// Read-model class.
    pub class: ReadModelClass,
    /// Serving mode (`legacy` when never set).
    pub mode: Mode,
    /// This capability's kill switch.
    pub killed: bool,
    /// The global kill switch.
    pub all_killed: bool,
    /// Row version (0 when never set).
    pub version: i64,
    /// When the mode last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Who changed it.
    pub updated_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Verdict counts across proxies since the mode began.
    pub totals: VerdictTotals,
    /// The promotion gate as it stands now.
    pub gate: GateReport,
}

/// A requested change of mode.
#[derive(Debug, Clone)]
pub struct SetRequest {
    /// The capability.
    pub capability: String,
    /// The target mode.
    pub to: Mode,
    /// Who asks (recorded).
    pub actor: String,
    /// Why (recorded).
    pub reason: String,
    /// Override a failing gate or a skipped stage (recorded).
    pub force: bool,
}

/// A change that was applied.
#[derive(Debug, Clone, Serialize)]
pub struct SetOutcome {
    /// The mode before.
    pub from: Mode,
    /// The stored state after.
    pub state: CutoverState,
    /// The gate evaluation, for promotions.
    pub gate: Option<GateReport>,
}

fn capability<'c>(config: &'c Config, name: &str) -> Result<&'c CapabilityConfig> {
    config
        .capability(name)
        .ok_or_else(|| Error::UnknownCapability(name.to_owned()))
}

/// Evaluates a capability's promotion gate on the verdicts recorded since `since`.
pub async fn evaluate(
    store: &Store,
    cap: &CapabilityConfig,
    since: DateTime<Utc>,
) -> Result<(VerdictTotals, GateReport)> {
    let totals = store.verdict_totals(&cap.name, since).await?;
    let report = gate::promotion(&Evidence::from(&totals), &GatePolicy::from(cap));
    Ok((totals, report))
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Every configured capability with its mode, switches and gate.
pub async fn show(store: &Store, config: &Config) -> Result<Vec<CapabilityView>> {
    let rows = store.cutover_all().await?;
    let all_killed = rows.iter().any(|r| r.capability == ALL && r.killed);
    let mut out = Vec::with_capacity(config.capabilities.len());
    for cap in &config.capabilities {
        let row = rows.iter().find(|r| r.capability == cap.name);
        let since = row.map_or_else(epoch, |r| r.updated_at);
        let (totals, gate) = evaluate(store, cap, since).await?;
        out.push(CapabilityView {
            capability: cap.name.clone(),
            class: cap.class,
            mode: row.map_or(Mode::Legacy, |r| r.mode),
            killed: row.is_some_and(|r| r.killed),
            all_killed,
            version: row.map_or(0, |r| r.version),
            updated_at: row.map(|r| r.updated_at),
            updated_by: row.map(|r| r.updated_by.clone()),
            reason: row.map(|r| r.reason.clone()),
            totals,
            gate,
        });
    }
    Ok(out)
}

/// Moves a capability to a mode: refuses authoritative capabilities on the new path (always),
/// skipped stages and failing promotion gates (unless `force`), and records the audit entry.
pub async fn set(store: &Store, config: &Config, req: &SetRequest) -> Result<SetOutcome> {
    let cap = capability(config, &req.capability)?;
    if cap.class == ReadModelClass::Authoritative && req.to.serves_new() {
        return Err(Error::Authoritative {
            capability: cap.name.clone(),
            to: req.to,
        });
    }
    let current = store.cutover_get(&cap.name).await?;
    let from = current.as_ref().map_or(Mode::Legacy, |c| c.mode);
    let seen = current.as_ref().map_or(0, |c| c.version);
    if !from.can_move_to(req.to) && !req.force {
        return Err(Error::Step {
            capability: cap.name.clone(),
            from,
            to: req.to,
        });
    }
    // Shadowing is always safe; every step that lets the new path answer needs evidence.
    let gate = if from.is_promotion(req.to) && req.to.serves_new() {
        let since = current.as_ref().map_or_else(epoch, |c| c.updated_at);
        let (_, report) = evaluate(store, cap, since).await?;
        if !report.passed && !req.force {
            return Err(Error::GateFailed {
                capability: cap.name.clone(),
                to: req.to,
                report: Box::new(report),
            });
        }
        Some(report)
    } else {
        None
    };
    let change = ModeChange {
        capability: cap.name.clone(),
        to: req.to,
        actor: req.actor.clone(),
        reason: req.reason.clone(),
        forced: req.force,
        gate: gate.as_ref().and_then(|g| serde_json::to_value(g).ok()),
        expected_version: Some(seen),
    };
    let state = store
        .cutover_set(&change)
        .await?
        .ok_or_else(|| Error::Conflict(cap.name.clone()))?;
    tracing::info!(capability = %cap.name, %from, to = %req.to, actor = %req.actor, forced = req.force, "cutover mode changed");
    Ok(SetOutcome { from, state, gate })
}

/// Turns the kill switch of one capability (or of all, with `None`) on or off, audited.
pub async fn kill(
    store: &Store,
    config: &Config,
    capability_name: Option<&str>,
    killed: bool,
    actor: &str,
    reason: &str,
) -> Result<CutoverState> {
    let name = match capability_name {
        Some(n) => capability(config, n)?.name.as_str(),
        None => ALL,
    };
    Ok(store
        .cutover_set_killed(name, killed, actor, reason)
        .await?)
}

/// The audit trail of a capability (or of the global switch, `*`), oldest first.
pub async fn history(
    store: &Store,
    config: &Config,
    capability_name: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    if capability_name != ALL {
        capability(config, capability_name)?;
    }
    Ok(store.cutover_history(capability_name, limit).await?)
}

/// Demotes every capability in `canary` or `new` mode whose gate broke back to `shadow`, audited
/// as [`PROXY_ACTOR`]. Shadow serves every client from legacy and keeps comparing, so the
/// evidence for the next promotion gathers where the fall-back left off. Several proxies may
/// race; the version check lets exactly one record it.
pub(crate) async fn check_serving_gates(proxy: &Proxy) {
    let snap = proxy.modes.current();
    for c in &proxy.settings.caps {
        let m = snap.caps[c.index];
        if !matches!(m.mode, Mode::Canary(_) | Mode::New) || m.killed || snap.all_killed {
            continue;
        }
        let since = m.since.unwrap_or_else(epoch);
        let totals = match proxy.store.verdict_totals(&c.cfg.name, since).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(capability = %c.name, error = %e, "reading verdict counts for the serving gate failed");
                continue;
            }
        };
        let Some(report) = gate::demotion(&Evidence::serving(&totals), &GatePolicy::from(&c.cfg))
        else {
            continue;
        };
        let stage = if m.mode == Mode::New { "new" } else { "canary" };
        let change = ModeChange {
            capability: c.cfg.name.clone(),
            to: Mode::Shadow,
            actor: PROXY_ACTOR.into(),
            reason: format!("{stage} gate broke: {}", report.failures()),
            forced: false,
            gate: serde_json::to_value(&report).ok(),
            expected_version: Some(m.version),
        };
        match proxy.store.cutover_set(&change).await {
            Ok(Some(_)) => {
                metrics::counter!("strangler_proxy_demotions_total", "capability" => c.name.to_string(), "from" => stage)
                    .increment(1);
                tracing::warn!(capability = %c.name, from = %m.mode, failures = %report.failures(), "serving gate broke; demoted to shadow");
                if let Err(e) = proxy.refresh_modes().await {
                    tracing::warn!(error = %e, "re-reading modes after a demotion failed");
                }
            }
            Ok(None) => {} // another proxy (or an operator) changed it first
            Err(e) => {
                tracing::warn!(capability = %c.name, error = %e, "demoting the capability failed")
            }
        }
    }
}
