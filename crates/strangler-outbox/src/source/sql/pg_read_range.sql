-- The rows of one key range found by pg_read_keys.sql (below the fence, so the range's rows
-- are final), in commit order. ORDER BY and LIMIT keep the planner on the ordered index scan.
SELECT (transaction_id::text)::bigint AS tx, seq, {columns}
FROM {table}
WHERE (transaction_id, seq) > ($1::text::xid8, $2)
  AND (transaction_id, seq) <= ($3::text::xid8, $4)
  {unpublished}
ORDER BY transaction_id, seq
LIMIT $5
