SELECT ctid FROM {table}
WHERE (transaction_id, seq) >= ($1::text::xid8, $2) AND (transaction_id, seq) <= ($3::text::xid8, $4)
  {unpublished}
ORDER BY transaction_id, seq
LIMIT $5
