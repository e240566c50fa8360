-- The sample legacy system's own tables (PostgreSQL), the same shape as schema.sql: money in
-- cents, naive timestamps kept as text, legacy column names.
CREATE TABLE IF NOT EXISTS orders (
    id             TEXT PRIMARY KEY,
    cust_id        TEXT NOT NULL,
    status         TEXT NOT NULL,             -- open | shipped | void
    currency       TEXT NOT NULL,
    subtotal_cents BIGINT NOT NULL,
    tax_cents      BIGINT NOT NULL,
    created_at     TEXT NOT NULL,             -- naive UTC, microseconds: 2026-11-22 19:31:45.123456
    updated_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_cust ON orders (cust_id, created_at);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);

CREATE TABLE IF NOT EXISTS order_items (
    order_id      TEXT NOT NULL REFERENCES orders(id),
    line_no       BIGINT NOT NULL,
    sku           TEXT NOT NULL,
    quantity      BIGINT NOT NULL,
    price_cents   BIGINT NOT NULL,
    internal_ref  TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
