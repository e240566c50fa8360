//! The real `strangler proxy` binary with `[admin]` and the mismatch store: it serves the admin
//! API beside the proxy (refusing without a token), records mismatches while it shadows, and
//! keeps them after SIGTERM; `strangler admin` then serves the same store on its own.

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
