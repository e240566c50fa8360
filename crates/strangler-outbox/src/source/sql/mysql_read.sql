-- One batch in `seq` order; the relay holds rows after a gap until the gap fills or proves to be
-- a rollback. Published rows (retention = "mark") are read too so that they do not look like gaps.
SELECT CAST(seq AS SIGNED) AS seq, {published_flag} AS published, {columns}
FROM {table}
WHERE seq > ?
ORDER BY seq
LIMIT ?
