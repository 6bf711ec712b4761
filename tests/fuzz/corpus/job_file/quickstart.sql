-- Quickstart: read the sample JSON events, keep the purchases, print them batch by batch.
--
--   cargo run --release --bin sluice -- run examples/quickstart.sql
--
-- Runs with Trigger.AvailableNow: one file per micro-batch (maxFilesPerTrigger = 1), then stops.

CREATE STREAM events (
  event_time TIMESTAMP,
  user_id    STRING,
  action     STRING,
  amount     BIGINT,
  event_id   STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH (
  'connector' = 'files',
  'format' = 'json',
  'path' = 'examples/data/events',
  'maxFilesPerTrigger' = '1'
);

CREATE SINK out WITH ('connector' = 'console', 'truncate' = 'false');

SET 'queryName' = 'buys';
SET 'trigger' = 'availableNow';

INSERT INTO out
SELECT event_time, user_id, amount, amount * 1.1 AS amount_with_tax
FROM events
WHERE action = 'buy';
