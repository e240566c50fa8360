-- The built-in log: Kafka-like topics, partitions and offsets in a table, for one machine without
-- Kafka. Offsets are dense per (topic, partition) and assigned under the head row's lock.
CREATE TABLE IF NOT EXISTS strangler_log (
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER  NOT NULL,
    key          BLOB,
    value        BLOB,
    headers      TEXT    NOT NULL DEFAULT '[]',   -- [["name", "utf-8 value"], ...] in order
    timestamp_ms INTEGER  NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);

CREATE TABLE IF NOT EXISTS strangler_log_head (
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER  NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);

-- Consumer-group offsets for readers that do not keep their own (projectors keep theirs in the
-- read store, in the same transaction as their writes).
CREATE TABLE IF NOT EXISTS strangler_log_group_offset (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER  NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
