-- One dead letter; runs in the transaction that deletes or marks the outbox row.
INSERT INTO {dead_letter_table} (outbox_table, id, aggregatetype, aggregateid, type, payload, headers, reason)
VALUES ({p1}, {p2}, {p3}, {p4}, {p5}, {p6}, {p7}, {p8})
