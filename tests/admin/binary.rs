//! The real `strangler proxy` binary with `[admin]` and the mismatch store: it serves the admin
//! API beside the proxy (refusing without a token), records mismatches while it shadows, and
//! keeps them after SIGTERM; `strangler admin` then serves the same store on its own. It also
//! spreads client connections evenly over the serving threads `--threads` asks for.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strangler_core::Mode;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::Store;
use strangler_test_support::sqlite_file;

use super::cli::strangler_bin;
use super::fixture::{Secrets, VIEWER, config_text, side};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn status(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(req.body(Full::default()).unwrap())
        .await
        .ok()?;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((code, String::from_utf8_lossy(&body).into_owned()))
}

async fn wait_up(url: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(url, None).await.is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "strangler exited early"
        );
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "strangler did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn proxy_binary_serves_the_admin_api_and_records_mismatches() {
    let secrets = Arc::new(Secrets {
        run: format!("SECRET{:08x}", rand::random::<u32>()),
        fixed: AtomicBool::new(false),
    });
    let legacy = side(secrets.clone(), false).await;
    let new = side(secrets.clone(), true).await;
    let db = sqlite_file();
    let (proxy_port, admin_port) = (free_port(), free_port());
    let text = config_text(&legacy.url(), &new.url(), &secrets.run)
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{admin_port}\""),
        )
        .replace(
            "mode_poll_ms = 50",
            &format!("mode_poll_ms = 50\nlisten = \"127.0.0.1:{proxy_port}\""),
        );
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("strangler.toml");
    std::fs::write(
        &config_file,
        format!("[store]\nurl = \"{}\"\n\n{text}", db.url),
    )
    .unwrap();
    let config = strangler_core::Config::load(&config_file).unwrap();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    cutover::set(
        &store,
        &config,
        &SetRequest {
            capability: "orders".into(),
            to: Mode::Shadow,
            actor: "test".into(),
            reason: "e2e".into(),
            force: false,
        },
    )
    .await
    .unwrap();

    let mut proxy = Command::new(strangler_bin())
        .arg("--config")
        .arg(&config_file)
        .arg("proxy")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_up(&format!("{admin}/"), &mut proxy).await;
    assert_eq!(
        status(&format!("{admin}/api/v1/capabilities"), None)
            .await
            .unwrap()
            .0,
        401
    );
    for id in 0..9 {
        let (code, _) = status(
            &format!("http://127.0.0.1:{proxy_port}/orders/{id}"),
            Some("client-token-123"),
        )
        .await
        .unwrap();
        assert_eq!(code, 200);
    }
    // Mismatches reach the store while the proxy runs (flush_ms = 50).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = status(
            &format!("{admin}/api/v1/capabilities/orders/fingerprints"),
            Some(VIEWER),
        )
        .await
        .unwrap();
        assert_eq!(code, 200);
        let fps: serde_json::Value = serde_json::from_str(&body).unwrap();
        if fps
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/total" && f["count"] == 3)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mismatches never reached the store: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, caps) = status(&format!("{admin}/api/v1/capabilities"), Some(VIEWER))
        .await
        .unwrap();
    assert!(
        caps.contains("\"lag_ms\":0"),
        "the proxy in this process gives live lag: {caps}"
    );
    stop(&mut proxy);

    // `strangler admin` serves the same store without a proxy.
    let mut alone = Command::new(strangler_bin())
        .arg("--config")
        .arg(&config_file)
        .arg("admin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(&format!("{admin}/"), &mut alone).await;
    let (code, body) = status(
        &format!("{admin}/api/v1/capabilities/orders/report"),
        Some(VIEWER),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["traffic"]["mismatches"], 3);
    assert!(
        report["freshness"]["lag_ms"].is_null(),
        "no proxy runs here"
    );
    stop(&mut alone);
}

/// The gauge `strangler_proxy_client_connections{thread="N"}` of a `/metrics` page, per thread.
fn connections_per_thread(metrics: &str) -> Vec<(String, f64)> {
    let mut per: Vec<(String, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("strangler_proxy_client_connections{thread=\""))
        .filter_map(|l| {
            let (thread, rest) = l.split_once("\"}")?;
            Some((thread.to_owned(), rest.trim().parse().ok()?))
        })
        .collect();
    per.sort_by(|a, b| a.0.cmp(&b.0));
    per
}

#[tokio::test]
async fn proxy_binary_spreads_client_connections_over_its_serving_threads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let legacy = strangler_test_support::upstream::upstream(axum::Router::new().route(
        "/orders/{id}",
        axum::routing::get(|| async { r#"{"id":1}"# }),
    ))
    .await;
    let db = sqlite_file();
    let (proxy_port, metrics_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("strangler.toml");
    std::fs::write(
        &config_file,
        format!(
            "[store]\nurl = \"{db}\"\n\n[proxy]\nlisten = \"127.0.0.1:{proxy_port}\"\n\
             legacy_url = \"{legacy}\"\nnew_url = \"{legacy}\"\n\n\
             [telemetry]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n\
             [[capability]]\nname = \"orders\"\nroutes = [\"GET /orders/{{id}}\"]\n",
            db = db.url,
            legacy = legacy.url(),
        ),
    )
    .unwrap();
    let mut proxy = Command::new(strangler_bin())
        .arg("--config")
        .arg(&config_file)
        .args(["proxy", "--threads", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(
        &format!("http://127.0.0.1:{proxy_port}/orders/0"),
        &mut proxy,
    )
    .await;
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    // The probe's own connection has closed once its gauge is back to 0 on every thread.
    let settled = |want: f64| {
        let metrics = metrics.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (_, page) = status(&metrics, None).await.expect("metrics page");
                let per = connections_per_thread(&page);
                if per.len() == 3 && per.iter().all(|(_, n)| *n == want) {
                    return per;
                }
                assert!(
                    Instant::now() < deadline,
                    "gauges never reached {want}: {per:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    settled(0.0).await;

    // Six keep-alive clients, one after the other: two on each of the three threads.
    let mut clients = Vec::new();
    for id in 1..=6 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
            .await
            .unwrap();
        c.write_all(format!("GET /orders/{id} HTTP/1.1\r\nhost: proxy\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(br#"{"id":1}"#) {
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed a keep-alive connection");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        clients.push(c);
    }
    settled(2.0).await;
    drop(clients);
    settled(0.0).await;
    stop(&mut proxy);
}
