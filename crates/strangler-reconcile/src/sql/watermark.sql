-- The oldest event time applied over the partitions of a projection's newest version: every
-- legacy change before it has been applied.
SELECT min(c.last_event_time_ms)
FROM strangler_projection_checkpoint c
WHERE c.projection = $1
  AND c.version = (
      SELECT max(v.version) FROM strangler_projection_checkpoint v WHERE v.projection = $2
  )
