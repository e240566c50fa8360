-- The keys of the next batch in commit order. Rows of transactions older than every running
-- transaction (pg_snapshot_xmin) are all committed or gone, so nothing can still appear before
-- the cursor, nor inside the key range returned: the rows themselves are then fetched by range
-- (pg_read_range.sql), in parts on several connections at once.
SELECT (transaction_id::text)::bigint AS tx, seq
FROM {table}
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  AND (transaction_id, seq) > ($1::text::xid8, $2)
  {unpublished}
ORDER BY transaction_id, seq
LIMIT $3
