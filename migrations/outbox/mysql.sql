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
    PRIMARY KEY (seq),
    UNIQUE KEY outbox_id (id)
);
