//! Fencing: one relay per outbox. PostgreSQL holds a session advisory lock and MySQL/MariaDB a
//! `GET_LOCK` on the connection that reads and completes rows, so a relay whose connection died
//! has lost both its lock and any way to delete rows. SQLite has no session locks: a lease row
//! (`strangler_outbox_lease`, in the legacy file) with an expiry, renewed in every transaction
//! that completes rows. A relay that cannot take the lease waits as a standby and retries.

/// A holder id unique to this process: host, pid and a random part.
pub(crate) fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Wall-clock milliseconds since the epoch (lease expiry is compared across processes).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
