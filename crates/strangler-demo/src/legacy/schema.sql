-- The sample legacy system's own tables (SQLite). Money is kept in cents, as many legacy
-- systems do; the read API formats it as DECIMAL strings.
CREATE TABLE IF NOT EXISTS orders (
    id            TEXT PRIMARY KEY,
    cust_id       TEXT NOT NULL,
    status        TEXT NOT NULL,              -- open | shipped | void
    currency      TEXT NOT NULL,
    subtotal_cents INTEGER NOT NULL,
    tax_cents     INTEGER NOT NULL,
    created_at    TEXT NOT NULL,              -- naive UTC, microseconds: 2026-11-22 19:31:45.123456
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_cust ON orders (cust_id, created_at);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);

CREATE TABLE IF NOT EXISTS order_items (
    order_id      TEXT NOT NULL REFERENCES orders(id),
    line_no       INTEGER NOT NULL,
    sku           TEXT NOT NULL,
    quantity      INTEGER NOT NULL,
    price_cents   INTEGER NOT NULL,
    internal_ref  TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

