//! One request through the proxy: match its capability, decide who serves it, forward it, and
//! hand a copy to the mirror pool when it is compared.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::body::Body as HttpBody;
use strangler_core::WriteSafety;
use strangler_diff::{Side, Verdict};

use crate::config::Capability;
use crate::error::ProxyError;
use crate::forward::{self, Collected, TeeBody};
use crate::mirror::{self, AnswerRef, Copy, Fetched, Served, Target};
use crate::modes::{self, Facts, Fallback, Plan, Serve};
use crate::router::RouteMatch;
use crate::ryw::client_id;
use crate::state::Proxy;
use crate::stats::Skip;

/// The single handler behind [`crate::app`].
pub async fn handle(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    match proxy.routes.lookup(req.method(), req.uri().path()) {
        None => pass_through(&proxy, req).await,
        Some(m) => capability(&proxy, m, req).await,
    }
}

fn path_and_query(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn upstream_timeout(proxy: &Proxy) -> Duration {
    Duration::from_millis(proxy.settings.proxy.upstream_timeout_ms)
}

/// Streams a request to legacy and its answer back, unchanged apart from hop-by-hop headers.
async fn pass_through(proxy: &Proxy, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let uri = proxy.settings.legacy.uri_of(&parts.uri);
    forward::upstream_headers(&mut parts.headers);
    let up = forward::prepared(parts.method, parts.headers, uri, forward::drained(body));
    match forward::send(&proxy.client(), up, upstream_timeout(proxy)).await {
        Ok((resp, _)) => forward::respond(resp),
        Err(e) => forward::failure(e),
    }
}

fn canary_key<'a>(proxy: &Proxy, c: &Capability, m: RouteMatch, parts: &'a Parts) -> Cow<'a, [u8]> {
    if let Some(h) = &c.cfg.canary_key_header
        && let Some(v) = parts.headers.get(h.as_str())
    {
        return Cow::Borrowed(v.as_bytes());
    }
    if let Some(p) = &c.cfg.canary_key_param
        && let Some(v) = proxy.routes.param(m, parts.uri.path(), p)
    {
        return Cow::Borrowed(v.as_bytes());
    }
    Cow::Borrowed(path_and_query(parts).as_bytes())
}

async fn capability(proxy: &Arc<Proxy>, m: RouteMatch, req: Request) -> Response {
    let c = &proxy.settings.caps[m.cap];
    let safe = matches!(
        req.method(),
        &Method::GET | &Method::HEAD | &Method::OPTIONS
    );
    let writer = if safe {
        None
    } else {
        client_id(req.headers(), &proxy.settings.proxy)
    };
    // The window opens when the write arrives, so a read racing it is served by legacy too.
    if let Some(id) = &writer {
        proxy
            .ryw
            .note_write(id, &c.affects, std::time::Instant::now(), Utc::now());
    }
    let resp = serve_capability(proxy, m, req).await;
    // Noted again once legacy answered: the write is committed by now, and the watermark it is
    // compared with must pass this moment, not the arrival.
    if let Some(id) = &writer {
        proxy
            .ryw
            .note_write(id, &c.affects, std::time::Instant::now(), Utc::now());
    }
    resp
}

