//! The processes under test and the services they need: a private PostgreSQL server (so the
//! suite may restart it without disturbing other tests on the shared one), a tansu broker with
//! SQLite storage (so its data survives a restart), and the real `strangler` binary as relay,
//! projector, read API and proxy.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::schedule::Component;

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free loopback port")
        .port()
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_port(addr: &str, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not accept connections on {addr} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sh(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- PostgreSQL ----

/// Where the suite's PostgreSQL runs.
pub enum Postgres {
    /// A server of its own in a temporary folder: restartable.
    Private(PrivatePg),
    /// The shared test server: never restarted.
    Shared,
}

/// A PostgreSQL server in a temporary folder, on its own port.
pub struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    as_postgres: bool,
}

fn pg_bin_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("STRANGLER_FAULT_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl Postgres {
    /// A private server when PostgreSQL's binaries are installed here, else the shared server
    /// (`STRANGLER_FAULT_SHARED_PG=1` forces the shared one).
    pub fn start() -> Postgres {
        if std::env::var("STRANGLER_FAULT_SHARED_PG").as_deref() == Ok("1") {
            return Postgres::Shared;
        }
        match pg_bin_dir() {
            Some(bin) => Postgres::Private(PrivatePg::start(bin)),
            None => Postgres::Shared,
        }
    }

    /// Admin URL to create databases with.
    pub fn admin_url(&self) -> String {
        match self {
            Postgres::Private(p) => format!("postgres://postgres@127.0.0.1:{}/postgres", p.port),
            // The harness's server, as `strangler_test_support::pg_database` finds it.
            Postgres::Shared => std::env::var("STRANGLER_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        }
    }

    /// Creates a fresh database and returns its URL.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let admin = self.admin_url();
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
        let db = format!(
            "fault_{name}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        sqlx::query(&format!("CREATE DATABASE \"{db}\""))
            .execute(&mut c)
            .await
            .expect("creating a database");
        let mut u = admin.clone();
        let cut = u.rfind('/').expect("admin URL has a path");
        u.truncate(cut + 1);
        u.push_str(&db);
        u
    }
}

impl Postgres {
    /// Drops the databases a run created on the shared server (a private one goes with its
    /// folder).
    pub async fn drop_databases(&self, urls: &[&str]) {
        use sqlx::Connection;
        if matches!(self, Postgres::Private(_)) {
            return;
        }
        let Ok(mut c) = sqlx::PgConnection::connect(&self.admin_url()).await else {
            return;
        };
        for url in urls {
            if let Some(name) = url.rsplit('/').next() {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
    }
}

impl PrivatePg {
    fn start(bin: PathBuf) -> PrivatePg {
        let dir = tempfile::Builder::new()
            .prefix("strangler-fault-pg")
            .tempdir()
            .expect("creating a folder for PostgreSQL");
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: as root, run it as the postgres user.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if as_postgres {
            sh(
                Command::new("chown").args(["postgres", &dir.path().display().to_string()]),
                "giving the PostgreSQL folder to the postgres user",
            );
        }
        let pg = PrivatePg {
            bin,
            data,
            _dir: dir,
            port: free_port(),
            as_postgres,
        };
        sh(
            &mut pg.cmd(
                "initdb",
                &[
                    "-D",
                    &pg.data.display().to_string(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        pg.up();
        pg
    }

    fn cmd(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool).display().to_string();
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]).args(args);
            c
        } else {
            let mut c = Command::new(exe);
            c.args(args);
            c
        }
    }

    fn up(&self) {
        let data = self.data.display().to_string();
        let opts = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c shared_buffers=32MB",
            self.port
        );
        let log = format!("{data}/../postgres.log");
        sh(
            &mut self.cmd(
                "pg_ctl",
                &[
                    "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
                ],
            ),
            "starting the private PostgreSQL",
        );
    }

    /// Immediate shutdown (no checkpoint: crash recovery on the next start), down for `down`.
    pub fn restart(&self, down: Duration) {
        let data = self.data.display().to_string();
        sh(
            &mut self.cmd("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]),
            "stopping the private PostgreSQL",
        );
        std::thread::sleep(down);
        self.up();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .cmd("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---- the broker ----

/// A tansu broker with SQLite storage in a folder of its own.
pub struct Broker {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: PathBuf,
    /// Times the broker accepted connections but answered no metadata request, so it was killed
    /// and started again (what a supervisor's liveness probe does): tansu 0.6 can lose its
    /// storage task and then reset every connection (docs/RELIABILITY.md, finding 6).
    pub revived: u32,
}

/// Whether the broker at `addr` answers a metadata request within `timeout`.
pub fn broker_answers(addr: &str, timeout: Duration) -> bool {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer};
    let Ok(p) = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("log_level", "0")
        .create::<BaseProducer>()
    else {
        return false;
    };
    p.client().fetch_metadata(None, timeout).is_ok()
}

fn tansu_bin() -> String {
    if let Ok(b) = std::env::var("TANSU_BIN") {
        return b;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let bin = format!("{home}/.cargo/bin/tansu");
    assert!(
        Path::new(&bin).exists(),
        "tansu is not installed at {bin}: `cargo install tansu --locked --features dynostore,libsql` \
         (deploy/test.sh does it), or set TANSU_BIN"
    );
    bin
}

impl Broker {
    /// Starts the broker with its SQLite file in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            dir: dir.to_path_buf(),
            revived: 0,
        };
        b.up();
        b
    }

    /// Starts the broker and waits until it answers a metadata request; a broker that accepts
    /// connections but answers nothing within 15 s is killed and started again.
    fn up(&mut self) {
        for attempt in 0.. {
            self.spawn();
            if broker_answers(&self.addr, Duration::from_secs(15)) {
                return;
            }
            assert!(
                attempt < 5,
                "tansu at {} answered no request after 6 starts",
                self.addr
            );
            eprintln!(
                "fault suite: the broker at {} accepts connections but answers nothing; starting it again",
                self.addr
            );
            self.revived += 1;
            self.kill();
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("opening the broker log");
        let out = log.try_clone().expect("sharing the broker log");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{}", self.addr),
                "--advertised-listener-url",
                &format!("tcp://{}", self.addr),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(&self.dir)
            // tansu logs to stdout: keep it, its storage errors are only said there.
            .env("RUST_LOG", "warn")
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        wait_port(&self.addr, Duration::from_secs(30), "tansu");
    }

    /// SIGKILL, down for `down`, start again on the same port and storage.
    pub fn restart(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.up();
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills a broker that stopped answering and starts it again, counted in `revived`.
    pub fn revive(&mut self) {
        self.revived += 1;
        self.kill();
        self.up();
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- strangler processes ----

/// The `strangler` binary: `STRANGLER_BIN`, else `target/debug/strangler` of this workspace.
pub fn strangler_bin() -> PathBuf {
    if let Ok(b) = std::env::var("STRANGLER_BIN") {
        return PathBuf::from(b);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/strangler");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p strangler-cli` first (deploy/test.sh and \
         deploy/fault-suite.sh do)",
        bin.display()
    );
    bin
}

/// One running strangler component and its history.
pub struct Proc {
    /// Which one.
    pub component: Component,
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    /// Address it serves on, when it serves.
    pub addr: Option<String>,
    /// Processes started so far.
    pub starts: u32,
    /// SIGKILLs so far.
    pub kills: u32,
}

impl Proc {
    /// Starts `component` with `config`, logging to `<dir>/<name>.log`.
    pub fn start(component: Component, config: &Path, dir: &Path, addr: Option<String>) -> Proc {
        let mut p = Proc {
            component,
            child: None,
            config: config.to_path_buf(),
            log: dir.join(format!("{}.log", component.name())),
            addr,
            starts: 0,
            kills: 0,
        };
        p.up();
        p
    }

    /// Starts the process again (after a kill) and waits until it listens, if it serves.
    pub fn up(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening a component log");
        let child = Command::new(strangler_bin())
            .arg("--config")
            .arg(&self.config)
            .args(self.component.args())
            .env("RUST_LOG", "warn,strangler=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting strangler {}: {e}", self.component.name()));
        self.child = Some(child);
        self.starts += 1;
        if let Some(addr) = &self.addr {
            let what = format!("strangler {}", self.component.name());
            let deadline = Instant::now() + Duration::from_secs(60);
            while TcpStream::connect(addr).is_err() {
                if let Some(c) = self.child.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    panic!(
                        "{what} exited with {status} before listening; its log:\n{}",
                        tail(&self.log, 40)
                    );
                }
                assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.kills += 1;
        }
    }

    /// The live process id.
    pub fn pid(&mut self) -> Option<u32> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(None) => Some(c.id()),
            _ => None,
        }
    }

    /// Whether the process exited on its own (a crash the suite did not cause).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM and wait up to `grace` for a clean exit; returns whether it exited successfully.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Memory samples of one component: per process (incarnation), the samples in KiB.
#[derive(Debug, Default, Clone)]
pub struct Rss {
    /// Incarnation number -> samples in KiB, in time order.
    pub by_start: BTreeMap<u32, Vec<u64>>,
}

impl Rss {
    /// Highest sample.
    pub fn peak_kib(&self) -> u64 {
        self.by_start.values().flatten().copied().max().unwrap_or(0)
    }
}
