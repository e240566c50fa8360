//! A PostgreSQL server with `wal_level = logical`, for change-capture tests.
//!
//! The shared server is used when it is already configured so (or `STRANGLER_TEST_PG_LOGICAL`
//! names one). Otherwise the first test that asks starts a private cluster: `initdb` into a
//! temporary folder (as the `postgres` OS user when running as root, since initdb refuses root),
//! on a free port, with `wal_level = logical`. A small shell supervisor stops the cluster and
//! removes its folder once the test process is gone, so nothing outlives the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A fresh database on a logical-decoding server, dropped (with its slots) after the test.
pub struct LogicalDb {
    /// Connection URL of the fresh database.
    pub url: String,
    /// Admin URL of the server it lives on.
    pub admin_url: String,
    name: String,
}

impl LogicalDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates an empty database on a server with `wal_level = logical`.
///
/// Panics with instructions when no such server can be found or started.
pub async fn logical_pg_database() -> LogicalDb {
    let admin = tokio::task::spawn_blocking(logical_admin_url)
        .await
        .expect("starting the logical PostgreSQL");
    let name = format!("st_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("logical PostgreSQL at {admin} is not reachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("creating a test database on the logical PostgreSQL");
    let mut u = url::Url::parse(&admin).expect("admin URL parses");
    u.set_path(&format!("/{name}"));
    LogicalDb {
        url: u.to_string(),
        admin_url: admin,
        name,
    }
}

impl Drop for LogicalDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            crate::runtime().block_on(async move {
                let Ok(mut c) = sqlx::PgConnection::connect(&admin).await else {
                    return;
                };
                // A database with a slot cannot be dropped; a slot in use cannot be dropped.
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .execute(&mut c)
                .await;
                for _ in 0..20 {
                    let r = sqlx::query(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                         WHERE database = $1",
                    )
                    .bind(&name)
                    .execute(&mut c)
                    .await;
                    if r.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            })
        })
        .join();
    }
}

/// The admin URL of a server with `wal_level = logical`, starting a private one at most once.
/// Blocking: from async code, call it through `tokio::task::spawn_blocking`.
pub fn logical_admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("STRANGLER_TEST_PG_LOGICAL") {
            return url;
        }
        let shared = crate::databases::pg_admin_url();
        if crate::runtime().block_on(wal_level(&shared)).as_deref() == Some("logical") {
            return shared;
        }
        start_private_cluster()
    })
    .clone()
}

async fn wal_level(url: &str) -> Option<String> {
    let mut c = sqlx::PgConnection::connect(url).await.ok()?;
    sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(&mut c)
        .await
        .ok()
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("STRANGLER_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "the shared PostgreSQL is not wal_level = logical and no initdb was found under \
             /usr/lib/postgresql/*/bin: install postgresql, set STRANGLER_TEST_PG_BIN, or point \
             STRANGLER_TEST_PG_LOGICAL at a server with wal_level = logical"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args...`, as the `postgres` OS user when we are root.
fn as_pg_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_private_cluster() -> String {
    let bin = bin_dir();
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("strangler-logical-pg-")
        .tempdir()
        .expect("creating a folder for the logical PostgreSQL")
        .keep();
    let data = dir.join("data");
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown of {} to the postgres user failed", dir.display());
    }
    let out = as_pg_user(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("running initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port();
    let settings = format!(
        "-c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=8 \
         -c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={dir} \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        dir = dir.display()
    );
    let run_as = if root { "runuser -u postgres -- " } else { "" };
    // Start, then stop and clean up once the test process (our parent) has exited.
    let script = format!(
        "{run_as}{pg_ctl} -D {data} -l {dir}/log -o '{settings}' -w start >/dev/null || exit 1; \
         (while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
          {run_as}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}) \
         >/dev/null 2>&1 </dev/null &",
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .expect("starting the logical PostgreSQL");
    let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(
        status.success(),
        "pg_ctl start failed for the logical PostgreSQL: {}",
        log()
    );
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::runtime().block_on(wal_level(&url)).is_none() {
        assert!(
            Instant::now() < deadline,
            "the logical PostgreSQL did not accept connections: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    url
}
