-- Appends one batch to one (topic, partition) of the built-in log; offsets were assigned under
-- the head row's lock. $3..$7 are parallel arrays, one element per record.
INSERT INTO strangler_log (topic, partition, "offset", key, value, headers, timestamp_ms)
SELECT $1, $2, o, k, v, h::jsonb, t
FROM UNNEST($3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::bigint[]) AS r(o, k, v, h, t)
