//! Triage of fingerprints: acknowledge, expect until a date (proposing the rule that would hide
//! it), or mark fixed after re-sending a stored, redacted request to both sides and seeing the
//! difference gone.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use strangler_core::Config;
use strangler_diff::{CompareInput, HttpAnswer, RuleSet, compare};

use crate::error::{Error, Result};
use crate::privacy::{HMAC_PREFIX, REMOVED};
use crate::store::{Exemplar, MismatchStore, Status};

/// Deadline of one replayed request.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest replayed answer read.
const REPLAY_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The outcome of a triage action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The fingerprint.
    pub fingerprint: String,
    /// Its status now.
    pub status: Status,
    /// For `expected`: the rule that would hide it, to paste into the capability's rules file.
    pub proposed_rule: Option<String>,
    /// For `fixed`: the verdict of the replay.
    pub replay_verdict: Option<String>,
}

/// Acknowledges a fingerprint: someone looked and owns it.
pub async fn acknowledge(
    store: &MismatchStore,
    capability: &str,
    fingerprint: &str,
    actor: &str,
    note: &str,
) -> Result<Outcome> {
    set(
        store,
        capability,
        fingerprint,
        Status::Acknowledged,
        None,
        actor,
        note,
    )
    .await?;
    Ok(Outcome {
        fingerprint: fingerprint.into(),
        status: Status::Acknowledged,
        proposed_rule: None,
        replay_verdict: None,
    })
}

/// Marks a fingerprint expected until the end of `until` (UTC), and proposes an ignore rule.
pub async fn expect(
    store: &MismatchStore,
    capability: &str,
    fingerprint: &str,
    until: &str,
    actor: &str,
    note: &str,
) -> Result<Outcome> {
    let day = NaiveDate::parse_from_str(until, "%Y-%m-%d").map_err(|_| {
        Error::BadRequest(format!(
            "`until` must be a date written YYYY-MM-DD, found `{until}`"
        ))
    })?;
    let end = day
        .and_hms_opt(23, 59, 59)
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| Error::BadRequest(format!("`{until}` is not a valid date")))?;
    if end < Utc::now().timestamp_millis() {
        return Err(Error::BadRequest(format!(
            "`until` ({until}) is in the past; choose a later date"
        )));
    }
    let fp = store
        .fingerprint(capability, fingerprint, Utc::now().timestamp_millis())
        .await?;
    set(
        store,
        capability,
        fingerprint,
        Status::Expected,
        Some(end),
        actor,
        note,
    )
    .await?;
    Ok(Outcome {
        fingerprint: fingerprint.into(),
        status: Status::Expected,
        proposed_rule: Some(proposed_rule(
            &fp.path,
            &fp.kind,
            fingerprint,
            until,
            actor,
            note,
        )),
        replay_verdict: None,
    })
}