async fn serve_capability(proxy: &Arc<Proxy>, m: RouteMatch, req: Request) -> Response {
    let (mode, all_killed) = proxy.modes.serving(m.cap);
    if mode.legacy_only(all_killed) {
        // What `modes::plan` decides for these, without the key, hashes and samples it needs
        // for the other modes: legacy serves, nothing is compared, nothing is counted.
        return pass_through(proxy, req).await;
    }
    let c = &proxy.settings.caps[m.cap];
    let stats = &proxy.stats[m.cap];
    let (parts, body) = req.into_parts();
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let now = std::time::Instant::now();
    let key = canary_key(proxy, c, m, &parts);
    let by_key = c.cfg.sample_by_key.then_some(&*key);
    let facts = Facts {
        mode: mode.mode,
        killed: mode.killed || all_killed,
        class: c.cfg.class,
        is_read: safe || c.cfg.write_safety == WriteSafety::ReadOnly,
        bucket: modes::bucket(&key),
        sampled: modes::sampled(c.cfg.sample_rate, by_key),
        new_sampled: modes::sampled(c.cfg.new_compare_rate, by_key),
        fallback_on_mismatch: c.cfg.fallback_on_mismatch,
    };
    let plan = modes::plan(
        &facts,
        || {
            client_id(&parts.headers, &proxy.settings.proxy)
                .and_then(|id| proxy.ryw.pending_write(&id, m.cap, now))
                .is_some_and(|at| !proxy.fresh[m.cap].applied_since(at))
        },
        || proxy.fresh[m.cap].lagging(),
    );
    if let Some(f) = plan.fallback {
        stats.fallback(f);
    }
    let active = !facts.killed && !matches!(facts.mode, strangler_core::Mode::Legacy);
    if active && !plan.compare && plan.serve == Serve::Legacy {
        stats.skip(Skip::SampledOut);
    }
    let mut target = match plan.serve {
        Serve::Legacy => Target::New,
        Serve::New => Target::Legacy,
    };
    let mut compare = plan.compare;
    if compare && plan.serve == Serve::Legacy && c.cfg.write_safety != WriteSafety::ReadOnly {
        // Only reads go to the new path; writes only to a sandbox, never elsewhere.
        if safe {
            target = Target::New;
        } else if c.sandbox.is_some() {
            target = Target::Sandbox;
        } else {
            stats.skip(Skip::WriteUnsafe);
            compare = false;
        }
    }
    if plan.serve == Serve::Legacy && !compare {
        return pass_through(proxy, Request::from_parts(parts, body)).await;
    }
    // The request is sent twice (or may be): buffer it, when its size is known to fit.
    let fits = body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= c.cfg.max_body_bytes as u64);
    if !fits {
        stats.skip(Skip::TooLarge);
        if plan.serve == Serve::Legacy {
            return pass_through(proxy, Request::from_parts(parts, body)).await;
        }
        return serve_new_plain(proxy, m.cap, parts, body).await;
    }
    let bytes = match forward::collect_capped(body, c.cfg.max_body_bytes).await {
        Ok(Collected::Full(b)) => b,
        _ => return forward::failure(ProxyError::Upstream),
    };
    let copy = Copy {
        method: parts.method.clone(),
        path_and_query: path_and_query(&parts).to_owned(),
        headers: parts.headers,
        body: bytes,
    };
    if plan.fallback_on_mismatch {
        return serve_checked(proxy, m.cap, copy).await;
    }
    serve_and_mirror(proxy, m.cap, copy, plan, compare.then_some(target)).await
}

/// New path without a buffered copy (request body too large to keep): no comparison, no retry.
async fn serve_new_plain(proxy: &Proxy, cap: usize, parts: Parts, body: Body) -> Response {
    let uri = proxy.settings.new.uri(path_and_query(&parts));
    let up = forward::request(&parts.method, &parts.headers, uri, forward::drained(body));
    match forward::send(&proxy.client(), up, upstream_timeout(proxy)).await {
        Ok((resp, _)) => {
            proxy.stats[cap].served_new();
            forward::respond(resp)
        }
        Err(e) => forward::failure(e),
    }
}

