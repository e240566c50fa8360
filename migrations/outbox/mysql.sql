-- Outbox table for MySQL 8 / MariaDB 10.6+, compatible with Debezium's Outbox Event Router.
-- The legacy application inserts one row per domain event in the same transaction as its change.
-- `seq` gives the relay a strictly increasing scan order; gaps from transactions that are still
-- open are held back (see the relay's gap-hold strategy), so a late commit is never skipped.
CREATE TABLE IF NOT EXISTS outbox (
    seq                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    id                  CHAR(36)      NOT NULL,
    aggregatetype       VARCHAR(255)  NOT NULL,
    aggregateid         VARCHAR(255)  NOT NULL,
    type                VARCHAR(255)  NOT NULL,
    payload             LONGTEXT      NULL,
    created_at          TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    tracingspancontext  VARCHAR(512)  NULL,
    published_at        TIMESTAMP(6)  NULL,   -- set by the relay when retention = "mark"
    PRIMARY KEY (seq),
    UNIQUE KEY outbox_id (id)
);

-- Rows the relay could not publish (payload not JSON, no aggregate id, no topic), with the reason.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
    dead_letter_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    outbox_table        VARCHAR(255)  NOT NULL,
    id                  VARCHAR(255)  NULL,
    aggregatetype       VARCHAR(255)  NULL,
    aggregateid         VARCHAR(255)  NULL,
    type                VARCHAR(255)  NULL,
    payload             LONGTEXT      NULL,
    headers             LONGTEXT      NOT NULL,   -- extra columns, as a JSON object
    reason              TEXT          NOT NULL,
    dead_lettered_at    TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