/// The rule that would hide a fingerprint's differences, as TOML for `shadow-rules/*.toml`.
pub fn proposed_rule(
    path: &str,
    kind: &str,
    fingerprint: &str,
    until: &str,
    actor: &str,
    note: &str,
) -> String {
    let reason = if note.is_empty() {
        format!("expected difference ({kind}), fingerprint {fingerprint}")
    } else {
        note.to_owned()
    };
    let q = |s: &str| toml_string(s);
    if let Some(header) = path.strip_prefix("@header/") {
        return format!(
            "# fingerprint {fingerprint}: stop comparing the `{header}` header by removing it from\n\
             # [http] headers, or keep it and accept this difference until {until}.\n"
        );
    }
    if path == "@status" {
        return format!(
            "# fingerprint {fingerprint}: status codes differ; set [http] status = false only if the\n\
             # status is not part of the contract (reason: {reason}), until {until}.\n"
        );
    }
    let pointer = if path.is_empty() {
        "/**".to_owned()
    } else {
        path.to_owned()
    };
    format!(
        "[[ignore]]\nname = {}\nreason = {}\nowner = {}\npaths = [{}]\nexpires = {}\n",
        q(&format!("expected-{fingerprint}")),
        q(&reason),
        q(actor),
        q(&pointer),
        q(until)
    )
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn set(
    store: &MismatchStore,
    capability: &str,
    fingerprint: &str,
    status: Status,
    until: Option<i64>,
    actor: &str,
    note: &str,
) -> Result<()> {
    let found = store
        .set_status(
            capability,
            fingerprint,
            status,
            until,
            actor,
            note,
            Utc::now().timestamp_millis(),
        )
        .await?;
    if !found {
        return Err(Error::UnknownFingerprint {
            capability: capability.into(),
            fingerprint: fingerprint.into(),
        });
    }
    Ok(())
}

/// Re-sends the newest stored exemplar of a fingerprint to legacy and the new path now; marks
/// the fingerprint fixed if the replay no longer shows it.
pub async fn fixed(
    store: &MismatchStore,
    config: &Config,
    capability: &str,
    fingerprint: &str,
    actor: &str,
    note: &str,
) -> Result<Outcome> {
    let cap = config
        .capability(capability)
        .ok_or_else(|| Error::UnknownCapability(capability.to_owned()))?;
    let proxy = config.proxy.as_ref().ok_or_else(|| {
        Error::BadRequest(
            "the configuration has no [proxy] section, so there is nowhere to re-send the request"
                .into(),
        )
    })?;
    let exemplars = store.exemplars(capability, fingerprint).await?;
    let Some(ex) = exemplars.first() else {
        return Err(Error::BadRequest(format!(
            "fingerprint `{fingerprint}` has no stored request to re-send; acknowledge it instead"
        )));
    };
    let rules = match &cap.rules {
        Some(path) => RuleSet::load(&config.resolve(path))
            .map_err(|e| Error::BadRequest(format!("loading the rules of `{capability}`: {e}")))?,
        None => RuleSet::empty(),
    };
    let (legacy, candidate) =
        tokio::join!(replay(&proxy.legacy_url, ex), replay(&proxy.new_url, ex));
    let legacy = legacy.map_err(|e| {
        Error::BadRequest(format!(
            "re-sending to legacy ({}) failed: {e}",
            proxy.legacy_url
        ))
    })?;
    let candidate = candidate.map_err(|e| {
        Error::BadRequest(format!(
            "re-sending to the new path ({}) failed: {e}",
            proxy.new_url
        ))
    })?;
    let c = compare(
        CompareInput {
            legacy: &legacy,
            candidate: &candidate,
            candidate_watermark: None,
        },
        &rules,
    );
    let still = c
        .fingerprints
        .iter()
        .any(|f| f.id.to_string() == fingerprint);
    if still {
        return Err(Error::NotFixed {
            fingerprint: fingerprint.into(),
            verdict: c.verdict.as_str().into(),
            differences: c.differences,
        });
    }
    set(
        store,
        capability,
        fingerprint,
        Status::Fixed,
        None,
        actor,
        note,
    )
    .await?;
    Ok(Outcome {
        fingerprint: fingerprint.into(),
        status: Status::Fixed,
        proposed_rule: None,
        replay_verdict: Some(c.verdict.as_str().into()),
    })
}

/// Headers never re-sent: hop-by-hop, framing, and the host of the original upstream.
const NOT_RESENT: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

async fn replay(base: &str, ex: &Exemplar) -> std::result::Result<HttpAnswer, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("{}{}", base.trim_end_matches('/'), ex.path_and_query);
    let mut req = http::Request::builder()
        .method(ex.method.as_str())
        .uri(&uri);
    for (k, v) in &ex.request_headers {
        // A redacted value is useless to the upstream; the raw one is not stored.
        let redacted = !ex.raw && (v.starts_with(HMAC_PREFIX) || v == REMOVED);
        if !redacted && !NOT_RESENT.contains(&k.as_str()) {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let req = req
        .body(Full::new(Bytes::from(ex.request_body.clone())))
        .map_err(|e| format!("building the request to {uri}: {e}"))?;
    let resp = tokio::time::timeout(REPLAY_TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("no answer from {uri} within {} s", REPLAY_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{uri}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, REPLAY_MAX_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {uri}: {e}"))?
        .to_bytes();
    Ok(HttpAnswer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date given by a user.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposed_rule_parses_as_a_rule_file() {
        let rule = proposed_rule(
            "/items/*/price",
            "value",
            "00000000000000ab",
            "2099-01-31",
            "ann",
            "rounding \"fix\" pending",
        );
        let file = format!("capability = \"orders\"\n{rule}");
        let set = RuleSet::parse(&file, "proposed.toml").expect("the proposed rule is valid");
        assert_eq!(set.capability(), Some("orders"));
        assert!(
            rule.contains("paths = [\"/items/*/price\"]")
                && rule.contains("expires = \"2099-01-31\"")
        );
    }
}
