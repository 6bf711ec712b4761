-- Enrich events with the user they belong to: a stream-static left outer join, the tutorial's
-- `events.join(users, on="user_id", how="left")`.
--
--   cargo run --release --bin sluice -- run examples/enrich_join.sql
--
-- The users table is read again for every micro-batch, so an edited users file shows up in the
-- next batch. Events of users missing from it (u4) keep their row, with NULL country and tier.

CREATE STREAM events (
  event_time TIMESTAMP,
  user_id    STRING,
  action     STRING,
  amount     BIGINT,
  event_id   STRING
) WITH (
  'connector' = 'files',
  'format' = 'json',
  'path' = 'examples/data/events',
  'maxFilesPerTrigger' = '1'
);

CREATE TABLE users (user_id STRING, country STRING, tier STRING)
  WITH ('connector' = 'files', 'format' = 'json', 'path' = 'examples/data/users');

CREATE SINK out WITH ('connector' = 'console', 'truncate' = 'false');

SET 'queryName' = 'enriched_events';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT e.event_time, e.user_id, e.action, e.amount, u.country, u.tier
FROM events e LEFT JOIN users u ON e.user_id = u.user_id;
