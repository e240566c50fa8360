-- One batch in `seq` order: SQLite's single writer commits rows in the order it numbers them.
SELECT seq, {columns}
FROM {table}
WHERE seq > ?
  {unpublished}
ORDER BY seq
LIMIT ?