/// Serves from one side; when `mirror` is set, tees the body and spawns the comparison.
async fn serve_and_mirror(
    proxy: &Arc<Proxy>,
    cap: usize,
    copy: Copy,
    plan: Plan,
    mirror: Option<Target>,
) -> Response {
    let c = &proxy.settings.caps[cap];
    let stats = &proxy.stats[cap];
    let (upstream, side) = match plan.serve {
        Serve::Legacy => (&proxy.settings.legacy, Serve::Legacy),
        Serve::New => (&proxy.settings.new, Serve::New),
    };
    let client = proxy.client();
    let send = |to: &crate::config::Upstream| {
        let req = forward::request(
            &copy.method,
            &copy.headers,
            to.uri(&copy.path_and_query),
            Body::from(copy.body.clone()),
        );
        forward::send(&client, req, upstream_timeout(proxy))
    };
    let sent = send(upstream).await;
    if side == Serve::New {
        let failed = match &sent {
            Ok((resp, _)) if resp.status().is_server_error() => {
                Some(format!("new path answered {}", resp.status()))
            }
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = failed {
            // The new path failed: the client gets legacy's answer instead.
            stats.verdict(&Verdict::Error {
                side: Side::Candidate,
                reason,
            });
            stats.fallback(Fallback::Error);
            return match send(&proxy.settings.legacy).await {
                Ok((resp, _)) => forward::respond(resp),
                Err(e) => forward::failure(e),
            };
        }
    }
    let (resp, latency) = match sent {
        Ok(ok) => ok,
        Err(e) => {
            if mirror.is_some() {
                stats.skip(Skip::ServedFailed);
            }
            return forward::failure(e);
        }
    };
    if side == Serve::New {
        stats.served_new();
        proxy.fresh[cap].observe(resp.headers(), Utc::now());
    }
    let resp = forward::respond(resp);
    let Some(target) = mirror else {
        return resp;
    };
    let Some(permit) = proxy.pools[cap].try_acquire() else {
        stats.skip(Skip::PoolFull);
        return resp;
    };
    if resp.body().size_hint().lower() > c.cfg.max_body_bytes as u64 {
        stats.skip(Skip::TooLarge);
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let (tee, captured) = TeeBody::new(body, c.cfg.max_body_bytes);
    let served = Served {
        side,
        status: parts.status,
        headers: parts.headers.clone(),
        latency,
        body: captured,
    };
    mirror::spawn(proxy.clone(), cap, copy, served, target, permit);
    Response::from_parts(parts, Body::new(tee))
}

/// Canary with fall-back: asks both sides, serves the new answer only when it matches legacy's.
async fn serve_checked(proxy: &Arc<Proxy>, cap: usize, copy: Copy) -> Response {
    let c = &proxy.settings.caps[cap];
    let stats = &proxy.stats[cap];
    let timeout = upstream_timeout(proxy);
    let max = c.cfg.max_body_bytes;
    let client = proxy.client();
    let (legacy, new) = tokio::join!(
        mirror::fetch(
            &client,
            &proxy.settings.legacy,
            &copy,
            &[],
            None,
            timeout,
            max
        ),
        mirror::fetch(&client, &proxy.settings.new, &copy, &[], None, timeout, max),
    );
    let legacy = match legacy {
        Ok(l) => l,
        Err(e) => {
            stats.skip(Skip::ServedFailed);
            return forward::failure(e);
        }
    };
    let serve_legacy = |l: Fetched| {
        let body = match l.body {
            Collected::Full(b) => Body::from(b),
            Collected::TooLarge(b) => b,
        };
        respond_parts(l.status, l.headers, body)
    };
    let new = match new {
        Ok(n) => n,
        Err(e) => {
            stats.verdict(&Verdict::Error {
                side: Side::Candidate,
                reason: e.to_string(),
            });
            stats.fallback(Fallback::Error);
            return serve_legacy(legacy);
        }
    };
    stats.legacy_latency(legacy.latency);
    stats.new_latency(new.latency);
    proxy.fresh[cap].observe(&new.headers, Utc::now());
    let (Collected::Full(lb), Collected::Full(nb)) = (&legacy.body, &new.body) else {
        stats.skip(Skip::TooLarge);
        return serve_legacy(legacy);
    };
    let verdict = mirror::judge(
        AnswerRef {
            status: legacy.status,
            headers: &legacy.headers,
            body: lb,
        },
        AnswerRef {
            status: new.status,
            headers: &new.headers,
            body: nb,
        },
        crate::freshness::watermark_of(&new.headers),
        &c.rules,
    )
    .verdict;
    stats.verdict(&verdict);
    match verdict {
        Verdict::Match => {
            stats.served_new();
            let body = Bytes::clone(nb);
            respond_parts(new.status, new.headers, Body::from(body))
        }
        Verdict::Error { .. } => {
            stats.fallback(Fallback::Error);
            serve_legacy(legacy)
        }
        _ => {
            stats.fallback(Fallback::Mismatch);
            serve_legacy(legacy)
        }
    }
}

fn respond_parts(status: StatusCode, headers: http::HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    forward::respond(resp)
}
