//! Which capability a request belongs to (method plus path pattern with `{param}` segments),
//! and the axum router that sends every request through the proxy.

use std::sync::Arc;

use axum::Router;
use http::Method;
use strangler_core::config::RouteSpec;

use crate::state::Proxy;

enum Segment {
    Literal(String),
    Param(String),
}

struct Route {
    method: Method,
    segments: Vec<Segment>,
    cap: usize,
}

/// A request matched to a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// The capability's index.
    pub cap: usize,
    /// The route's index, to read its parameters.
    pub route: usize,
}

/// Routes of every capability; literal segments win over parameters when both match.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Compiles `(capability index, "METHOD /path/{param}")` pairs; invalid routes were already
    /// rejected by configuration validation and are skipped here.
    pub fn new<'a>(routes: impl IntoIterator<Item = (usize, &'a str)>) -> Self {
        let mut table = RouteTable::default();
        for (cap, text) in routes {
            let Ok(spec) = RouteSpec::parse(text) else {
                continue;
            };
            let Ok(method) = spec.method.parse::<Method>() else {
                continue;
            };
            let segments = split(&spec.path)
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_owned()),
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect();
            table.routes.push(Route {
                method,
                segments,
                cap,
            });
        }
        // More literal segments first, so `/orders/recent` beats `/orders/{id}`.
        table.routes.sort_by_key(|r| {
            std::cmp::Reverse(
                r.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            )
        });
        table
    }

    /// The capability of `method path`, if any.
    pub fn lookup(&self, method: &Method, path: &str) -> Option<RouteMatch> {
        'routes: for (i, r) in self.routes.iter().enumerate() {
            if r.method != *method {
                continue;
            }
            let mut parts = split(path);
            for seg in &r.segments {
                let Some(part) = parts.next() else {
                    continue 'routes;
                };
                match seg {
                    Segment::Literal(l) if l != part => continue 'routes,
                    Segment::Param(_) if part.is_empty() => continue 'routes,
                    _ => {}
                }
            }
            if parts.next().is_none() {
                return Some(RouteMatch {
                    cap: r.cap,
                    route: i,
                });
            }
        }
        None
    }

    /// The value of parameter `name` of a matched route in `path`.
    pub fn param<'p>(&self, m: RouteMatch, path: &'p str, name: &str) -> Option<&'p str> {
        let route = self.routes.get(m.route)?;
        route
            .segments
            .iter()
            .zip(split(path))
            .find_map(|(seg, part)| match seg {
                Segment::Param(n) if n == name => Some(part),
                _ => None,
            })
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(|s| !s.is_empty())
}

/// The proxy as an axum router: every request goes through [`crate::handler::handle`].
pub fn app(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .fallback(crate::handler::handle)
        .with_state(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[test]
    fn routes_match_methods_literals_and_params() {
        let t = RouteTable::new([
            (0, "GET /orders/{id}"),
            (1, "GET /orders/recent"),
            (2, "POST /orders"),
            (3, "GET /customers/{cid}/orders/{id}"),
        ]);
        let get = Method::GET;
        assert_eq!(t.lookup(&get, "/orders/42").map(|m| m.cap), Some(0));
        assert_eq!(t.lookup(&get, "/orders/recent").map(|m| m.cap), Some(1));
        assert_eq!(t.lookup(&Method::POST, "/orders").map(|m| m.cap), Some(2));
        assert_eq!(t.lookup(&Method::POST, "/orders/42"), None);
        assert_eq!(t.lookup(&get, "/orders"), None);
        assert_eq!(t.lookup(&get, "/orders/42/lines"), None);
        let m = t.lookup(&get, "/customers/c9/orders/7").unwrap();
        assert_eq!(m.cap, 3);
        assert_eq!(t.param(m, "/customers/c9/orders/7", "cid"), Some("c9"));
        assert_eq!(t.param(m, "/customers/c9/orders/7", "id"), Some("7"));
        assert_eq!(t.param(m, "/customers/c9/orders/7", "nope"), None);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_short_502_without_internals() {
        let dir = tempfile::tempdir().unwrap();
        // Bound then dropped: nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!(
            "[proxy]\nlegacy_url = \"http://127.0.0.1:{port}\"\nnew_url = \"http://127.0.0.1:{port}\"\n\n\
             [[capability]]\nname = \"orders\"\nroutes = [\"GET /orders/{{id}}\"]\n"
        );
        let config =
            strangler_core::Config::parse(&text, &dir.path().join("strangler.toml")).unwrap();
        let url = format!("sqlite://{}", dir.path().join("control.db").display());
        let store = strangler_store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let proxy = Proxy::new(&config, store, cancel).unwrap();
        for path in ["/unmatched?q=1", "/orders/1"] {
            let resp = app(proxy.clone())
                .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), http::StatusCode::BAD_GATEWAY, "{path}");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"upstream unavailable\n");
        }
    }
}
