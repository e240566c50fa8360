//! The router: one GET route per path in the projection files, plus `/healthz`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use strangler_store::Store;

use super::error::ApiError;
use super::rows::query_json;
use super::{LAG_HEADER, VERSION_HEADER, WATERMARK_HEADER};
use crate::definition::{RouteDef, RouteResult, RoutesFile};
use crate::projection::{Projection, SqlProjection};
use crate::sink::Sinks;
use crate::store::dialect;
use crate::{freshness, sql, version};

struct RouteEntry {
    path: String,
    projection: String,
    /// The route as each version defines it; the served version's definition answers.
    by_version: BTreeMap<u32, RouteDef>,
}

/// State of the read API.
#[derive(Clone)]
pub struct ReadApi {
    store: Store,
    routes: Arc<Vec<Arc<RouteEntry>>>,
    stall_after: HashMap<String, Duration>,
    sinks: Sinks,
}

impl ReadApi {
    /// Routes from the projections' `[[route]]` tables over `store`.
    pub fn new(store: Store, projections: &[Arc<SqlProjection>]) -> ReadApi {
        ReadApi::with_route_files(store, projections, &[])
    }

    /// Routes from the projections' `[[route]]` tables and from routes files (`[serve]
    /// routes_dir`, validated by [`crate::definition::load_routes_dir`]); a file's routes answer
    /// over whichever version of their projection is served.
    pub fn with_route_files(
        store: Store,
        projections: &[Arc<SqlProjection>],
        files: &[(std::path::PathBuf, RoutesFile)],
    ) -> ReadApi {
        let mut by_path: BTreeMap<String, RouteEntry> = BTreeMap::new();
        let mut stall_after = HashMap::new();
        for p in projections {
            stall_after.insert(p.name().to_string(), p.settings().stall_after);
            for r in &p.definition().routes {
                by_path
                    .entry(r.path.clone())
                    .or_insert_with(|| RouteEntry {
                        path: r.path.clone(),
                        projection: p.name().to_string(),
                        by_version: BTreeMap::new(),
                    })
                    .by_version
                    .insert(p.version(), r.clone());
            }
        }
        for (_, f) in files {
            for r in &f.routes {
                let entry = by_path.entry(r.path.clone()).or_insert_with(|| RouteEntry {
                    path: r.path.clone(),
                    projection: f.projection.clone(),
                    by_version: BTreeMap::new(),
                });
                for p in projections.iter().filter(|p| p.name() == f.projection) {
                    entry.by_version.insert(p.version(), r.clone());
                }
            }
        }
        ReadApi {
            store,
            routes: Arc::new(by_path.into_values().map(Arc::new).collect()),
            stall_after,
            sinks: Sinks::default(),
        }
    }

    /// Routes with a `key` answer from their projection's sink (a Redis key lookup through the
    /// sink's reader pointer) instead of the read store.
    pub fn with_sinks(mut self, sinks: Sinks) -> ReadApi {
        self.sinks = sinks;
        self
    }

    /// The paths served.
    pub fn paths(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.path.clone()).collect()
    }
}

/// The read API router.
pub fn app(api: ReadApi) -> Router {
    let mut router = Router::new();
    for entry in api.routes.iter() {
        let entry = entry.clone();
        router = router.route(
            &entry.path.clone(),
            get(
                move |State(api): State<ReadApi>,
                      params: RawPathParams,
                      Query(query): Query<HashMap<String, String>>| {
                    let entry = entry.clone();
                    async move {
                        let path: HashMap<String, String> = params
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        answer(api, entry, path, query).await
                    }
                },
            ),
        );
    }
    router.route("/healthz", get(health)).with_state(api)
}

async fn answer(
    api: ReadApi,
    entry: Arc<RouteEntry>,
    path: HashMap<String, String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let defined_min = entry.by_version.keys().next().copied().unwrap_or(1);
    let served = version::serving(&api.store, &entry.projection)
        .await?
        .unwrap_or(defined_min);
    let Some(def) = entry.by_version.get(&served) else {
        return Err(ApiError::NotFound);
    };
    let sink = api.sinks.get(&entry.projection, served);
    let (served, rows) = match (&sink, &def.key) {
        (Some(sink), Some(_)) => {
            let mut params = query.clone();
            params.extend(path.iter().map(|(k, v)| (k.clone(), v.clone())));
            let read = sink.read(def, served, &params).await?;
            let rows = match read.value {
                None => Vec::new(),
                Some(serde_json::Value::Object(o)) => vec![o],
                Some(serde_json::Value::Array(items)) if def.result == RouteResult::Many => items
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::Object(o) => o,
                        other => serde_json::Map::from_iter([("value".to_string(), other)]),
                    })
                    .collect(),
                Some(other) => vec![serde_json::Map::from_iter([("value".to_string(), other)])],
            };
            (read.version, rows)
        }
        _ => {
            let prepared = sql::prepare(&def.sql, dialect(&api.store), served);
            let values: Vec<Option<String>> = prepared
                .params
                .iter()
                .map(|n| path.get(n).or_else(|| query.get(n)).cloned())
                .collect();
            let rows = query_json(&api.store, &prepared.sql, &values, &def.json_columns).await?;
            (served, rows)
        }
    };
    let stall = api
        .stall_after
        .get(&entry.projection)
        .copied()
        .unwrap_or(Duration::from_secs(60));
    let fresh = freshness::status(&api.store, Some(&entry.projection), stall).await?;
    let (watermark, lag_ms) = freshness::summary(&fresh, &entry.projection, served);
    let mut headers = HeaderMap::new();
    if let Some(t) = watermark.and_then(DateTime::<Utc>::from_timestamp_millis)
        && let Ok(v) = HeaderValue::from_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    {
        headers.insert(WATERMARK_HEADER, v);
    }
    headers.insert(LAG_HEADER, HeaderValue::from(lag_ms));
    headers.insert(VERSION_HEADER, HeaderValue::from(served));
    let body = match def.result {
        RouteResult::One => match rows.into_iter().next() {
            Some(row) => serde_json::Value::Object(row),
            // A 404 carries the watermark too: "absent" may only mean "not projected yet", and
            // the shadow proxy needs the watermark to tell lag from drift.
            None => return Ok((headers, ApiError::NotFound.into_response()).into_response()),
        },
        RouteResult::Many => {
            serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect())
        }
    };
    Ok((headers, Json(body)).into_response())
}

async fn health(State(api): State<ReadApi>) -> Result<Response, ApiError> {
    let stall = api
        .stall_after
        .values()
        .copied()
        .min()
        .unwrap_or(Duration::from_secs(60));
    let rows = freshness::status(&api.store, None, stall).await?;
    let unhealthy: Vec<_> = rows.iter().filter(|r| !r.healthy).collect();
    let status = if unhealthy.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        status,
        Json(serde_json::json!({ "healthy": unhealthy.is_empty(), "partitions": rows })),
    )
        .into_response())
}
