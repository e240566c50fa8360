//! Fresh ClickHouse databases per test on the shared server (HTTP interface, port 8123).
//!
//! Set-up and drop speak HTTP/1.0 over a plain socket, so the harness needs no HTTP client
//! crate; tests talk to the database through `strangler-clickhouse`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `host:port` of the ClickHouse HTTP interface tests use; `STRANGLER_TEST_CLICKHOUSE` (a
/// `host:port`) overrides it.
pub fn clickhouse_addr() -> String {
    std::env::var("STRANGLER_TEST_CLICKHOUSE").unwrap_or_else(|_| "127.0.0.1:8123".into())
}

/// A ClickHouse database that exists for one test and is dropped after it.
pub struct TestClickHouse {
    /// `http://host:port/<database>`, the URL `strangler-clickhouse` and the sink config take.
    pub url: String,
    name: String,
}

impl TestClickHouse {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Runs one statement; the server's error text when it refuses.
pub fn clickhouse_execute(sql: &str) -> Result<String, String> {
    let addr = clickhouse_addr();
    let mut s = TcpStream::connect(&addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let req = format!(
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(body.trim().to_string())
    }
}

/// Creates an empty ClickHouse database for this test.
///
/// Panics with instructions when the server is not reachable.
pub fn clickhouse_database() -> TestClickHouse {
    let name = format!("st_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = clickhouse_execute(&format!("CREATE DATABASE `{name}`")) {
        panic!(
            "ClickHouse is not usable at {} ({e}). Start it with `runuser -u clickhouse -- \
             clickhouse-server --config-file=/etc/clickhouse-server/config.xml &`, run the suite \
             through deploy/test.sh, or point STRANGLER_TEST_CLICKHOUSE at a server",
            clickhouse_addr()
        )
    }
    TestClickHouse {
        url: format!("http://{}/{name}", clickhouse_addr()),
        name,
    }
}

impl Drop for TestClickHouse {
    fn drop(&mut self) {
        let _ = clickhouse_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}
