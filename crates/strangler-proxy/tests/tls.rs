//! `https://` upstreams: the proxy talks TLS to legacy and the new path, trusting the CA bundle
//! of `proxy.tls_ca_file`, and refuses an upstream whose certificate that CA did not sign. The
//! upstreams are real TLS servers on loopback with certificates made by rcgen in the test.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use strangler_core::{Config, Mode};
use strangler_proxy::Proxy;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A certificate authority and a server certificate it signed for `127.0.0.1` and `localhost`.
struct Pki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_chain: vec![leaf.der().clone()],
        server_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// A TLS server on loopback answering every request with `body` and `x-served-by: name`.
async fn tls_upstream(pki: &Pki, name: &'static str, body: &'static str) -> String {
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        pki.server_chain.clone(),
        PrivateKeyDer::Pkcs8(pki.server_key.clone_key()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("x-served-by", name)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(body.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

async fn proxy(dir: &Path, legacy: &str, new: &str, ca_pem: &str) -> (Arc<Proxy>, Store, Config) {
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let text = format!(
        "[proxy]\nlegacy_url = \"{legacy}\"\nnew_url = \"{new}\"\ntls_ca_file = \"ca.pem\"\n\n\
         [[capability]]\nname = \"orders\"\nroutes = [\"GET /orders/{{id}}\"]\n"
    );
    let config = Config::parse(&text, &dir.join("strangler.toml")).expect("valid configuration");
    let url = format!("sqlite://{}", dir.join("control.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let proxy = Proxy::new(&config, store.clone(), CancellationToken::new()).unwrap();
    (proxy, store, config)
}

async fn get(proxy: &Arc<Proxy>, path: &str) -> (StatusCode, Option<String>, Bytes) {
    let resp = strangler_proxy::app(proxy.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let served = resp
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        served,
        resp.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let pki = pki();
    let legacy = tls_upstream(&pki, "legacy", r#"{"id":"1","total":10}"#).await;
    let new = tls_upstream(&pki, "new", r#"{"total":10,"id":"1"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let (proxy, store, config) = proxy(dir.path(), &legacy, &new, &pki.ca_pem).await;

    // Pass-through over TLS: legacy's bytes and headers.
    let (status, served, body) = get(&proxy, "/orders/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served.as_deref(), Some("legacy"));
    assert_eq!(&body[..], br#"{"id":"1","total":10}"#);

    // Shadow: the copy reaches the new path over TLS too and is compared (same JSON, keys in
    // another order, so it is judged rather than matched byte for byte).
    cutover::set(
        &store,
        &config,
        &SetRequest {
            capability: "orders".into(),
            to: Mode::Shadow,
            actor: "test".into(),
            reason: "tls".into(),
            force: false,
        },
    )
    .await
    .unwrap();
    proxy.refresh_modes().await.unwrap();
    let (_, served, _) = get(&proxy, "/orders/1").await;
    assert_eq!(served.as_deref(), Some("legacy"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = proxy.capability_status("orders").unwrap().counters;
        if c.matches + c.mismatches + c.errors > 0 {
            assert_eq!((c.matches, c.errors), (1, 0), "{c:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the mirror never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_signed_by_another_ca_is_refused() {
    let trusted = pki();
    let impostor = pki();
    let legacy = tls_upstream(&impostor, "legacy", "{}").await;
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _, _) = proxy(dir.path(), &legacy, &legacy, &trusted.ca_pem).await;
    let (status, served, body) = get(&proxy, "/anything").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(served, None);
    assert_eq!(&body[..], b"upstream unavailable\n");
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let parse = |ca: &str| {
        let text = format!(
            "[proxy]\nlegacy_url = \"https://legacy.internal\"\nnew_url = \"http://new:8080\"\n\
             tls_ca_file = \"{ca}\"\n"
        );
        Config::parse(&text, &dir.path().join("strangler.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let missing = parse("nope.pem");
    assert!(
        missing.contains("proxy.tls_ca_file") && missing.contains("does not exist"),
        "{missing}"
    );
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let empty = parse("empty.pem");
    assert!(
        empty.contains("proxy.tls_ca_file") && empty.contains("no PEM certificate"),
        "{empty}"
    );
    let ftp = {
        let text = "[proxy]\nlegacy_url = \"ftp://legacy\"\nnew_url = \"http://new:8080\"\n";
        Config::parse(text, &dir.path().join("strangler.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        ftp.contains("proxy.legacy_url") && ftp.contains("https://"),
        "{ftp}"
    );
}
