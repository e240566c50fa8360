//! Fresh databases per test on the shared PostgreSQL and MariaDB servers, and SQLite files.

use sqlx::Connection;
use tempfile::TempDir;

/// Admin URL of the PostgreSQL server tests use; `STRANGLER_TEST_PG` overrides it.
pub fn pg_admin_url() -> String {
    std::env::var("STRANGLER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Admin URL of the MariaDB server tests use; `STRANGLER_TEST_MYSQL` overrides it.
pub fn mysql_admin_url() -> String {
    std::env::var("STRANGLER_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into())
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    /// Connection URL of the fresh database.
    pub url: String,
    name: String,
    kind: Kind,
    _dir: Option<TempDir>,
}

enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

impl TestDb {
    /// The database's name (for SQLite, the file path).
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn with_db(admin: &str, db: &str) -> String {
    let mut u = url::Url::parse(admin).expect("admin URL parses");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

fn fresh_name() -> String {
    format!("st_{}", uuid::Uuid::new_v4().simple())
}

/// Creates an empty PostgreSQL database for this test.
///
/// Panics with instructions when the server is not reachable.
pub async fn pg_database() -> TestDb {
    let admin = pg_admin_url();
    let name = fresh_name();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}). Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             run the suite through deploy/test.sh, or point STRANGLER_TEST_PG at a server"
            )
        });
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("creating a test database on PostgreSQL");
    TestDb {
        url: with_db(&admin, &name),
        name,
        kind: Kind::Postgres,
        _dir: None,
    }
}

/// Creates an empty MariaDB/MySQL database for this test.
///
/// Panics with instructions when the server is not reachable.
pub async fn mysql_database() -> TestDb {
    let admin = mysql_admin_url();
    let name = fresh_name();
    let mut conn = sqlx::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MariaDB is not reachable at {admin} ({e}). Start it with \
             `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, \
             run the suite through deploy/test.sh, or point STRANGLER_TEST_MYSQL at a server"
            )
        });
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .await
        .expect("creating a test database on MariaDB");
    TestDb {
        url: with_db(&admin, &name),
        name,
        kind: Kind::Mysql,
        _dir: None,
    }
}

/// A SQLite database file in a fresh temporary folder, removed after the test.
pub fn sqlite_file() -> TestDb {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let path = dir.path().join("test.db");
    TestDb {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        name: path.display().to_string(),
        kind: Kind::Sqlite,
        _dir: Some(dir),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, sql) = match self.kind {
            Kind::Sqlite => return,
            Kind::Postgres => (
                pg_admin_url(),
                format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ),
            Kind::Mysql => (
                mysql_admin_url(),
                format!("DROP DATABASE IF EXISTS `{}`", self.name),
            ),
        };
        let is_pg = matches!(self.kind, Kind::Postgres);
        // Drop runs inside the test's runtime; a thread with its own runtime avoids blocking it.
        let _ = std::thread::spawn(move || {
            crate::runtime().block_on(async move {
                if is_pg {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&sql).execute(&mut c).await;
                    }
                } else if let Ok(mut c) = sqlx::MySqlConnection::connect(&admin).await {
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                }
            })
        })
        .join();
    }
}
