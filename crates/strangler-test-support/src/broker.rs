//! A Kafka-protocol broker for tests: the one `deploy/test.sh` started (`STRANGLER_TEST_KAFKA`), or
//! a tansu broker this process starts on a free port and stops when it exits.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// A reachable broker.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Bootstrap address, `host:port`.
    pub bootstrap: String,
}

static BROKER: OnceLock<Broker> = OnceLock::new();

/// The broker for this test run, started on first use.
///
/// Panics with instructions when no broker is configured and tansu is not installed.
pub fn broker() -> Broker {
    BROKER
        .get_or_init(|| match std::env::var("STRANGLER_TEST_KAFKA") {
            Ok(addr) if !addr.is_empty() => {
                wait_for_port(&addr, Duration::from_secs(30));
                Broker { bootstrap: addr }
            }
            _ => start_tansu(),
        })
        .clone()
}

/// A name no other test uses: `<prefix>-<random>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

impl Broker {
    /// Creates a topic with `partitions` partitions and waits until it is usable.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("creating a Kafka admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res = admin
            .create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap_or_else(|e| panic!("creating topic {name} on {}: {e}", self.bootstrap));
        for r in res {
            if let Err((t, code)) = r
                && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            {
                panic!("creating topic {t}: {code}");
            }
        }
    }

    /// Creates a topic with a unique name and returns the name.
    pub async fn unique_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = unique_name(prefix);
        self.create_topic(&name, partitions).await;
        name
    }
}

fn tansu_bin() -> Option<String> {
    if let Ok(b) = std::env::var("TANSU_BIN") {
        return Some(b);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = format!("{home}/.cargo/bin/tansu");
    if std::path::Path::new(&cargo_bin).exists() {
        return Some(cargo_bin);
    }
    Command::new("tansu")
        .arg("--version")
        .output()
        .ok()
        .map(|_| "tansu".to_string())
}

fn start_tansu() -> Broker {
    let bin = tansu_bin().unwrap_or_else(|| {
        panic!(
            "no Kafka broker for tests: set STRANGLER_TEST_KAFKA=host:port, or install tansu with \
             `cargo install tansu --locked --features dynostore,libsql` (deploy/test.sh does both)"
        )
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let me = std::process::id();
    // A watchdog shell stops the broker when this test process exits, however it exits.
    let script = format!(
        "'{bin}' broker --listener-url tcp://{addr} --advertised-listener-url tcp://{addr} \
         --storage-engine memory://tansu/ >/dev/null 2>&1 & b=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $b 2>/dev/null; do sleep 1; done; kill $b 2>/dev/null"
    );
    // The watchdog outlives this handle on purpose; it reaps the broker itself.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tansu");
    wait_for_port(&addr, Duration::from_secs(30));
    Broker { bootstrap: addr }
}

fn wait_for_port(addr: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if start.elapsed() > timeout {
            panic!("the Kafka broker at {addr} did not accept connections within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
