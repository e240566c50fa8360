-- Takes or renews the lease on one outbox: succeeds (one row changed) when nobody holds it, it
-- expired, or we already hold it.
INSERT INTO strangler_outbox_lease (outbox_table, holder, expires_at_ms) VALUES (?1, ?2, ?3)
ON CONFLICT (outbox_table) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
WHERE strangler_outbox_lease.holder = excluded.holder OR strangler_outbox_lease.expires_at_ms < ?4
